//! ~/.ssh/config, parsed by ssh2-config, so prun reaches hosts the way
//! `ssh host` does. Before parsing, `Include`s are inlined here (with the
//! enclosing Host or Match block restored after each, as OpenSSH does).
//! ssh2-config knows no `Match`: each host's Match lines are decided here
//! (see [`super::matching`]), each becoming a Host line that matches
//! everything or nothing, and the file is parsed once per distinct set of
//! decisions (usually one or two for a whole fleet). As in OpenSSH, a
//! `Match final` block asks for a second pass, where `host` is HostName.

use std::collections::HashMap;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ssh2_config::{ParseRule, SshConfig};

use super::matching::{ExecCache, MatchLine, Subject};
use super::options::{expand_tilde, SshOptions, SUPPORTED_KEYWORDS};
use super::tokens::local_user_name;
use super::{SetupError, DEFAULT_PORT};
use crate::duration::MAX_DURATION;
use crate::pattern::wildcard_match;
use crate::text::{read_utf8, TextError};

/// Keywords ssh2-config parses itself that fleet reads as written.
const AS_WRITTEN: [&str; 7] = [
    "KexAlgorithms",
    "Ciphers",
    "MACs",
    "HostKeyAlgorithms",
    "PubkeyAcceptedAlgorithms",
    "ConnectionAttempts",
    "PubkeyAuthentication",
];

/// The system-wide ssh_config, read after the user's.
const SYSTEM_CONFIG: &str = "/etc/ssh/ssh_config";

/// OpenSSH's limit on nested Includes.
const MAX_INCLUDE_DEPTH: usize = 16;
/// A Host line no host name matches: a Match block that does not hold.
const NOWHERE: &str = "Host !*";
/// A Host line every host name matches: a Match block that holds.
const EVERYWHERE: &str = "Host *";

/// A parsed ssh_config file.
pub struct ConfigFile {
    path: PathBuf,
    /// Parsed once per distinct set of Match decisions (one per Match
    /// line, in order).
    parsed: Mutex<HashMap<Vec<bool>, Arc<SshConfig>>>,
    /// Every line parsed, with the file and line it came from, to say
    /// where a bad value is.
    lines: Vec<Line>,
    /// The lines decided per host, in order, and the index in `lines` of each.
    conditions: Vec<(Condition, usize)>,
    execs: ExecCache,
    /// The system-wide file, read after this one as OpenSSH does: what
    /// neither this file nor the command line sets comes from it.
    then: Option<Box<ConfigFile>>,
}

/// One line of the flattened config and where it was written.
struct Line {
    text: String,
    path: PathBuf,
    number: usize,
    /// A line decided per host (or one reopened after an Include): its
    /// index in `conditions`; its text stands for it only in messages.
    matching: Option<usize>,
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
            // Its relative Includes are relative to where it is, as in OpenSSH.
            true => Some(Self::load_relative_to(system, system.parent())?),
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
        Self::load_relative_to(path, None)
    }

    /// A file whose relative Includes are under `includes` (~/.ssh when
    /// `None`, as for the user's own files).
    fn load_relative_to(path: &Path, includes: Option<&Path>) -> Result<Self, SetupError> {
        let mut flattener = Flattener {
            includes: includes.map_or_else(|| expand_tilde("~/.ssh"), Path::to_path_buf),
            ..Flattener::default()
        };
        flattener.read(path, 0)?;
        let Flattener {
            lines, conditions, ..
        } = flattener;
        let none_hold = vec![false; conditions.len()];
        let parsed = parse(&lines, &none_hold).map_err(|message| {
            match first_bad_line(&lines, &none_hold) {
                Some(line) => config_error_at(line, message),
                None => config_error(path, message),
            }
        })?;
        Ok(ConfigFile {
            path: path.to_path_buf(),
            parsed: Mutex::new(HashMap::from([(none_hold, Arc::new(parsed))])),
            lines,
            conditions,
            execs: ExecCache::default(),
            then: None,
        })
    }

    /// The options the file gives for `host`, as if each were given with -O
    /// (so they are checked the same way); `%h` in HostName becomes `host`.
    /// `known` is what the hosts entry and the command line set (Match
    /// `user` sees their user).
    pub fn options_for(&self, host: &str, known: &SshOptions) -> Result<SshOptions, SetupError> {
        let mut options = self.pass(host, known, None)?;
        let final_pass = |(condition, _): &(Condition, usize)| match &condition.test {
            Test::Match(line) => line.wants_final_pass(),
            Test::Host(_) => false,
        };
        if self.conditions.iter().any(final_pass) {
            let mut so_far = known.clone();
            so_far.fill_from(options.clone());
            let target = so_far.host_name.clone().unwrap_or_else(|| host.to_string());
            options.fill_from(self.pass(host, &so_far, Some(&target))?);
        }
        if let Some(then) = &self.then {
            options.fill_from(then.options_for(host, known)?);
        }
        Ok(options)
    }
}

