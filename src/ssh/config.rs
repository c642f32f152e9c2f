//! ~/.ssh/config, parsed by ssh2-config, so prun reaches hosts the way
//! `ssh host` does. Before parsing, `Include`s are inlined here (with the
//! enclosing Host block restored after each, as OpenSSH does) and every
//! `Match` block is turned into a block that matches nothing, with one
//! warning, so its settings can never leak into a Host block.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ssh2_config::{ParseRule, SshConfig};

use super::options::{expand_tilde, SshOptions, SUPPORTED_KEYWORDS};
use super::SetupError;
use crate::duration::MAX_DURATION;
use crate::pattern::wildcard_match;
use crate::text::{read_utf8, TextError};

/// The system-wide ssh_config, read after the user's.
const SYSTEM_CONFIG: &str = "/etc/ssh/ssh_config";

/// OpenSSH's limit on nested Includes.
const MAX_INCLUDE_DEPTH: usize = 16;
/// A Host line no host name matches: where Match blocks go.
const NOWHERE: &str = "Host !*";

/// A parsed ssh_config file.
pub struct ConfigFile {
    path: PathBuf,
    parsed: SshConfig,
    /// Every line parsed, with the file and line it came from, to say
    /// where a bad value is.
    lines: Vec<Line>,
    /// The system-wide file, read after this one as OpenSSH does: what
    /// neither this file nor the command line sets comes from it.
    then: Option<Box<ConfigFile>>,
}

/// One line of the flattened config and where it was written.
struct Line {
    text: String,
    path: PathBuf,
    number: usize,
}

impl ConfigFile {
    /// ~/.ssh/config if it exists; `None` otherwise.
    pub fn load_default() -> Result<Option<Self>, SetupError> {
        Self::load_pair(&expand_tilde("~/.ssh/config"), Path::new(SYSTEM_CONFIG))
    }

    /// The user's file, then the system's, each where it exists (`-F`
    /// replaces both).
    fn load_pair(user: &Path, system: &Path) -> Result<Option<Self>, SetupError> {
        let system = match system.is_file() {
            true => Some(Self::load(system)?),
            false => None,
        };
        match (user.is_file(), system) {
            (true, system) => Ok(Some(ConfigFile {
                then: system.map(Box::new),
                ..Self::load(user)?
            })),
            (false, system) => Ok(system),
        }
    }

    /// The file given with `-F`; it must exist.
    pub fn load(path: &Path) -> Result<Self, SetupError> {
        let mut flattener = Flattener::default();
        flattener.read(path, 0)?;
        let lines = flattener.lines;
        let parsed = parse(&lines).map_err(|message| match first_bad_line(&lines) {
            Some(line) => config_error_at(line, message),
            None => config_error(path, message),
        })?;
        Ok(ConfigFile {
            path: path.to_path_buf(),
            parsed,
            lines,
            then: None,
        })
    }

    /// The options the file gives for `host`, as if each were given with -O
    /// (so they are checked the same way); `%h` in HostName becomes `host`.
    pub fn options_for(&self, host: &str) -> Result<SshOptions, SetupError> {
        let params = self.parsed.query(host);
        let mut options = SshOptions::default();
        if let Some(name) = &params.host_name {
            options.host_name = Some(name.replace("%h", host).replace("%%", "%"));
        }
        if let Some(user) = &params.user {
            self.set(&mut options, host, "User", user)?;
        }
        if let Some(port) = params.port {
            options.port = Some(port);
        }
        options.identity_files = params.identity_file.clone().unwrap_or_default();
        options.connect_timeout = self.bounded(host, "ConnectTimeout", params.connect_timeout)?;
        options.server_alive_interval =
            self.bounded(host, "ServerAliveInterval", params.server_alive_interval)?;
        if let Some(jumps) = &params.proxy_jump {
            self.set(&mut options, host, "ProxyJump", &jumps.join(","))?;
        }
        // As written, so `-` takes wildcards and the order is OpenSSH's:
        // ssh2-config's own resolution of these does neither.
        for keyword in ["KexAlgorithms", "Ciphers", "MACs", "HostKeyAlgorithms"] {
            if let Some(value) = self.first_value(host, keyword) {
                self.set(&mut options, host, keyword, value)?;
            }
        }
        for (keyword, values) in &params.unsupported_fields {
            if !SUPPORTED_KEYWORDS
                .iter()
                .any(|known| known.eq_ignore_ascii_case(keyword))
            {
                tracing::debug!(%host, "{}: ignoring {keyword}", self.path.display());
                continue;
            }
            self.set(&mut options, host, keyword, &values.join(" "))?;
        }
        for keyword in params.ignored_fields.keys() {
            tracing::debug!(%host, "{}: ignoring unknown keyword {keyword}", self.path.display());
        }
        if let Some(then) = &self.then {
            options.fill_from(then.options_for(host)?);
        }
        Ok(options)
    }
}

