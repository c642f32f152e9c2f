//! One host's connection for a playbook: made when first needed, made again
//! after a reboot or a drop, and every command on it run through
//! [`Session::run`] (the one way fleet runs a remote command) under the
//! run's abort token. Also the host's facts.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use super::error::TaskError;
use super::vars::Vars;
use crate::model::Host;
use crate::ssh::{
    Command, Connector, OutputSink, RemoteExit, RunEnd, Session, StdinPiece, Stream, Sudo,
};
use crate::text::printable;

/// Most of one command's stdout and stderr kept (registers, asserts, messages).
const MAX_CAPTURE: usize = 1024 * 1024;
/// How long fact gathering may take.
const FACTS_TIMEOUT: Duration = Duration::from_secs(60);
/// How long reading a boot_id may take.
const BOOT_ID_TIMEOUT: Duration = Duration::from_secs(30);

/// What `delegate_to` names to run a task on this machine.
pub const LOCALHOST: &str = "localhost";

/// A host and its connection, if one is up.
pub struct Remote {
    connector: Arc<Connector>,
    pub host: Host,
    session: Option<Session>,
    /// The second Ctrl-C: stops connecting and kills what runs.
    abort: CancellationToken,
    /// `localhost` of `delegate_to`: commands run on this machine.
    local: bool,
    /// The sudo the task in progress runs its commands under (`become`).
    sudo: Option<Sudo>,
}

/// How a command ended, with its stdout (unless streamed elsewhere) and
/// stderr as text, each capped.
#[derive(Debug)]
pub struct Captured {
    pub exit: RemoteExit,
    pub stdout: String,
    pub stderr: String,
}

impl Captured {
    pub fn code(&self) -> Option<u32> {
        match self.exit {
            RemoteExit::Code(code) => Some(code),
            _ => None,
        }
    }

    /// The exit code when it is one of `ok_codes`, else the failure.
    pub fn accepted(&self, ok_codes: &[u32]) -> Result<u32, TaskError> {
        match self.code() {
            Some(code) if ok_codes.contains(&code) => Ok(code),
            _ => Err(self.failure()),
        }
    }

    /// This command's end as a task failure ("exit 3: <stderr>").
    pub fn failure(&self) -> TaskError {
        TaskError::Exit {
            exit: self.exit.clone(),
            stderr: self.stderr.clone(),
        }
    }
}

/// What gathering facts learns of a host.
pub struct Facts {
    pub kernel: String,
    pub hostname: String,
    pub boot_id: String,
}

impl Facts {
    /// Records the facts as the host's `host.*` variables.
    pub fn set_in(&self, vars: &mut Vars) {
        vars.insert("host.kernel".into(), self.kernel.clone());
        vars.insert("host.hostname".into(), self.hostname.clone());
        vars.insert("host.boot_id".into(), self.boot_id.clone());
    }
}

impl Remote {
    pub fn new(connector: Arc<Connector>, host: Host, abort: CancellationToken) -> Remote {
        Remote {
            connector,
            host,
            session: None,
            abort,
            local: false,
            sudo: None,
        }
    }

    /// This machine, for `delegate_to: localhost`: commands run as local
    /// processes, under the same timeout and kill rules.
    pub fn local(connector: Arc<Connector>, abort: CancellationToken) -> Remote {
        Remote {
            local: true,
            ..Remote::new(connector, Host::named(LOCALHOST), abort)
        }
    }

    /// The connection, made (again) if there is none or it has dropped.
    pub async fn session(&mut self) -> Result<&Session, TaskError> {
        if self.is_disconnected() {
            let connected = tokio::select! {
                connected = self.connector.connect(&self.host) => connected?,
                _ = self.abort.cancelled() => return Err(TaskError::Aborted),
            };
            self.session = Some(connected);
        }
        self.session
            .as_ref()
            .ok_or_else(|| TaskError::Local("not connected".into()))
    }

    /// Whether the connection is gone (or was never made).
    pub fn is_disconnected(&self) -> bool {
        self.session.as_ref().is_none_or(Session::is_closed)
    }

    /// Waits until the connection ends (at once when there is none).
    pub async fn closed(&self) {
        if let Some(session) = &self.session {
            session.closed().await;
        }
    }

    /// Says goodbye and forgets the connection (after a reboot it is dead anyway).
    pub async fn disconnect(&mut self) {
        if let Some(session) = self.session.take() {
            session.close().await;
        }
    }

    /// Runs the commands that follow under `sudo` (a task's `become`), or
    /// as the login user.
    pub fn set_sudo(&mut self, sudo: Option<Sudo>) {
        self.sudo = sudo;
    }

    /// The abort token, for an action's own waits.
    pub fn abort(&self) -> &CancellationToken {
        &self.abort
    }

    /// Runs `command`, waiting at most `timeout`; killed on the host when
    /// the timeout passes or the operator aborts.
    pub async fn exec(
        &mut self,
        command: &str,
        stdin: &[StdinPiece],
        timeout: Option<Duration>,
    ) -> Result<Captured, TaskError> {
        let mut stdout = Kept(Vec::new());
        let mut captured = self.exec_into(command, stdin, timeout, &mut stdout).await?;
        captured.stdout = String::from_utf8_lossy(&stdout.0).into_owned();
        Ok(captured)
    }

