//! `pplay`: run a YAML playbook over an inventory as a rolling rollout, or
//! `--check` it, or `--resume` one from its journal. Everything the
//! operator gives is checked before the first host is contacted.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{ArgAction, Parser};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::args::ConnectArgs;
use super::{
    exit, hosts_the_file_limit_allows, init_logging, parallelism_within_file_limit, parse_flags,
    stdout_color, UsageError,
};
use crate::inventory::yaml::{matches_patterns, Inventory, InventoryHost};
use crate::model::{valid_name, Vars};
use crate::output::{progress_wanted, PlayPrinter};
use crate::playbook::{
    check_plan, connection_options, now, Asker, Context, Earlier, Entry, HostRun, Journal,
    JournalError, PendingHost, PlayEvent, PlayReport, Playbook, Recorder, Replay, Rollout,
};
use crate::ssh::transfer::hash_file;
use crate::ssh::{Connector, SshOptions};

/// Roll a YAML playbook over an inventory, a few hosts at a time.
#[derive(Debug, Parser)]
#[command(
    name = "pplay",
    version,
    disable_help_flag = true,
    override_usage = "pplay [OPTIONS] -i INVENTORY PLAYBOOK\n       pplay --resume JOURNAL"
)]
pub(super) struct Cli {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Inventory: YAML (groups, variables) or a pssh hosts file
    #[arg(
        short = 'i',
        long = "inventory",
        value_name = "FILE",
        required_unless_present = "resume"
    )]
    inventory: Option<PathBuf>,
    /// Remote user for hosts whose inventory names none
    #[arg(short = 'l', long = "user", value_name = "USER")]
    user: Option<String>,
    /// Set a variable, above the inventory's and the playbook's (repeatable)
    #[arg(short = 'e', long = "extra-var", value_name = "KEY=VALUE", value_parser = parse_extra_var)]
    extra_vars: Vec<(String, String)>,
    /// Only hosts matching these patterns: groups or names, comma separated, * and ? allowed
    #[arg(long, value_name = "PATTERN")]
    limit: Option<String>,
    /// Connect, gather facts and run only read-only probes: show what would change
    #[arg(long)]
    check: bool,
    /// Begin every host at this task (preflight still runs)
    #[arg(long, value_name = "NAME")]
    start_at_task: Option<String>,
    /// Journal file (default: PLAYBOOK-NAME.EPOCH.journal in the current directory)
    #[arg(long, value_name = "FILE")]
    journal: Option<PathBuf>,
    /// Continue the rollout recorded in JOURNAL where it stopped; hosts that failed go again
    #[arg(long, value_name = "JOURNAL",
          conflicts_with_all = ["inventory", "playbook", "check", "start_at_task", "journal", "limit", "extra_vars"])]
    resume: Option<PathBuf>,
    /// With --resume: leave hosts that failed earlier failed instead of retrying them
    #[arg(long, requires = "resume")]
    skip_failed: bool,
    /// JSON Lines on stdout: the plan, each task, batch and host, then a summary
    #[arg(long)]
    json: bool,
    /// No progress line on stderr
    #[arg(short = 'q', long = "quiet")]
    quiet: bool,
    /// Print help
    #[arg(long, action = ArgAction::Help)]
    help: Option<bool>,
    /// The playbook (YAML)
    #[arg(value_name = "PLAYBOOK", required_unless_present = "resume")]
    playbook: Option<PathBuf>,
}

fn parse_extra_var(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, _)) if key.starts_with("host.") => Err(format!(
            "`{key}` is a fact pplay gathers on each host; -e cannot set it"
        )),
        Some((key, value)) if valid_name(key) => Ok((key.to_string(), value.to_string())),
        _ => Err(format!(
            "expected KEY=VALUE with KEY made of letters, digits, `_`, `-`, `.`; found `{text}`"
        )),
    }
}

/// Everything loaded and checked, ready to contact hosts.
struct Prepared {
    playbook: Arc<Playbook>,
    hosts: Vec<InventoryHost>,
    vars: Vec<Vars>,
    connector: Arc<Connector>,
    sources: Arc<crate::playbook::Sources>,
    start_at: usize,
    default_timeout: Option<std::time::Duration>,
    replay: Option<Replay>,
    /// The resumed journal, locked before anything else was read.
    journal: Option<Journal>,
    argv: Vec<String>,
    /// SHA-256 of the inventory and of each file `copy` sends.
    inputs: BTreeMap<String, String>,
}