impl ConfigFile {
    /// One reading of the file for `host`: the first pass, or the final
    /// one, whose Match `host` is `final_host` (HostName).
    fn pass(
        &self,
        host: &str,
        known: &SshOptions,
        final_host: Option<&str>,
    ) -> Result<SshOptions, SetupError> {
        let decisions = self.decide(host, known, final_host)?;
        let parsed = self.parsed_for(&decisions)?;
        self.options_from(host, &parsed, &decisions)
    }

    /// Whether each condition holds for `host`, in order.
    fn decide(
        &self,
        host: &str,
        known: &SshOptions,
        final_host: Option<&str>,
    ) -> Result<Vec<bool>, SetupError> {
        let lower = host.to_ascii_lowercase();
        let mut decisions = Vec::with_capacity(self.conditions.len());
        for (condition, header) in &self.conditions {
            let guarded = condition.guards.iter().all(|guard| match guard {
                Block::Host(line) => host_block_applies(keyword_and_arguments(line).1, &lower),
                Block::Condition(index) => decisions.get(*index) == Some(&true),
            });
            let holds = guarded
                && match &condition.test {
                    Test::Host(patterns) => host_block_applies(patterns, &lower),
                    Test::Match(line) => {
                        let subject = self.subject(host, known, final_host, &decisions, *header);
                        let (user, target, port) = subject;
                        let subject = Subject {
                            original: host,
                            host: &target,
                            user: &user,
                            port,
                            final_pass: final_host.is_some(),
                        };
                        line.holds(&subject, &self.execs).map_err(|why| {
                            config_error_at(&self.lines[*header], format!("for host {host}: {why}"))
                        })?
                    }
                };
            decisions.push(holds);
        }
        Ok(decisions)
    }

    /// What a Match line at `header` tests for `host`: the user, the host
    /// to reach and the port as known, else as the lines above it set,
    /// as OpenSSH has them when it reaches the line. In the final pass the
    /// host is `final_host` (HostName).
    fn subject(
        &self,
        host: &str,
        known: &SshOptions,
        final_host: Option<&str>,
        decisions: &[bool],
        header: usize,
    ) -> (String, String, u16) {
        let above = |keyword| self.first_value(host, keyword, decisions, header);
        let user = match &known.user {
            Some(user) => user.clone(),
            None => above("User").map_or_else(local_user_name, str::to_string),
        };
        let target = match (final_host, known.host_name.as_deref()) {
            (Some(name), _) | (None, Some(name)) => name.to_string(),
            (None, None) => above("HostName")
                .map(|name| name.replace("%h", host).replace("%%", "%"))
                .unwrap_or_else(|| host.to_string()),
        };
        let port = known
            .port
            .or_else(|| above("Port").and_then(|port| port.parse().ok()))
            .unwrap_or(DEFAULT_PORT);
        (user, target, port)
    }

