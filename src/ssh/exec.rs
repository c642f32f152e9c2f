//! Running a command on a host so that it can be killed for certain.
//!
//! Closing an SSH channel does not stop the remote command, and sshd ignores
//! `signal` requests for root sessions. But sshd starts every command in a
//! new session whose leader is the login shell, so the wrapper has that shell
//! print its pid (= session id) on stderr before running the command; on a
//! timeout or Ctrl-C a second channel signals the whole session with pkill.
//! The pid line is removed from stderr before anyone sees it.

use std::time::Duration;

use bytes::Bytes;
use russh::ChannelMsg;

use super::connect::Session;
use super::SshError;

/// Start of the line the wrapper prints; \x1f keeps it from colliding with real output.
const PID_MARKER: &[u8] = b"\x1ffleet-pid ";
/// Stderr held back while looking for the pid line; past this we give up.
const PID_SEARCH_LIMIT: usize = 64 * 1024;

/// Sends TERM to the session, gives it two seconds, then KILL. Uses pkill -s
/// (whole session, even subgroups made by `set -m`) and falls back to the
/// process group for hosts without procps. The wait counts only live
/// processes: zombies awaiting their parent would otherwise hold it for the
/// full grace period.
const KILL_SCRIPT: &str = r#"p=__PID__
kill -TERM -$p 2>/dev/null; pkill -TERM -s $p 2>/dev/null
i=0; while [ $i -lt 20 ] && ps -o stat= -s $p 2>/dev/null | grep -qv '^Z'; do sleep 0.1; i=$((i+1)); done
kill -KILL -$p 2>/dev/null; pkill -KILL -s $p 2>/dev/null; exit 0"#;

/// How a remote command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteExit {
    Code(u32),
    Signal(String),
    /// The channel closed without an exit status: the connection died or
    /// the server gave up on the command.
    Lost,
}

/// Something the remote command did.
#[derive(Debug)]
pub enum ProcessEvent {
    /// The command's shell is running and reported its session id.
    Started {
        session_id: u32,
    },
    Stdout(Bytes),
    Stderr(Bytes),
    Exited(RemoteExit),
}

/// A command running on a host, read as a stream of [`ProcessEvent`]s.
pub struct RemoteProcess {
    reader: russh::ChannelReadHalf,
    stderr: PidFilter,
    session_id: Option<u32>,
    /// Stderr released together with the pid line, returned right after `Started`.
    queued_stderr: Option<Bytes>,
    exit: Option<RemoteExit>,
    /// The channel has closed; only held stderr and the exit remain to report.
    closed: bool,
    reported_exit: bool,
}

impl Session {
    /// Starts `command` through the user's login shell with `env` exported
    /// first, writes `stdin` (if any) and closes the command's input.
    pub async fn spawn(
        &self,
        command: &str,
        env: &[(&str, String)],
        stdin: Option<Bytes>,
    ) -> Result<RemoteProcess, SshError> {
        let channel = self.handle.channel_open_session().await?;
        channel.exec(true, wrap_command(command, env)).await?;
        let (reader, writer) = channel.split();
        match stdin {
            // Written from its own task so a large input never stalls reading output.
            Some(data) => {
                tokio::spawn(async move {
                    if writer.data_bytes(data).await.is_ok() {
                        let _ = writer.eof().await;
                    }
                });
            }
            None => writer.eof().await?,
        }
        Ok(RemoteProcess {
            reader,
            stderr: PidFilter::default(),
            session_id: None,
            queued_stderr: None,
            exit: None,
            closed: false,
            reported_exit: false,
        })
    }

    /// Stops everything a [`RemoteProcess`] started: TERM, then KILL after a
    /// grace period. Returns once the kill script has finished on the host.
    pub async fn kill_session(&self, session_id: u32) -> Result<(), SshError> {
        let mut channel = self.handle.channel_open_session().await?;
        channel
            .exec(
                true,
                KILL_SCRIPT.replace("__PID__", &session_id.to_string()),
            )
            .await?;
        channel.eof().await?;
        // russh keeps a channel's stream open after Close; stop there.
        while let Some(message) = channel.wait().await {
            if matches!(message, ChannelMsg::Close) {
                break;
            }
        }
        Ok(())
    }
}

/// How long to keep reading a killed command for its last output and exit.
const KILL_GRACE: Duration = Duration::from_secs(5);

impl Session {
    /// Kills the command on the host while still draining its output, so a
    /// full channel cannot stall the connection the kill travels on.
    /// Returns the output read meanwhile.
    pub async fn stop(&self, process: &mut RemoteProcess) -> Vec<ProcessEvent> {
        let mut drained = Vec::new();
        let Some(session_id) = process.await_session_id(&mut drained).await else {
            return drained;
        };
        let kill = self.kill_session(session_id);
        tokio::pin!(kill);
        let grace = tokio::time::sleep(KILL_GRACE);
        tokio::pin!(grace);
        let (mut killed, mut exited) = (false, false);
        while !(killed && exited) {
            tokio::select! {
                result = &mut kill, if !killed => {
                    killed = true;
                    if let Err(error) = result {
                        tracing::warn!("could not kill the command: {error}");
                    }
                }
                event = process.next_event(), if !exited => match event {
                    Some(ProcessEvent::Exited(_)) | None => exited = true,
                    Some(other) => drained.push(other),
                },
                _ = &mut grace => break,
            }
        }
        drained
    }
}

