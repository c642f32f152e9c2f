//! A run of a playbook, from what the operator asked to a [`PlayReport`]:
//! the playbook, inventory and files loaded and checked before any host is
//! contacted, the journal created (or a resumed one continued, refusing
//! changed inputs), the hosts still to run worked out, and the schedulers
//! started. The binary parses flags and prints; this does the rest.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio_util::sync::CancellationToken;

use super::actions::fetch::FlatFiles;
use super::actions::pause::Asker;
use super::batch::{join_batch, OpenBatch};
use super::check::check_plan;
use super::delegate::{Delegates, RunOnce};
use super::event::{Earlier, Events, PlayEvent, PlayReport, FAILED_IN_AN_EARLIER_PLAY};
use super::host::{Context, HostRun};
use super::journal::{now, Entry, Journal, JournalError, Recorder};
use super::prepare::{
    check_inputs, check_journal, connect_all, default_journal, delegate_hosts, inputs_of,
    select_hosts, state_dir, with_read_later, PreparedPlay,
};
use super::replay::Replay;
use super::rolling::batch_sizes;
use super::rollout_lock::{machine_locks, RolloutLock};
use super::schedule::{PendingHost, Rollout};
use super::vars::Vars;
use super::{Playbook, Sources};
use crate::inventory::yaml::Inventory;
use crate::model::Host;
use crate::ssh::transfer::hash_file;
use crate::ssh::{Connector, SetupError, SshOptions};
use crate::yaml::YamlError;

/// What the operator asked for, as the binary parsed it.
#[derive(Debug, Clone)]
pub struct PlayRequest {
    pub playbook: PathBuf,
    pub inventory: PathBuf,
    /// `-e`: above the inventory's and the playbook's variables.
    pub extra_vars: Vars,
    /// `--limit`: groups or host names.
    pub limit: Option<String>,
    pub start_at_task: Option<String>,
    /// Where the journal goes; `None`: beside, named after the playbook.
    pub journal: Option<PathBuf>,
    /// The flags, recorded in the journal to start the run the same way again.
    pub argv: Vec<String>,
    /// Where relative paths (playbook, inventory, `copy` sources, `fetch`
    /// destinations) are: the current directory, or a resumed run's.
    pub base: PathBuf,
    /// `--check`: run only what cannot change a host.
    pub check: bool,
    /// `--sudo` / `--sudo-user`: whom tasks become when neither they nor
    /// their play say `become`.
    pub sudo_user: Option<String>,
}

/// A journal to continue: locked, and read.
pub struct Resume {
    pub journal: Journal,
    pub replay: Replay,
    /// Leave hosts that failed earlier failed instead of running them again.
    pub skip_failed: bool,
}

/// How the run goes.
#[derive(Debug, Clone, Copy)]
pub struct RunLimits {
    /// Most hosts in preflight and `--check` at once (`-p`).
    pub parallelism: usize,
    /// Most hosts in flight at all: what the open-files limit allows.
    pub max_in_flight: usize,
    /// Limit on a task's commands when the task sets none (`-t`).
    pub default_timeout: Option<Duration>,
}