impl ConfigFile {
    /// Sets `keyword` as -O would; a bad value is an error at the line
    /// that holds it.
    fn set(
        &self,
        options: &mut SshOptions,
        host: &str,
        keyword: &str,
        value: &str,
    ) -> Result<(), SetupError> {
        options.set(keyword, value).map_err(|error| {
            let message = format!("for host {host}: {error}");
            match self.line_refusing(keyword) {
                Some(line) => config_error_at(line, message),
                None => config_error(&self.path, message),
            }
        })
    }

    /// The value of the first line setting `keyword` in a block that
    /// applies to `host` (first value wins, as in OpenSSH).
    fn first_value(&self, host: &str, keyword: &str) -> Option<&str> {
        let host = host.to_ascii_lowercase();
        let mut applies = true;
        for line in &self.lines {
            let (word, value) = keyword_and_arguments(&line.text);
            if word.eq_ignore_ascii_case("host") {
                applies = host_block_applies(value, &host);
            } else if applies && word.eq_ignore_ascii_case(keyword) {
                return Some(value.trim());
            }
        }
        None
    }

    /// The first line that sets `keyword` to a value -O would refuse.
    fn line_refusing(&self, keyword: &str) -> Option<&Line> {
        self.lines.iter().find(|line| {
            let (word, value) = keyword_and_arguments(&line.text);
            word.eq_ignore_ascii_case(keyword) && SshOptions::default().set(keyword, value).is_err()
        })
    }

    /// A duration from the file, refused when longer than fleet allows.
    fn bounded(
        &self,
        host: &str,
        keyword: &str,
        value: Option<Duration>,
    ) -> Result<Option<Duration>, SetupError> {
        match value {
            Some(duration) if duration > MAX_DURATION => Err(config_error(
                &self.path,
                format!(
                    "for host {host}: {keyword} {}s is longer than 30 days",
                    duration.as_secs()
                ),
            )),
            other => Ok(other),
        }
    }
}

/// Parses the flattened lines with ssh2-config.
fn parse(lines: &[Line]) -> Result<SshConfig, String> {
    let text: String = lines
        .iter()
        .map(|line| format!("{}\n", line.text))
        .collect();
    let rules = ParseRule::ALLOW_UNKNOWN_FIELDS | ParseRule::ALLOW_UNSUPPORTED_FIELDS;
    SshConfig::default()
        .parse(&mut BufReader::new(text.as_bytes()), rules)
        .map_err(|e| e.to_string())
}

/// The line where `lines` stop parsing, found by bisecting prefixes:
/// ssh2-config's errors do not say where they are.
fn first_bad_line(lines: &[Line]) -> Option<&Line> {
    // Invariant: the first `good` lines parse, the first `bad` do not.
    let (mut good, mut bad) = (0, lines.len());
    while bad - good > 1 {
        let middle = (good + bad) / 2;
        match parse(&lines[..middle]) {
            Ok(_) => good = middle,
            Err(_) => bad = middle,
        }
    }
    lines.get(bad.checked_sub(1)?)
}

