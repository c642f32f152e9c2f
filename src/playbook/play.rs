//! A run of a playbook, from what the operator asked to a [`PlayReport`]:
//! the playbook, inventory and files loaded and checked before any host is
//! contacted, the journal created (or a resumed one continued, refusing
//! changed inputs), the hosts still to run worked out, and the schedulers
//! started. The binary parses flags and prints; this does the rest.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio_util::sync::CancellationToken;

use super::actions::pause::Asker;
use super::check::check_plan;
use super::event::{Earlier, Events, PlayEvent, PlayReport};
use super::host::{Context, HostRun};
use super::journal::{now, Entry, Journal, JournalError, Recorder};
use super::replay::Replay;
use super::rolling::batch_sizes;
use super::schedule::{PendingHost, Rollout};
use super::vars::Vars;
use super::Playbook;
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
pub struct Play {
    request: PlayRequest,
    playbook: Arc<Playbook>,
    hosts: Vec<InventoryHost>,
    vars: Vec<Vars>,
    connector: Arc<Connector>,
    sources: Arc<super::Sources>,
    start_at: usize,
    /// SHA-256 of the inventory and of each file `copy` sends.
    inputs: BTreeMap<String, String>,
    /// A resumed journal's account of each host, and `--skip-failed`.
    replay: Option<(Replay, bool)>,
    /// The resumed journal, locked since before anything was read.
    locked: Option<Journal>,
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

impl Play {
    /// Loads and checks everything: the playbook (unchanged since a resumed
    /// journal started), the inventory and its selection, every variable of
    /// every task on every host, the files `copy` sends; then `connect`
    /// resolves each host's SSH settings. No host is contacted.
    pub fn prepare(
        request: PlayRequest,
        resume: Option<Resume>,
        connect: impl FnOnce(&[(&Host, &SshOptions)]) -> Result<Connector, SetupError>,
    ) -> Result<Play, PlayError> {
        let base = request.base.clone();
        let playbook = Playbook::load(&base.join(&request.playbook))?;
        if let Some(resume) = &resume {
            if resume.replay.playbook_sha256 != playbook.sha256 {
                return Err(PlayError::Usage(format!(
                    "{} changed since the journal was started; resuming would mix two rollouts \
                     (start a new one, or put the old playbook back)",
                    request.playbook.display()
                )));
            }
            resume
                .replay
                .check_tasks(|phase| playbook.phase(phase).len())?;
        }
        let inventory_path = base.join(&request.inventory);
        let inventory = Inventory::load(&inventory_path)?;
        let hosts = select_hosts(&inventory, &playbook.hosts, request.limit.as_deref())?;
        let (vars, sources) = playbook.prepare(&hosts, &request.extra_vars, &base)?;
        let inputs = inputs_of(&inventory_path, &sources)?;
        if let Some(resume) = &resume {
            check_inputs(&resume.replay.inputs, &inputs)?;
        }
        let start_at = match &request.start_at_task {
            Some(name) => playbook.task_index(name).map_err(PlayError::Usage)?,
            None => 0,
        };
        let own: Vec<SshOptions> = hosts.iter().map(|h| connection_options(&h.vars)).collect();
        let pairs: Vec<_> = hosts.iter().map(|h| &h.host).zip(own.iter()).collect();
        let connector = connect(&pairs)?;
        Ok(Play {
            request,
            playbook: Arc::new(playbook),
            hosts,
            vars,
            connector: Arc::new(connector),
            sources: Arc::new(sources),
            start_at,
            inputs,
            replay: resume.as_ref().map(|r| (r.replay.clone(), r.skip_failed)),
            locked: resume.map(|r| r.journal),
        })
    }

