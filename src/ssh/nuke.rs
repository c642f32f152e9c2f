//! Signalling processes by name on a host, for pnuke and pplay's `kill`:
//! pgrep's matching (an extended regular expression on the process name),
//! but never the host's way back in. pid 1 and the sshd processes (or
//! Dropbear's) are left alone unless `force` says otherwise, and the
//! command's own session (its shell, pgrep) always is. The pattern reaches
//! the host as one quoted word, so no pattern can reach a shell, and pgrep
//! reads it after `--`, so `-9` is a pattern, not a signal.

use std::ffi::{CStr, CString};
use std::mem::MaybeUninit;

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

/// A pattern that matches something specific: a valid extended regular
/// expression (pgrep's syntax) that neither matches the empty name nor
/// every one of a handful of unrelated names, so `.`, `.*`, `^` or `a|`
/// cannot signal every process on a host.
pub fn parse_pattern(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        return Err(
            "expected a process name pattern; an empty one would match every process".into(),
        );
    }
    let regex = PosixRegex::new(text)?;
    let matches_anything =
        regex.is_match("") || UNRELATED_NAMES.iter().all(|name| regex.is_match(name));
    match matches_anything {
        true => Err(format!(
            "pattern `{text}` matches every process name; name the processes to signal"
        )),
        false => Ok(text.to_string()),
    }
}

/// Process names with nothing in common: a pattern matching them all
/// matches everything.
const UNRELATED_NAMES: [&str; 6] = ["a", "Z", "0", "_", "kworker/0:1", "sshd"];

/// A POSIX extended regular expression compiled by the C library, as pgrep
/// compiles its pattern, to judge a pattern before it reaches any host.
struct PosixRegex(libc::regex_t);

impl PosixRegex {
    fn new(pattern: &str) -> Result<PosixRegex, String> {
        let pattern =
            CString::new(pattern).map_err(|_| "a pattern cannot hold a NUL byte".to_string())?;
        let mut regex = MaybeUninit::<libc::regex_t>::uninit();
        // SAFETY: regcomp initialises `regex` when it returns 0; on an error
        // regerror only reads it, and it is never freed or used.
        let code = unsafe {
            libc::regcomp(
                regex.as_mut_ptr(),
                pattern.as_ptr(),
                libc::REG_EXTENDED | libc::REG_NOSUB,
            )
        };
        if code != 0 {
            let mut message = [0u8; 256];
            // SAFETY: regerror writes at most `message.len()` bytes, NUL-terminated.
            unsafe {
                libc::regerror(
                    code,
                    regex.as_ptr(),
                    message.as_mut_ptr().cast(),
                    message.len(),
                )
            };
            let message = CStr::from_bytes_until_nul(&message)
                .map(|m| m.to_string_lossy().into_owned())
                .unwrap_or_default();
            return Err(format!(
                "expected an extended regular expression (as pgrep takes): {message}"
            ));
        }
        // SAFETY: regcomp returned 0, so it initialised the regex.
        Ok(PosixRegex(unsafe { regex.assume_init() }))
    }

    fn is_match(&self, text: &str) -> bool {
        let Ok(text) = CString::new(text) else {
            return false;
        };
        // SAFETY: the regex is compiled; REG_NOSUB needs no match array.
        unsafe { libc::regexec(&self.0, text.as_ptr(), 0, std::ptr::null_mut(), 0) == 0 }
    }
}

impl Drop for PosixRegex {
    fn drop(&mut self) {
        // SAFETY: compiled by regcomp, freed once.
        unsafe { libc::regfree(&mut self.0) }
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
    fn patterns_that_match_every_process_are_refused() {
        for everything in [".", ".*", "^", "$", "a|", "()", "[^/]", ".+", "x*"] {
            let error = parse_pattern(everything).unwrap_err();
            assert!(
                error.contains("matches every process"),
                "{everything}: {error}"
            );
        }
        for specific in ["sleep", "^xl$", "qemu-.*", "[a-z]", "-9"] {
            assert_eq!(parse_pattern(specific).unwrap(), specific);
        }
        assert!(parse_pattern("(unclosed")
            .unwrap_err()
            .contains("regular expression"));
    }

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
