//! One host's way through a playbook: one SSH connection reused by every
//! task (and made again after a reboot), facts, guards, registers, the
//! journal entries, and `on_failure` when a task fails.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::journal::{now, Entry, Journal, RebootMark};
use super::rollout::{PlayEvent, TaskStatus};
use super::spec::CopySpec;
use super::vars::{expand, Vars};
use super::{Action, Phase, Playbook, Sources, Task};
use crate::model::Host;
use crate::pattern::wildcard_match;
use crate::ssh::transfer::{
    checksum_probe, install_script, parse_account, stdin_of, InstallOptions, Item,
};
use crate::ssh::{
    shell_quote, Command, Connector, Kill, Nuke, OutputSink, RemoteExit, RunEnd, Session, SshError,
    StdinPiece, Stream,
};
use crate::text::printable;

/// Most stdout kept from one command (registers, asserts, messages).
const MAX_CAPTURE: usize = 1024 * 1024;

/// What every host of a rollout shares.
pub struct Context {
    pub connector: Arc<Connector>,
    pub playbook: Arc<Playbook>,
    pub sources: Arc<Sources>,
    /// None under `--check`, which changes nothing and so records nothing.
    pub journal: Option<Arc<Journal>>,
    pub events: mpsc::UnboundedSender<PlayEvent>,
    /// Max_fail reached or the first Ctrl-C: finish the current task, start no other.
    pub stop: CancellationToken,
    /// The second Ctrl-C: kill what runs now.
    pub abort: CancellationToken,
    /// Limit on a task's commands when the task sets none (`-t`).
    pub default_timeout: Option<Duration>,
    /// Asks the operator a question on the terminal (`None`: no terminal).
    pub ask: fn(&str) -> Option<String>,
    /// One operator prompt (`pause: {prompt}`) at a time.
    pub prompt: tokio::sync::Mutex<()>,
}

/// Why a task did not succeed.
#[derive(Debug)]
pub enum TaskError {
    /// The host could not be reached or SSH failed there.
    Ssh(SshError),
    Failed(String),
    /// Ctrl-C twice: the command was killed; the task is to be run again.
    Aborted,
}

impl std::fmt::Display for TaskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TaskError::Ssh(error) => write!(f, "{error}"),
            TaskError::Failed(message) => f.write_str(message),
            TaskError::Aborted => f.write_str("aborted"),
        }
    }
}

impl From<SshError> for TaskError {
    fn from(error: SshError) -> Self {
        TaskError::Ssh(error)
    }
}

/// How a host left the rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostEnd {
    Done,
    Failed(String),
    /// Stopped between or inside tasks; `--resume` continues it.
    Stopped,
}

/// A command's result, stdout capped and both streams as text.
pub struct Captured {
    pub exit: RemoteExit,
    pub stdout: String,
    pub stderr: String,
}

impl Captured {
    fn code(&self) -> Option<u32> {
        match self.exit {
            RemoteExit::Code(code) => Some(code),
            _ => None,
        }
    }

    /// "exit 3: <last line of stderr>" and the like.
    pub fn failure(&self) -> String {
        let status = match &self.exit {
            RemoteExit::Code(code) => format!("exit {code}"),
            RemoteExit::Signal(signal) => format!("killed by signal {signal}"),
            RemoteExit::Lost => "connection lost".to_string(),
        };
        match self.stderr.lines().rev().find(|l| !l.trim().is_empty()) {
            Some(line) => format!("{status}: {}", printable(line.trim())),
            None => status,
        }
    }
}

/// One host's state while it runs.
pub struct HostRun {
    pub ctx: Arc<Context>,
    pub host: Host,
    pub label: String,
    /// Its variables: playbook defaults, inventory, -e, registers, facts.
    pub vars: Vars,
    session: Option<Session>,
    /// From a resumed journal: a reboot task cut short, which may have
    /// rebooted the host already.
    pub reboot_mark: Option<RebootMark>,
}

impl HostRun {
    pub fn new(ctx: Arc<Context>, host: Host, vars: Vars) -> HostRun {
        let label = host.label();
        HostRun {
            ctx,
            host,
            label,
            vars,
            session: None,
            reboot_mark: None,
        }
    }

    /// The connection, made (again) if there is none or it has dropped.
    pub async fn session(&mut self) -> Result<&Session, TaskError> {
        if self.is_disconnected() {
            let connected = tokio::select! {
                connected = self.ctx.connector.connect(&self.host) => connected?,
                _ = self.ctx.abort.cancelled() => return Err(TaskError::Aborted),
            };
            self.session = Some(connected);
        }
        self.session
            .as_ref()
            .ok_or_else(|| TaskError::Failed("not connected".into()))
    }

