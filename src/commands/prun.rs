//! `prun`: pssh's `parallel-ssh`. Runs one command on every host and reports
//! each host as it finishes, with pssh's flags, output and exit codes.

use std::ffi::OsString;
use std::sync::Arc;

use bytes::Bytes;
use clap::{ArgAction, Parser};
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

use super::args::{ConnectArgs, OutputArgs, TargetArgs};
use super::{
    exit, exit_code, init_logging, raise_open_file_limit, report_output_error, reporters,
    spawn_output_thread, UsageError,
};
use crate::engine::{Job, Run};
use crate::inventory::Host;
use crate::ssh::Connector;

/// Run a command on many hosts at once over SSH (pssh-compatible).
#[derive(Debug, Parser)]
#[command(name = "prun", version, disable_help_flag = true)]
struct Cli {
    #[command(flatten)]
    targets: TargetArgs,
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(flatten)]
    output: OutputArgs,
    /// Read standard input once and send it to every host's command
    #[arg(short = 'I', long = "send-input")]
    send_input: bool,
    /// Print help
    #[arg(long, action = ArgAction::Help)]
    help: Option<bool>,
    /// The command to run, through each host's login shell
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    command: Vec<String>,
}

/// Everything prun needs, validated before the first host is contacted.
struct Plan {
    hosts: Arc<[Host]>,
    connector: Connector,
    job: Job,
}

/// Runs prun with `args` (including the program name); returns the exit code.
/// `interrupt` firing means Ctrl-C: running commands are killed on their hosts.
pub async fn main(args: impl IntoIterator<Item = OsString>, interrupt: CancellationToken) -> u8 {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
        }
    };
    init_logging(cli.connect.verbose);
    let mut plan = match plan(&cli) {
        Ok(plan) => plan,
        Err(error) => {
            eprintln!("prun: {error}");
            return exit::USAGE;
        }
    };
    if cli.send_input {
        let mut input = Vec::new();
        if let Err(error) = tokio::io::stdin().read_to_end(&mut input).await {
            eprintln!("prun: cannot read standard input: {error}");
            return exit::OTHER;
        }
        plan.job.stdin = Some(Bytes::from(input));
    }
    execute(plan, &cli, interrupt).await
}

fn plan(cli: &Cli) -> Result<Plan, UsageError> {
    let hosts = cli.targets.load_hosts()?;
    let options = cli.connect.ssh_options(cli.targets.user.as_deref())?;
    let config = cli.connect.ssh_config()?;
    let connector = Connector::new(&hosts, &options, config.as_ref(), cli.connect.secrets()?)?;
    let job = Job {
        command: cli.command.join(" "),
        stdin: None,
        timeout: cli.connect.command_timeout(),
    };
    Ok(Plan {
        hosts: hosts.into(),
        connector,
        job,
    })
}

async fn execute(plan: Plan, cli: &Cli, interrupt: CancellationToken) -> u8 {
    raise_open_file_limit();
    let reporters = match reporters(&plan.hosts, &cli.output) {
        Ok(reporters) => reporters,
        Err(error) => {
            eprintln!("prun: {error}");
            return exit::OTHER;
        }
    };
    let (events, printer) = spawn_output_thread(Arc::clone(&plan.hosts), reporters);
    let run = Run {
        connector: Arc::new(plan.connector),
        hosts: plan.hosts,
        job: plan.job,
        parallelism: cli.connect.parallelism as usize,
    };
    let results = run.execute(events, interrupt).await;
    let printed = tokio::task::spawn_blocking(move || printer.join()).await;
    let output_failure = match printed {
        Ok(joined) => report_output_error("prun", joined),
        Err(_) => Some(exit::OTHER),
    };
    output_failure.unwrap_or_else(|| exit_code(&results))
}
