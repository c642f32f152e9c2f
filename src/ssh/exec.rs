//! Running a command on a host so that it can be stopped for certain: the
//! one way every tool, and every playbook action, runs a remote command.
//!
//! Closing an SSH channel does not stop the remote command, and sshd ignores
//! `signal` requests for root sessions. So the command runs in a session of
//! its own (sshd makes one; under Dropbear, which does not, the wrapper
//! re-executes the shell through `setsid`), and its shell first prints its
//! pid (= the session id) on stderr. On a deadline or a cancellation, a
//! second channel runs [`KILL_SCRIPT`] on the host: TERM to the whole
//! session, KILL after a grace period that a timer on the host enforces even
//! if this client is cut off, and a closing line that says whether anything
//! survived. The pid line is removed from stderr before anyone sees it.

use std::future::{pending, Future};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use russh::ChannelMsg;
use tokio::io::AsyncReadExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::connect::Session;
use super::sudo::{Sudo, PROMPT_MARKER};
use super::{SshError, WRONG_SUDO_PASSWORD};

/// Start of the line the wrapper prints; \x1f keeps it from colliding with real output.
const PID_MARKER: &[u8] = b"\x1ffleet-pid ";
/// Stderr held back while looking for the pid line; past this we give up.
const PID_SEARCH_LIMIT: usize = 64 * 1024;

/// Stops session (or process group) `__PID__` on the host. A timer in the
/// background sends KILL two seconds after TERM even if this script is
/// slowed down by a loaded host or cut off with its connection; meanwhile
/// the script waits for the processes it signalled to go, sends KILL
/// itself, and says whether any process of the session survived. Processes
/// are found by reading /proc with shell builtins only (no ps, pkill or grep
/// to fork on a loaded host, nothing to install on a small one); the whole
/// /proc is swept only to signal and to confirm, the waits watch the pids
/// already found. Zombies do not count.
const KILL_SCRIPT: &str = r#"p=__PID__
sweep() {
  pids=
  for f in /proc/[0-9]*/stat; do
    read -r l 2>/dev/null < "$f" || continue
    set -- ${l##*) }
    [ "$1" != Z ] || continue
    [ "$4" = "$p" ] || [ "$3" = "$p" ] || continue
    q=${f%/stat}; q=${q#/proc/}; pids="$pids $q"
    [ -z "$sig" ] || kill -"$sig" "$q" 2>/dev/null
  done
  [ -n "$pids" ]
}
living() {
  for q in $pids; do
    read -r l 2>/dev/null < "/proc/$q/stat" || continue
    set -- ${l##*) }
    [ "$1" = Z ] || return 0
  done
  return 1
}
sig=KILL
( trap '' HUP; sleep 2; kill -KILL -"$p"; sweep ) </dev/null >/dev/null 2>&1 &
timer=$!
sig=TERM; kill -TERM -"$p" 2>/dev/null; sweep
i=0; while [ $i -lt 20 ] && living; do sleep 0.1; i=$((i+1)); done
sig=KILL; kill -KILL -"$p" 2>/dev/null; sweep
i=0; while [ $i -lt 50 ] && living; do sleep 0.1; i=$((i+1)); done
kill "$timer" 2>/dev/null
sig=
if sweep; then echo "fleet-kill left$pids"; else echo "fleet-kill done"; fi"#;

/// The longest this client waits, after deciding to stop a command, for
/// the host to confirm the kill: the pid line, a channel for the kill
/// script, and the script's own bound (2 s of grace, then up to 5 s for
/// KILL to take). Far beyond that bound, so only a host that stopped
/// answering can leave a kill unconfirmed.
pub const KILL_CONFIRM_LIMIT: Duration = Duration::from_secs(30);
/// After the kill, how long to keep reading for the command's last output.
const EXIT_DRAIN: Duration = Duration::from_secs(5);
/// While a command is being stopped, how long one piece of its output may
/// wait for a reader (stdout piped into a paused pager, say) before the
/// rest is dropped: the kill must not wait on the printing.
const STOPPING_OUTPUT_WAIT: Duration = Duration::from_secs(1);

/// The longest command line sent: sshd hands it to the login shell as one
/// argument (`-c LINE`), and Linux takes no argument over 128 KiB
/// (MAX_ARG_STRLEN, with its NUL); sshd itself drops a connection whose
/// request is over 256 KiB.
pub const MAX_EXEC_LINE: usize = 128 * 1024 - 1;

/// The shell a command re-executes itself with: the login shell that ran
/// it, or under sudo the same shell, which sudo started as `$0` (its
/// `$SHELL` is the target user's, who may have nologin).
const LOGIN_SHELL: &str = "\"${SHELL:-/bin/sh}\"";
const SUDO_SHELL: &str = "\"$0\"";

/// Which output stream bytes came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// How a remote command ended on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteExit {
    Code(u32),
    Signal(String),
    /// The channel closed without an exit status: the connection died or
    /// the server gave up on the command.
    Lost,
}

/// Whether a command fleet stopped is known to be gone from the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kill {
    /// Nothing of the command's session is left on the host.
    Confirmed,
    /// The host did not confirm the kill, and why; the command may still run.
    NotConfirmed(String),
}

/// How [`Session::run`] ended.
#[derive(Debug)]
pub enum RunEnd {
    /// The command ended by itself.
    Exited(RemoteExit),
    /// The deadline passed; the command was stopped.
    TimedOut(Kill),
    /// The cancellation token fired; the command was stopped.
    Cancelled(Kill),
    /// The sink refused output (a local disk full, say); the command was stopped.
    SinkFailed(io::Error, Kill),
}

/// Where a running command's output goes, as it arrives. An error stops
/// the command.
pub trait OutputSink: Send {
    fn output(
        &mut self,
        stream: Stream,
        data: Bytes,
    ) -> impl Future<Output = io::Result<()>> + Send;
}

/// One piece of a command's standard input.
#[derive(Debug, Clone)]
pub enum StdinPiece {
    Bytes(Bytes),
    /// Exactly `len` bytes read from the file as they are sent, so a large
    /// file never sits whole in memory, whatever the number of hosts.
    File {
        path: PathBuf,
        len: u64,
    },
    /// The same from a temporary file (a spooled archive) that has no
    /// name, so that nothing of it outlives the process, even a kill -9;
    /// gone once nothing is left to send it.
    Spool {
        file: Arc<std::fs::File>,
        len: u64,
    },
}

/// A remote command and the limits it runs under.
#[derive(Debug, Clone, Copy)]
pub struct Command<'a> {
    /// Shell command line, run by the remote login shell.
    pub line: &'a str,
    /// Exported in the command's shell first.
    pub env: &'a [(&'a str, String)],
    /// Sent in order, then the input is closed; empty closes it at once.
    pub stdin: &'a [StdinPiece],
    /// When to stop the command; `None` waits for ever.
    pub timeout: Option<Duration>,
    /// Run it on a pseudo-terminal (sudo's `requiretty`, commands that want
    /// one); its stderr then arrives with its stdout, as with `ssh -t`.
    pub tty: bool,
    /// Run it as another user through sudo (`--sudo`, `become`).
    pub sudo: Option<&'a Sudo>,
}

