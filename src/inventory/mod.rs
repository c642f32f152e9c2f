//! Which hosts a run targets: pssh hosts files (`-h`), host strings (`-H`),
//! ranges inside either, and the `-g` filter. Knows nothing of SSH or output.

mod range;
pub mod yaml;

use std::path::{Path, PathBuf};

use thiserror::Error;

pub use crate::model::Host;
use crate::model::{check_user, Endpoint};
use crate::pattern::wildcard_match;
use crate::text::{read_utf8, TextError};
pub use range::{RangeError, MAX_EXPANSION};

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
pub const MAX_HOSTS: usize = 100_000;

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
        other @ (TextError::NotAFile | TextError::TooLarge(_)) => InventoryError::Read {
            path: path.to_path_buf(),
            source: std::io::Error::other(other.to_string()),
        },
        TextError::NotUtf8 { line, column } => InventoryError::NotUtf8 {
            path: path.to_path_buf(),
            line,
            column,
        },
    })
}

/// Parses the text of a hosts file; `origin` names it in errors.
///
/// ```
/// let hosts = fleet::inventory::parse_hosts_text("web1\nroot@db1:2222  # primary\n", "inline")?;
/// assert_eq!(hosts[1].name, "db1");
/// assert_eq!((hosts[1].port, hosts[1].user.as_deref()), (Some(2222), Some("root")));
/// let bad = fleet::inventory::parse_hosts_text("web1:http\n", "hosts.txt").unwrap_err();
/// assert!(bad.to_string().starts_with("hosts.txt:1"), "{bad}");
/// # Ok::<(), fleet::inventory::InventoryError>(())
/// ```
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
            if parsed.0.user.is_some() {
                return Err(format!(
                    "`{spec}` names a user and so does the second field `{user}`; give only one"
                ));
            }
            check_user(user)?;
            parsed.0.user = Some(user);
            Ok(Some(parsed))
        }
        _ => Err(format!(
            "expected `[user@]host[:port]` or `host[:port] user`, found {} fields",
            fields.len()
        )),
    }
}

/// A hosts entry: `[user@]name[:port]`, the name perhaps holding ranges.
pub struct HostSpec<'a>(Endpoint<'a>);

impl<'a> HostSpec<'a> {
    pub fn parse(spec: &'a str) -> Result<Self, String> {
        Endpoint::parse(spec).map(HostSpec)
    }

    /// How many hosts it names, without making them.
    pub fn count(&self) -> Result<usize, String> {
        range::count(self.0.name).map_err(|e| e.to_string())
    }

    /// The hosts it names, each checked.
    pub fn expand(&self) -> Result<Vec<Host>, String> {
        let names = range::expand(self.0.name).map_err(|e| e.to_string())?;
        names
            .into_iter()
            .map(|name| self.0.host_named(name))
            .collect()
    }
}

/// Parses `[user@]host[:port]`, `[user@][v6addr]:port` or a bare IPv6 address;
/// the host part may hold ranges. The error says what was expected.
pub fn parse_host_spec(spec: &str) -> Result<Vec<Host>, String> {
    HostSpec::parse(spec)?.expand()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::fixtures::host;

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
            "big:2: the hosts file expands to more than 100000 hosts"
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