    /// Whether the connection is gone (or was never made).
    pub fn is_disconnected(&self) -> bool {
        self.session.as_ref().is_none_or(Session::is_closed)
    }

    /// Forgets the connection (after a reboot it is dead anyway).
    pub async fn disconnect(&mut self) {
        if let Some(session) = self.session.take() {
            session.close().await;
        }
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
        let mut exit = self
            .exec_streaming(command, stdin, timeout, &mut stdout)
            .await?;
        exit.stdout = String::from_utf8_lossy(&stdout.0).into_owned();
        Ok(exit)
    }

    /// Like [`HostRun::exec`], handing stdout to `sink` as it arrives (the
    /// returned stdout is empty). A sink error stops the command.
    pub async fn exec_streaming(
        &mut self,
        command: &str,
        stdin: &[StdinPiece],
        timeout: Option<Duration>,
        sink: &mut impl OutputSink,
    ) -> Result<Captured, TaskError> {
        let abort = self.ctx.abort.clone();
        let session = self.session().await?;
        let command = Command {
            line: command,
            env: &[],
            stdin,
            timeout,
        };
        let mut capture = Capture {
            stdout: sink,
            stderr: Vec::new(),
        };
        let end = session.run(command, &abort, &mut capture).await?;
        let stderr = String::from_utf8_lossy(&capture.stderr).into_owned();
        match end {
            RunEnd::Exited(exit) => Ok(Captured {
                exit,
                stdout: String::new(),
                stderr,
            }),
            RunEnd::TimedOut(kill) => Err(TaskError::Failed(format!(
                "timed out after {:?}; {}",
                timeout.unwrap_or_default(),
                match kill {
                    Kill::Confirmed => "the command was killed".to_string(),
                    Kill::NotConfirmed(why) => {
                        format!("the command may still run on the host (KILL not confirmed: {why})")
                    }
                }
            ))),
            RunEnd::Cancelled(_) => Err(TaskError::Aborted),
            RunEnd::SinkFailed(error, _) => Err(TaskError::Failed(error.to_string())),
        }
    }

    /// Reads kernel release, hostname and boot_id into the `host.*` facts.
    pub async fn gather_facts(&mut self) -> Result<(), TaskError> {
        let captured = self
            .exec(
                "uname -r; hostname; cat /proc/sys/kernel/random/boot_id",
                &[],
                Some(Duration::from_secs(60)),
            )
            .await?;
        let lines: Vec<&str> = captured.stdout.lines().map(str::trim).collect();
        match (captured.code(), lines.as_slice()) {
            (Some(0), [kernel, hostname, boot_id]) if is_uuid(boot_id) => {
                self.vars.insert("host.name".into(), self.host.name.clone());
                self.vars.insert("host.kernel".into(), kernel.to_string());
                self.vars
                    .insert("host.hostname".into(), hostname.to_string());
                self.vars.insert("host.boot_id".into(), boot_id.to_string());
                Ok(())
            }
            _ => Err(TaskError::Failed(format!(
                "cannot gather facts (uname -r, hostname, boot_id): {}",
                captured.failure()
            ))),
        }
    }

    /// Runs the tasks of `phase` from `first` on; on a failure in
    /// `Phase::Tasks`, runs `on_failure` and reports the first failure.
    pub async fn run_phase(&mut self, phase: Phase, first: usize) -> HostEnd {
        let playbook = Arc::clone(&self.ctx.playbook);
        for (index, task) in playbook.phase(phase).iter().enumerate().skip(first) {
            if self.ctx.stop.is_cancelled() && phase != Phase::OnFailure {
                return HostEnd::Stopped;
            }
            match self.run_task(phase, index, task).await {
                Ok(()) => {}
                Err(TaskError::Aborted) => return HostEnd::Stopped,
                Err(error @ (TaskError::Failed(_) | TaskError::Ssh(_))) => {
                    let message = format!("{}: {error}", task.name);
                    if phase == Phase::Tasks && !playbook.on_failure.is_empty() {
                        return self.recover(message).await;
                    }
                    return HostEnd::Failed(message);
                }
            }
        }
        HostEnd::Done
    }