impl<'a> Command<'a> {
    /// `line` with no environment, no input and no time limit.
    pub fn new(line: &'a str) -> Self {
        Command {
            line,
            env: &[],
            stdin: &[],
            timeout: None,
            tty: false,
            sudo: None,
        }
    }

    pub fn timeout(self, timeout: Option<Duration>) -> Self {
        Command { timeout, ..self }
    }

    pub fn sudo(self, sudo: Option<&'a Sudo>) -> Self {
        Command { sudo, ..self }
    }
}

impl Session {
    /// Runs `command`, handing its output to `sink` as it arrives, until it
    /// ends, its timeout passes or `cancel` fires; then stops it on the host
    /// and says whether that was confirmed.
    pub async fn run(
        &self,
        command: Command<'_>,
        cancel: &CancellationToken,
        sink: &mut impl OutputSink,
    ) -> Result<RunEnd, SshError> {
        let mut process = self.spawn(command).await?;
        // Under sudo, input waits until the command runs: until then what
        // the channel carries is for sudo's password prompt.
        let mut writer = match command.sudo {
            None => process.write_stdin(command.stdin.to_vec()).await?,
            Some(_) => StdinWriter(None),
        };
        let deadline = sleep_until(command.timeout.map(|limit| Instant::now() + limit));
        tokio::pin!(deadline);
        // Output the printers had not taken when the command was stopped.
        let mut unsent = None;
        let stopped = loop {
            tokio::select! {
                event = process.next_event() => match event {
                    // A reader that stops reading holds this send; the
                    // deadline and the operator's stop still win.
                    ProcessEvent::Output(stream, data) => tokio::select! {
                        delivered = sink.output(stream, data.clone()) => {
                            if let Err(error) = delivered {
                                break Stop::Sink(error);
                            }
                        }
                        _ = &mut deadline => {
                            unsent = Some((stream, data));
                            break Stop::Deadline;
                        }
                        _ = cancel.cancelled() => {
                            unsent = Some((stream, data));
                            break Stop::Cancel;
                        }
                    },
                    ProcessEvent::Started if command.sudo.is_some() => {
                        writer = process.write_stdin(command.stdin.to_vec()).await?;
                    }
                    ProcessEvent::Started => {}
                    ProcessEvent::PasswordAsked => process.answer_sudo(command.sudo).await?,
                    ProcessEvent::SudoRefused(said) => {
                        return Err(SshError::Sudo(sudo_refusal(&said)))
                    }
                    ProcessEvent::Exited(exit) => {
                        writer.abort();
                        return Ok(RunEnd::Exited(exit));
                    }
                },
                _ = &mut deadline => break Stop::Deadline,
                _ = cancel.cancelled() => break Stop::Cancel,
            }
        };
        writer.abort();
        let mut sink = StoppingSink::new(sink);
        if let Some((stream, data)) = unsent {
            let _ = sink.output(stream, data).await;
        }
        let kill = self.stop(&mut process, command, &mut sink).await;
        sink.report_dropped();
        Ok(match stopped {
            Stop::Deadline => RunEnd::TimedOut(kill),
            Stop::Cancel => RunEnd::Cancelled(kill),
            Stop::Sink(error) => RunEnd::SinkFailed(error, kill),
        })
    }

