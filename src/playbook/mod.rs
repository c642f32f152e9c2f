//! pplay's playbooks: YAML files of tasks rolled over an inventory a few
//! hosts at a time, with verified reboots, a failure budget, rollback tasks
//! and a journal to resume from. Everything in a playbook is checked here,
//! for every host, before the first host is contacted.

mod actions;
mod batch;
mod check;
mod condition;
mod delegate;
mod error;
mod event;
mod host;
mod journal;
mod load;
mod local;
mod play;
mod prepare;
mod remote;
mod replay;
mod rolling;
mod rollout_lock;
mod schedule;
mod sources;
pub mod spec;
pub mod vars;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use actions::pause::{Ask, Asker};
use condition::When;
pub use error::TaskError;
pub use event::{
    Earlier, Events, Failure, HostEnd, PlayEvent, PlayReport, PlaySink, TaskStatus,
    FAILED_IN_AN_EARLIER_PLAY,
};
pub use journal::{now, Entry, Journal, JournalError};
pub use play::{reopen, PlayError, PlayRequest, PlaybookRun, Resume, RunLimits};
pub use prepare::connection_options;
pub use replay::{HostProgress, RebootMark, Replay};
pub use sources::Sources;
use spec::{
    Amount, AssertSpec, ChangedWhen, CopySpec, FetchSpec, KillSpec, Mode, Order, PauseSpec,
    RebootSpec, SyncSpec, WaitForSpec,
};
use vars::Vars;

/// A playbook file that passed every check that needs no host: its plays,
/// run in order (a file that is one mapping is one play).
#[derive(Debug)]
pub struct Playbook {
    pub path: PathBuf,
    pub plays: Vec<Arc<Play>>,
    /// Of the file's bytes: a journal only resumes the playbook it started.
    pub sha256: String,
}

/// One play: hosts, how they roll, and the task lists they go through.
#[derive(Debug)]
pub struct Play {
    pub path: PathBuf,
    pub name: String,
    /// Its number in the file, from 1, and how many plays the file has.
    pub number: (usize, usize),
    /// Where it starts in the file, for messages.
    pub line: u64,
    pub column: u64,
    /// Hosts pattern (groups or names); `all` by default.
    pub hosts: String,
    pub serial: Vec<Amount>,
    pub max_fail: Amount,
    pub mode: Mode,
    pub order: Order,
    /// Keep one host per distinct value of this template, after preflight.
    pub one_per: Option<String>,
    pub vars: Vars,
    pub preflight: Vec<Task>,
    pub tasks: Vec<Task>,
    pub on_failure: Vec<Task>,
    /// Around each batch (window mode: each host), with `batch.*` variables.
    pub before_batch: Vec<Task>,
    pub after_batch: Vec<Task>,
}

/// The lists of tasks of a play. A host goes through preflight, then
/// (with its batch) before_batch, tasks, on_failure if a task failed, and
/// after_batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Preflight,
    Tasks,
    OnFailure,
    BeforeBatch,
    AfterBatch,
}

/// Every phase, in the order a host goes through them.
pub const PHASES: [Phase; 5] = [
    Phase::Preflight,
    Phase::BeforeBatch,
    Phase::Tasks,
    Phase::OnFailure,
    Phase::AfterBatch,
];

impl Phase {
    /// Batch hooks: run around a batch, outside a host's own progress.
    pub fn is_hook(self) -> bool {
        matches!(self, Phase::BeforeBatch | Phase::AfterBatch)
    }

    /// How the phase is written in a playbook, for messages.
    pub fn key(self) -> &'static str {
        match self {
            Phase::Preflight => "preflight",
            Phase::Tasks => "tasks",
            Phase::OnFailure => "on_failure",
            Phase::BeforeBatch => "before_batch",
            Phase::AfterBatch => "after_batch",
        }
    }
}

/// One validated task.
#[derive(Debug)]
pub struct Task {
    pub name: String,
    pub action: Action,
    pub register: Option<String>,
    pub ok_codes: Vec<u32>,
    pub when: Option<When>,
    pub changed_when: Option<ChangedWhen>,
    pub creates: Option<String>,
    pub unless: Option<String>,
    pub timeout: Option<Duration>,
    pub read_only: bool,
    /// `localhost` or an inventory host the task runs on instead, with the
    /// current host's variables (expanded before any host is contacted).
    pub delegate_to: Option<String>,
    /// Runs once per play (per batch in batch hooks); every host gets its
    /// outcome and registered value.
    pub run_once: bool,
    /// `become`, the task's or else its play's; `None` when neither says.
    pub sudo: Option<bool>,
    /// `become_user`, the task's or else its play's.
    pub sudo_user: Option<String>,
    /// Where the task starts in the playbook, for messages.
    pub line: u64,
    pub column: u64,
}