    /// The file parsed with these Match decisions, parsed once.
    fn parsed_for(&self, decisions: &[bool]) -> Result<Arc<SshConfig>, SetupError> {
        let mut parsed = self
            .parsed
            .lock()
            .map_err(|_| config_error(&self.path, "a parse panicked".into()))?;
        if let Some(config) = parsed.get(decisions) {
            return Ok(Arc::clone(config));
        }
        let config = Arc::new(
            parse(&self.lines, decisions).map_err(|message| config_error(&self.path, message))?,
        );
        parsed.insert(decisions.to_vec(), Arc::clone(&config));
        Ok(config)
    }

    /// What `parsed` (read with `decisions`) sets for `host`.
    fn options_from(
        &self,
        host: &str,
        parsed: &SshConfig,
        decisions: &[bool],
    ) -> Result<SshOptions, SetupError> {
        let params = parsed.query(host);
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
        // As written: ssh2-config keeps these to itself (algorithm lists
        // resolved without OpenSSH's wildcards and order, one
        // CertificateFile only), so they never reach `unsupported_fields`.
        let all = self.lines.len();
        for keyword in AS_WRITTEN {
            if let Some(value) = self.first_value(host, keyword, decisions, all) {
                self.set(&mut options, host, keyword, value)?;
            }
        }
        for value in self.values(host, "CertificateFile", decisions, all) {
            self.set(&mut options, host, "CertificateFile", value)?;
        }
        if let Some(value) = self.first_value(host, "RevokedHostKeys", decisions, all) {
            // A security setting: ignoring it would accept what it revokes.
            self.set(&mut options, host, "RevokedHostKeys", value)?;
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
        Ok(options)
    }

    /// Sets `keyword` as -O would; a bad value is an error at the line
    /// that holds it.
    fn set(
        &self,
        options: &mut SshOptions,
        host: &str,
        keyword: &str,
        value: &str,
    ) -> Result<(), SetupError> {
        // Errors spell it as the manual does (ssh2-config lowercases it).
        let keyword = SUPPORTED_KEYWORDS
            .iter()
            .find(|known| known.eq_ignore_ascii_case(keyword))
            .copied()
            .unwrap_or(keyword);
        options.set(keyword, value).map_err(|error| {
            let message = format!("for host {host}: {error}");
            match self.line_refusing(keyword) {
                Some(line) => config_error_at(line, message),
                None => config_error(&self.path, message),
            }
        })
    }

    /// The value of the first line, of the first `until` lines, setting
    /// `keyword` in a block that applies to `host` (first value wins, as in
    /// OpenSSH); Match lines hold as `decisions` say (those past its end
    /// are not reached).
    fn first_value<'a>(
        &'a self,
        host: &str,
        keyword: &'a str,
        decisions: &'a [bool],
        until: usize,
    ) -> Option<&'a str> {
        self.values(host, keyword, decisions, until).next()
    }

    /// Every value, in order, of the first `until` lines setting `keyword`
    /// in blocks that apply to `host` (Match lines as `decisions` say).
    fn values<'a>(
        &'a self,
        host: &str,
        keyword: &'a str,
        decisions: &'a [bool],
        until: usize,
    ) -> impl Iterator<Item = &'a str> {
        let host = host.to_ascii_lowercase();
        let mut applies = true;
        self.lines[..until].iter().filter_map(move |line| {
            let (word, value) = keyword_and_arguments(&line.text);
            if let Some(index) = line.matching {
                applies = decisions.get(index).copied().unwrap_or(false);
            } else if word.eq_ignore_ascii_case("host") {
                applies = host_block_applies(value, &host);
            } else if applies && word.eq_ignore_ascii_case(keyword) {
                return Some(value.trim());
            }
            None
        })
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

