//! Which hosts a run targets: pssh hosts files (`-h`), host strings (`-H`),
//! ranges inside either, and the `-g` filter. Knows nothing of SSH or output.

mod range;
pub mod yaml;

use std::fmt;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::pattern::wildcard_match;
pub use range::{RangeError, MAX_EXPANSION};

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

/// Why the hosts could not be read; every variant says where.
#[derive(Debug, Error)]
pub enum InventoryError {
    #[error("cannot read hosts file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{origin}:{line}: {message}")]
    Syntax {
        origin: String,
        line: usize,
        message: String,
    },
}

/// The operator's description of the hosts of a run.
#[derive(Debug, Default, Clone)]
pub struct HostSelection {
    /// Hosts files in pssh's format (`-h`).
    pub files: Vec<PathBuf>,
    /// Space-separated host strings (`-H`).
    pub host_strings: Vec<String>,
    /// Keep only hosts whose name matches this wildcard (`-g`).
    pub glob: Option<String>,
}

impl HostSelection {
    /// Reads every file and host string, in order, and applies the filter.
    pub fn load(&self) -> Result<Vec<Host>, InventoryError> {
        let mut hosts = Vec::new();
        for path in &self.files {
            hosts.extend(read_hosts_file(path)?);
        }
        for (index, text) in self.host_strings.iter().enumerate() {
            let origin = format!("-H argument {}", index + 1);
            for token in text.split_whitespace() {
                hosts.extend(
                    parse_host_spec(token).map_err(|message| InventoryError::Syntax {
                        origin: origin.clone(),
                        line: 1,
                        message,
                    })?,
                );
            }
        }
        if let Some(glob) = &self.glob {
            hosts.retain(|host| wildcard_match(glob, &host.name));
        }
        Ok(hosts)
    }
}

/// Reads one hosts file: `[user@]host[:port]` or the legacy `host[:port] user`
/// per line, `#` comments anywhere, blank lines skipped.
pub fn read_hosts_file(path: &Path) -> Result<Vec<Host>, InventoryError> {
    let text = std::fs::read_to_string(path).map_err(|source| InventoryError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_hosts_text(&text, &path.display().to_string())
}

/// Parses the text of a hosts file; `origin` names it in errors.
pub fn parse_hosts_text(text: &str, origin: &str) -> Result<Vec<Host>, InventoryError> {
    let mut hosts = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let syntax = |message| InventoryError::Syntax {
            origin: origin.to_string(),
            line: index + 1,
            message,
        };
        hosts.extend(parse_hosts_line(line).map_err(syntax)?);
    }
    Ok(hosts)
}

fn parse_hosts_line(line: &str) -> Result<Vec<Host>, String> {
    let content = line.split('#').next().unwrap_or_default();
    let fields: Vec<&str> = content.split_whitespace().collect();
    match fields.as_slice() {
        [] => Ok(Vec::new()),
        [spec] => parse_host_spec(spec),
        [spec, user] => {
            let mut hosts = parse_host_spec(spec)?;
            if hosts.iter().any(|h| h.user.is_some()) {
                return Err(format!(
                    "`{spec}` names a user and so does the second field `{user}`; give only one"
                ));
            }
            check_user(user)?;
            for host in &mut hosts {
                host.user = Some(user.to_string());
            }
            Ok(hosts)
        }
        _ => Err(format!(
            "expected `[user@]host[:port]` or `host[:port] user`, found {} fields",
            fields.len()
        )),
    }
}

/// Parses `[user@]host[:port]`, `[user@][v6addr]:port` or a bare IPv6 address;
/// the host part may hold ranges. The error says what was expected.
pub fn parse_host_spec(spec: &str) -> Result<Vec<Host>, String> {
    let (user, rest) = match spec.rsplit_once('@') {
        Some((user, rest)) => {
            check_user(user)?;
            (Some(user.to_string()), rest)
        }
        None => (None, spec),
    };
    let (name, port) = split_host_port(rest)?;
    let names = range::expand(name).map_err(|e| e.to_string())?;
    names
        .into_iter()
        .map(|name| {
            check_host_name(&name)?;
            Ok(Host {
                name,
                port,
                user: user.clone(),
            })
        })
        .collect()
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

fn check_host_name(name: &str) -> Result<(), String> {
    let valid = |c: char| c.is_ascii_alphanumeric() || "._-:%".contains(c);
    if name.is_empty() || name.starts_with('-') || !name.chars().all(valid) {
        return Err(format!(
            "expected a host name or address (letters, digits, '.', '-', '_'), found `{name}`"
        ));
    }
    Ok(())
}

fn check_user(user: &str) -> Result<(), String> {
    let valid = |c: char| c.is_ascii_alphanumeric() || "._-$".contains(c);
    if user.is_empty() || user.starts_with('-') || !user.chars().all(valid) {
        return Err(format!("expected a user name, found `{user}`"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str, port: Option<u16>, user: Option<&str>) -> Host {
        Host {
            name: name.into(),
            port,
            user: user.map(Into::into),
        }
    }

    #[test]
    fn pssh_forms() {
        let text = "# fleet\nweb1\n  root@web2:2222  # primary\n\nweb3:22 admin\n";
        assert_eq!(
            parse_hosts_text(text, "h").unwrap(),
            vec![
                host("web1", None, None),
                host("web2", Some(2222), Some("root")),
                host("web3", Some(22), Some("admin")),
            ]
        );
    }

    #[test]
    fn ipv6_forms() {
        assert_eq!(
            parse_host_spec("[::1]:2222").unwrap(),
            vec![host("::1", Some(2222), None)]
        );
        assert_eq!(
            parse_host_spec("u@[fe80::1]").unwrap(),
            vec![host("fe80::1", None, Some("u"))]
        );
        assert_eq!(
            parse_host_spec("::1").unwrap(),
            vec![host("::1", None, None)]
        );
        assert_eq!(
            host("::1", Some(22), Some("u")).to_hosts_line(),
            "u@[::1]:22"
        );
        assert_eq!(host("::1", None, None).to_hosts_line(), "[::1]");
    }

    #[test]
    fn ranges_expand_with_user_and_port() {
        let hosts = parse_host_spec("ops@n[1-2,5]:2200").unwrap();
        let names: Vec<_> = hosts.iter().map(Host::to_hosts_line).collect();
        assert_eq!(names, ["ops@n1:2200", "ops@n2:2200", "ops@n5:2200"]);
    }

    #[test]
    fn errors_name_file_and_line() {
        let err = parse_hosts_text("ok\nbad:port\n", "hosts.txt").unwrap_err();
        assert_eq!(
            err.to_string(),
            "hosts.txt:2: expected a port number from 1 to 65535, found `port`"
        );
        let err = parse_hosts_text("a b c\n", "f").unwrap_err().to_string();
        assert!(
            err.starts_with("f:1: expected `[user@]host[:port]`"),
            "{err}"
        );
        let err = parse_hosts_text("u@h other\n", "f")
            .unwrap_err()
            .to_string();
        assert!(err.contains("give only one"), "{err}");
        assert!(parse_hosts_text("web[1-3\n", "f").is_err());
        assert!(parse_hosts_text("h;rm\n", "f").is_err());
    }

    #[test]
    fn glob_filters_host_strings_too() {
        let selection = HostSelection {
            host_strings: vec!["web1 db1 web2:22".into()],
            glob: Some("web*".into()),
            ..Default::default()
        };
        let names: Vec<_> = selection.load().unwrap().iter().map(Host::label).collect();
        assert_eq!(names, ["web1", "web2:22"]);
    }
}