    /// `on_failure`, after a task failed; the host fails either way.
    pub async fn recover(&mut self, failure: String) -> HostEnd {
        match Box::pin(self.run_phase(Phase::OnFailure, 0)).await {
            HostEnd::Done => HostEnd::Failed(format!("{failure} (on_failure ran)")),
            HostEnd::Failed(again) => {
                HostEnd::Failed(format!("{failure}; on_failure failed too: {again}"))
            }
            HostEnd::Stopped => HostEnd::Stopped,
        }
    }

    /// One task, journaled before and after.
    async fn run_task(&mut self, phase: Phase, index: usize, task: &Task) -> Result<(), TaskError> {
        let started = Instant::now();
        tracing::debug!(?phase, task = %task.name, "task started");
        // A reboot journals the boot_id it starts from: a resume after a
        // crash compares, and never reboots a host twice.
        let boot_id = match task.action {
            Action::Reboot(_) => super::reboot::read_boot_id(self).await.ok(),
            _ => None,
        };
        self.journal(Entry::TaskStart {
            host: self.label.clone(),
            phase,
            task: index,
            name: task.name.clone(),
            boot_id,
            time: now(),
        })
        .await;
        self.emit_task(
            phase,
            task,
            TaskStatus::Running,
            Duration::ZERO,
            String::new(),
        );
        let result = match self.skip_reason(task).await {
            Ok(Some(reason)) => Ok(TaskStatus::Skipped(reason)),
            Ok(None) => self.perform(phase, index, task).await,
            Err(error) => Err(error),
        };
        let (status, detail) = match &result {
            Ok(status) => (status.clone(), String::new()),
            Err(error @ (TaskError::Failed(_) | TaskError::Ssh(_))) => {
                (TaskStatus::Failed, error.to_string())
            }
            Err(TaskError::Aborted) => (TaskStatus::Aborted, String::new()),
        };
        if !matches!(status, TaskStatus::Aborted) {
            self.journal(Entry::TaskEnd {
                host: self.label.clone(),
                phase,
                task: index,
                status: status.journal_name().into(),
                message: (!detail.is_empty()).then(|| detail.clone()),
                time: now(),
            })
            .await;
        }
        self.emit_task(phase, task, status, started.elapsed(), detail);
        result.map(|_| ())
    }

    /// `creates` and `unless`: reasons the task needs not run.
    pub async fn skip_reason(&mut self, task: &Task) -> Result<Option<String>, TaskError> {
        if let Some(path) = &task.creates {
            let path = self.expand(path)?;
            let test = format!("test -e {}", shell_quote(&path));
            if self.exec(&test, &[], self.timeout_of(task)).await?.code() == Some(0) {
                return Ok(Some(format!("{path} exists")));
            }
        }
        if let Some(command) = &task.unless {
            let command = self.expand(command)?;
            if self
                .exec(&command, &[], self.timeout_of(task))
                .await?
                .code()
                == Some(0)
            {
                return Ok(Some("`unless` succeeded".into()));
            }
        }
        Ok(None)
    }

