//! One host's way through a playbook: its facts, its tasks in order (each
//! journaled before and after, its guards checked, its action performed),
//! and `on_failure` when a task fails. The connection is [`Remote`]'s; what
//! each action does is in [`super::actions`].

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::actions::fetch::FlatFiles;
use super::actions::pause::Asker;
use super::actions::{self, reboot::At, run::RunRules, Step};
use super::condition::Facts;
use super::delegate::{Delegated, Delegates, Once, RunOnce};
use super::error::TaskError;
use super::event::{Events, Failure, HostEnd, PlayEvent, TaskStatus};
use super::journal::{now, Entry, Recorder};
use super::remote::Remote;
use super::replay::RebootMark;
use super::sources::input_name;
use super::vars::Vars;
use super::{Action, Phase, Play, Sources, Task, PHASES};
use crate::model::Host;
use crate::ssh::{shell_quote, Connector, Sudo};

/// What every host of a run shares.
pub struct Context {
    pub connector: Arc<Connector>,
    pub play: Arc<Play>,
    pub sources: Arc<Sources>,
    /// The journal (none under `--check`), the events, and the stop a
    /// journal that cannot be written triggers.
    pub recorder: Recorder,
    /// Max_fail reached or the first Ctrl-C: finish the current task, start no other.
    pub stop: CancellationToken,
    /// The second Ctrl-C: kill what runs now.
    pub abort: CancellationToken,
    /// Limit on a task's commands when the task sets none (`-t`).
    pub default_timeout: Option<Duration>,
    /// How `pause: {prompt}` asks the operator.
    pub asker: Arc<Asker>,
    /// Where relative `fetch` destinations are: the run directory (the
    /// journal's), or under `--check` where pplay started.
    pub base: std::path::PathBuf,
    /// `delegate_to`'s hosts and their connections.
    pub delegates: Delegates,
    /// What `run_once` tasks left for the other hosts.
    pub once: RunOnce,
    /// The files `flat` fetches of the run wrote, and which host wrote each.
    pub flat_files: Arc<FlatFiles>,
    /// `--sudo`'s user: whom tasks become when they do not say.
    pub sudo_user: Option<String>,
}

impl Context {
    pub fn events(&self) -> &Events {
        &self.recorder.events
    }
}

/// One host's state while it runs.
pub struct HostRun {
    pub ctx: Arc<Context>,
    pub label: String,
    pub remote: Remote,
    /// Its variables: playbook defaults, inventory, -e, registers, facts.
    pub vars: Vars,
    /// From a resumed journal: a reboot task cut short, which may have
    /// rebooted the host already.
    pub reboot_mark: Option<RebootMark>,
    /// The tasks that changed this host in this run (a resumed one
    /// included), for `when: changed: TASK`.
    pub changed: HashSet<(Phase, usize)>,
    /// The id of the batch it rolls in, for the batch's `run_once`
    /// outcomes; 0 before it joins one.
    pub batch: usize,
    /// What this host registered in this play, carried to later plays.
    pub registered: Vars,
}

impl Facts for HostRun {
    fn vars(&self) -> &Vars {
        &self.vars
    }

    fn changed(&self, phase: Phase, index: usize) -> bool {
        self.changed.contains(&(phase, index))
    }
}

impl HostRun {
    pub fn new(ctx: Arc<Context>, host: Host, vars: Vars) -> HostRun {
        let remote = Remote::new(Arc::clone(&ctx.connector), host, ctx.abort.clone());
        HostRun {
            label: remote.host.label(),
            ctx,
            remote,
            vars,
            reboot_mark: None,
            changed: HashSet::new(),
            batch: 0,
            registered: Vars::new(),
        }
    }

    /// Reads kernel release, hostname and boot_id into the `host.*` facts.
    pub async fn gather_facts(&mut self) -> Result<(), TaskError> {
        let facts = self.remote.facts().await?;
        self.vars
            .insert("host.name".into(), self.remote.host.name.clone());
        facts.set_in(&mut self.vars);
        Ok(())
    }

    /// Loads the `copy` sources named by this host's facts (once for all
    /// hosts naming the same file), so that a missing one fails the host
    /// before any host is changed, naming the path.
    pub async fn load_sources(&mut self) -> Result<(), String> {
        let play = Arc::clone(&self.ctx.play);
        let copies = PHASES.iter().flat_map(|&phase| play.phase(phase));
        for task in copies {
            let Action::Copy(spec) = &task.action else {
                continue;
            };
            let src = self
                .expand(&spec.src)
                .map_err(|e| format!("{}: {e}", task.name))?;
            let loaded = self
                .ctx
                .sources
                .load_off_runtime(&src, spec.mode.as_deref())
                .await
                .map_err(|why| format!("{}: {why}", task.name))?;
            if loaded.first {
                let sha256 = loaded.item.sha256.clone();
                self.record(Entry::Input {
                    name: input_name(&src),
                    sha256,
                })
                .await;
            }
        }
        Ok(())
    }