impl RemoteProcess {
    /// A deadline can pass before a slow host's shell has even reported its
    /// pid; keep reading until it does, the command ends, or the grace runs out.
    async fn await_session_id(&mut self, drained: &mut Vec<ProcessEvent>) -> Option<u32> {
        let grace = tokio::time::sleep(KILL_GRACE);
        tokio::pin!(grace);
        while self.session_id.is_none() {
            tokio::select! {
                event = self.next_event() => match event {
                    Some(ProcessEvent::Exited(_)) | None => return None,
                    Some(other) => drained.push(other),
                },
                _ = &mut grace => {
                    tracing::warn!("command did not report its pid; it may still be running");
                    return None;
                }
            }
        }
        self.session_id
    }

    /// The next thing the command did; `None` once [`ProcessEvent::Exited`]
    /// has been returned.
    pub async fn next_event(&mut self) -> Option<ProcessEvent> {
        if let Some(data) = self.queued_stderr.take() {
            return Some(ProcessEvent::Stderr(data));
        }
        while !self.closed {
            match self.reader.wait().await {
                None | Some(ChannelMsg::Close) => self.closed = true,
                Some(ChannelMsg::Data { data }) => return Some(ProcessEvent::Stdout(data)),
                Some(ChannelMsg::ExtendedData { data, ext: 1 }) => {
                    let (session_id, released) = self.stderr.filter(data);
                    if let Some(session_id) = session_id {
                        self.session_id = Some(session_id);
                        self.queued_stderr = released;
                        return Some(ProcessEvent::Started { session_id });
                    }
                    if let Some(data) = released {
                        return Some(ProcessEvent::Stderr(data));
                    }
                }
                Some(ChannelMsg::ExitStatus { exit_status }) => {
                    self.exit = Some(RemoteExit::Code(exit_status))
                }
                Some(ChannelMsg::ExitSignal { signal_name, .. }) => {
                    self.exit = Some(RemoteExit::Signal(signal_name_of(&signal_name)))
                }
                Some(_) => {}
            }
        }
        if let Some(held) = self.stderr.release() {
            return Some(ProcessEvent::Stderr(held));
        }
        if self.reported_exit {
            return None;
        }
        self.reported_exit = true;
        Some(ProcessEvent::Exited(
            self.exit.take().unwrap_or(RemoteExit::Lost),
        ))
    }

    /// The session id of the command on the host, once its wrapper reported it.
    pub fn session_id(&self) -> Option<u32> {
        self.session_id
    }
}

fn signal_name_of(signal: &russh::Sig) -> String {
    match signal {
        russh::Sig::Custom(name) => name.clone(),
        other => format!("{other:?}"),
    }
}

/// The remote command line: report the session id, export `env`, then run
/// the operator's command unchanged in the same shell.
fn wrap_command(command: &str, env: &[(&str, String)]) -> String {
    let mut wrapped = String::from("printf '\\037fleet-pid %s\\n' \"$$\" >&2; ");
    for (name, value) in env {
        wrapped.push_str(&format!("{name}={}; export {name}; ", shell_quote(value)));
    }
    wrapped.push_str(command);
    wrapped
}

/// Quotes `text` as one word for any POSIX shell.
pub fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// Finds and removes the wrapper's pid line at the start of stderr.
#[derive(Default)]
struct PidFilter {
    held: Vec<u8>,
    searching_done: bool,
}

impl PidFilter {
    /// Returns the pid the moment its line is found, and the stderr to pass on now.
    fn filter(&mut self, data: Bytes) -> (Option<u32>, Option<Bytes>) {
        if self.searching_done {
            return (None, Some(data));
        }
        self.held.extend_from_slice(&data);
        if let Some(start) = find(&self.held, PID_MARKER) {
            let digits_start = start + PID_MARKER.len();
            if let Some(newline) = self.held[digits_start..].iter().position(|&b| b == b'\n') {
                let digits = &self.held[digits_start..digits_start + newline];
                let pid = std::str::from_utf8(digits)
                    .ok()
                    .and_then(|s| s.parse().ok());
                self.held.drain(start..=digits_start + newline);
                return (pid, self.release());
            }
        }
        if self.held.len() > PID_SEARCH_LIMIT {
            return (None, self.release());
        }
        (None, None)
    }

    /// Stops searching and hands back everything held.
    fn release(&mut self) -> Option<Bytes> {
        self.searching_done = true;
        let held = std::mem::take(&mut self.held);
        (!held.is_empty()).then(|| Bytes::from(held))
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_line_is_removed_across_chunks() {
        let mut filter = PidFilter::default();
        let first = filter.filter(Bytes::from_static(b"rc noise\n\x1ffleet-"));
        assert_eq!(first, (None, None));
        let (pid, passed) = filter.filter(Bytes::from_static(b"pid 4242\nreal error\n"));
        assert_eq!(pid, Some(4242));
        assert_eq!(passed.as_deref(), Some(&b"rc noise\nreal error\n"[..]));
        let later = filter.filter(Bytes::from_static(b"x"));
        assert_eq!(later, (None, Some(Bytes::from_static(b"x"))));
    }

    #[test]
    fn gives_up_without_marker() {
        let mut filter = PidFilter::default();
        let big = Bytes::from(vec![b'e'; PID_SEARCH_LIMIT + 1]);
        assert_eq!(filter.filter(big.clone()), (None, Some(big)));
    }

    #[test]
    fn quoting_survives_hostile_text() {
        assert_eq!(
            shell_quote("x'; touch /tmp/pwned; '"),
            r"'x'\''; touch /tmp/pwned; '\'''"
        );
        let wrapped = wrap_command("uptime", &[("PSSH_HOST", "a'b".into())]);
        assert!(
            wrapped.ends_with("PSSH_HOST='a'\\''b'; export PSSH_HOST; uptime"),
            "{wrapped}"
        );
    }
}
