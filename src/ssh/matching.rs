//! ssh_config's `Match` lines: the criteria OpenSSH supports that a fleet
//! tool can answer per host (`all`, `final`, `host`, `originalhost`,
//! `user`, `localuser`, `exec`, each negatable with `!`), parsed when the
//! file is read so that one fleet cannot understand is an error at its
//! line, never a silently skipped block. `exec` runs locally, once per
//! distinct command after expansion, however many hosts ask.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Mutex;

use super::tokens::{self, local_user_name, Tokens};
use crate::pattern::wildcard_match;

/// The tokens a `Match exec` command may hold, as in OpenSSH (less the
/// connection hashes fleet has no use for).
const EXEC_TOKENS: &str = "hnprulLd";

/// One `Match` line: every criterion must hold.
#[derive(Debug, Clone)]
pub(super) struct MatchLine {
    criteria: Vec<Criterion>,
}

#[derive(Debug, Clone)]
struct Criterion {
    negated: bool,
    test: Test,
}

#[derive(Debug, Clone)]
enum Test {
    All,
    Final,
    Host(String),
    OriginalHost(String),
    User(String),
    LocalUser(String),
    Exec(String),
}

/// What the criteria are tested against, for one host in one pass.
pub(super) struct Subject<'a> {
    /// The name as given.
    pub original: &'a str,
    /// The host to reach: the name in the first pass, HostName in the final one.
    pub host: &'a str,
    /// The remote user as known so far.
    pub user: &'a str,
    pub port: u16,
    /// The final pass (`Match final` holds only there).
    pub final_pass: bool,
}

/// `Match exec` verdicts by expanded command.
#[derive(Default)]
pub(super) struct ExecCache(Mutex<HashMap<String, bool>>);