    async fn spawn(&self, command: Command<'_>) -> Result<RemoteProcess, SshError> {
        // A command already too long is not wrapped first (a playbook
        // variable of megabytes, say).
        fits(command.line.len())?;
        let line = exec_line(&command);
        fits(line.len())?;
        let channel = self.handle.channel_open_session().await?;
        if command.tty {
            channel
                .request_pty(true, "xterm", 80, 24, 0, 0, &[])
                .await?;
        }
        channel.exec(true, line).await?;
        let (reader, writer) = channel.split();
        Ok(RemoteProcess {
            reader,
            writer: Some(writer),
            stderr: PidFilter::default(),
            tty: command.tty,
            session_id: None,
            queued: None,
            exit: None,
            closed: false,
            answered_sudo: false,
            sudo: command.sudo.is_some(),
        })
    }

    /// Kills the command's session on the host while still reading its
    /// output (a full channel must not stall the connection the kill
    /// travels on), all within [`KILL_CONFIRM_LIMIT`].
    async fn stop(
        &self,
        process: &mut RemoteProcess,
        command: Command<'_>,
        sink: &mut impl OutputSink,
    ) -> Kill {
        if command.sudo.is_some() && process.session_id.is_none() {
            // Still in sudo (a prompt nobody answers, a slow PAM): nothing
            // of the command runs yet, and a closed channel ends sudo.
            process.close().await;
            process.drain(sink, EXIT_DRAIN).await;
            return Kill::Confirmed;
        }
        let confirm = async {
            let Some(session_id) = process.await_session_id(sink).await else {
                return match process.exit {
                    Some(_) => Kill::Confirmed,
                    None => Kill::NotConfirmed("the command never reported its pid".into()),
                };
            };
            let kill = self.kill_session(session_id, command);
            tokio::pin!(kill);
            loop {
                tokio::select! {
                    result = &mut kill => break result,
                    event = process.next_event(), if !process.closed => {
                        if let ProcessEvent::Output(stream, data) = event {
                            let _ = sink.output(stream, data).await;
                        }
                    }
                }
            }
        };
        let kill = tokio::time::timeout(KILL_CONFIRM_LIMIT, confirm)
            .await
            .unwrap_or_else(|_| {
                Kill::NotConfirmed(format!(
                    "no answer from the host within {}s",
                    KILL_CONFIRM_LIMIT.as_secs()
                ))
            });
        process.drain(sink, EXIT_DRAIN).await;
        if let Kill::NotConfirmed(why) = &kill {
            tracing::warn!("the command may still run on the host: {why}");
        }
        kill
    }