/// Parses the flattened lines with ssh2-config, each Match line a Host
/// line that takes every host or none, as `decisions` say.
fn parse(lines: &[Line], decisions: &[bool]) -> Result<SshConfig, String> {
    let text: String = lines
        .iter()
        .map(|line| match line.matching {
            Some(index) if decisions.get(index) == Some(&true) => format!("{EVERYWHERE}\n"),
            Some(_) => format!("{NOWHERE}\n"),
            None => format!("{}\n", for_ssh2_config(&line.text)),
        })
        .collect();
    let rules = ParseRule::ALLOW_UNKNOWN_FIELDS | ParseRule::ALLOW_UNSUPPORTED_FIELDS;
    SshConfig::default()
        .parse(&mut BufReader::new(text.as_bytes()), rules)
        .map_err(|e| e.to_string())
}

/// A line as ssh2-config can take it: values newer than it knows that
/// fleet reads itself (`PubkeyAuthentication unbound`) become one it does.
fn for_ssh2_config(line: &str) -> &str {
    let (keyword, value) = keyword_and_arguments(line);
    let newer = ["unbound", "host-bound"].contains(&value.trim().to_ascii_lowercase().as_str());
    match keyword.eq_ignore_ascii_case("PubkeyAuthentication") && newer {
        true => "PubkeyAuthentication yes",
        false => line,
    }
}