/// What a task does; exactly one per task.
#[derive(Debug)]
pub enum Action {
    Run(String),
    Copy(CopySpec),
    Sync(SyncSpec),
    Fetch(FetchSpec),
    Kill(KillSpec),
    Reboot(RebootSpec),
    WaitFor(WaitForSpec),
    Assert(AssertSpec),
    Pause(PauseSpec),
}

const ACTIONS: &str = "run, copy, sync, fetch, kill, reboot, wait_for, assert, pause";

impl Task {
    /// Whom the task's commands run as through sudo, if anyone: as its
    /// `become` (or its play's) says, else as `--sudo` (`default`) says.
    pub fn sudo_user<'a>(&'a self, default: Option<&'a str>) -> Option<&'a str> {
        let on = self.sudo.unwrap_or(default.is_some());
        on.then(|| self.sudo_user.as_deref().or(default).unwrap_or("root"))
    }

    /// Every field variables may appear in.
    fn templates(&self) -> Vec<&str> {
        let mut fields: Vec<&str> = self
            .creates
            .iter()
            .chain(self.unless.iter())
            .chain(self.delegate_to.iter())
            .map(String::as_str)
            .chain(self.when.iter().flat_map(|when| when.condition.templates()))
            .collect();
        match &self.action {
            Action::Run(command) => fields.push(command),
            Action::Copy(copy) => {
                fields.extend([copy.src.as_str(), &copy.dest]);
                fields.extend(copy.owner.as_deref());
                fields.extend(copy.group.as_deref());
            }
            Action::Sync(sync) => fields.extend([sync.src.as_str(), &sync.dest]),
            Action::Fetch(fetch) => fields.extend([fetch.src.as_str(), &fetch.dest]),
            Action::Kill(kill) => fields.push(&kill.pattern),
            Action::Reboot(reboot) => {
                fields.extend([reboot.command.as_str(), &reboot.test_command])
            }
            Action::WaitFor(wait) => fields.push(&wait.command),
            Action::Assert(assert) => {
                fields.push(&assert.command);
                fields.extend(assert.equals.as_deref());
                fields.extend(assert.matches.as_deref());
                fields.extend(assert.message.as_deref());
            }
            Action::Pause(pause) => fields.extend(pause.prompt.as_deref()),
        }
        fields
    }

    /// Whether `--check` may run it: it says it changes nothing.
    pub fn runs_in_check_mode(&self) -> bool {
        self.read_only
            && matches!(
                self.action,
                Action::Run(_) | Action::Assert(_) | Action::WaitFor(_)
            )
    }
}

impl Play {
    /// The tasks of a phase.
    pub fn phase(&self, phase: Phase) -> &[Task] {
        match phase {
            Phase::Preflight => &self.preflight,
            Phase::Tasks => &self.tasks,
            Phase::OnFailure => &self.on_failure,
            Phase::BeforeBatch => &self.before_batch,
            Phase::AfterBatch => &self.after_batch,
        }
    }
}

impl Playbook {
    /// The play (its index) and the index in its `tasks` of the first task
    /// named `name`, for --start-at-task.
    pub fn task_index(&self, name: &str) -> Result<(usize, usize), String> {
        let found: Vec<(usize, usize)> = self
            .plays
            .iter()
            .enumerate()
            .filter_map(|(play, p)| Some((play, p.tasks.iter().position(|t| t.name == name)?)))
            .collect();
        if found.len() > 1 {
            let plays: Vec<String> = found
                .iter()
                .map(|(play, _)| format!("{}", play + 1))
                .collect();
            return Err(format!(
                "--start-at-task: `{name}` names a task in plays {}; rename one",
                plays.join(" and ")
            ));
        }
        found.first().copied().ok_or_else(|| {
            let names: Vec<_> = self
                .plays
                .iter()
                .flat_map(|p| &p.tasks)
                .map(|t| format!("`{}`", t.name))
                .collect();
            format!(
                "--start-at-task: no task named `{name}`; the tasks are {}",
                names.join(", ")
            )
        })
    }
}