    /// Runs [`KILL_SCRIPT`] for `session_id` and reads its verdict; as
    /// the command's user when it ran under sudo, on a terminal when it
    /// had one (sudo's `requiretty`).
    async fn kill_session(&self, session_id: u32, command: Command<'_>) -> Kill {
        let mut script = KILL_SCRIPT.replace("__PID__", &session_id.to_string());
        if let Some(sudo) = command.sudo {
            script = sudo.wrap(&script, command.tty);
        }
        let verdict = async {
            let mut channel = self.handle.channel_open_session().await?;
            if command.tty && command.sudo.is_some() {
                channel
                    .request_pty(true, "xterm", 80, 24, 0, 0, &[])
                    .await?;
            }
            channel.exec(true, script).await?;
            let mut answer = command.sudo.and_then(Sudo::answer);
            if answer.is_none() {
                channel.eof().await?;
            }
            let mut output = Vec::new();
            // russh keeps a channel's stream open after Close; stop there.
            while let Some(message) = channel.wait().await {
                match message {
                    ChannelMsg::Data { data } | ChannelMsg::ExtendedData { data, .. }
                        if output.len() < 4096 =>
                    {
                        output.extend_from_slice(&data)
                    }
                    ChannelMsg::Close => break,
                    _ => {}
                }
                if let Some(at) = find(&output, PROMPT_MARKER) {
                    output.drain(..at + PROMPT_MARKER.len());
                    if let Some(answer) = answer.take() {
                        channel.data(&answer[..]).await?;
                        channel.eof().await?;
                    }
                }
            }
            Ok::<_, SshError>(String::from_utf8_lossy(&output).into_owned())
        };
        match verdict.await {
            Ok(text) if text.contains("fleet-kill done") => Kill::Confirmed,
            Ok(text) => match text.split("fleet-kill left ").nth(1) {
                Some(pids) => {
                    Kill::NotConfirmed(format!("still running after KILL: pid {}", pids.trim()))
                }
                None => Kill::NotConfirmed("the kill script did not finish".into()),
            },
            Err(error) => Kill::NotConfirmed(format!("cannot run the kill: {error}")),
        }
    }
}

/// The sink a command being stopped writes to: each piece of output waits
/// at most [`STOPPING_OUTPUT_WAIT`] for the printers, and once one has not
/// been taken in time the rest is counted and dropped, so a stalled reader
/// cannot hold the kill back or leave it unconfirmed.
struct StoppingSink<'a, S> {
    inner: &'a mut S,
    /// A piece was not taken in time: the printers are not reading.
    given_up: bool,
    dropped: usize,
}

impl<'a, S: OutputSink> StoppingSink<'a, S> {
    fn new(inner: &'a mut S) -> Self {
        StoppingSink {
            inner,
            given_up: false,
            dropped: 0,
        }
    }

    fn report_dropped(&self) {
        if self.given_up {
            tracing::warn!(
                "{} bytes of output after the command was stopped were not shown: \
                 the output was not being read",
                self.dropped
            );
        }
    }
}

impl<S: OutputSink> OutputSink for StoppingSink<'_, S> {
    async fn output(&mut self, stream: Stream, data: Bytes) -> io::Result<()> {
        if !self.given_up {
            let delivery = self.inner.output(stream, data.clone());
            if let Ok(delivered) = tokio::time::timeout(STOPPING_OUTPUT_WAIT, delivery).await {
                return delivered;
            }
            self.given_up = true;
        }
        self.dropped += data.len();
        Ok(())
    }
}

/// Why [`Session::run`] stopped a command.
enum Stop {
    Deadline,
    Cancel,
    Sink(io::Error),
}

/// Something the remote command did.
enum ProcessEvent {
    /// Its shell is running and reported its session id.
    Started,
    /// sudo asks for the password (it has not run the command yet).
    PasswordAsked,
    /// sudo gave up before running the command, saying this.
    SudoRefused(String),
    Output(Stream, Bytes),
    Exited(RemoteExit),
}

/// A command running on a host, read as a stream of [`ProcessEvent`]s.
struct RemoteProcess {
    reader: russh::ChannelReadHalf,
    /// Taken by the stdin writer.
    writer: Option<russh::ChannelWriteHalf<russh::client::Msg>>,
    stderr: PidFilter,
    /// On a terminal, the pid line comes on stdout, among the output.
    tty: bool,
    session_id: Option<u32>,
    /// Output released together with the pid line, returned right after `Started`.
    queued: Option<(Stream, Bytes)>,
    exit: Option<RemoteExit>,
    /// The channel has closed; only held stderr and the exit remain to report.
    closed: bool,
    /// sudo's prompt was answered once; a second prompt means a wrong password.
    answered_sudo: bool,
    /// Runs under sudo, which has not refused yet.
    sudo: bool,
}