/// A line's keyword and the rest, split as OpenSSH does (space or `=`).
fn keyword_and_arguments(line: &str) -> (&str, &str) {
    let trimmed = line.trim_start();
    let keyword_end = trimmed
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(trimmed.len());
    let (keyword, rest) = trimmed.split_at(keyword_end);
    (
        keyword,
        rest.trim_start_matches(|c: char| c.is_whitespace() || c == '='),
    )
}

/// Whether a `Host` line's patterns take `host`: one matches, and no
/// negated one does.
fn host_block_applies(patterns: &str, host: &str) -> bool {
    let mut matched = false;
    for pattern in patterns.split_whitespace() {
        let (negated, pattern) = match pattern.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, pattern),
        };
        if wildcard_match(&pattern.to_ascii_lowercase(), host) {
            if negated {
                return false;
            }
            matched = true;
        }
    }
    matched
}

fn config_error_at(line: &Line, message: String) -> SetupError {
    SetupError::ConfigLine {
        path: line.path.clone(),
        line: line.number,
        message,
    }
}

fn config_error(path: &Path, message: String) -> SetupError {
    SetupError::Config {
        path: path.to_path_buf(),
        message,
    }
}

/// Builds one text from a config file and everything it includes.
#[derive(Default)]
struct Flattener {
    lines: Vec<Line>,
    /// The Host line in force, to restore after an Include.
    current_host: Option<String>,
    warned_about_match: bool,
}

impl Flattener {
    fn read(&mut self, path: &Path, depth: usize) -> Result<(), SetupError> {
        if depth > MAX_INCLUDE_DEPTH {
            return Err(config_error(
                path,
                format!("Includes nested deeper than {MAX_INCLUDE_DEPTH}"),
            ));
        }
        let content = read_utf8(path).map_err(|error| match error {
            TextError::NotUtf8 { line, column } => {
                config_error(path, format!("line {line}, column {column}: not UTF-8"))
            }
            other => config_error(path, other.to_string()),
        })?;
        for (index, line) in content.lines().enumerate() {
            let (keyword, arguments) = keyword_and_arguments(line);
            let at = (path, index + 1);
            match keyword.to_ascii_lowercase().as_str() {
                "host" => {
                    self.current_host = Some(line.to_string());
                    self.push(line, at);
                }
                "match" => {
                    if !self.warned_about_match {
                        tracing::warn!(
                            "{}:{}: Match blocks are not supported; skipping them",
                            path.display(),
                            index + 1
                        );
                        self.warned_about_match = true;
                    }
                    self.current_host = Some(NOWHERE.to_string());
                    self.push(NOWHERE, at);
                }
                "include" => self.include(at, arguments, depth)?,
                _ => self.push(line, at),
            }
        }
        Ok(())
    }

    /// Inlines every file an `Include` names (globs, `~`, paths relative to
    /// ~/.ssh), then reopens the Host block that was in force.
    fn include(
        &mut self,
        (from, number): (&Path, usize),
        arguments: &str,
        depth: usize,
    ) -> Result<(), SetupError> {
        let saved = self.current_host.clone();
        for argument in arguments.split_whitespace() {
            let pattern = match expand_tilde(argument) {
                absolute if absolute.is_absolute() => absolute,
                relative => expand_tilde("~/.ssh").join(relative),
            };
            let paths = glob::glob(&pattern.to_string_lossy())
                .map_err(|e| config_error(from, format!("bad Include pattern {argument}: {e}")))?;
            let mut files: Vec<PathBuf> = paths
                .filter_map(Result::ok)
                .filter(|p| p.is_file())
                .collect();
            files.sort();
            for file in files {
                self.read(&file, depth + 1)?;
            }
        }
        let restore = saved.clone().unwrap_or_else(|| "Host *".to_string());
        self.push(&restore, (from, number));
        self.current_host = saved;
        Ok(())
    }