    /// Like [`Remote::exec`], handing stdout to `sink` as it arrives (the
    /// returned stdout is empty). A sink error stops the command.
    pub async fn exec_into(
        &mut self,
        command: &str,
        stdin: &[StdinPiece],
        timeout: Option<Duration>,
        sink: &mut impl OutputSink,
    ) -> Result<Captured, TaskError> {
        let abort = self.abort.clone();
        let mut capture = Capture {
            stdout: sink,
            stderr: Kept(Vec::new()),
        };
        let end = match self.local {
            true => super::local::run(command, timeout, &abort, &mut capture)
                .await
                .map_err(|e| TaskError::Local(format!("on localhost: {e}"))),
            false => {
                let sudo = self.sudo.clone();
                let session = self.session().await?;
                let command = Command {
                    line: command,
                    env: &[],
                    stdin,
                    timeout,
                    tty: false,
                    sudo: sudo.as_ref(),
                };
                session
                    .run(command, &abort, &mut capture)
                    .await
                    .map_err(TaskError::from)
            }
        };
        let stderr = String::from_utf8_lossy(&capture.stderr.0).into_owned();
        match end? {
            RunEnd::Exited(exit) => Ok(Captured {
                exit,
                stdout: String::new(),
                stderr,
            }),
            RunEnd::TimedOut(kill) => Err(TaskError::Timeout {
                after: timeout.unwrap_or_default(),
                kill,
            }),
            RunEnd::Cancelled(_) => Err(TaskError::Aborted),
            RunEnd::SinkFailed(error, _) => Err(TaskError::Local(error.to_string())),
        }
    }

    /// Kernel release, hostname and boot_id.
    pub async fn facts(&mut self) -> Result<Facts, TaskError> {
        let command = "uname -r; hostname; cat /proc/sys/kernel/random/boot_id";
        let captured = self.exec(command, &[], Some(FACTS_TIMEOUT)).await?;
        let lines: Vec<&str> = captured.stdout.lines().map(str::trim).collect();
        match (captured.code(), lines.as_slice()) {
            (Some(0), [kernel, hostname, boot_id])
                if is_uuid(boot_id) && is_a_word(kernel) && is_a_word(hostname) =>
            {
                Ok(Facts {
                    kernel: kernel.to_string(),
                    hostname: hostname.to_string(),
                    boot_id: boot_id.to_string(),
                })
            }
            (Some(0), [kernel, hostname, _]) if !(is_a_word(kernel) && is_a_word(hostname)) => {
                Err(TaskError::Local(format!(
                    "uname -r `{}` and hostname `{}` must each be one word of letters, digits and ._+-~",
                    printable(kernel),
                    printable(hostname)
                )))
            }
            _ => Err(TaskError::Local(format!(
                "cannot gather facts (uname -r, hostname, boot_id): {}",
                captured.failure()
            ))),
        }
    }

    /// The host's current boot_id.
    pub async fn boot_id(&mut self) -> Result<String, TaskError> {
        let command = "cat /proc/sys/kernel/random/boot_id";
        let captured = self.exec(command, &[], Some(BOOT_ID_TIMEOUT)).await?;
        let boot_id = captured.stdout.trim().to_string();
        match is_uuid(&boot_id) {
            true => Ok(boot_id),
            false => Err(TaskError::Local(format!(
                "boot_id is not a UUID (`{boot_id}`): {}",
                captured.failure()
            ))),
        }
    }
}

/// Stdout to a task's own sink, stderr kept (capped) for its messages.
struct Capture<'a, S> {
    stdout: &'a mut S,
    stderr: Kept,
}

impl<S: OutputSink> OutputSink for Capture<'_, S> {
    async fn output(&mut self, stream: Stream, data: Bytes) -> std::io::Result<()> {
        match stream {
            Stream::Stdout => self.stdout.output(stream, data).await,
            Stream::Stderr => self.stderr.output(stream, data).await,
        }
    }
}

/// Output kept, capped.
struct Kept(Vec<u8>);

impl OutputSink for Kept {
    async fn output(&mut self, _: Stream, data: Bytes) -> std::io::Result<()> {
        let room = MAX_CAPTURE.saturating_sub(self.0.len());
        self.0.extend_from_slice(&data[..data.len().min(room)]);
        Ok(())
    }
}

/// A kernel release or host name fit to name a local file or directory
/// (`modules/{{ host.kernel }}/`): a host cannot steer a path with it.
fn is_a_word(text: &str) -> bool {
    !text.is_empty()
        && text != "."
        && text != ".."
        && text.len() <= 255
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._+-~".contains(c))
}

/// A boot_id as the kernel prints it: 8-4-4-4-12 hex digits.
pub fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(group, len)| group.len() == len && group.chars().all(|c| c.is_ascii_hexdigit()))
}