/// `stop` is the first Ctrl-C (finish running tasks, start nothing new),
/// `abort` the second (kill what runs).
pub async fn main(
    args: impl IntoIterator<Item = OsString>,
    stop: CancellationToken,
    abort: CancellationToken,
) -> u8 {
    let args: Vec<OsString> = args.into_iter().collect();
    let cli: Cli = match parse_flags(args.clone()) {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    init_logging(cli.connect.verbose);
    let prepared = match cli.resume.clone() {
        Some(journal) => resume_flags(&journal, cli.skip_failed).and_then(|(cli, replay, lock)| {
            let (mut prepared, cli) = prepare(cli, Some(replay))?;
            prepared.journal = Some(lock);
            Ok((prepared, cli))
        }),
        None => prepare(cli, None).map(|(mut prepared, cli)| {
            prepared.argv = args
                .iter()
                .skip(1)
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            (prepared, cli)
        }),
    };
    let (prepared, mut cli) = match prepared {
        Ok(prepared) => prepared,
        Err(error) => {
            eprintln!("pplay: {error}");
            return exit::USAGE;
        }
    };
    let wanted = cli.connect.parallelism as usize;
    cli.connect.parallelism = match parallelism_within_file_limit("pplay", wanted, 2) {
        Ok(parallelism) => parallelism as u32,
        Err(why) => {
            eprintln!("pplay: {why}");
            return exit::OTHER;
        }
    };
    match cli.check {
        true => check(prepared, &cli, stop, abort).await,
        false => roll(prepared, &cli, stop, abort).await,
    }
}

/// The journal, locked (no second pplay may resume it meanwhile), the
/// flags it was started with, and what it says.
fn resume_flags(journal: &Path, skip_failed: bool) -> Result<(Cli, Replay, Journal), UsageError> {
    let invalid = |e: &dyn std::fmt::Display| UsageError::Invalid(e.to_string());
    let lock = Journal::reopen(journal).map_err(|e| invalid(&e))?;
    let mut replay = Replay::read(journal).map_err(|e| invalid(&e))?;
    let journal = std::path::absolute(journal).map_err(|e| invalid(&e))?;
    std::env::set_current_dir(&replay.cwd).map_err(|e| {
        invalid(&format!(
            "cannot return to {} where the rollout started: {e}",
            replay.cwd.display()
        ))
    })?;
    let mut argv = vec!["pplay".to_string()];
    argv.extend(replay.argv.iter().cloned());
    let mut cli = Cli::try_parse_from(argv).map_err(|e| invalid(&e))?;
    cli.journal = Some(journal);
    cli.skip_failed = skip_failed;
    replay.argv.clear();
    Ok((cli, replay, lock))
}

fn prepare(cli: Cli, replay: Option<Replay>) -> Result<(Prepared, Cli), UsageError> {
    let invalid = |e: &dyn std::fmt::Display| UsageError::Invalid(e.to_string());
    let (Some(playbook_path), Some(inventory_path)) = (&cli.playbook, &cli.inventory) else {
        return Err(UsageError::Invalid(
            "expected -i INVENTORY and a PLAYBOOK".into(),
        ));
    };
    let playbook = Playbook::load(playbook_path).map_err(|e| invalid(&e))?;
    if let Some(replay) = &replay {
        if replay.playbook_sha256 != playbook.sha256 {
            return Err(UsageError::Invalid(format!(
                "{} changed since the journal was started; resuming would mix two rollouts \
                 (start a new one, or put the old playbook back)",
                playbook_path.display()
            )));
        }
    }
    let inventory = Inventory::load(inventory_path).map_err(|e| invalid(&e))?;
    let hosts = select_hosts(&inventory, &playbook.hosts, cli.limit.as_deref())?;
    let extra: Vars = cli.extra_vars.iter().cloned().collect();
    let (vars, sources) = playbook.prepare(&hosts, &extra).map_err(|e| invalid(&e))?;
    let inputs = inputs_of(inventory_path, &sources)?;
    if let Some(replay) = &replay {
        check_inputs(&replay.inputs, &inputs)?;
    }
    let start_at = match &cli.start_at_task {
        Some(name) => playbook.task_index(name).map_err(UsageError::Invalid)?,
        None => 0,
    };
    let connector = connector(&cli, &hosts)?;
    Ok((
        Prepared {
            playbook: Arc::new(playbook),
            hosts,
            vars,
            connector: Arc::new(connector),
            sources: Arc::new(sources),
            start_at,
            default_timeout: cli.connect.command_timeout(),
            replay,
            journal: None,
            argv: Vec::new(),
            inputs,
        },
        cli,
    ))
}

/// What a rollout is made of besides its playbook: the inventory and the
/// files it sends, by SHA-256, so that a resume never mixes old and new.
fn inputs_of(
    inventory: &Path,
    sources: &crate::playbook::Sources,
) -> Result<BTreeMap<String, String>, UsageError> {
    let (inventory_sha, _) = hash_file(inventory)
        .map_err(|e| UsageError::Invalid(format!("{}: {e}", inventory.display())))?;
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
) -> Result<(), UsageError> {
    if journaled.is_empty() || journaled == now {
        return Ok(());
    }
    let changed: Vec<&str> = journaled
        .keys()
        .chain(now.keys())
        .filter(|name| journaled.get(*name) != now.get(*name))
        .map(String::as_str)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    Err(UsageError::Invalid(format!(
        "changed since the journal was started: {}; resuming would mix two rollouts \
         (start a new one, or put the old files back)",
        changed.join(", ")
    )))
}

fn select_hosts(
    inventory: &Inventory,
    play_hosts: &str,
    limit: Option<&str>,
) -> Result<Vec<InventoryHost>, UsageError> {
    let mut hosts = inventory.select(play_hosts);
    if let Some(limit) = limit {
        hosts.retain(|host| matches_patterns(host, limit));
    }
    match hosts.is_empty() {
        true => Err(UsageError::Invalid(format!(
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

fn connector(cli: &Cli, hosts: &[InventoryHost]) -> Result<Connector, UsageError> {
    let options = cli.connect.ssh_options(cli.user.as_deref())?;
    let config = cli.connect.ssh_config()?;
    let own: Vec<SshOptions> = hosts
        .iter()
        .map(|host| connection_options(&host.vars))
        .collect();
    let pairs: Vec<_> = hosts.iter().map(|h| &h.host).zip(own.iter()).collect();
    Ok(Connector::with_host_options(
        &pairs,
        &options,
        config.as_ref(),
        cli.connect.secrets()?,
    )?)
}

/// Starts the printer thread, the only writer of stdout.
fn spawn_printer(
    mut events: mpsc::UnboundedReceiver<PlayEvent>,
    cli: &Cli,
) -> std::thread::JoinHandle<PlayPrinter<std::io::Stdout>> {
    let (json, progress) = (cli.json, progress_wanted(cli.quiet, cli.json));
    std::thread::spawn(move || {
        let mut printer =
            PlayPrinter::new(std::io::stdout(), stdout_color() && !json, json, progress);
        while let Some(event) = events.blocking_recv() {
            if let Err(error) = printer.print(&event) {
                if error.kind() != std::io::ErrorKind::BrokenPipe {
                    eprintln!("pplay: output failed: {error}");
                }
            }
        }
        printer
    })
}

fn context(
    prepared: &Prepared,
    journal: Option<Arc<Journal>>,
    events: mpsc::UnboundedSender<PlayEvent>,
    stop: CancellationToken,
    abort: CancellationToken,
) -> Arc<Context> {
    Arc::new(Context {
        connector: Arc::clone(&prepared.connector),
        playbook: Arc::clone(&prepared.playbook),
        sources: Arc::clone(&prepared.sources),
        recorder: Recorder {
            journal,
            events,
            stop: stop.clone(),
        },
        stop,
        abort,
        default_timeout: prepared.default_timeout,
        asker: Arc::new(Asker {
            ask: super::prompt::ask_line,
            turn: tokio::sync::Mutex::new(()),
        }),
    })
}

async fn check(
    prepared: Prepared,
    cli: &Cli,
    stop: CancellationToken,
    abort: CancellationToken,
) -> u8 {
    let (sender, receiver) = mpsc::unbounded_channel();
    let printer = spawn_printer(receiver, cli);
    let ctx = context(&prepared, None, sender.clone(), stop, abort);
    let total = prepared.hosts.len();
    let sizes = crate::playbook::batch_sizes(&prepared.playbook.serial, total, total);
    let mut labels = prepared.hosts.iter().map(|h| h.host.label());
    let batches = sizes
        .iter()
        .map(|&n| labels.by_ref().take(n).collect())
        .collect();
    let _ = sender.send(PlayEvent::Plan {
        playbook: format!(
            "{} (--check: nothing will be changed)",
            prepared.playbook.name
        ),
        batches,
        mode: prepared.playbook.mode,
        max_fail: prepared.playbook.max_fail.of(total),
        earlier: Earlier::default(),
        journal: None,
    });
    let runs = host_runs(&prepared, &ctx);
    let failures = check_plan(runs, cli.connect.parallelism as usize, prepared.start_at).await;
    for (host, why) in &failures {
        let _ = sender.send(PlayEvent::Notice(format!("cannot check {host}: {why}")));
    }
    drop((sender, ctx));
    let _ = tokio::task::spawn_blocking(move || printer.join()).await;
    match failures.is_empty() {
        true => exit::OK,
        false => exit::SSH_ERROR,
    }
}

fn host_runs(prepared: &Prepared, ctx: &Arc<Context>) -> Vec<HostRun> {
    prepared
        .hosts
        .iter()
        .zip(&prepared.vars)
        .map(|(host, vars)| HostRun::new(Arc::clone(ctx), host.host.clone(), vars.clone()))
        .collect()
}

async fn roll(
    mut prepared: Prepared,
    cli: &Cli,
    stop: CancellationToken,
    abort: CancellationToken,
) -> u8 {
    let journal = match open_journal(&mut prepared, cli).await {
        Ok(journal) => Arc::new(journal),
        Err(error) => {
            eprintln!("pplay: {error}");
            return match error {
                JournalError::InUse { .. }
                | JournalError::Exists { .. }
                | JournalError::NotAFile { .. } => exit::USAGE,
                _ => exit::OTHER,
            };
        }
    };
    let (sender, receiver) = mpsc::unbounded_channel();
    let printer = spawn_printer(receiver, cli);
    let ctx = context(&prepared, Some(Arc::clone(&journal)), sender, stop, abort);
    let (pending, earlier) = pending_hosts(&prepared, &ctx, cli.skip_failed);
    let rollout = Rollout {
        ctx,
        hosts: pending,
        total: prepared.hosts.len(),
        parallelism: cli.connect.parallelism as usize,
        max_in_flight: hosts_the_file_limit_allows("pplay", 2).map_or(usize::MAX, |(n, _)| n),
        start_at: prepared.start_at,
    };
    let report = rollout.run(earlier).await;
    let printer = tokio::task::spawn_blocking(move || printer.join()).await;
    if let Ok(Ok(mut printer)) = printer {
        let _ = printer.summary(&report, Some(journal.path()));
    }
    exit_code(&report)
}

/// The hosts still to run, as a resumed journal left them: those done
/// earlier are left alone; those that failed go again (from their failed
/// task, see [`crate::playbook::HostProgress::retry`]) unless
/// `--skip-failed` leaves them failed.
fn pending_hosts(
    prepared: &Prepared,
    ctx: &Arc<Context>,
    skip_failed: bool,
) -> (Vec<PendingHost>, Earlier) {
    let progress = prepared
        .replay
        .as_ref()
        .map(|r| r.hosts.clone())
        .unwrap_or_default();
    let mut pending = Vec::new();
    let mut earlier = Earlier::default();
    for mut run in host_runs(prepared, ctx) {
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
        pending.push(PendingHost { run, progress });
    }
    (pending, earlier)
}

/// A new journal with the flags it was started with, or the resumed one.
async fn open_journal(prepared: &mut Prepared, cli: &Cli) -> Result<Journal, JournalError> {
    if let Some(journal) = prepared.journal.take() {
        journal
            .record(&Entry::Resume {
                pid: std::process::id(),
                time: now(),
            })
            .await?;
        return Ok(journal);
    }
    let path = cli
        .journal
        .clone()
        .unwrap_or_else(|| default_journal(&prepared.playbook.path));
    let journal = Journal::create(&path)?;
    let mut argv = prepared.argv.clone();
    if cli.journal.is_none() {
        argv.extend(["--journal".to_string(), path.to_string_lossy().into_owned()]);
    }
    journal
        .record(&Entry::Start {
            argv,
            cwd: std::env::current_dir().unwrap_or_default(),
            playbook_sha256: prepared.playbook.sha256.clone(),
            inputs: prepared.inputs.clone(),
            pid: std::process::id(),
            time: now(),
        })
        .await?;
    Ok(journal)
}

fn default_journal(playbook: &Path) -> PathBuf {
    let stem = playbook
        .file_stem()
        .map_or("pplay".into(), |s| s.to_string_lossy().into_owned());
    PathBuf::from(format!("{stem}.{}.journal", now() as u64))
}

/// 0 when every host is done; 3 when the operator stopped the rollout;
/// 5 when hosts failed, in this run or (left failed) in an earlier one.
fn exit_code(report: &PlayReport) -> u8 {
    let failed = !report.failed.is_empty() || !report.earlier.failed.is_empty();
    let unfinished = !report.stopped.is_empty() || !report.not_started.is_empty();
    match (failed, unfinished) {
        (false, false) => exit::OK,
        (false, true) => exit::KILLED,
        (true, _) => exit::REMOTE_FAILED,
    }
}