/// Why a run could not start.
#[derive(Debug, Error)]
pub enum PlayError {
    /// A playbook or inventory that does not say what it should.
    #[error(transparent)]
    Input(#[from] YamlError),
    /// Flags, a selection or files that cannot make a run.
    #[error("{0}")]
    Usage(String),
    /// A key, ssh_config or bastion that cannot be used.
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error(transparent)]
    Journal(#[from] JournalError),
}

impl PlayError {
    /// Whether the operator has to fix their input (exit 2), rather than
    /// this machine failing (a journal that cannot be written).
    pub fn is_usage(&self) -> bool {
        !matches!(self, PlayError::Journal(JournalError::Io { .. }))
    }
}

/// What every play's [`Context`] of a run shares.
struct Shared {
    recorder: Recorder,
    flat_files: Arc<FlatFiles>,
    stop: CancellationToken,
    abort: CancellationToken,
    asker: Arc<Asker>,
}

/// A run ready to contact hosts.
pub struct PlaybookRun {
    request: PlayRequest,
    playbook: Arc<Playbook>,
    plays: Vec<PreparedPlay>,
    connector: Arc<Connector>,
    sources: Arc<Sources>,
    /// `--start-at-task`: the play it names (earlier plays do not run) and
    /// the task there.
    start_at: (usize, usize),
    /// SHA-256 of the inventory and of each file `copy` sends.
    inputs: BTreeMap<String, String>,
    /// SHA-256 of the inventory alone: with the playbook's, what names the
    /// rollout for its lock.
    inventory_sha256: String,
    /// A resumed journal's account of each host, and `--skip-failed`.
    replay: Option<(Replay, bool)>,
    /// The resumed journal, locked since before anything was read.
    locked: Option<Journal>,
}

impl PlaybookRun {
    /// Loads and checks everything: the playbook (unchanged since a resumed
    /// journal started), the inventory and each play's selection, every
    /// variable of every task on every host, the files `copy` sends; then
    /// `connect` resolves each host's SSH settings. No host is contacted.
    pub fn prepare(
        request: PlayRequest,
        resume: Option<Resume>,
        connect: impl FnOnce(&[(&Host, &SshOptions)]) -> Result<Connector, SetupError>,
    ) -> Result<PlaybookRun, PlayError> {
        let base = request.base.clone();
        let playbook = Playbook::load(&base.join(&request.playbook))?;
        if let Some(resume) = &resume {
            check_journal(&request, &playbook, &resume.replay)?;
        }
        let inventory_path = base.join(&request.inventory);
        let inventory = Inventory::load(&inventory_path)?;
        let mut plays = Vec::with_capacity(playbook.plays.len());
        let mut sources = Sources::new(&base);
        if let Some(resume) = &resume {
            sources.resuming(&resume.replay.inputs);
        }
        let mut carried: Vec<String> = Vec::new();
        for play in &playbook.plays {
            let hosts = select_hosts(&inventory, play, request.limit.as_deref())?;
            let prepared = play.prepare(&hosts, &request.extra_vars, &sources, &carried)?;
            carried.extend(play.registers().cloned());
            plays.push(PreparedPlay {
                play: Arc::clone(play),
                delegates: delegate_hosts(&inventory, play, &prepared.delegates)?,
                hosts,
                vars: prepared.vars,
            });
        }
        let (inventory_sha256, _) = hash_file(&inventory_path)
            .map_err(|e| PlayError::Usage(format!("{}: {e}", inventory_path.display())))?;
        let inputs = inputs_of((&inventory_path, &inventory_sha256), &sources);
        if let Some(resume) = &resume {
            let journaled = &resume.replay.inputs;
            check_inputs(
                journaled,
                &with_read_later(inputs.clone(), journaled, &base),
            )?;
        }
        let start_at = match &request.start_at_task {
            Some(name) => playbook.task_index(name).map_err(PlayError::Usage)?,
            None => (0, 0),
        };
        let connector = connect_all(&plays, connect)?;
        Ok(PlaybookRun {
            request,
            playbook: Arc::new(playbook),
            plays,
            connector: Arc::new(connector),
            sources: Arc::new(sources),
            start_at,
            inputs,
            inventory_sha256,
            replay: resume.as_ref().map(|r| (r.replay.clone(), r.skip_failed)),
            locked: resume.map(|r| r.journal),
        })
    }

    /// Runs it (or checks it, with `--check`): its plays in order, until
    /// one stops. The first cancellation of `stop` lets running tasks
    /// finish and starts no host; `abort` kills what runs. Events go to
    /// `events`; the report says how it ended, for every host of the run.
    pub async fn run(
        mut self,
        limits: RunLimits,
        events: Events,
        stop: CancellationToken,
        abort: CancellationToken,
        asker: Asker,
    ) -> Result<PlayReport, PlayError> {
        let _rollout = match self.request.check {
            true => None,
            false => self.lock_rollout()?,
        };
        let journal = match self.request.check {
            true => None,
            false => Some(Arc::new(self.open_journal().await?)),
        };
        let shared = Shared {
            recorder: Recorder {
                journal,
                events,
                stop: stop.clone(),
                broken: Arc::default(),
            },
            stop,
            abort,
            asker: Arc::new(asker),
            flat_files: Arc::default(),
        };
        let resumed_at = self.replay.as_ref().map_or(0, |(replay, _)| replay.play);
        let mut carried = self
            .replay
            .as_ref()
            .map(Carried::from_journal)
            .unwrap_or_default();
        let mut total = PlayReport {
            journal: shared.recorder.journal_path(),
            ..PlayReport::default()
        };
        for index in self.start_at.0.max(resumed_at)..self.plays.len() {
            let ctx = self.context(&self.plays[index], &shared, limits);
            let resumed = index == resumed_at;
            let report = self.run_play(index, &ctx, limits, resumed, &carried).await;
            ctx.delegates.close().await;
            carried.add(&report);
            let stopped = report.stop_reason.is_some() || shared.stop.is_cancelled();
            total.merge(report);
            if stopped {
                break;
            }
        }
        if let Some(why) = shared.recorder.broken.get() {
            total.interrupted = false;
            total.stop_reason = Some(format!("cannot write the journal: {why}"));
        }
        Ok(total)
    }