impl MatchLine {
    /// The criteria after `Match`, or what is wrong with them.
    pub fn parse(arguments: &str) -> Result<MatchLine, String> {
        let words = split_words(arguments)?;
        let mut words = words.into_iter();
        let mut criteria = Vec::new();
        while let Some(word) = words.next() {
            let (negated, word) = match word.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, word.as_str()),
            };
            // `host=web*` is `host web*`, as OpenSSH takes it.
            let (keyword, mut joined) = match word.split_once('=') {
                Some((keyword, value)) => (keyword.to_ascii_lowercase(), Some(value.to_string())),
                None => (word.to_ascii_lowercase(), None),
            };
            let mut argument = |what: &str| {
                joined
                    .take()
                    .or_else(|| words.next())
                    .filter(|value| !value.is_empty())
                    .ok_or_else(|| format!("Match {keyword}: expected {what}"))
            };
            let test = match keyword.as_str() {
                "all" => Test::All,
                "final" => Test::Final,
                "host" => Test::Host(argument("host patterns")?),
                "originalhost" => Test::OriginalHost(argument("host patterns")?),
                "user" => Test::User(argument("user patterns")?),
                "localuser" => Test::LocalUser(argument("user patterns")?),
                "exec" => Test::Exec(argument("a command")?),
                other => {
                    return Err(format!(
                        "Match {other}: fleet supports all, final, host, originalhost, user, \
                         localuser and exec"
                    ))
                }
            };
            criteria.push(Criterion { negated, test });
        }
        if criteria.is_empty() {
            return Err("Match: expected criteria (all, host, user, exec...)".into());
        }
        let alone = |c: &Criterion| matches!(c.test, Test::All | Test::Final);
        if criteria.iter().any(|c| matches!(c.test, Test::All)) && !criteria.iter().all(alone) {
            return Err("Match all: `all` goes alone (or with `final`)".into());
        }
        Ok(MatchLine { criteria })
    }

    /// Whether the block needs the final pass (OpenSSH re-reads the
    /// configuration for it).
    pub fn wants_final_pass(&self) -> bool {
        self.criteria.iter().any(|c| matches!(c.test, Test::Final))
    }

    /// Whether every criterion holds for `subject`.
    pub fn holds(&self, subject: &Subject, execs: &ExecCache) -> Result<bool, String> {
        for criterion in &self.criteria {
            if criterion.holds(subject, execs)? == criterion.negated {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

impl Criterion {
    /// Whether the test (before any `!`) passes.
    fn holds(&self, subject: &Subject, execs: &ExecCache) -> Result<bool, String> {
        let host = |name: &str| name.to_ascii_lowercase();
        Ok(match &self.test {
            Test::All => true,
            Test::Final => subject.final_pass,
            Test::Host(patterns) => {
                list_matches(&patterns.to_ascii_lowercase(), &host(subject.host))
            }
            Test::OriginalHost(patterns) => {
                list_matches(&patterns.to_ascii_lowercase(), &host(subject.original))
            }
            Test::User(patterns) => list_matches(patterns, subject.user),
            Test::LocalUser(patterns) => list_matches(patterns, &local_user_name()),
            Test::Exec(command) => {
                let tokens = Tokens {
                    host: subject.host,
                    name: subject.original,
                    port: subject.port,
                    user: subject.user,
                };
                execs.run(&tokens::expand(
                    "Match exec",
                    command,
                    &tokens,
                    EXEC_TOKENS,
                )?)?
            }
        })
    }
}

impl ExecCache {
    /// Whether `command` exits 0, run through the shell with no input and
    /// its output discarded (its stderr shown), as OpenSSH runs it; once.
    fn run(&self, command: &str) -> Result<bool, String> {
        let mut cache = self.0.lock().map_err(|_| "Match exec: a check panicked")?;
        if let Some(&verdict) = cache.get(command) {
            return Ok(verdict);
        }
        let shell = std::env::var("SHELL").unwrap_or_else(|_| "/bin/sh".into());
        let status = std::process::Command::new(shell)
            .arg("-c")
            .arg(command)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .map_err(|e| format!("Match exec: cannot run `{command}`: {e}"))?;
        tracing::debug!("Match exec `{command}`: {status}");
        cache.insert(command.to_string(), status.success());
        Ok(status.success())
    }
}

/// Whether a comma-separated pattern list takes `value`: one pattern
/// matches and no `!`-negated one does (OpenSSH's match_pattern_list).
fn list_matches(list: &str, value: &str) -> bool {
    let mut matched = false;
    for pattern in list.split(',').map(str::trim) {
        match pattern.strip_prefix('!') {
            Some(negated) if wildcard_match(negated, value) => return false,
            Some(_) => {}
            None => matched |= wildcard_match(pattern, value),
        }
    }
    matched
}

/// Splits a Match line's arguments into words; double quotes keep spaces
/// (`exec "test -f ~/.vpn-up"`).
fn split_words(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut chars = text.trim().chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        if c == '\'' {
            return Err("Match: quote with double quotes (\"...\"), as OpenSSH reads them".into());
        }
        let mut word = String::new();
        let mut quoted = false;
        for c in chars.by_ref() {
            match c {
                '"' => quoted = !quoted,
                c if c.is_whitespace() && !quoted => break,
                c => word.push(c),
            }
        }
        if quoted {
            return Err("Match: a quote is not closed".into());
        }
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject<'a>(host: &'a str, user: &'a str, final_pass: bool) -> Subject<'a> {
        Subject {
            original: "web1",
            host,
            user,
            port: 22,
            final_pass,
        }
    }

    #[test]
    fn criteria_are_anded_and_negatable() {
        let execs = ExecCache::default();
        let line = MatchLine::parse("host web*,!web-legacy user ops").unwrap();
        assert!(line.holds(&subject("web1", "ops", false), &execs).unwrap());
        assert!(!line.holds(&subject("web1", "root", false), &execs).unwrap());
        assert!(!line
            .holds(&subject("web-legacy", "ops", false), &execs)
            .unwrap());
        let negated = MatchLine::parse("!originalhost db* final").unwrap();
        assert!(negated.wants_final_pass());
        assert!(!negated
            .holds(&subject("web1", "ops", false), &execs)
            .unwrap());
        assert!(negated
            .holds(&subject("web1", "ops", true), &execs)
            .unwrap());
        let by_hostname = MatchLine::parse("host 10.0.0.*").unwrap();
        assert!(by_hostname
            .holds(&subject("10.0.0.7", "ops", true), &execs)
            .unwrap());
    }

    #[test]
    fn exec_runs_once_per_expanded_command() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let line = MatchLine::parse(&format!(
            "exec \"echo %n >> {}; test %h = web1\"",
            log.display()
        ))
        .unwrap();
        let execs = ExecCache::default();
        assert!(line.holds(&subject("web1", "ops", false), &execs).unwrap());
        assert!(line.holds(&subject("web1", "ops", false), &execs).unwrap());
        assert!(!line.holds(&subject("web2", "ops", false), &execs).unwrap());
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "web1\nweb1\n");
    }

    #[test]
    fn what_fleet_cannot_answer_is_refused() {
        for (text, words) in [
            ("canonical", "fleet supports"),
            ("localnetwork 10.0.0.0/8", "fleet supports"),
            ("host", "expected host patterns"),
            ("host=", "expected host patterns"),
            ("", "expected criteria"),
            ("all host x", "goes alone"),
            ("exec \"true", "not closed"),
            ("exec 'test -d /tmp'", "double quotes"),
        ] {
            let error = MatchLine::parse(text).unwrap_err();
            assert!(error.contains(words), "{text}: {error}");
        }
        assert!(MatchLine::parse("final all").is_ok());
        let joined = MatchLine::parse("host=web* !user=root").unwrap();
        let execs = ExecCache::default();
        assert!(joined
            .holds(&subject("web1", "ops", false), &execs)
            .unwrap());
        assert!(!joined
            .holds(&subject("web1", "root", false), &execs)
            .unwrap());
    }
}
