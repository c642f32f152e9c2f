//! Running a command as another user through `sudo`, the way operators who
//! log in unprivileged get root (`--sudo`, pplay's `become`). The whole
//! remote command line, fleet's wrapper included, runs under sudo, so the
//! pid it reports and the kill that stops it are root's. The password
//! (`-A`) is sent on the channel only when sudo asks for it with a prompt
//! of fleet's own, so it never reaches argv, the environment, a file or a
//! log, and a command that reads stdin sees only its own input.

use std::sync::Arc;

use bytes::Bytes;

use super::exec::shell_quote;

/// The prompt fleet asks sudo to print. \x1f keeps it from colliding with
/// real output; sudo prints it as given (no `%` in it to expand).
pub(super) const PROMPT_MARKER: &[u8] = b"\x1ffleet-sudo-password\x1f";

/// Who to become, and the password to answer sudo with, if any.
#[derive(Clone)]
pub struct Sudo {
    user: String,
    password: Option<Arc<str>>,
}

impl Sudo {
    /// Becomes `user` (a name checked where it was given; it is quoted
    /// here in any case), answering sudo's prompt with `password`; without
    /// one, sudo must not ask (`NOPASSWD`).
    pub(super) fn new(user: &str, password: Option<&str>) -> Sudo {
        Sudo {
            user: user.to_string(),
            password: password.map(Arc::from),
        }
    }

    /// `line` run under sudo by the login shell (the one that parses the
    /// command without sudo, so `--sudo` changes only who runs it; its
    /// path is the new shell's `$0`). Without a password sudo must not
    /// prompt (`-n`: fail at once, not wait for an answer that never
    /// comes); with one it reads it from the channel (`-S`), except on a
    /// terminal, which sudo reads itself with its echo off.
    pub(super) fn wrap(&self, line: &str, tty: bool) -> String {
        let mode = match (&self.password, tty) {
            (None, _) => "-n ",
            (Some(_), false) => "-S ",
            (Some(_), true) => "",
        };
        // The login shell's parent is the connection's sshd: handed on as $1.
        format!(
            "exec sudo {mode}-p {prompt} -u {user} -- \"${{SHELL:-/bin/sh}}\" -c {line} \
             \"${{SHELL:-/bin/sh}}\" \"$PPID\"",
            prompt = shell_quote(&String::from_utf8_lossy(PROMPT_MARKER)),
            user = shell_quote(&self.user),
            line = shell_quote(line),
        )
    }

    /// What to send when sudo asks: the password and a newline.
    pub(super) fn answer(&self) -> Option<Bytes> {
        let password = self.password.as_deref()?;
        Some(Bytes::from(format!("{password}\n")))
    }
}

impl std::fmt::Debug for Sudo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sudo")
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_never_in_the_command_line() {
        let sudo = Sudo::new("root", Some("s3cret'"));
        let line = sudo.wrap("id -u", false);
        assert!(line.starts_with("exec sudo -S -p "), "{line}");
        assert!(
            line.ends_with(
                "-u 'root' -- \"${SHELL:-/bin/sh}\" -c 'id -u' \"${SHELL:-/bin/sh}\" \"$PPID\""
            ),
            "{line}"
        );
        assert!(!line.contains("s3cret"));
        assert!(!format!("{sudo:?}").contains("s3cret"));
        assert_eq!(sudo.answer().as_deref(), Some(&b"s3cret'\n"[..]));
        assert!(!sudo.wrap("true", true).contains(" -S "));
        let no_password = Sudo::new("app", None);
        assert!(no_password
            .wrap("true", false)
            .starts_with("exec sudo -n -p "));
    }
}