impl RemoteProcess {
    /// Writes `stdin` from a task of its own, so a large input never stalls
    /// reading output, then closes the command's input. The returned handle
    /// stops the writer once the command is over.
    async fn write_stdin(&mut self, stdin: Vec<StdinPiece>) -> Result<StdinWriter, SshError> {
        let Some(writer) = self.writer.take() else {
            return Ok(StdinWriter(None));
        };
        if stdin.is_empty() {
            // No EOF: the command reads /dev/null, and its watchdog reads
            // this channel, whose end means the client went away.
            return Ok(StdinWriter(None));
        }
        Ok(StdinWriter(Some(tokio::spawn(async move {
            for piece in stdin {
                let sent = match piece {
                    StdinPiece::Bytes(data) => writer.data_bytes(data).await.is_ok(),
                    StdinPiece::File { path, len } => send_file(&writer, &path, len).await,
                    StdinPiece::Spool { file, len } => {
                        send_file(&writer, &spool_path(&file), len).await
                    }
                };
                if !sent {
                    // The command sees its input end early and fails its checks.
                    break;
                }
            }
            let _ = writer.eof().await;
        }))))
    }

    /// Answers sudo's password prompt, once: asked again, the password was
    /// wrong, and the command is given up rather than retried (a wrong
    /// password tried on every host, again and again, locks accounts).
    async fn answer_sudo(&mut self, sudo: Option<&Sudo>) -> Result<(), SshError> {
        let refusal = match (sudo.and_then(Sudo::answer), &self.writer) {
            (Some(answer), Some(writer)) if !self.answered_sudo => {
                self.answered_sudo = true;
                return writer.data_bytes(answer).await.map_err(SshError::from);
            }
            (None, _) => "a password is required; give it with -A",
            _ => WRONG_SUDO_PASSWORD,
        };
        self.close().await;
        Err(SshError::Sudo(refusal.into()))
    }

    /// Ends the channel from this side (sudo, waiting for a password, sees
    /// its input end).
    async fn close(&mut self) {
        if let Some(writer) = self.writer.take() {
            let _ = writer.eof().await;
            let _ = writer.close().await;
        }
    }

    /// A deadline can pass before a slow host's shell has even reported its
    /// pid; keep reading until it does or the command ends.
    async fn await_session_id(&mut self, sink: &mut impl OutputSink) -> Option<u32> {
        while self.session_id.is_none() {
            match self.next_event().await {
                ProcessEvent::Exited(exit) => {
                    self.exit = Some(exit);
                    return None;
                }
                ProcessEvent::Output(stream, data) => {
                    let _ = sink.output(stream, data).await;
                }
                ProcessEvent::Started
                | ProcessEvent::PasswordAsked
                | ProcessEvent::SudoRefused(_) => {}
            }
        }
        self.session_id
    }

    /// Hands the last output to `sink` until the command's channel closes
    /// or `limit` passes.
    async fn drain(&mut self, sink: &mut impl OutputSink, limit: Duration) {
        let drained = async {
            while !self.closed {
                if let ProcessEvent::Output(stream, data) = self.next_event().await {
                    let _ = sink.output(stream, data).await;
                }
            }
        };
        let _ = tokio::time::timeout(limit, drained).await;
    }

    /// The next thing the command did; after [`ProcessEvent::Exited`] it
    /// keeps answering `Exited`.
    async fn next_event(&mut self) -> ProcessEvent {
        if let Some((stream, data)) = self.queued.take() {
            return ProcessEvent::Output(stream, data);
        }
        while !self.closed {
            let (stream, data) = match self.reader.wait().await {
                None | Some(ChannelMsg::Close) => {
                    self.closed = true;
                    continue;
                }
                Some(ChannelMsg::Data { data }) if !self.tty => {
                    return ProcessEvent::Output(Stream::Stdout, data)
                }
                Some(ChannelMsg::Data { data }) => (Stream::Stdout, data),
                Some(ChannelMsg::ExtendedData { data, ext: 1 }) => (Stream::Stderr, data),
                Some(ChannelMsg::ExitStatus { exit_status }) => {
                    self.exit = Some(RemoteExit::Code(exit_status));
                    continue;
                }
                Some(ChannelMsg::ExitSignal { signal_name, .. }) => {
                    self.exit = Some(RemoteExit::Signal(signal_name_of(&signal_name)));
                    continue;
                }
                Some(_) => continue,
            };
            let (session_id, released) = self.stderr.filter(data);
            if let Some(session_id) = session_id {
                self.session_id = Some(session_id);
                self.queued = released.map(|data| (stream, data));
                return ProcessEvent::Started;
            }
            if self.stderr.take_prompt() {
                self.queued = released.map(|data| (stream, data));
                return ProcessEvent::PasswordAsked;
            }
            if let Some(data) = released {
                return ProcessEvent::Output(stream, data);
            }
        }
        let failed = matches!(self.exit, Some(RemoteExit::Code(code)) if code != 0);
        if self.sudo && self.session_id.is_none() && failed {
            // sudo ended without running the command: what it said is why.
            self.sudo = false;
            let said = self.stderr.release().unwrap_or_default();
            return ProcessEvent::SudoRefused(String::from_utf8_lossy(&said).into_owned());
        }
        if let Some(held) = self.stderr.release() {
            let stream = match self.tty {
                true => Stream::Stdout,
                false => Stream::Stderr,
            };
            return ProcessEvent::Output(stream, held);
        }
        ProcessEvent::Exited(self.exit.clone().unwrap_or(RemoteExit::Lost))
    }
}