    /// Runs the tasks of `phase` from `first` on; on a failure in
    /// `Phase::Tasks`, runs `on_failure` and reports the first failure.
    pub async fn run_phase(&mut self, phase: Phase, first: usize) -> HostEnd {
        let play = Arc::clone(&self.ctx.play);
        for (index, task) in play.phase(phase).iter().enumerate().skip(first) {
            // Putting back (on_failure) and undoing (after_batch) go on
            // after a stop.
            let undoing = matches!(phase, Phase::OnFailure | Phase::AfterBatch);
            if self.ctx.stop.is_cancelled() && !undoing {
                return HostEnd::Stopped;
            }
            match self.run_task(phase, index, task).await {
                Ok(()) => {}
                Err(TaskError::Aborted) => return HostEnd::Stopped,
                Err(error) => {
                    let failure = Failure::of(&task.name, &error);
                    if phase == Phase::Tasks && !play.on_failure.is_empty() {
                        return self.recover(failure).await;
                    }
                    return HostEnd::Failed(failure);
                }
            }
        }
        HostEnd::Done
    }

    /// `on_failure`, after a task failed; the host fails either way.
    pub async fn recover(&mut self, failure: Failure) -> HostEnd {
        match Box::pin(self.run_phase(Phase::OnFailure, 0)).await {
            HostEnd::Done => HostEnd::Failed(failure.map(|f| format!("{f} (on_failure ran)"))),
            HostEnd::Failed(again) => HostEnd::Failed(Failure {
                detail: format!(
                    "{}; on_failure failed too: {}",
                    failure.detail, again.detail
                ),
                reason: format!(
                    "{}; on_failure failed too: {}",
                    failure.reason, again.reason
                ),
            }),
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
            Action::Reboot(_) => self.remote.boot_id().await.ok(),
            _ => None,
        };
        self.record(Entry::TaskStart {
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
        let result = match task.run_once {
            true => self.once(phase, index, task).await,
            false => self.attempt(phase, index, task).await,
        };
        let (status, detail) = match &result {
            Ok(status) => (status.clone(), String::new()),
            Err(TaskError::Aborted) => (TaskStatus::Aborted, String::new()),
            Err(error) => (TaskStatus::Failed, error.to_string()),
        };
        if let TaskStatus::Changed(_) = status {
            self.changed.insert((phase, index));
        }
        if status != TaskStatus::Aborted {
            self.record(Entry::TaskEnd {
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

    /// The task's guards, then its action.
    async fn attempt(
        &mut self,
        phase: Phase,
        index: usize,
        task: &Task,
    ) -> Result<TaskStatus, TaskError> {
        // A reboot a resumed journal shows under way passed its guards
        // already; the host may be down now, so they are not run again.
        let under_way = self
            .reboot_mark
            .as_ref()
            .is_some_and(|mark| mark.phase == phase && mark.task == index);
        let sudo = self.sudo_for(task);
        self.remote.set_sudo(sudo);
        let guards = match under_way {
            true => Ok(None),
            false => self.skip_reason(task).await,
        };
        let result = match guards {
            Ok(Some(reason)) => Ok(TaskStatus::Skipped(reason)),
            Ok(None) => self.perform(phase, index, task).await,
            Err(error) => Err(error),
        };
        if let Err(TaskError::Ssh(error)) = &result {
            if error.is_wrong_sudo_password() {
                self.ctx.connector.sudo_password_refused_on(&self.label);
            }
        }
        // A connection that failed is the delegated host's, not this one's.
        match (result, &task.delegate_to) {
            (Err(TaskError::Ssh(error)), Some(target)) => {
                let target = self.expand(target).unwrap_or_else(|_| target.clone());
                Err(TaskError::Local(format!("delegate_to {target}: {error}")))
            }
            (result, _) => result,
        }
    }

    /// A `run_once` task: run here if no host of the play (of the batch,
    /// in hooks) ran it yet, else the outcome and register of the host
    /// that did.
    async fn once(
        &mut self,
        phase: Phase,
        index: usize,
        task: &Task,
    ) -> Result<TaskStatus, TaskError> {
        let batch = if phase.is_hook() { self.batch } else { 0 };
        let cell = self.ctx.once.cell(phase, index, batch);
        let mut here = None;
        let once = cell
            .get_or_init(|| async {
                let result = self.attempt(phase, index, task).await;
                let once = Once {
                    host: self.label.clone(),
                    outcome: match &result {
                        Ok(status) => Ok(status.clone()),
                        Err(TaskError::Aborted) => Err(None),
                        Err(error) => Err(Some(error.to_string())),
                    },
                    register: task
                        .register
                        .as_ref()
                        .and_then(|n| self.vars.get(n).cloned()),
                };
                here = Some(result);
                once
            })
            .await;
        if let Some(result) = here {
            return result;
        }
        if let (Some(name), Some(value)) = (&task.register, &once.register) {
            self.register(name, value.clone()).await;
        }
        once.for_another_host()
    }

    /// The sudo the task's commands run under, if any.
    fn sudo_for(&self, task: &Task) -> Option<Sudo> {
        let user = task.sudo_user(self.ctx.sudo_user.as_deref())?;
        Some(self.ctx.connector.sudo_as(user))
    }

    /// Where a task runs: `None` for this host, else where `delegate_to` says.
    pub async fn delegated(&self, task: &Task) -> Result<Option<Delegated>, TaskError> {
        match &task.delegate_to {
            Some(target) => Ok(Some(self.ctx.delegates.get(&self.expand(target)?).await?)),
            None => Ok(None),
        }
    }

    /// `when`, `creates` and `unless`: reasons the task needs not run.
    pub async fn skip_reason(&mut self, task: &Task) -> Result<Option<String>, TaskError> {
        if let Some(when) = &task.when {
            if !when.condition.holds(self)? {
                return Ok(Some(format!("`{}` is false", when.text)));
            }
        }
        let timeout = self.timeout_of(task);
        let creates = task
            .creates
            .as_deref()
            .map(|p| self.expand(p))
            .transpose()?;
        let unless = task.unless.as_deref().map(|c| self.expand(c)).transpose()?;
        if creates.is_none() && unless.is_none() {
            return Ok(None);
        }
        let mut delegated = self.delegated(task).await?;
        let remote = match &mut delegated {
            Some(delegated) => delegated.remote(),
            None => &mut self.remote,
        };
        if let Some(path) = creates {
            let test = format!("test -e {}", shell_quote(&path));
            if remote.exec(&test, &[], timeout).await?.code() == Some(0) {
                return Ok(Some(format!("{path} exists")));
            }
        }
        if let Some(command) = unless {
            if remote.exec(&command, &[], timeout).await?.code() == Some(0) {
                return Ok(Some("`unless` succeeded".into()));
            }
        }
        Ok(None)
    }

    /// The task's action, on this host.
    pub async fn perform(
        &mut self,
        phase: Phase,
        index: usize,
        task: &Task,
    ) -> Result<TaskStatus, TaskError> {
        let ctx = Arc::clone(&self.ctx);
        let mut delegated = self.delegated(task).await?;
        if let Some(delegated) = &mut delegated {
            delegated.remote().set_sudo(self.sudo_for(task));
        }
        let step = Step {
            remote: match &mut delegated {
                Some(delegated) => delegated.remote(),
                None => &mut self.remote,
            },
            vars: &self.vars,
            timeout: task.timeout.or(ctx.default_timeout),
        };
        match &task.action {
            Action::Run(command) => {
                let rules = RunRules {
                    ok_codes: &task.ok_codes,
                    read_only: task.read_only,
                    changed_when: task.changed_when.as_ref(),
                };
                let (status, stdout) = actions::run::run(step, command, rules).await?;
                if let Some(name) = &task.register {
                    self.register(name, stdout).await;
                }
                Ok(status)
            }
            Action::Copy(spec) => actions::copy::copy(step, spec, &ctx.sources).await,
            Action::Sync(spec) => actions::sync::sync(step, spec, &ctx.sources).await,
            Action::Fetch(spec) => {
                actions::fetch::fetch(step, spec, &ctx.base, &ctx.flat_files).await
            }
            Action::Kill(spec) => actions::kill::kill(step, spec).await,
            Action::WaitFor(spec) => actions::wait_for::wait_for(step, spec).await,
            Action::Assert(spec) => actions::assert::assert(step, spec).await,
            Action::Pause(spec) => {
                let prompt = step.expand(spec.prompt.as_deref().unwrap_or_default())?;
                actions::pause::pause(spec, prompt, &self.label, &ctx.asker, &ctx.abort).await
            }
            Action::Reboot(spec) => {
                let mark = self
                    .reboot_mark
                    .take()
                    .filter(|mark| mark.phase == phase && mark.task == index);
                let at = At {
                    recorder: &ctx.recorder,
                    host: &self.label,
                    phase,
                    task: index,
                };
                let (status, facts) = actions::reboot::reboot(step, spec, mark, at).await?;
                facts.set_in(&mut self.vars);
                Ok(status)
            }
        }
    }

    /// Keeps a `run`'s output as a variable, journaled for a resume.
    async fn register(&mut self, name: &str, value: String) {
        self.record(Entry::Register {
            host: self.label.clone(),
            name: name.to_string(),
            value: value.clone(),
        })
        .await;
        self.registered.insert(name.to_string(), value.clone());
        self.vars.insert(name.to_string(), value);
    }

    /// The task's own timeout, else `-t`.
    pub fn timeout_of(&self, task: &Task) -> Option<Duration> {
        task.timeout.or(self.ctx.default_timeout)
    }

    pub fn expand(&self, text: &str) -> Result<String, TaskError> {
        Ok(super::vars::expand(text, &self.vars)?)
    }

    pub async fn record(&self, entry: Entry) {
        self.ctx.recorder.record(entry).await;
    }

    pub fn emit_task(
        &self,
        phase: Phase,
        task: &Task,
        status: TaskStatus,
        took: Duration,
        detail: String,
    ) {
        self.ctx.events().emit(PlayEvent::Task {
            host: self.label.clone(),
            phase,
            task: task.name.clone(),
            status,
            duration: took,
            detail,
        });
    }

    /// Forgets the connection.
    pub async fn disconnect(&mut self) {
        self.remote.disconnect().await;
    }
}
