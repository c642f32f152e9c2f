//! A run of a playbook, from what the operator asked to a [`PlayReport`]:
//! the playbook, inventory and files loaded and checked before any host is
//! contacted, the journal created (or a resumed one continued, refusing
//! changed inputs), the hosts still to run worked out, and the schedulers
//! started. The binary parses flags and prints; this does the rest.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio_util::sync::CancellationToken;

use super::actions::pause::Asker;
use super::check::check_plan;
use super::delegate::{Delegates, RunOnce};
use super::event::{Earlier, Events, PlayEvent, PlayReport};
use super::host::{Context, HostRun};
use super::journal::{now, Entry, Journal, JournalError, Recorder};
use super::remote::LOCALHOST;
use super::replay::Replay;
use super::rolling::batch_sizes;
use super::schedule::{PendingHost, Rollout};
use super::sources::input_name;
use super::vars::Vars;
use super::{Play, Playbook, Sources};
use crate::inventory::yaml::{matches_patterns, Inventory, InventoryHost};
use crate::model::Host;
use crate::ssh::transfer::hash_file;
use crate::ssh::{expand_tilde, Connector, SetupError, SshOptions};
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
    /// A resumed journal's account of each host, and `--skip-failed`.
    replay: Option<(Replay, bool)>,
    /// The resumed journal, locked since before anything was read.
    locked: Option<Journal>,
}

/// A play with its hosts, their starting variables, and the inventory
/// hosts its tasks are delegated to.
struct PreparedPlay {
    play: Arc<Play>,
    hosts: Vec<InventoryHost>,
    vars: Vec<Vars>,
    delegates: HashMap<String, InventoryHost>,
}