    /// What the hosts of one play share.
    fn context(&self, prepared: &PreparedPlay, shared: &Shared, limits: RunLimits) -> Arc<Context> {
        let journal = shared.recorder.journal_path();
        let delegates = prepared.delegates.iter();
        let delegates = delegates.map(|(name, host)| (name.clone(), host.host.clone()));
        Arc::new(Context {
            connector: Arc::clone(&self.connector),
            play: Arc::clone(&prepared.play),
            sources: Arc::clone(&self.sources),
            recorder: shared.recorder.clone(),
            stop: shared.stop.clone(),
            abort: shared.abort.clone(),
            default_timeout: limits.default_timeout,
            asker: Arc::clone(&shared.asker),
            base: journal
                .and_then(|journal| journal.parent().map(Path::to_path_buf))
                .unwrap_or_else(|| self.request.base.clone()),
            delegates: Delegates::new(
                Arc::clone(&self.connector),
                shared.abort.clone(),
                delegates.collect(),
            ),
            once: RunOnce::default(),
            flat_files: Arc::clone(&shared.flat_files),
            sudo_user: self.request.sudo_user.clone(),
        })
    }

    /// One play, journaled as begun, rolled (or checked).
    async fn run_play(
        &self,
        index: usize,
        ctx: &Arc<Context>,
        limits: RunLimits,
        resumed: bool,
        carried: &Carried,
    ) -> PlayReport {
        let prepared = &self.plays[index];
        let entry = Entry::Play {
            play: index,
            name: prepared.play.name.clone(),
            time: now(),
        };
        ctx.recorder.record(entry).await;
        let start_at = match index == self.start_at.0 {
            true => self.start_at.1,
            false => 0,
        };
        match self.request.check {
            true => self.check(ctx, prepared, limits, start_at).await,
            false => {
                self.roll(ctx, prepared, limits, start_at, resumed, carried)
                    .await
            }
        }
    }

    async fn roll(
        &self,
        ctx: &Arc<Context>,
        prepared: &PreparedPlay,
        limits: RunLimits,
        start_at: usize,
        resumed: bool,
        carried: &Carried,
    ) -> PlayReport {
        let (pending, earlier) = self.pending_hosts(ctx, prepared, resumed, carried);
        let open = match (&self.replay, resumed) {
            (Some((replay, _)), true) => open_batches(ctx, prepared, replay, carried),
            _ => Vec::new(),
        };
        let rollout = Rollout {
            ctx: Arc::clone(ctx),
            hosts: pending,
            total: prepared.hosts.len(),
            parallelism: limits.parallelism,
            max_in_flight: limits.max_in_flight,
            start_at,
            open,
        };
        rollout.run(earlier).await
    }