/// Why sudo would not run a command, from what it said (its last line,
/// after any lecture), as one short reason.
fn sudo_refusal(said: &str) -> String {
    let lines: Vec<&str> = said
        .lines()
        .map(|line| line.trim().trim_start_matches("sudo: ").trim())
        .filter(|line| !line.is_empty())
        .collect();
    // sudo's reason, when a plugin's complaint came after it.
    let reasons = [
        "incorrect password",
        "must have a tty",
        "unknown user",
        "password is required",
        "not in the sudoers file",
        "not allowed to",
    ];
    let reason = lines
        .iter()
        .find(|line| reasons.iter().any(|reason| line.contains(reason)));
    let last = reason
        .or(lines.last())
        .copied()
        .unwrap_or("it gave up before running the command");
    if last.contains("incorrect password") {
        WRONG_SUDO_PASSWORD.into()
    } else if last.contains("must have a tty") {
        format!("{last} (add --tty)")
    } else {
        last.to_string()
    }
}

/// Sends `len` bytes of the file at `path`; false when that failed.
/// A path that opens the unnamed `spool` afresh, at its start.
pub fn spool_path(spool: &std::fs::File) -> PathBuf {
    use std::os::unix::io::AsRawFd;
    PathBuf::from(format!("/proc/self/fd/{}", spool.as_raw_fd()))
}

/// How much of a file is read at once. russh's `data(reader)` copies
/// through tokio's 8 KiB buffer: every 8 KiB became a read on the blocking
/// pool and an SSH packet of its own, and a 100 MB push to 100 hosts cost
/// 4x the CPU on both ends. Chunks this size are one read each, cut into
/// full-size packets by the channel, and 100 hosts hold 100 of them at most.
const FILE_CHUNK: usize = 256 * 1024;

async fn send_file(
    writer: &russh::ChannelWriteHalf<russh::client::Msg>,
    path: &Path,
    len: u64,
) -> bool {
    let mut file = match tokio::fs::File::open(path).await {
        Ok(file) => file.take(len),
        Err(error) => {
            tracing::warn!("cannot read {}: {error}", path.display());
            return false;
        }
    };
    loop {
        let mut chunk = BytesMut::with_capacity(FILE_CHUNK);
        match file.read_buf(&mut chunk).await {
            Ok(0) => return true,
            Ok(_) => {
                if writer.data_bytes(chunk.freeze()).await.is_err() {
                    return false;
                }
            }
            Err(error) => {
                tracing::warn!("cannot read {}: {error}", path.display());
                return false;
            }
        }
    }
}

/// The stdin writer of a command, stopped when the command is over (a
/// command that exits early must not keep a file being read).
struct StdinWriter(Option<tokio::task::JoinHandle<()>>);

