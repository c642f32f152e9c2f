//! What every layer shares about hosts: a host as the operator named it
//! (`[user@]name[:port]`), the grammar of one such entry, the names its
//! files get on disk, and the variables attached to it. Inventories build
//! these, SSH connects to them, printers name them; this module knows
//! nothing of any of those.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

/// One SSH target as the operator named it: the unit the engine fans out over.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Host {
    /// Name or address to connect to.
    pub name: String,
    /// Port from the hosts entry; `None` lets the SSH options decide.
    pub port: Option<u16>,
    /// User from the hosts entry; `None` lets `-l` or the SSH options decide.
    pub user: Option<String>,
}

impl Host {
    /// A host by name alone: port and user as the SSH options say.
    pub fn named(name: &str) -> Host {
        Host {
            name: name.to_string(),
            port: None,
            user: None,
        }
    }

    /// pssh's name for the host in status lines and output files:
    /// `name`, or `name:port` when the entry gave a port.
    pub fn label(&self) -> String {
        match self.port {
            Some(port) if self.name.contains(':') => format!("[{}]:{port}", self.name),
            Some(port) => format!("{}:{port}", self.name),
            None => self.name.clone(),
        }
    }

    /// The entry as a hosts-file line that parses back to this host, for
    /// writing the failed hosts of a run as the input of the next.
    pub fn to_hosts_line(&self) -> String {
        let label = match self.port {
            None if self.name.contains(':') => format!("[{}]", self.name),
            _ => self.label(),
        };
        match &self.user {
            Some(user) => format!("{user}@{label}"),
            None => label,
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label())
    }
}

/// `[user@]name[:port]` taken apart; `name` may still hold ranges (the
/// inventory expands them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint<'a> {
    pub user: Option<&'a str>,
    pub name: &'a str,
    pub port: Option<u16>,
}

impl<'a> Endpoint<'a> {
    /// Parses `[user@]host[:port]`, `[user@][v6addr]:port` or a bare IPv6
    /// address; the error says what was expected.
    pub fn parse(spec: &'a str) -> Result<Self, String> {
        let (user, rest) = match spec.rsplit_once('@') {
            Some((user, rest)) => {
                check_user(user)?;
                (Some(user), rest)
            }
            None => (None, spec),
        };
        let (name, port) = split_host_port(rest)?;
        Ok(Endpoint { user, name, port })
    }

    /// The one host it names, its name checked (no ranges here).
    pub fn host(&self) -> Result<Host, String> {
        self.host_named(self.name.to_string())
    }

    /// A host with this entry's user and port and `name` (one expansion of
    /// a range), the name checked.
    pub fn host_named(&self, name: String) -> Result<Host, String> {
        check_host_name(&name)?;
        Ok(Host {
            name,
            port: self.port,
            user: self.user.map(str::to_string),
        })
    }
}

fn split_host_port(text: &str) -> Result<(&str, Option<u16>), String> {
    if let Some(inner) = text.strip_prefix('[') {
        if let Some((addr, after)) = inner.split_once(']') {
            if addr.contains(':') {
                return match after {
                    "" => Ok((addr, None)),
                    _ => match after.strip_prefix(':') {
                        Some(port) => Ok((addr, Some(parse_port(port)?))),
                        None => Err(format!("expected `[address]:port`, found `{text}`")),
                    },
                };
            }
        }
    }
    match text.matches(':').count() {
        0 => Ok((text, None)),
        1 => {
            let (name, port) = text.split_once(':').unwrap_or((text, ""));
            Ok((name, Some(parse_port(port)?)))
        }
        // Several colons and no brackets: a bare IPv6 address without a port.
        _ => Ok((text, None)),
    }
}

fn parse_port(text: &str) -> Result<u16, String> {
    match text.parse::<u16>() {
        Ok(port) if port > 0 => Ok(port),
        _ => Err(format!(
            "expected a port number from 1 to 65535, found `{text}`"
        )),
    }
}

/// Longest host name DNS allows; anything longer is a typo or an attack.
const MAX_HOST_NAME: usize = 255;

pub fn check_host_name(name: &str) -> Result<(), String> {
    if name.len() > MAX_HOST_NAME {
        return Err(format!(
            "expected a host name of at most {MAX_HOST_NAME} bytes, found one of {}",
            name.len()
        ));
    }
    let valid = |c: char| c.is_ascii_alphanumeric() || "._-:%".contains(c);
    // A name with colons must be an IPv6 address (with a %zone, perhaps);
    // names have dot-separated labels, none empty.
    let labels_ok = match name.contains(':') {
        true => name
            .split('%')
            .next()
            .is_some_and(|address| address.parse::<std::net::Ipv6Addr>().is_ok()),
        false => !name.trim_end_matches('.').split('.').any(str::is_empty),
    };
    if name.is_empty() || name.starts_with('-') || !name.chars().all(valid) || !labels_ok {
        return Err(format!(
            "expected a host name or address (letters, digits, '.', '-', '_'), found `{}`",
            name.escape_debug()
        ));
    }
    Ok(())
}

pub fn check_user(user: &str) -> Result<(), String> {
    let valid = |c: char| c.is_ascii_alphanumeric() || "._-$".contains(c);
    if user.is_empty() || user.starts_with('-') || !user.chars().all(valid) {
        return Err(format!(
            "expected a user name, found `{}`",
            user.escape_debug()
        ));
    }
    Ok(())
}

/// pssh's name (`host` or `host:port`); when two entries share it, the later
/// ones get `user@` and then a `.N` suffix, so no host overwrites another.
pub fn file_names(hosts: &[Host]) -> Vec<String> {
    let mut taken = HashSet::new();
    hosts
        .iter()
        .map(|host| {
            let mut name = host.label();
            if taken.contains(&name) {
                if let Some(user) = &host.user {
                    name = format!("{user}@{name}");
                }
            }
            let base = name.clone();
            let mut n = 1;
            while !taken.insert(name.clone()) {
                n += 1;
                name = format!("{base}.{n}");
            }
            name
        })
        .collect()
}

/// Name → value for one host at one point of a playbook: the inventory's
/// variables, then registered values and facts.
pub type Vars = BTreeMap<String, String>;

/// Whether `name` can be a variable: for templates, `vars:` keys and `-e`.
pub fn valid_name(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
}

/// Hosts for the unit tests of every module.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::Host;

    pub fn host(name: &str, port: Option<u16>, user: Option<&str>) -> Host {
        Host {
            name: name.into(),
            port,
            user: user.map(Into::into),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::host;
    use super::*;

    #[test]
    fn ipv6_forms() {
        let parsed = |spec| Endpoint::parse(spec).unwrap().host().unwrap();
        assert_eq!(parsed("[::1]:2222"), host("::1", Some(2222), None));
        assert_eq!(parsed("u@[fe80::1]"), host("fe80::1", None, Some("u")));
        assert_eq!(parsed("::1"), host("::1", None, None));
        assert_eq!(
            host("::1", Some(22), Some("u")).to_hosts_line(),
            "u@[::1]:22"
        );
        assert_eq!(host("::1", None, None).to_hosts_line(), "[::1]");
        assert!(Endpoint::parse("127.0.0.1:22:33").unwrap().host().is_err());
        assert!(Endpoint::parse("fe80::1%eth0").unwrap().host().is_ok());
    }

    #[test]
    fn duplicate_entries_get_distinct_names() {
        let h = |user: Option<&str>| host("h", Some(22), user);
        let names = file_names(&[h(None), h(Some("a")), h(Some("a")), h(None)]);
        assert_eq!(names, ["h:22", "a@h:22", "a@h:22.2", "h:22.2"]);
    }
}
