//! Signalling processes by name on a host, for pnuke and pplay's `kill`:
//! pgrep's matching (an extended regular expression on the process name),
//! but never the host's way back in. pid 1 and the sshd processes (or
//! Dropbear's) are left alone unless `force` says otherwise, and the
//! command's own session (its shell, pgrep) always is. The pattern reaches
//! the host as one quoted word, so no pattern can reach a shell, and pgrep
//! reads it after `--`, so `-9` is a pattern, not a signal.

use super::shell_quote;

/// What to do to the processes a pattern matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nuke {
    pub pattern: String,
    /// A name (`TERM`) or number (`9`), as [`parse_signal`] gives it.
    pub signal: String,
    /// Only list what matches; signal nothing.
    pub list: bool,
    /// Signal pid 1 and sshd too.
    pub force: bool,
}

/// Linux's signal names, as `kill -l` lists them.
const SIGNALS: &[&str] = &[
    "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "IOT", "BUS", "FPE", "KILL", "USR1", "SEGV",
    "USR2", "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CLD", "CONT", "STOP", "TSTP", "TTIN",
    "TTOU", "URG", "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "POLL", "PWR", "SYS",
];

/// A signal name (`TERM`, `SIGTERM`, `term`) or number (1 to 64), as kill
/// takes it; a typo is refused here, not found on every host mid-rollout.
pub fn parse_signal(text: &str) -> Result<String, String> {
    let upper = text.trim().to_ascii_uppercase();
    let name = upper.trim_start_matches("SIG");
    let number = name.parse::<u8>().is_ok_and(|n| (1..=64).contains(&n));
    let realtime = ["RTMIN", "RTMAX"].iter().any(|base| {
        name.strip_prefix(base).is_some_and(|rest| {
            rest.is_empty()
                || rest[1..].parse::<u8>().is_ok_and(|n| n <= 30)
                    && (rest.starts_with('+') || rest.starts_with('-'))
        })
    });
    match number || realtime || SIGNALS.contains(&name) {
        true => Ok(name.to_string()),
        false => Err(format!(
            "expected a signal like KILL, TERM, HUP or 9 (see kill -l), found `{text}`"
        )),
    }
}

/// A pattern that matches something specific: an empty or blank one
/// would match every process on the host.
pub fn parse_pattern(text: &str) -> Result<String, String> {
    match text.trim().is_empty() {
        true => {
            Err("expected a process name pattern; an empty one would match every process".into())
        }
        false => Ok(text.to_string()),
    }
}

impl Nuke {
    /// Whether a host's count line (the script's first) says no process
    /// got the signal: nothing matched, or every match was protected.
    pub fn signalled_none(count_line: &str) -> bool {
        let count = count_line
            .split_once(": ")
            .and_then(|(_, rest)| rest.split_whitespace().next());
        count_line == "no match" || count == Some("0")
    }

    /// The script run on each host. Its first line of output is the count
    /// (`signalled with KILL: 3 (1 protected)`, `matched 2`, `no match`),
    /// then one line per process, protected ones marked.
    pub fn script(&self) -> String {
        let (verb, signal) = match self.list {
            true => ("matched", String::new()),
            false => ("signalled with", self.signal.clone()),
        };
        format!(
            "pattern={pattern}\nsignal={signal}\nforce={force}\nverb={verb}\n{BODY}",
            pattern = shell_quote(&self.pattern),
            signal = shell_quote(&signal),
            force = u8::from(self.force),
            verb = shell_quote(verb),
        )
    }
}

/// Reads each match's /proc/PID/stat with shell builtins (the process
/// name may hold spaces, so fields are taken after its closing paren):
/// session and name decide whether it is protected.
const BODY: &str = r#"[ -n "$pattern" ] || { echo "pnuke: empty pattern" >&2; exit 2; }
read -r stat < /proc/$$/stat; set -- ${stat##*) }; own=$4
out=$(pgrep -a -- "$pattern"); rc=$?
case $rc in
  0) ;;
  1) echo "no match"; exit 0 ;;
  *) echo "pnuke: pgrep failed (exit $rc)" >&2; exit "$rc" ;;
esac
hit=0; kept=0; failed=0; lines=
nl='
'
set -f; IFS=$nl
for line in $out; do
  IFS=' '
  pid=${line%% *}
  read -r stat 2>/dev/null < "/proc/$pid/stat" || continue
  set -- ${stat##*) }
  [ "$4" = "$own" ] && continue
  read -r name 2>/dev/null < "/proc/$pid/comm" || name=
  why=
  [ "$pid" = 1 ] && why="pid 1"
  case $name in sshd|sshd-*|dropbear) why="the host's ssh server" ;; esac
  if [ -n "$why" ] && [ "$force" = 0 ]; then
    kept=$((kept+1)); lines="$lines$line  [protected: $why; --force to include]$nl"; continue
  fi
  if [ -n "$signal" ] && ! kill -"$signal" "$pid" 2>/dev/null; then
    [ -e "/proc/$pid" ] || continue
    failed=$((failed+1)); echo "pnuke: cannot signal $pid" >&2; continue
  fi
  hit=$((hit+1)); lines="$lines$line$nl"
done
note=
[ "$kept" = 0 ] || note=" ($kept protected)"
if [ -n "$signal" ]; then echo "$verb $signal: $hit$note"; else echo "$verb $hit$note"; fi
printf '%s' "$lines"
[ "$failed" = 0 ]
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_lines_that_signalled_nothing() {
        assert!(Nuke::signalled_none("no match"));
        assert!(Nuke::signalled_none("signalled with KILL: 0 (1 protected)"));
        assert!(!Nuke::signalled_none("signalled with KILL: 3"));
        assert!(!Nuke::signalled_none(
            "signalled with TERM: 10 (1 protected)"
        ));
    }

    #[test]
    fn patterns_and_signals() {
        assert!(parse_pattern("").is_err());
        assert!(parse_pattern(" \t").is_err());
        assert_eq!(parse_pattern("-9").unwrap(), "-9");
        assert_eq!(parse_signal("sigterm").unwrap(), "TERM");
        assert!(parse_signal("KILL; rm").is_err());
        assert!(parse_signal("BANANA").is_err());
        assert!(parse_signal("99").is_err());
        assert_eq!(parse_signal("9").unwrap(), "9");
        assert_eq!(parse_signal("SIGRTMIN+3").unwrap(), "RTMIN+3");
    }

    #[test]
    fn the_pattern_is_one_quoted_word() {
        let nuke = Nuke {
            pattern: "x'; touch /tmp/p; '".into(),
            signal: "KILL".into(),
            list: false,
            force: false,
        };
        assert!(nuke
            .script()
            .starts_with("pattern='x'\\''; touch /tmp/p; '\\'''\n"));
    }
}