    fn push(&mut self, text: &str, (path, number): (&Path, usize)) {
        self.lines.push(Line {
            text: text.to_string(),
            path: path.to_path_buf(),
            number,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn write_config(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn host_blocks_negation_and_first_value_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_config(
            dir.path(),
            "config",
            "Host web* !web-legacy\n  User deploy\n  Port 2200\n  HostName %h.dc1.example\n\
             Host *\n  User fallback\n  ConnectTimeout 7\n  StrictHostKeyChecking accept-new\n  SomethingNew yes\n",
        );
        let config = ConfigFile::load(&path).unwrap();
        let web = config.options_for("web1").unwrap();
        assert_eq!(web.user.as_deref(), Some("deploy"));
        assert_eq!(web.port, Some(2200));
        assert_eq!(web.host_name.as_deref(), Some("web1.dc1.example"));
        assert_eq!(web.connect_timeout, Some(Duration::from_secs(7)));
        assert_eq!(
            web.strict_host_key_checking,
            Some(super::super::StrictHostKeyChecking::AcceptNew)
        );
        let legacy = config.options_for("web-legacy").unwrap();
        assert_eq!(legacy.user.as_deref(), Some("fallback"));
        assert_eq!(legacy.port, None);
    }

    #[test]
    fn include_with_glob_restores_the_enclosing_block() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("conf.d")).unwrap();
        write_config(dir.path(), "conf.d/10-db", "Host db*\n  User dba\n");
        let main = write_config(
            dir.path(),
            "config",
            &format!(
                "Host app\n  Include {}/conf.d/*\n  Port 2022\nHost *\n  User everyone\n",
                dir.path().display()
            ),
        );
        let config = ConfigFile::load(&main).unwrap();
        assert_eq!(
            config.options_for("db1").unwrap().user.as_deref(),
            Some("dba")
        );
        assert_eq!(
            config.options_for("app").unwrap().port,
            Some(2022),
            "Port stays in the app block"
        );
        assert_eq!(config.options_for("db1").unwrap().port, None);
    }

    #[test]
    fn match_blocks_never_leak() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_config(
            dir.path(),
            "config",
            "Host web1\n  User alice\nMatch host web1 exec true\n  User mallory\n  Port 9999\n",
        );
        let options = ConfigFile::load(&path)
            .unwrap()
            .options_for("web1")
            .unwrap();
        assert_eq!(options.user.as_deref(), Some("alice"));
        assert_eq!(options.port, None);
    }

    #[test]
    fn bad_values_name_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_config(
            dir.path(),
            "config",
            "Host *\n  User root\n\n  StrictHostKeyChecking maybe\n",
        );
        let error = ConfigFile::load(&path)
            .unwrap()
            .options_for("x")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("/config:4: for host x: bad value `maybe` for stricthostkeychecking"),
            "{error}"
        );
        let included = write_config(dir.path(), "extra", "# ports\nPort 22\nPort abc\n");
        let path = write_config(
            dir.path(),
            "config",
            &format!("Host a\n  User a\nInclude {}\n", included.display()),
        );
        let error = ConfigFile::load(&path).err().unwrap().to_string();
        assert!(error.ends_with("/extra:3: expected port number"), "{error}");
    }

    #[test]
    fn the_system_file_fills_what_the_users_leaves_unset() {
        let dir = tempfile::tempdir().unwrap();
        let user = write_config(dir.path(), "user", "Host *\n  User alice\n");
        let system = write_config(
            dir.path(),
            "system",
            "Host *\n  User bob\n  Port 2200\n  SendEnv LANG LC_*\n  HashKnownHosts yes\n",
        );
        let both = ConfigFile::load_pair(&user, &system).unwrap().unwrap();
        let options = both.options_for("web1").unwrap();
        assert_eq!(options.user.as_deref(), Some("alice"));
        assert_eq!(options.port, Some(2200));
        assert_eq!(options.hash_known_hosts, Some(true));
        let missing = dir.path().join("missing");
        let only_system = ConfigFile::load_pair(&missing, &system).unwrap().unwrap();
        assert_eq!(
            only_system.options_for("web1").unwrap().user.as_deref(),
            Some("bob")
        );
        assert!(ConfigFile::load_pair(&missing, &missing).unwrap().is_none());
    }
}
