//! Which hosts a run targets: pssh hosts files (`-h`), host strings (`-H`),
//! ranges inside either, and the `-g` filter. Knows nothing of SSH or output.

mod range;
pub mod yaml;

use std::fmt;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::pattern::wildcard_match;
use crate::text::{read_utf8, TextError};
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
    #[error("{}:{line}:{column}: not UTF-8", path.display())]
    NotUtf8 {
        path: PathBuf,
        line: usize,
        column: usize,
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

/// Most hosts one run may name, counted before any is made: a hosts file
/// of 200 lines like `x[1-90000]` must fail at once, not eat gigabytes.
pub const MAX_HOSTS: usize = 1_000_000;

impl HostSelection {
    /// Reads every file and host string, in order, and applies the filter.
    /// Every entry is counted before any host is built, so input naming
    /// more than [`MAX_HOSTS`] fails fast and in little memory.
    pub fn load(&self) -> Result<Vec<Host>, InventoryError> {
        let mut sources = Vec::with_capacity(self.files.len() + self.host_strings.len());
        for path in &self.files {
            sources.push((path.display().to_string(), read_hosts_text(path)?));
        }
        for (index, text) in self.host_strings.iter().enumerate() {
            // Host strings are space separated: one entry per line, as in a file.
            let lines = text.split_whitespace().collect::<Vec<_>>().join("\n");
            sources.push((format!("-H argument {}", index + 1), lines));
        }
        let mut hosts = expand_sources(&sources)?;
        if let Some(glob) = &self.glob {
            hosts.retain(|host| wildcard_match(glob, &host.name));
        }
        Ok(hosts)
    }
}

/// Reads one hosts file: `[user@]host[:port]` or the legacy `host[:port] user`
/// per line, `#` comments anywhere, blank lines skipped.
pub fn read_hosts_file(path: &Path) -> Result<Vec<Host>, InventoryError> {
    let text = read_hosts_text(path)?;
    expand_sources(&[(path.display().to_string(), text)])
}

fn read_hosts_text(path: &Path) -> Result<String, InventoryError> {
    read_utf8(path).map_err(|error| match error {
        TextError::Io(source) => InventoryError::Read {
            path: path.to_path_buf(),
            source,
        },
        TextError::NotUtf8 { line, column } => InventoryError::NotUtf8 {
            path: path.to_path_buf(),
            line,
            column,
        },
    })
}

/// Parses the text of a hosts file; `origin` names it in errors.
pub fn parse_hosts_text(text: &str, origin: &str) -> Result<Vec<Host>, InventoryError> {
    expand_sources(&[(origin.to_string(), text.to_string())])
}

/// One hosts-file line that names hosts, and where it is.
struct Line<'a> {
    origin: &'a str,
    number: usize,
    spec: HostSpec<'a>,
}

/// Every entry of every source, counted first and then expanded.
fn expand_sources(sources: &[(String, String)]) -> Result<Vec<Host>, InventoryError> {
    let mut lines = Vec::new();
    for (origin, text) in sources {
        for (index, text) in text.lines().enumerate() {
            let syntax = |message| InventoryError::Syntax {
                origin: origin.clone(),
                line: index + 1,
                message,
            };
            if let Some(spec) = parse_hosts_line(text).map_err(syntax)? {
                lines.push(Line {
                    origin,
                    number: index + 1,
                    spec,
                });
            }
        }
    }
    let mut total = 0usize;
    for line in &lines {
        let syntax = |message| InventoryError::Syntax {
            origin: line.origin.to_string(),
            line: line.number,
            message,
        };
        total = total.saturating_add(line.spec.count().map_err(syntax)?);
        if total > MAX_HOSTS {
            return Err(syntax(format!(
                "the hosts file expands to more than {MAX_HOSTS} hosts"
            )));
        }
    }
    let mut hosts = Vec::with_capacity(total);
    for line in lines {
        let syntax = |message| InventoryError::Syntax {
            origin: line.origin.to_string(),
            line: line.number,
            message,
        };
        hosts.extend(line.spec.expand().map_err(syntax)?);
    }
    Ok(hosts)
}

/// A line's entry, or `None` for a blank or comment line.
fn parse_hosts_line(line: &str) -> Result<Option<HostSpec<'_>>, String> {
    let content = line.split('#').next().unwrap_or_default();
    let fields: Vec<&str> = content.split_whitespace().collect();
    match fields.as_slice() {
        [] => Ok(None),
        [spec] => HostSpec::parse(spec).map(Some),
        [spec, user] => {
            let mut parsed = HostSpec::parse(spec)?;
            if parsed.user.is_some() {
                return Err(format!(
                    "`{spec}` names a user and so does the second field `{user}`; give only one"
                ));
            }
            check_user(user)?;
            parsed.user = Some(user);
            Ok(Some(parsed))
        }
        _ => Err(format!(
            "expected `[user@]host[:port]` or `host[:port] user`, found {} fields",
            fields.len()
        )),
    }
}

/// `[user@]host[:port]` taken apart; the host part may hold ranges.
pub struct HostSpec<'a> {
    user: Option<&'a str>,
    pattern: &'a str,
    port: Option<u16>,
}

impl<'a> HostSpec<'a> {
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
        let (pattern, port) = split_host_port(rest)?;
        Ok(HostSpec {
            user,
            pattern,
            port,
        })
    }

    /// How many hosts it names, without making them.
    pub fn count(&self) -> Result<usize, String> {
        range::count(self.pattern).map_err(|e| e.to_string())
    }

    /// The hosts it names, each checked.
    pub fn expand(&self) -> Result<Vec<Host>, String> {
        let names = range::expand(self.pattern).map_err(|e| e.to_string())?;
        names
            .into_iter()
            .map(|name| {
                check_host_name(&name)?;
                Ok(Host {
                    name,
                    port: self.port,
                    user: self.user.map(str::to_string),
                })
            })
            .collect()
    }
}

/// Parses `[user@]host[:port]`, `[user@][v6addr]:port` or a bare IPv6 address;
/// the host part may hold ranges. The error says what was expected.
pub fn parse_host_spec(spec: &str) -> Result<Vec<Host>, String> {
    HostSpec::parse(spec)?.expand()
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

fn check_host_name(name: &str) -> Result<(), String> {
    if name.len() > MAX_HOST_NAME {
        return Err(format!(
            "expected a host name of at most {MAX_HOST_NAME} bytes, found one of {}",
            name.len()
        ));
    }
    let valid = |c: char| c.is_ascii_alphanumeric() || "._-:%".contains(c);
    // IPv6 addresses have colons; names have dot-separated labels, none empty.
    let labels_ok = name.contains(':') || !name.trim_end_matches('.').split('.').any(str::is_empty);
    if name.is_empty() || name.starts_with('-') || !name.chars().all(valid) || !labels_ok {
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
        assert!(parse_hosts_text("a..b\n", "f").is_err());
        assert!(parse_hosts_text("fqdn.example.\n", "f").is_ok());
        let long = format!("{}\n", "a".repeat(256));
        let err = parse_hosts_text(&long, "f").unwrap_err().to_string();
        assert!(
            err.starts_with("f:1: expected a host name of at most 255 bytes"),
            "{err}"
        );
    }

    #[test]
    fn the_total_is_capped_before_anything_is_built() {
        let text = "x[1-90000]\n".repeat(200);
        let err = parse_hosts_text(&text, "big").unwrap_err().to_string();
        assert_eq!(
            err,
            "big:12: the hosts file expands to more than 1000000 hosts"
        );
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