impl StdinWriter {
    fn abort(&self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}

fn signal_name_of(signal: &russh::Sig) -> String {
    match signal {
        russh::Sig::Custom(name) => name.clone(),
        other => format!("{other:?}"),
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => pending().await,
    }
}

/// Stops the command's session when its connection goes away while the
/// command still runs (fleet was killed with -9, the network or the
/// machine died): the command's input is the channel, which no one writes,
/// so a read of it ends only then. The command itself reads /dev/null, as
/// it would with its input closed. A command that ended normally is left
/// alone, and so are the daemons it started. The watchdog is forked twice,
/// so that it is no job of the command's shell (a bare `wait` in the
/// command does not wait for it), and it stops the session with the same
/// [`KILL_SCRIPT`] a deadline uses, from a session of its own so that it
/// does not kill itself; without `setsid` it falls back to signalling the
/// process group.
fn watchdog_script() -> String {
    format!(
        "exec 3<&0 </dev/null; \
         ( ( read -r _ <&3; kill -0 $$ 2>/dev/null || exit 0; {stop} ) >/dev/null 2>&1 3<&3 & ); \
         exec 3<&-; ",
        stop = stop_session()
    )
}

/// The watchdog of a command that reads input of ours (`-I`, pcp's
/// stream), whose end is no sign of anything: it looks once a second for
/// the sshd process that carries the connection (`$fleet_sshd`), which
/// goes with it, and stops the session the same way. It ends with the
/// command.
fn connection_watchdog_script() -> String {
    format!(
        "( ( while [ -e /proc/$$ ] && [ -e \"/proc/$fleet_sshd\" ]; do sleep 1; done; \
           [ -e /proc/$$ ] || exit 0; {stop} ) </dev/null >/dev/null 2>&1 & ); ",
        stop = stop_session()
    )
}

/// Stops session `$$` with [`KILL_SCRIPT`], from a session of its own so
/// that it does not kill itself; without `setsid`, by signalling the
/// process group.
fn stop_session() -> String {
    let kill = shell_quote(&KILL_SCRIPT.replace("__PID__", "$1"));
    format!(
        "command -v setsid >/dev/null 2>&1 && exec setsid /bin/sh -c {kill} fleet-kill $$; \
         trap '' TERM; kill -TERM -$$; sleep 2; kill -KILL -$$"
    )
}

/// The line `command` is sent as: wrapped so that it can be stopped, and
/// through sudo when it runs as another user.
fn exec_line(command: &Command) -> String {
    // A terminal's hangup ends the command when the connection goes,
    // which is what the watchdog does otherwise.
    let watchdog = match (command.tty, command.stdin.is_empty()) {
        (true, _) => Watchdog::Terminal,
        (false, true) => Watchdog::Input,
        (false, false) => Watchdog::Connection,
    };
    match command.sudo {
        None => wrap_command(command.line, command.env, watchdog, LOGIN_SHELL),
        Some(sudo) => sudo.wrap(
            &wrap_command(command.line, command.env, watchdog, SUDO_SHELL),
            command.tty,
        ),
    }
}

/// Refuses, before any host is contacted, a command too long to be sent
/// in one SSH request; `env_bytes` is room for what each host's own
/// variables (PSSH_HOST...) add.
pub fn check_length(command: Command<'_>, env_bytes: usize) -> Result<(), SshError> {
    fits(exec_line(&command).len() + env_bytes)
}

/// Refuses a line of `bytes` that the host's shell could not be started with.
fn fits(bytes: usize) -> Result<(), SshError> {
    match bytes > MAX_EXEC_LINE {
        true => Err(SshError::CommandTooLong { bytes }),
        false => Ok(()),
    }
}

/// The remote command line: report the session id, start the watchdog
/// (when the command reads no input of ours), export `env`, then run the
/// operator's command unchanged in the same shell. A shell that does not
/// lead a session of its own (Dropbear starts commands in its own session)
/// first re-executes itself (`shell`) through `setsid`, so that stopping
/// the session stops the command and nothing else; /proc/$$/stat is read
/// with a builtin, so sshd's usual case costs no extra process.
fn wrap_command(command: &str, env: &[(&str, String)], watchdog: Watchdog, shell: &str) -> String {
    // The sshd process of the connection: the login shell's parent, handed
    // on as $1 through sudo and a re-execution.
    let mut inner =
        String::from("printf '\\037fleet-pid %s\\n' \"$$\" >&2; fleet_sshd=${1:-$PPID}; set --; ");
    match watchdog {
        Watchdog::Input => inner.push_str(&watchdog_script()),
        Watchdog::Connection => inner.push_str(&connection_watchdog_script()),
        Watchdog::Terminal => {}
    }
    inner.push_str("unset fleet_sshd; ");
    for (name, value) in env {
        inner.push_str(&format!("{name}={}; export {name}; ", shell_quote(value)));
    }
    inner.push_str(command);
    format!(
        "if read -r fleet_p fleet_c fleet_s fleet_pp fleet_pg fleet_sid fleet_r 2>/dev/null </proc/$$/stat \
         && [ \"$fleet_sid\" != \"$$\" ] && [ \"$fleet_pg\" != \"$$\" ] && command -v setsid >/dev/null 2>&1; \
         then exec setsid {shell} -c {quoted} {shell} \"${{1:-$PPID}}\"; fi; \
         unset fleet_p fleet_c fleet_s fleet_pp fleet_pg fleet_sid fleet_r; {inner}",
        quoted = shell_quote(&inner)
    )
}

/// How a command notices that its connection went away.
#[derive(Debug, Clone, Copy)]
enum Watchdog {
    /// It reads none of our input: a read of the channel ends only then.
    Input,
    /// It reads our input: the sshd process carrying the connection is watched.
    Connection,
    /// On a terminal, the hangup does it.
    Terminal,
}

/// Quotes `text` as one word for any POSIX shell.
pub fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// Finds and removes the wrapper's pid line at the start of stderr, and
/// sudo's password prompts before it.
#[derive(Default)]
struct PidFilter {
    held: Vec<u8>,
    searching_done: bool,
    /// A sudo prompt was found and not yet taken.
    prompted: bool,
    /// Where the last prompt was: on a terminal, sudo and the terminal end
    /// its line there once the password is read.
    prompt_at: Option<usize>,
}

impl PidFilter {
    /// Returns the pid the moment its line is found, and the stderr to pass on now.
    fn filter(&mut self, data: Bytes) -> (Option<u32>, Option<Bytes>) {
        if self.searching_done {
            return (None, Some(data));
        }
        self.held.extend_from_slice(&data);
        if let Some(start) = find(&self.held, PROMPT_MARKER) {
            self.held.drain(start..start + PROMPT_MARKER.len());
            self.prompted = true;
            self.prompt_at = Some(start);
        }
        if let Some(start) = find(&self.held, PID_MARKER) {
            let digits_start = start + PID_MARKER.len();
            if let Some(newline) = self.held[digits_start..].iter().position(|&b| b == b'\n') {
                let digits = &self.held[digits_start..digits_start + newline];
                // A terminal ends the line with \r\n.
                let pid = std::str::from_utf8(digits)
                    .ok()
                    .and_then(|s| s.trim_end_matches('\r').parse().ok());
                self.held.drain(start..=digits_start + newline);
                // What a terminal echoed after the password, up to the pid line.
                if let Some(at) = self.prompt_at.filter(|&at| at <= start) {
                    if self.held[at..start].iter().all(|b| b"\r\n".contains(b)) {
                        self.held.drain(at..start);
                    }
                }
                return (pid, self.release());
            }
        }
        if self.held.len() > PID_SEARCH_LIMIT {
            return (None, self.release());
        }
        (None, None)
    }