    pub async fn perform(
        &mut self,
        phase: Phase,
        index: usize,
        task: &Task,
    ) -> Result<TaskStatus, TaskError> {
        match &task.action {
            Action::Run(command) => self.run_command(task, command).await,
            Action::Copy(copy) => {
                let (item, dest) = self.copy_source(copy)?;
                if self.copy_unchanged(task, copy).await? {
                    return Ok(TaskStatus::Unchanged);
                }
                let items = std::slice::from_ref(item.as_ref());
                let options = InstallOptions {
                    backup: backup_suffix(copy.backup.as_ref().map(|b| b.0.as_str())),
                    owner: self.account(copy.owner.as_deref())?,
                    group: self.account(copy.group.as_deref())?,
                };
                let script = install_script(&options, &dest, items);
                let captured = self
                    .exec(&script, &stdin_of(items), self.timeout_of(task))
                    .await?;
                succeeded(&captured, &[0]).map(|_| TaskStatus::Changed)
            }
            Action::Fetch(fetch) => {
                let src = self.expand(&fetch.src)?;
                let dest = self.expand(&fetch.dest)?;
                super::fetch::fetch(self, &src, &dest, self.timeout_of(task)).await
            }
            Action::Kill(kill) => {
                let pattern = self.expand(&kill.pattern)?;
                let captured = self
                    .exec(
                        &Nuke {
                            pattern,
                            signal: kill.signal.clone(),
                            list: false,
                            force: kill.force,
                        }
                        .script(),
                        &[],
                        self.timeout_of(task),
                    )
                    .await?;
                succeeded(&captured, &[0])?;
                Ok(TaskStatus::Done(first_line(&captured.stdout)))
            }
            Action::Reboot(reboot) => super::reboot::reboot(self, phase, index, reboot).await,
            Action::WaitFor(wait) => {
                let command = self.expand(&wait.command)?;
                self.wait_for(&command, wait.timeout.0, wait.interval.0)
                    .await
                    .map(|tries| TaskStatus::Done(format!("after {tries} tries")))
            }
            Action::Assert(assert) => {
                let command = self.expand(&assert.command)?;
                let captured = self.exec(&command, &[], self.timeout_of(task)).await?;
                succeeded(&captured, &[0])?;
                let got = captured.stdout.trim();
                let (holds, wanted) = match (&assert.equals, &assert.matches) {
                    (Some(equals), _) => {
                        let equals = self.expand(equals)?;
                        (got == equals, format!("`{equals}`"))
                    }
                    (None, Some(pattern)) => {
                        let pattern = self.expand(pattern)?;
                        (
                            wildcard_match(&pattern, got),
                            format!("a match of `{pattern}`"),
                        )
                    }
                    (None, None) => (true, String::new()),
                };
                match (holds, &assert.message) {
                    (true, _) => Ok(TaskStatus::Ok),
                    // The operator's words alone, so hosts failing alike group together.
                    (false, Some(message)) => Err(TaskError::Failed(self.expand(message)?)),
                    (false, None) => Err(TaskError::Failed(format!(
                        "assertion failed: got `{got}`, wanted {wanted}"
                    ))),
                }
            }
            Action::Pause(pause) => self.pause(pause).await,
        }
    }

    /// An owner or group, expanded and checked: never shell text.
    fn account(&self, name: Option<&str>) -> Result<Option<String>, TaskError> {
        name.map(|name| {
            let name = self.expand(name)?;
            parse_account(&name).map_err(TaskError::Failed)
        })
        .transpose()
    }

    /// The loaded source of a copy and its expanded destination.
    fn copy_source(&self, copy: &CopySpec) -> Result<(Arc<Item>, String), TaskError> {
        let src = self.expand(&copy.src)?;
        let item = self
            .ctx
            .sources
            .get(&src)
            .cloned()
            .ok_or_else(|| TaskError::Failed(format!("copy src {src} was not loaded")))?;
        Ok((item, self.expand(&copy.dest)?))
    }

    /// Whether `copy` with `skip_unchanged` finds the destination already
    /// holding the source (by SHA-256); always false without it.
    pub async fn copy_unchanged(
        &mut self,
        task: &Task,
        copy: &CopySpec,
    ) -> Result<bool, TaskError> {
        if !copy.skip_unchanged {
            return Ok(false);
        }
        let (item, dest) = self.copy_source(copy)?;
        let (probe, unchanged_when) = checksum_probe(&dest, std::slice::from_ref(item.as_ref()));
        let captured = self.exec(&probe, &[], self.timeout_of(task)).await?;
        Ok(captured.stdout.trim() == unchanged_when)
    }

    async fn run_command(&mut self, task: &Task, command: &str) -> Result<TaskStatus, TaskError> {
        let command = self.expand(command)?;
        let captured = self.exec(&command, &[], self.timeout_of(task)).await?;
        let code = succeeded(&captured, &task.ok_codes)?;
        if let Some(name) = &task.register {
            let value = captured.stdout.trim().to_string();
            self.journal(Entry::Register {
                host: self.label.clone(),
                name: name.clone(),
                value: value.clone(),
            })
            .await;
            self.vars.insert(name.clone(), value);
        }
        Ok(match code {
            0 if task.read_only => TaskStatus::Ok,
            0 => TaskStatus::Changed,
            code => TaskStatus::Done(format!("exit {code}, accepted")),
        })
    }

    /// Retries `command` until it exits 0; returns how many tries it took.
    pub async fn wait_for(
        &mut self,
        command: &str,
        timeout: Duration,
        interval: Duration,
    ) -> Result<u32, TaskError> {
        let deadline = Instant::now() + timeout;
        let mut tries = 0;
        loop {
            tries += 1;
            let left = deadline.saturating_duration_since(Instant::now());
            let last = match self
                .exec(command, &[], Some(left.max(Duration::from_secs(1))))
                .await
            {
                Ok(captured) if captured.code() == Some(0) => return Ok(tries),
                Ok(captured) => captured.failure(),
                Err(TaskError::Aborted) => return Err(TaskError::Aborted),
                Err(error @ (TaskError::Failed(_) | TaskError::Ssh(_))) => {
                    self.session = None;
                    error.to_string()
                }
            };
            if Instant::now() + interval > deadline {
                return Err(TaskError::Failed(format!(
                    "`{command}` did not succeed within {timeout:?} ({tries} tries; last: {last})"
                )));
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = self.ctx.abort.cancelled() => return Err(TaskError::Aborted),
            }
        }
    }

