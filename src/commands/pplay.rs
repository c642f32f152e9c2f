//! `pplay`: run a YAML playbook over an inventory as a rolling rollout, or
//! `--check` it, or `--resume` one from its journal. Everything the
//! operator gives is checked before the first host is contacted.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{ArgAction, Parser};
use tokio::sync::mpsc;

use super::args::ConnectArgs;
use super::process::{
    hosts_the_file_limit_allows, init_logging, notice, parallelism_within_file_limit, stdout_color,
};
use super::run::with_output;
use super::{exit, exit_code, parse_flags, Tool, UsageError};
use crate::engine::Stop;
use crate::model::valid_name;
use crate::output::{progress_wanted, Event, Notices, PlayJson, PlayText, Progress, Reporter};
use crate::playbook::{
    reopen, Asker, PlayError, PlayReport, PlayRequest, PlaybookRun, Resume, RunLimits,
};
use crate::ssh::Connector;

/// The usage lines, after the name the tool was called by (`pplay`,
/// `fleet-pplay`, `fleet play`).
pub(super) const USAGE: &[&str] = &["[OPTIONS] -i INVENTORY PLAYBOOK", "--resume JOURNAL"];

/// Roll a YAML playbook over an inventory, a few hosts at a time.
#[derive(Debug, Parser)]
#[command(
    name = "pplay",
    version = crate::VERSION,
    after_help = super::PPLAY_EXIT_STATUS,
    // A resume parses the journal's flags, then this command line's: the
    // later of two wins.
    args_override_self = true,
    disable_help_flag = true,
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
    /// Journal file; its directory is the run directory, where relative fetch destinations go (default: ~/.local/state/fleet/runs/PLAYBOOK.EPOCH/PLAYBOOK.journal)
    #[arg(long, value_name = "FILE")]
    journal: Option<PathBuf>,
    /// Continue the rollout recorded in JOURNAL where it stopped; hosts that failed go again
    #[arg(long, value_name = "JOURNAL",
          conflicts_with_all = ["inventory", "playbook", "check", "start_at_task", "journal", "limit", "extra_vars"])]
    resume: Option<PathBuf>,
    /// With --resume: leave hosts that failed earlier failed instead of retrying them
    #[arg(long)]
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