    /// Whether sudo asked for its password since the last call.
    fn take_prompt(&mut self) -> bool {
        std::mem::take(&mut self.prompted)
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
    fn sudo_prompts_are_found_and_removed() {
        let mut filter = PidFilter::default();
        let mut prompt = b"lecture\n".to_vec();
        prompt.extend_from_slice(PROMPT_MARKER);
        assert_eq!(filter.filter(Bytes::from(prompt)), (None, None));
        assert!(filter.take_prompt());
        assert!(!filter.take_prompt());
        let (pid, passed) = filter.filter(Bytes::from_static(b"\r\n\x1ffleet-pid 7\r\nout\r\n"));
        assert_eq!(pid, Some(7));
        assert_eq!(passed.as_deref(), Some(&b"lecture\nout\r\n"[..]));
    }

    #[test]
    fn sudos_refusals_are_one_reason() {
        assert_eq!(
            sudo_refusal("\nWe trust you have received the usual lecture\n\nsudo: 1 incorrect password attempt\n"),
            "incorrect password"
        );
        assert_eq!(
            sudo_refusal("sudo: sorry, you must have a tty to run sudo\r\n"),
            "sorry, you must have a tty to run sudo (add --tty)"
        );
        assert_eq!(sudo_refusal("sudo: unknown user ..\n"), "unknown user ..");
        assert_eq!(
            sudo_refusal(
                "sudo: unknown user nosuch\nsudo: error initializing audit plugin sudoers_audit\n"
            ),
            "unknown user nosuch"
        );
        assert_eq!(sudo_refusal(""), "it gave up before running the command");
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
        let wrapped = wrap_command(
            "uptime",
            &[("PSSH_HOST", "a'b".into())],
            Watchdog::Terminal,
            LOGIN_SHELL,
        );
        assert!(
            wrapped.ends_with("PSSH_HOST='a'\\''b'; export PSSH_HOST; uptime"),
            "{wrapped}"
        );
    }
}