    /// Runs it (or checks it, with `--check`). The first cancellation of
    /// `stop` lets running tasks finish and starts no host; `abort` kills
    /// what runs. Events go to `events`; the report says how it ended.
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
            events: Arc::clone(&events),
            stop: stop.clone(),
        };
        let ctx = Arc::new(Context {
            connector: Arc::clone(&self.connector),
            playbook: Arc::clone(&self.playbook),
            sources: Arc::clone(&self.sources),
            recorder,
            stop,
            abort,
            default_timeout: limits.default_timeout,
            asker: Arc::new(asker),
            base: self.request.base.clone(),
        });
        Ok(match self.request.check {
            true => self.check(ctx, limits).await,
            false => self.roll(ctx, limits).await,
        })
    }

    async fn roll(&self, ctx: Arc<Context>, limits: RunLimits) -> PlayReport {
        let (pending, earlier) = self.pending_hosts(&ctx);
        let rollout = Rollout {
            ctx,
            hosts: pending,
            total: self.hosts.len(),
            parallelism: limits.parallelism,
            max_in_flight: limits.max_in_flight,
            start_at: self.start_at,
        };
        rollout.run(earlier).await
    }

    async fn check(&self, ctx: Arc<Context>, limits: RunLimits) -> PlayReport {
        let clock = std::time::Instant::now();
        let total = self.hosts.len();
        let sizes = batch_sizes(&self.playbook.serial, total, total);
        let mut labels = self.hosts.iter().map(|h| h.host.label());
        let batches = sizes
            .iter()
            .map(|&n| labels.by_ref().take(n).collect())
            .collect();
        ctx.events().emit(PlayEvent::Plan {
            playbook: format!("{} (--check: nothing will be changed)", self.playbook.name),
            batches,
            mode: self.playbook.mode,
            max_fail: self.playbook.max_fail.of(total),
            earlier: Earlier::default(),
            journal: None,
            check: true,
        });
        let unchecked = check_plan(self.host_runs(&ctx), limits.parallelism, self.start_at).await;
        for (host, why) in &unchecked {
            ctx.events()
                .emit(PlayEvent::Notice(format!("cannot check {host}: {why}")));
        }
        let done = self
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

    fn host_runs(&self, ctx: &Arc<Context>) -> Vec<HostRun> {
        self.hosts
            .iter()
            .zip(&self.vars)
            .map(|(host, vars)| HostRun::new(Arc::clone(ctx), host.host.clone(), vars.clone()))
            .collect()
    }

    /// The hosts still to run, as a resumed journal left them: those done
    /// earlier are left alone; those that failed go again (from their failed
    /// task, see [`super::HostProgress::retry`]) unless `skip_failed` leaves
    /// them failed.
    fn pending_hosts(&self, ctx: &Arc<Context>) -> (Vec<PendingHost>, Earlier) {
        let (progress, skip_failed) = match &self.replay {
            Some((replay, skip_failed)) => (replay.hosts.clone(), *skip_failed),
            None => Default::default(),
        };
        let mut pending = Vec::new();
        let mut earlier = Earlier::default();
        for mut run in self.host_runs(ctx) {
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
        let path = request.base.join(
            named
                .clone()
                .unwrap_or_else(|| default_journal(&request.playbook)),
        );
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
fn inputs_of(
    inventory: &Path,
    sources: &super::Sources,
) -> Result<BTreeMap<String, String>, PlayError> {
    let (inventory_sha, _) = hash_file(inventory)
        .map_err(|e| PlayError::Usage(format!("{}: {e}", inventory.display())))?;
    let mut inputs =
        BTreeMap::from([(format!("inventory {}", inventory.display()), inventory_sha)]);
    for (path, item) in sources {
        inputs.insert(format!("copy src {path}"), item.sha256.clone());
    }
    Ok(inputs)
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

/// `PLAYBOOK.EPOCH.journal`, beside where pplay was started.
fn default_journal(playbook: &Path) -> PathBuf {
    let stem = playbook
        .file_stem()
        .map_or("pplay".into(), |s| s.to_string_lossy().into_owned());
    PathBuf::from(format!("{stem}.{}.journal", now() as u64))
}