    async fn check(
        &self,
        ctx: &Arc<Context>,
        prepared: &PreparedPlay,
        limits: RunLimits,
        start_at: usize,
    ) -> PlayReport {
        let clock = std::time::Instant::now();
        let play = &prepared.play;
        let total = prepared.hosts.len();
        let sizes = batch_sizes(&play.serial, total, total);
        let mut labels = prepared.hosts.iter().map(|h| h.host.label());
        let batches: Vec<Vec<String>> = sizes
            .iter()
            .map(|&n| labels.by_ref().take(n).collect())
            .collect();
        ctx.events().emit(PlayEvent::Plan {
            playbook: format!("{} (--check: nothing will be changed)", play.name),
            play: play.number,
            batches: batches.clone(),
            mode: play.mode,
            max_fail: play.max_fail.allowed_of(total),
            earlier: Earlier::default(),
            journal: None,
            check: true,
        });
        let runs = self.check_runs(ctx, prepared, &batches);
        let checked = check_plan(runs, limits.parallelism, start_at).await;
        for (host, why) in &checked.unchecked {
            ctx.events()
                .emit(PlayEvent::Notice(format!("cannot check {host}: {why}")));
        }
        let named = |label: &String| {
            let list = checked.unchecked.iter().chain(&checked.failed);
            list.into_iter().any(|(host, _)| host == label)
        };
        let done = prepared
            .hosts
            .iter()
            .map(|h| h.host.label())
            .filter(|label| !named(label))
            .collect();
        PlayReport {
            done,
            unchecked: checked.unchecked,
            failed: checked.failed,
            elapsed: clock.elapsed(),
            ..PlayReport::default()
        }
    }

    /// The play's hosts as `--check` runs them: in their planned batches,
    /// with stand-ins for what earlier plays would register (unknown
    /// without running them).
    fn check_runs(
        &self,
        ctx: &Arc<Context>,
        prepared: &PreparedPlay,
        batches: &[Vec<String>],
    ) -> Vec<HostRun> {
        let earlier = self
            .plays
            .iter()
            .take_while(|p| !Arc::ptr_eq(&p.play, &prepared.play));
        let stand_ins: Vars = earlier
            .flat_map(|p| p.play.registers())
            .map(|name| (name.clone(), format!("<{name}>")))
            .collect();
        let carried = Carried {
            registers: prepared
                .hosts
                .iter()
                .map(|h| (h.host.label(), stand_ins.clone()))
                .collect(),
            ..Carried::default()
        };
        let mut runs = host_runs(ctx, prepared, &carried);
        let mut rest = runs.iter_mut();
        for (number, batch) in batches.iter().enumerate() {
            let names = batch.join(" ");
            for run in rest.by_ref().take(batch.len()) {
                join_batch(run, &names, (number + 1, batches.len()), number + 1);
            }
        }
        runs
    }

    /// The hosts of a play still to run. In the play a resumed journal
    /// stopped in, those done earlier are left alone; those that failed go
    /// again (from their failed task, see [`super::HostProgress::retry`])
    /// unless `--skip-failed` leaves them failed. A host that failed in an
    /// earlier play stays failed.
    fn pending_hosts(
        &self,
        ctx: &Arc<Context>,
        prepared: &PreparedPlay,
        resumed: bool,
        carried: &Carried,
    ) -> (Vec<PendingHost>, Earlier) {
        let none = HashMap::new();
        let (progress, skip_failed) = match &self.replay {
            Some((replay, skip)) if resumed => (&replay.hosts, *skip),
            _ => (&none, false),
        };
        let mut pending = Vec::new();
        let mut earlier = Earlier::default();
        for mut run in host_runs(ctx, prepared, carried) {
            if carried.failed_now.contains(&run.label) {
                continue;
            }
            if let Some(why) = carried.journaled_failures.get(&run.label) {
                earlier
                    .failed
                    .push((run.label, format!("{FAILED_IN_AN_EARLIER_PLAY}: {why}")));
                continue;
            }
            let mut progress = progress.get(&run.label).cloned().unwrap_or_default();
            match progress.finished {
                Some(true) => {
                    earlier.done.push(run.label);
                    continue;
                }
                Some(false) if skip_failed => {
                    let why = progress.failure.clone().unwrap_or_default();
                    earlier
                        .failed
                        .push((run.label, format!("failed earlier: {why}")));
                    continue;
                }
                Some(false) => {
                    progress.retry();
                    earlier.retried += 1;
                }
                None => {}
            }
            run.vars.extend(progress.registers.clone());
            run.changed.clone_from(&progress.changed);
            pending.push(PendingHost { run, progress });
        }
        (pending, earlier)
    }