    async fn pause(&mut self, pause: &super::spec::PauseSpec) -> Result<TaskStatus, TaskError> {
        if let Some(duration) = pause.duration {
            tokio::select! {
                _ = tokio::time::sleep(duration.0) => return Ok(TaskStatus::Ok),
                _ = self.ctx.abort.cancelled() => return Err(TaskError::Aborted),
            }
        }
        let prompt = self.expand(pause.prompt.as_deref().unwrap_or_default())?;
        let ctx = Arc::clone(&self.ctx);
        let ask = ctx.ask;
        let _turn = ctx.prompt.lock().await;
        let question = format!("[{}] {prompt} — continue? [y/N] ", self.label);
        let answer = tokio::task::spawn_blocking(move || ask(&question))
            .await
            .map_err(|e| TaskError::Failed(e.to_string()))?;
        match answer {
            Some(answer) if answer.trim().eq_ignore_ascii_case("y") => Ok(TaskStatus::Ok),
            Some(_) => Err(TaskError::Failed("the operator said no".into())),
            None => Err(TaskError::Failed(
                "pause needs a terminal to ask on (/dev/tty)".into(),
            )),
        }
    }

    /// The task's own timeout, else `-t`.
    fn timeout_of(&self, task: &Task) -> Option<Duration> {
        task.timeout.or(self.ctx.default_timeout)
    }

    pub fn expand(&self, text: &str) -> Result<String, TaskError> {
        expand(text, &self.vars).map_err(|e| TaskError::Failed(e.to_string()))
    }

    pub async fn journal(&self, entry: Entry) {
        let Some(journal) = &self.ctx.journal else {
            return;
        };
        if let Err(error) = journal.record(&entry).await {
            // Losing the journal must not go unnoticed: stop starting hosts.
            let _ = self.ctx.events.send(PlayEvent::Notice(format!(
                "cannot write the journal, stopping: {error}"
            )));
            self.ctx.stop.cancel();
        }
    }

    pub fn emit_task(
        &self,
        phase: Phase,
        task: &Task,
        status: TaskStatus,
        took: Duration,
        detail: String,
    ) {
        let _ = self.ctx.events.send(PlayEvent::Task {
            host: self.label.clone(),
            phase,
            task: task.name.clone(),
            status,
            duration: took,
            detail,
        });
    }
}

/// The exit code when it is one of `ok_codes`, else the failure.
fn succeeded(captured: &Captured, ok_codes: &[u32]) -> Result<u32, TaskError> {
    match captured.code() {
        Some(code) if ok_codes.contains(&code) => Ok(code),
        _ => Err(TaskError::Failed(captured.failure())),
    }
}

/// Stdout to a task's own sink, stderr kept (capped) for its messages.
struct Capture<'a, S> {
    stdout: &'a mut S,
    stderr: Vec<u8>,
}

impl<S: OutputSink> OutputSink for Capture<'_, S> {
    async fn output(&mut self, stream: Stream, data: Bytes) -> std::io::Result<()> {
        match stream {
            Stream::Stdout => self.stdout.output(stream, data).await,
            Stream::Stderr => {
                keep(&mut self.stderr, &data);
                Ok(())
            }
        }
    }
}

/// Stdout kept, capped, for registers and assertions.
struct Kept(Vec<u8>);

impl OutputSink for Kept {
    async fn output(&mut self, _: Stream, data: Bytes) -> std::io::Result<()> {
        keep(&mut self.0, &data);
        Ok(())
    }
}

fn keep(buffer: &mut Vec<u8>, data: &[u8]) {
    let room = MAX_CAPTURE.saturating_sub(buffer.len());
    buffer.extend_from_slice(&data[..data.len().min(room)]);
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().trim().to_string()
}

/// `backup: true` means `.bak`; `false` or absent, none; else the suffix.
fn backup_suffix(value: Option<&str>) -> Option<String> {
    match value {
        None | Some("false") => None,
        Some("true") => Some(".bak".into()),
        Some(suffix) => Some(suffix.to_string()),
    }
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