/// `stop` is the first stop signal (finish running tasks, start nothing
/// new), `abort` the second (kill what runs).
pub async fn main(args: impl IntoIterator<Item = OsString>, stop: Stop, abort: Stop) -> u8 {
    let args: Vec<OsString> = args.into_iter().collect();
    let cli: Cli = match parse_flags(Tool::Play, args.clone()) {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    init_logging(cli.connect.verbose);
    let (play, cli) = match prepare(cli, &args) {
        Ok(prepared) => prepared,
        Err(error) => {
            notice("pplay", &error.to_string());
            return exit::USAGE;
        }
    };
    let limits = match limits(&cli) {
        Ok(limits) => limits,
        Err(why) => {
            notice("pplay", &why);
            return exit::OTHER;
        }
    };
    let (events, receiver) = mpsc::unbounded_channel::<Event>();
    let stops = [stop.clone(), abort.clone()];
    let run = with_output(
        "pplay",
        Arc::from([]),
        receiver,
        reporters(&cli),
        &stops,
        events,
        |events| run(play, limits, events, stop, abort),
    )
    .await;
    match run {
        Ok(Ok(report)) => exit_code(report.categories()),
        Ok(Err(error)) => {
            notice("pplay", &error.to_string());
            match error.is_usage() {
                true => exit::USAGE,
                false => exit::OTHER,
            }
        }
        Err(code) => code,
    }
}

/// Runs the play with its events going to the output thread, and its
/// report last.
async fn run(
    play: PlaybookRun,
    limits: RunLimits,
    events: mpsc::UnboundedSender<Event>,
    stop: Stop,
    abort: Stop,
) -> Result<Arc<PlayReport>, PlayError> {
    let asker = Asker {
        ask: super::prompt::ask_line,
        turn: tokio::sync::Mutex::new(()),
    };
    let sink = Arc::new(events.clone());
    let report = play
        .run(
            limits,
            sink,
            stop.token().clone(),
            abort.token().clone(),
            asker,
        )
        .await?;
    let report = Arc::new(report);
    let _ = events.send(Event::Report(Arc::clone(&report)));
    Ok(report)
}

/// What the flags (or a resumed journal's) ask for, loaded and checked.
fn prepare(cli: Cli, args: &[OsString]) -> Result<(PlaybookRun, Cli), UsageError> {
    let (cli, resume, base) = match cli.resume.clone() {
        Some(journal) => resumed(&cli, args, &journal)?,
        None if cli.skip_failed => {
            return Err(UsageError::Invalid(
                "--skip-failed goes with --resume JOURNAL: a new run has no earlier failures"
                    .into(),
            ))
        }
        None => {
            let base = std::env::current_dir()
                .map_err(|e| UsageError::Invalid(format!("the current directory: {e}")))?;
            (cli, None, base)
        }
    };
    let (Some(playbook), Some(inventory)) = (cli.playbook.clone(), cli.inventory.clone()) else {
        return Err(UsageError::Invalid(
            "expected -i INVENTORY and a PLAYBOOK".into(),
        ));
    };
    let argv = match &resume {
        Some(resume) => resume.replay.argv.clone(),
        None => args
            .iter()
            .skip(1)
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
    };
    let request = PlayRequest {
        playbook,
        inventory,
        extra_vars: cli.extra_vars.iter().cloned().collect(),
        limit: cli.limit.clone(),
        start_at_task: cli.start_at_task.clone(),
        journal: cli.journal.clone(),
        argv,
        base,
        check: cli.check,
        sudo_user: cli.connect.sudo_user()?.map(str::to_string),
    };
    let play = PlaybookRun::prepare(request, resume, |hosts| {
        let options = cli.connect.ssh_options(cli.user.as_deref()).map_err(|e| {
            crate::ssh::SetupError::Config {
                path: PathBuf::from("-O"),
                message: e.to_string(),
            }
        })?;
        let config = cli.connect.ssh_config().map_err(setup_error)?;
        let secrets = cli.connect.secrets().map_err(setup_error)?;
        Connector::with_host_options(hosts, &options, config.as_ref(), secrets)
    })
    .map_err(|e| UsageError::Invalid(e.to_string()))?;
    Ok((play, cli))
}

fn setup_error(error: UsageError) -> crate::ssh::SetupError {
    match error {
        UsageError::Setup(setup) => setup,
        other => crate::ssh::SetupError::Config {
            path: PathBuf::new(),
            message: other.to_string(),
        },
    }
}

/// The journal locked, its flags parsed as they were given followed by the
/// ones given with `--resume` (which win: `-t 600` gives a slow host more
/// time, `--json` prints differently), and the directory the run started
/// in (relative paths are from there).
fn resumed(
    given: &Cli,
    args: &[OsString],
    journal: &Path,
) -> Result<(Cli, Option<Resume>, PathBuf), UsageError> {
    let invalid = |e: &dyn std::fmt::Display| UsageError::Invalid(e.to_string());
    let (locked, replay) = reopen(journal).map_err(|e| invalid(&e))?;
    let argv = std::iter::once(OsString::from("pplay"))
        .chain(replay.argv.iter().map(OsString::from))
        .chain(flags_beside_resume(args));
    let mut cli = Cli::try_parse_from(argv).map_err(|e| invalid(&e))?;
    if cli.check {
        // A check run keeps no journal: this one was edited.
        let why = format!(
            "journal {}: its command line has --check",
            journal.display()
        );
        return Err(UsageError::Invalid(why));
    }
    cli.journal = Some(std::path::absolute(journal).map_err(|e| invalid(&e))?);
    let skip_failed = given.skip_failed;
    cli.skip_failed = skip_failed;
    cli.connect.resolve_against(&replay.cwd);
    let base = replay.cwd.clone();
    let resume = Resume {
        journal: locked,
        replay,
        skip_failed,
    };
    Ok((cli, Some(resume), base))
}

/// This command line without its program name and `--resume JOURNAL`:
/// the flags that go after the journal's.
fn flags_beside_resume(args: &[OsString]) -> Vec<OsString> {
    let mut flags = Vec::new();
    let mut rest = args.iter().skip(1);
    while let Some(arg) = rest.next() {
        match arg.to_str() {
            Some("--resume") => {
                rest.next();
            }
            Some(text) if text.starts_with("--resume=") || text == "--skip-failed" => {}
            _ => flags.push(arg.clone()),
        }
    }
    flags
}

/// How many hosts at once: `-p` for preflight and `--check`, what the
/// open-files limit allows for the rolling.
fn limits(cli: &Cli) -> Result<RunLimits, String> {
    let parallelism = parallelism_within_file_limit("pplay", cli.connect.parallelism as usize, 2)?;
    let (max_in_flight, _) = hosts_the_file_limit_allows("pplay", 2)?;
    Ok(RunLimits {
        parallelism,
        max_in_flight,
        default_timeout: cli.connect.command_timeout(),
    })
}

/// pplay's printers: text or JSON on stdout, notices on stderr, under a
/// progress line on a terminal.
fn reporters(cli: &Cli) -> Box<dyn Reporter + Send> {
    let stdout: Box<dyn Reporter + Send> = match cli.json {
        true => Box::new(PlayJson::new(std::io::stdout())),
        false => Box::new(PlayText::new(
            std::io::stdout(),
            stdout_color(),
            cli.connect.verbose > 0,
        )),
    };
    let printers: Vec<Box<dyn Reporter + Send>> =
        vec![stdout, Box::new(Notices::new(std::io::stderr(), "pplay"))];
    match progress_wanted(cli.quiet, cli.json, cli.connect.verbose) {
        true => Box::new(Progress::new(0, Box::new(printers))),
        false => Box::new(printers),
    }
}