    /// This playbook's rollout over this inventory, for the run: locked
    /// machine-wide, else in this user's state directory; not at all where
    /// there is neither (no /run/lock, no HOME).
    fn lock_rollout(&self) -> Result<Option<RolloutLock>, JournalError> {
        let locks = machine_locks().or_else(|| state_dir().ok().map(|dir| dir.join("locks")));
        let Some(locks) = locks else {
            return Ok(None);
        };
        let request = &self.request;
        let playbook = request.base.join(&request.playbook);
        let inventory = request.base.join(&request.inventory);
        RolloutLock::take(
            &locks,
            (&playbook, &self.playbook.sha256),
            (&inventory, &self.inventory_sha256),
        )
        .map(Some)
    }

    /// The resumed journal, or a new one that records how this run started.
    async fn open_journal(&mut self) -> Result<Journal, JournalError> {
        if let Some(journal) = self.locked.take() {
            let entry = Entry::Resume {
                pid: std::process::id(),
                time: now(),
            };
            journal.record(&entry).await?;
            return Ok(journal);
        }
        let request = &self.request;
        let named = request.journal.clone();
        let path = match &named {
            Some(path) => request.base.join(path),
            None => default_journal(&request.playbook)?,
        };
        let journal = Journal::create(&path)?;
        let mut argv = request.argv.clone();
        if named.is_none() {
            argv.extend(["--journal".to_string(), path.to_string_lossy().into_owned()]);
        }
        let entry = Entry::Start {
            argv,
            cwd: request.base.clone(),
            playbook_sha256: self.playbook.sha256.clone(),
            inputs: self.inputs.clone(),
            pid: std::process::id(),
            time: now(),
        };
        journal.record(&entry).await?;
        Ok(journal)
    }
}

/// Locks a journal to resume it, then reads it: no second pplay may resume
/// it meanwhile.
pub fn reopen(path: &Path) -> Result<(Journal, Replay), JournalError> {
    Journal::reopen(path, Replay::parse)
}

/// What the plays before this one leave to it: what each host
/// registered, and the hosts that failed (they stay failed and are not run
/// again), from a resumed journal (reported again, as failed earlier) and
/// from this run (reported once, by the play they failed in).
#[derive(Default)]
struct Carried {
    registers: HashMap<String, Vars>,
    journaled_failures: BTreeMap<String, String>,
    failed_now: HashSet<String>,
}

impl Carried {
    fn from_journal((replay, _): &(Replay, bool)) -> Carried {
        let mut registers = replay.carried.clone();
        for (host, progress) in &replay.hosts {
            let vars = registers.entry(host.clone()).or_default();
            vars.extend(progress.registers.clone());
        }
        Carried {
            registers,
            journaled_failures: replay.failed_before.clone(),
            failed_now: HashSet::new(),
        }
    }

    /// What a play that ended leaves.
    fn add(&mut self, report: &PlayReport) {
        for (host, registered) in &report.registered {
            let vars = self.registers.entry(host.clone()).or_default();
            vars.extend(registered.clone());
        }
        for (host, _) in report.failed.iter().chain(&report.earlier.failed) {
            self.failed_now.insert(host.clone());
        }
    }
}

/// The batches a resumed journal shows begun and not put back, with
/// their hosts' runs, for `after_batch` first thing.
fn open_batches(
    ctx: &Arc<Context>,
    prepared: &PreparedPlay,
    replay: &Replay,
    carried: &Carried,
) -> Vec<OpenBatch> {
    let open = &replay.open_batches;
    if open.is_empty() {
        return Vec::new();
    }
    let mut runs: HashMap<String, HostRun> = host_runs(ctx, prepared, carried)
        .into_iter()
        .map(|run| (run.label.clone(), run))
        .collect();
    open.iter()
        .map(|(&number, (of, hosts))| OpenBatch {
            number,
            of: *of,
            runs: hosts.iter().filter_map(|host| runs.remove(host)).collect(),
        })
        .collect()
}

/// Each host of a play as a run, with what it registered in earlier plays.
fn host_runs(ctx: &Arc<Context>, prepared: &PreparedPlay, carried: &Carried) -> Vec<HostRun> {
    prepared
        .hosts
        .iter()
        .zip(&prepared.vars)
        .map(|(host, vars)| {
            let mut vars = vars.clone();
            if let Some(registered) = carried.registers.get(&host.host.label()) {
                vars.extend(registered.clone());
            }
            HostRun::new(Arc::clone(ctx), host.host.clone(), vars)
        })
        .collect()
}