/// The connection settings a host's inventory variables give (`address`
/// and its `port`, `identity_file`, `known_hosts_file`, `proxy_jump`),
/// ranked like its hosts entry.
pub fn connection_options(vars: &Vars) -> SshOptions {
    SshOptions {
        host_name: vars.get("address").cloned(),
        port: vars.get("port").and_then(|port| port.parse().ok()),
        identity_files: vars
            .get("identity_file")
            .map(|path| vec![expand_tilde(path)])
            .unwrap_or_default(),
        user_known_hosts_files: vars
            .get("known_hosts_file")
            .map(|path| vec![expand_tilde(path)]),
        proxy_jump: vars
            .get("proxy_jump")
            .map(|jumps| jumps.split(',').map(str::to_string).collect()),
        ..SshOptions::default()
    }
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
            let hosts = select_hosts(&inventory, &play.hosts, request.limit.as_deref())?;
            let prepared = play.prepare(&hosts, &request.extra_vars, &sources, &carried)?;
            carried.extend(play.registers().cloned());
            plays.push(PreparedPlay {
                play: Arc::clone(play),
                delegates: delegate_hosts(&inventory, &prepared.delegates)?,
                hosts,
                vars: prepared.vars,
            });
        }
        let inputs = inputs_of(&inventory_path, &sources)?;
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
        let journal = match self.request.check {
            true => None,
            false => Some(Arc::new(self.open_journal().await?)),
        };
        let recorder = Recorder {
            journal,
            events,
            stop: stop.clone(),
        };
        let asker = Arc::new(asker);
        let resumed_at = self.replay.as_ref().map_or(0, |(replay, _)| replay.play);
        let mut carried = self.replay.as_ref().map(carried_of).unwrap_or_default();
        let mut total = PlayReport {
            journal: recorder.journal_path(),
            ..PlayReport::default()
        };
        for index in self.start_at.0.max(resumed_at)..self.plays.len() {
            let prepared = &self.plays[index];
            let ctx = Arc::new(Context {
                connector: Arc::clone(&self.connector),
                play: Arc::clone(&prepared.play),
                sources: Arc::clone(&self.sources),
                recorder: recorder.clone(),
                stop: stop.clone(),
                abort: abort.clone(),
                default_timeout: limits.default_timeout,
                asker: Arc::clone(&asker),
                base: recorder
                    .journal_path()
                    .and_then(|journal| journal.parent().map(Path::to_path_buf))
                    .unwrap_or_else(|| self.request.base.clone()),
                delegates: Delegates::new(
                    Arc::clone(&self.connector),
                    abort.clone(),
                    prepared
                        .delegates
                        .iter()
                        .map(|(name, host)| (name.clone(), host.host.clone()))
                        .collect(),
                ),
                once: RunOnce::default(),
            });
            recorder
                .record(Entry::Play {
                    play: index,
                    name: prepared.play.name.clone(),
                    time: now(),
                })
                .await;
            let start_at = if index == self.start_at.0 {
                self.start_at.1
            } else {
                0
            };
            let report = match self.request.check {
                true => self.check(&ctx, prepared, limits, start_at).await,
                false => {
                    let resumed = index == resumed_at;
                    self.roll(&ctx, prepared, limits, start_at, resumed, &carried)
                        .await
                }
            };
            ctx.delegates.close().await;
            for (host, registered) in &report.registered {
                carried
                    .entry(host.clone())
                    .or_default()
                    .extend(registered.clone());
            }
            let stopped = report.stop_reason.is_some() || stop.is_cancelled();
            total.merge(report);
            if stopped {
                break;
            }
        }
        Ok(total)
    }

    async fn roll(
        &self,
        ctx: &Arc<Context>,
        prepared: &PreparedPlay,
        limits: RunLimits,
        start_at: usize,
        resumed: bool,
        carried: &HashMap<String, Vars>,
    ) -> PlayReport {
        let (pending, earlier) = self.pending_hosts(ctx, prepared, resumed, carried);
        let rollout = Rollout {
            ctx: Arc::clone(ctx),
            hosts: pending,
            total: prepared.hosts.len(),
            parallelism: limits.parallelism,
            max_in_flight: limits.max_in_flight,
            start_at,
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
        let batches = sizes
            .iter()
            .map(|&n| labels.by_ref().take(n).collect())
            .collect();
        ctx.events().emit(PlayEvent::Plan {
            playbook: format!("{} (--check: nothing will be changed)", play.name),
            play: play.number,
            batches,
            mode: play.mode,
            max_fail: play.max_fail.of(total),
            earlier: Earlier::default(),
            journal: None,
            check: true,
        });
        let runs = host_runs(ctx, prepared, &HashMap::new());
        let unchecked = check_plan(runs, limits.parallelism, start_at).await;
        for (host, why) in &unchecked {
            ctx.events()
                .emit(PlayEvent::Notice(format!("cannot check {host}: {why}")));
        }
        let done = prepared
            .hosts
            .iter()
            .map(|h| h.host.label())
            .filter(|label| unchecked.iter().all(|(h, _)| h != label))
            .collect();
        PlayReport {
            done,
            unchecked,
            elapsed: clock.elapsed(),
            ..PlayReport::default()
        }
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
        carried: &HashMap<String, Vars>,
    ) -> (Vec<PendingHost>, Earlier) {
        let empty = (HashMap::new(), BTreeMap::new(), false);
        let (progress, failed_before, skip_failed) = match &self.replay {
            Some((replay, skip)) if resumed => (&replay.hosts, &replay.failed_before, *skip),
            Some((replay, _)) => (&empty.0, &replay.failed_before, false),
            None => (&empty.0, &empty.1, false),
        };
        let mut pending = Vec::new();
        let mut earlier = Earlier::default();
        for mut run in host_runs(ctx, prepared, carried) {
            if let Some(why) = failed_before.get(&run.label) {
                earlier
                    .failed
                    .push((run.label, format!("failed in an earlier play: {why}")));
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
    let journal = Journal::reopen(path)?;
    let replay = Replay::read(path)?;
    Ok((journal, replay))
}

/// What hosts registered before a resumed journal ended, in every play.
fn carried_of((replay, _): &(Replay, bool)) -> HashMap<String, Vars> {
    let mut carried = replay.carried.clone();
    for (host, progress) in &replay.hosts {
        carried
            .entry(host.clone())
            .or_default()
            .extend(progress.registers.clone());
    }
    carried
}

/// Each host of a play as a run, with what it registered in earlier plays.
fn host_runs(
    ctx: &Arc<Context>,
    prepared: &PreparedPlay,
    carried: &HashMap<String, Vars>,
) -> Vec<HostRun> {
    prepared
        .hosts
        .iter()
        .zip(&prepared.vars)
        .map(|(host, vars)| {
            let mut vars = vars.clone();
            if let Some(registered) = carried.get(&host.host.label()) {
                vars.extend(registered.clone());
            }
            HostRun::new(Arc::clone(ctx), host.host.clone(), vars)
        })
        .collect()
}

/// Refuses a journal written for another playbook, or for this one
/// before it changed.
fn check_journal(
    request: &PlayRequest,
    playbook: &Playbook,
    replay: &Replay,
) -> Result<(), PlayError> {
    if replay.playbook_sha256 != playbook.sha256 {
        return Err(PlayError::Usage(format!(
            "{} changed since the journal was started; resuming would mix two rollouts \
             (start a new one, or put the old playbook back)",
            request.playbook.display()
        )));
    }
    let play = playbook
        .plays
        .get(replay.play)
        .ok_or_else(|| JournalError::Corrupt {
            path: replay.path.clone(),
            line: replay.play_line,
            message: format!(
                "names play {}, but the playbook has {}",
                replay.play + 1,
                playbook.plays.len()
            ),
        })?;
    replay.check_tasks(|phase| play.phase(phase).len())?;
    Ok(())
}

/// The inventory hosts `delegate_to` names, by name.
fn delegate_hosts(
    inventory: &Inventory,
    names: &BTreeSet<String>,
) -> Result<HashMap<String, InventoryHost>, PlayError> {
    let mut hosts = HashMap::new();
    for name in names.iter().filter(|name| *name != LOCALHOST) {
        let host = inventory
            .select(name)
            .into_iter()
            .find(|h| h.host.label() == *name || h.host.name == *name)
            .ok_or_else(|| {
                PlayError::Usage(format!(
                    "delegate_to {name}: not a host of {} (use `localhost` for this machine)",
                    inventory.path.display()
                ))
            })?;
        hosts.insert(name.clone(), host);
    }
    Ok(hosts)
}

/// Resolves the SSH settings of every host any play (or delegation)
/// contacts, each once.
fn connect_all(
    plays: &[PreparedPlay],
    connect: impl FnOnce(&[(&Host, &SshOptions)]) -> Result<Connector, SetupError>,
) -> Result<Connector, SetupError> {
    let mut seen = HashSet::new();
    let mut hosts: Vec<(&Host, SshOptions)> = Vec::new();
    for prepared in plays {
        for host in &prepared.hosts {
            if seen.insert(&host.host) {
                hosts.push((&host.host, connection_options(&host.vars)));
            }
        }
        for host in prepared.delegates.values() {
            if seen.insert(&host.host) {
                hosts.push((&host.host, connection_options(&host.vars)));
            }
        }
    }
    let pairs: Vec<_> = hosts
        .iter()
        .map(|(host, options)| (*host, options))
        .collect();
    connect(&pairs)
}

fn select_hosts(
    inventory: &Inventory,
    play_hosts: &str,
    limit: Option<&str>,
) -> Result<Vec<InventoryHost>, PlayError> {
    let mut hosts = inventory.select(play_hosts);
    if let Some(limit) = limit {
        hosts.retain(|host| matches_patterns(host, limit));
    }
    match hosts.is_empty() {
        true => Err(PlayError::Usage(format!(
            "{}: no host matches `hosts: {play_hosts}`{}; its groups are: {}",
            inventory.path.display(),
            limit
                .map(|l| format!(" and --limit {l}"))
                .unwrap_or_default(),
            inventory.groups.join(", ")
        ))),
        false => Ok(hosts),
    }
}

/// What a rollout is made of besides its playbook: the inventory and the
/// files it sends, by SHA-256, so that a resume never mixes old and new.
fn inputs_of(inventory: &Path, sources: &Sources) -> Result<BTreeMap<String, String>, PlayError> {
    let (inventory_sha, _) = hash_file(inventory)
        .map_err(|e| PlayError::Usage(format!("{}: {e}", inventory.display())))?;
    let mut inputs = sources.inputs();
    inputs.insert(format!("inventory {}", inventory.display()), inventory_sha);
    Ok(inputs)
}

/// `now` with the sources a journal says were read in preflight (named
/// by host facts) hashed again, so that a resume compares them too.
fn with_read_later(
    mut now: BTreeMap<String, String>,
    journaled: &BTreeMap<String, String>,
    base: &Path,
) -> BTreeMap<String, String> {
    let prefix = input_name("");
    for name in journaled.keys() {
        if now.contains_key(name) {
            continue;
        }
        if let Some(src) = name.strip_prefix(&prefix) {
            let sha256 =
                hash_file(&base.join(src)).map_or_else(|e| format!("({e})"), |(sha, _)| sha);
            now.insert(name.clone(), sha256);
        }
    }
    now
}

/// Refuses a resume whose inventory or copied files changed since the
/// journal was started (journals from before inputs were recorded pass).
fn check_inputs(
    journaled: &BTreeMap<String, String>,
    now: &BTreeMap<String, String>,
) -> Result<(), PlayError> {
    if journaled.is_empty() || journaled == now {
        return Ok(());
    }
    let changed: BTreeSet<&str> = journaled
        .keys()
        .chain(now.keys())
        .filter(|name| journaled.get(*name) != now.get(*name))
        .map(String::as_str)
        .collect();
    Err(PlayError::Usage(format!(
        "changed since the journal was started: {}; resuming would mix two rollouts \
         (start a new one, or put the old files back)",
        changed.into_iter().collect::<Vec<_>>().join(", ")
    )))
}

/// A new run directory under the state directory
/// (`$XDG_STATE_HOME/fleet/runs`, else `~/.local/state/fleet/runs`),
/// `PLAYBOOK.EPOCH/`, private to this user, and the journal in it. Fetched
/// files with a relative destination go there too, not wherever pplay
/// happened to be started.
fn default_journal(playbook: &Path) -> Result<PathBuf, JournalError> {
    let stem = playbook
        .file_stem()
        .map_or("pplay".into(), |s| s.to_string_lossy().into_owned());
    let runs = state_dir().join("runs");
    let dir = runs.join(format!("{stem}.{}", now() as u64));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|source| JournalError::Io {
            path: dir.clone(),
            source,
        })?;
    Ok(dir.join(format!("{stem}.journal")))
}

/// Where fleet keeps what runs leave: `$XDG_STATE_HOME/fleet`, else
/// `~/.local/state/fleet`, else (no home) `./.fleet-state`.
fn state_dir() -> PathBuf {
    let xdg = std::env::var_os("XDG_STATE_HOME").filter(|dir| Path::new(dir).is_absolute());
    let home = std::env::var_os("HOME").filter(|dir| Path::new(dir).is_absolute());
    match (xdg, home) {
        (Some(state), _) => PathBuf::from(state).join("fleet"),
        (None, Some(home)) => PathBuf::from(home).join(".local/state/fleet"),
        (None, None) => PathBuf::from(".fleet-state"),
    }
}