/// The line where `lines` stop parsing, found by bisecting prefixes:
/// ssh2-config's errors do not say where they are.
fn first_bad_line<'a>(lines: &'a [Line], decisions: &[bool]) -> Option<&'a Line> {
    // Invariant: the first `good` lines parse, the first `bad` do not.
    let (mut good, mut bad) = (0, lines.len());
    while bad - good > 1 {
        let middle = (good + bad) / 2;
        match parse(&lines[..middle], decisions) {
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

fn config_error_at_place((path, line): (&Path, usize), message: String) -> SetupError {
    SetupError::ConfigLine {
        path: path.to_path_buf(),
        line,
        message,
    }
}

fn config_error(path: &Path, message: String) -> SetupError {
    SetupError::Config {
        path: path.to_path_buf(),
        message,
    }
}

/// A line decided per host: a Match line, or a Host line of a file
/// included from a block that may not apply (as in OpenSSH, such a file's
/// blocks apply only where the block its Include sits in does).
struct Condition {
    test: Test,
    /// The blocks the Includes it came through sat in, outermost first.
    guards: Vec<Block>,
}

enum Test {
    Match(MatchLine),
    /// A Host line's patterns.
    Host(String),
}

/// Builds one text from a config file and everything it includes.
#[derive(Default)]
struct Flattener {
    lines: Vec<Line>,
    /// The lines decided per host, and where each is in `lines`.
    conditions: Vec<(Condition, usize)>,
    /// The Host or Match line in force, to restore after an Include.
    current_block: Option<Block>,
    /// The blocks the Includes being read sit in.
    guards: Vec<Block>,
    /// Where relative Includes are.
    includes: PathBuf,
}

/// A block's opening line.
#[derive(Clone)]
enum Block {
    /// A plain Host line, its text.
    Host(String),
    /// A line decided per host: its index in `conditions`.
    Condition(usize),
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
                "host" if self.guards.is_empty() => {
                    self.current_block = Some(Block::Host(line.to_string()));
                    self.push(line, at, None);
                }
                "host" => self.push_condition(line, at, Test::Host(arguments.to_string())),
                "match" => {
                    let parsed = MatchLine::parse(arguments)
                        .map_err(|why| config_error_at_place(at, why))?;
                    self.push_condition(line, at, Test::Match(parsed));
                }
                "include" => self.include(at, arguments, depth)?,
                _ => self.push(line, at, None),
            }
        }
        Ok(())
    }

    /// Inlines every file an `Include` names (globs, `~`, paths relative to
    /// ~/.ssh, or /etc/ssh in the system file), then reopens the block that
    /// was in force.
    fn include(
        &mut self,
        (from, number): (&Path, usize),
        arguments: &str,
        depth: usize,
    ) -> Result<(), SetupError> {
        let saved = self.current_block.clone();
        self.guards.extend(saved.clone());
        for argument in arguments.split_whitespace() {
            let pattern = match expand_tilde(argument) {
                absolute if absolute.is_absolute() => absolute,
                relative => self.includes.join(relative),
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
        if saved.is_some() {
            self.guards.pop();
        }
        match &saved {
            Some(Block::Condition(index)) => self.push("Match", (from, number), Some(*index)),
            Some(Block::Host(line)) => self.push(&line.clone(), (from, number), None),
            None => self.push(EVERYWHERE, (from, number), None),
        }
        self.current_block = saved;
        Ok(())
    }

    /// A line decided per host, guarded by the Includes being read.
    fn push_condition(&mut self, line: &str, at: (&Path, usize), test: Test) {
        let index = self.conditions.len();
        let guards = self.guards.clone();
        self.conditions
            .push((Condition { test, guards }, self.lines.len()));
        self.current_block = Some(Block::Condition(index));
        self.push(line, at, Some(index));
    }

    fn push(&mut self, text: &str, (path, number): (&Path, usize), matching: Option<usize>) {
        self.lines.push(Line {
            text: text.to_string(),
            path: path.to_path_buf(),
            number,
            matching,
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
        let web = config.options_for("web1", &SshOptions::default()).unwrap();
        assert_eq!(web.user.as_deref(), Some("deploy"));
        assert_eq!(web.port, Some(2200));
        assert_eq!(web.host_name.as_deref(), Some("web1.dc1.example"));
        assert_eq!(web.connect_timeout, Some(Duration::from_secs(7)));
        assert_eq!(
            web.strict_host_key_checking,
            Some(super::super::StrictHostKeyChecking::AcceptNew)
        );
        let legacy = config
            .options_for("web-legacy", &SshOptions::default())
            .unwrap();
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
                "Host app db2\n  Include {}/conf.d/*\n  Port 2022\nHost *\n  User everyone\n",
                dir.path().display()
            ),
        );
        let config = ConfigFile::load(&main).unwrap();
        let user = |host| {
            config
                .options_for(host, &SshOptions::default())
                .unwrap()
                .user
        };
        // The included blocks apply only where the block of the Include does.
        assert_eq!(user("db1").as_deref(), Some("everyone"));
        assert_eq!(user("db2").as_deref(), Some("dba"));
        assert_eq!(
            config
                .options_for("app", &SshOptions::default())
                .unwrap()
                .port,
            Some(2022),
            "Port stays in the app block"
        );
        assert_eq!(
            config
                .options_for("db1", &SshOptions::default())
                .unwrap()
                .port,
            None
        );
    }

    #[test]
    fn match_blocks_hold_per_host_user_and_pass() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_config(
            dir.path(),
            "config",
            "Host db1\n  HostName 10.0.0.9\nMatch host web1 exec \"test %n = web1\"\n  Port 9999\n\
             Match user ops\n  ConnectTimeout 7\nMatch final host 10.0.0.*\n  Port 2200\n\
             Match !localuser nobody-here host web*\n  ConnectTimeout 9\n  User fallback\n",
        );
        let config = ConfigFile::load(&path).unwrap();
        let plain = SshOptions::default();
        let web = config.options_for("web1", &plain).unwrap();
        assert_eq!(web.port, Some(9999));
        assert_eq!(web.connect_timeout, Some(Duration::from_secs(9)));
        assert_eq!(web.user.as_deref(), Some("fallback"));
        let ops = SshOptions {
            user: Some("ops".into()),
            ..SshOptions::default()
        };
        let web = config.options_for("web1", &ops).unwrap();
        assert_eq!(web.connect_timeout, Some(Duration::from_secs(7)));
        let db = config.options_for("db1", &plain).unwrap();
        assert_eq!(db.port, Some(2200), "the final pass matches HostName");
        assert_eq!(config.options_for("db2", &plain).unwrap().port, None);

        let included = write_config(dir.path(), "extra", "Host other\n  Port 1\n");
        let path = write_config(
            dir.path(),
            "config",
            &format!(
                "Match host web1\n  Include {}\n  Port 2\n",
                included.display()
            ),
        );
        let config = ConfigFile::load(&path).unwrap();
        assert_eq!(config.options_for("web1", &plain).unwrap().port, Some(2));
        assert_eq!(config.options_for("web2", &plain).unwrap().port, None);

        // Match host sees a HostName set above it; an Include in a Match
        // block that does not hold brings nothing.
        let included = write_config(dir.path(), "extra", "Host web*\n  Port 3\n");
        let path = write_config(
            dir.path(),
            "config",
            &format!(
                "Host web1\n  HostName 10.0.0.1\nMatch host 10.0.0.1\n  User fn\n\
                 Match host 10.9.9.9\n  Include {}\n",
                included.display()
            ),
        );
        let config = ConfigFile::load(&path).unwrap();
        let web1 = config.options_for("web1", &plain).unwrap();
        assert_eq!((web1.user.as_deref(), web1.port), (Some("fn"), None));

        let path = write_config(dir.path(), "config", "Host a\n  Port 1\nMatch canonical\n");
        let error = ConfigFile::load(&path).err().unwrap().to_string();
        assert!(
            error.ends_with("/config:3: Match canonical: fleet supports all, final, host, originalhost, user, localuser and exec"),
            "{error}"
        );
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
            .options_for("x", &SshOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("/config:4: for host x: bad value `maybe` for StrictHostKeyChecking"),
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
    fn keywords_ssh2_config_keeps_to_itself_are_read_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_config(
            dir.path(),
            "config",
            "Host *\n  CertificateFile /x/a-cert.pub\n  CertificateFile /x/b-cert.pub\n\
             \x20 ConnectionAttempts 3\n  PubkeyAuthentication no\n  PasswordAuthentication no\n\
             \x20 PubkeyAuthentication unbound\n\
             \x20 PreferredAuthentications password,keyboard-interactive\n  BatchMode yes\n",
        );
        let options = ConfigFile::load(&path)
            .unwrap()
            .options_for("web1", &SshOptions::default())
            .unwrap();
        let certificates = [
            PathBuf::from("/x/a-cert.pub"),
            PathBuf::from("/x/b-cert.pub"),
        ];
        assert_eq!(options.certificate_files, certificates);
        assert_eq!(options.connection_attempts, Some(3));
        assert_eq!(options.batch_mode, Some(true));
        use super::super::auth::AuthMethod;
        assert_eq!(options.auth_methods(), [AuthMethod::KeyboardInteractive]);
    }

    #[test]
    fn the_system_file_fills_what_the_users_leaves_unset() {
        let dir = tempfile::tempdir().unwrap();
        let user = write_config(dir.path(), "user", "Host *\n  User alice\n");
        std::fs::create_dir(dir.path().join("system.d")).unwrap();
        write_config(
            dir.path(),
            "system.d/10.conf",
            "Host *\n  ConnectTimeout 3\n",
        );
        let system = write_config(
            dir.path(),
            "system",
            "Include system.d/*.conf\nHost *\n  User bob\n  Port 2200\n  SendEnv LANG LC_*\n  HashKnownHosts yes\n",
        );
        let both = ConfigFile::load_pair(&user, &system).unwrap().unwrap();
        let options = both.options_for("web1", &SshOptions::default()).unwrap();
        assert_eq!(options.user.as_deref(), Some("alice"));
        assert_eq!(options.port, Some(2200));
        assert_eq!(options.hash_known_hosts, Some(true));
        assert_eq!(options.connect_timeout, Some(Duration::from_secs(3)));
        let missing = dir.path().join("missing");
        let only_system = ConfigFile::load_pair(&missing, &system).unwrap().unwrap();
        assert_eq!(
            only_system
                .options_for("web1", &SshOptions::default())
                .unwrap()
                .user
                .as_deref(),
            Some("bob")
        );
        assert!(ConfigFile::load_pair(&missing, &missing).unwrap().is_none());
    }
}
