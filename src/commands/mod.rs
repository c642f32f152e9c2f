//! The command-line tools. Each parses its flags into validated settings,
//! calls the library, and maps the outcome to pssh's exit codes in one
//! place ([`exit_code`]). Signal handling and `process::exit` stay in the
//! binaries, which hand in a cancellation token.

mod args;
pub mod pcp;
pub mod pnuke;
pub mod pplay;
pub mod prompt;
pub mod prun;
pub mod pslurp;

use std::ffi::OsString;
use std::io::IsTerminal;
use std::sync::Arc;

use clap::Parser;
use thiserror::Error;
use tokio_util::sync::CancellationToken;

use crate::engine::{Category, Event, HostResult, Job, Run};
use crate::inventory::InventoryError;
use crate::model::Host;
use crate::output::{
    self, FailedHostsFile, Gather, Inline, JsonLines, LinePrinter, OutputFiles, Progress, Reporter,
    StatusPrinter, Summary,
};
use crate::ssh::{Connector, OptionError, SetupError};

/// pssh's exit codes.
pub mod exit {
    pub const OK: u8 = 0;
    /// Any other error (a local failure, a bug).
    pub const OTHER: u8 = 1;
    /// Bad flags, hosts file, option or key.
    pub const USAGE: u8 = 2;
    /// A host timed out or its command was killed (also Ctrl-C).
    pub const KILLED: u8 = 3;
    /// A host could not be connected to or SSH failed there.
    pub const SSH_ERROR: u8 = 4;
    /// A remote command exited non-zero.
    pub const REMOTE_FAILED: u8 = 5;
}

/// Input the operator has to fix before anything can run (exit code 2).
#[derive(Debug, Error)]
pub enum UsageError {
    #[error(transparent)]
    Inventory(#[from] InventoryError),
    #[error(transparent)]
    Option(#[from] OptionError),
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error("{0}")]
    Invalid(String),
}

/// The exit code of a finished run, from every host's result: killed beats
/// SSH errors beats remote failures, as in pssh.
pub fn exit_code(results: &[Arc<HostResult>]) -> u8 {
    let worst = |category: Category| match category {
        Category::Ok | Category::Unchanged => exit::OK,
        Category::Internal => exit::OTHER,
        Category::TimedOut | Category::Interrupted => exit::KILLED,
        Category::Unreachable | Category::SshError => exit::SSH_ERROR,
        Category::Failed => exit::REMOTE_FAILED,
    };
    let rank = |code: u8| match code {
        exit::KILLED => 4,
        exit::SSH_ERROR => 3,
        exit::REMOTE_FAILED => 2,
        exit::OTHER => 1,
        _ => 0,
    };
    results
        .iter()
        .map(|r| worst(r.outcome.category()))
        .max_by_key(|&code| rank(code))
        .unwrap_or(exit::OK)
}

/// Sets up `tracing` on stderr: warnings by default, more with -v/-vv, or RUST_LOG.
pub fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "fleet=debug",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .without_time()
        .try_init();
}

/// Lifts the open-files limit to its hard maximum (each host in flight
/// holds a socket, and `-p 1000` must not die at the default 1024), and
/// returns the soft limit now in force.
pub fn raise_open_file_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return u64::MAX;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return raised.rlim_cur;
            }
        }
    }
    limit.rlim_cur
}

/// Open files kept aside for everything but the hosts: stdio, the journal,
/// known_hosts, the runtime's own.
const RESERVED_FILES: u64 = 24;
/// Below this open-files limit not even one host can run reliably.
const MIN_OPEN_FILES: u64 = RESERVED_FILES + 8;

/// Raises the open-files limit and says how many hosts it lets be in
/// flight at once, each holding `per_host` files (its socket, an agent
/// socket while it authenticates, its output files). A limit too low for
/// even one host is refused before any is contacted: no host may fail for
/// a reason of this machine's.
pub fn hosts_the_file_limit_allows(tool: &str, per_host: u64) -> Result<(usize, u64), String> {
    let limit = raise_open_file_limit();
    if limit < MIN_OPEN_FILES + per_host {
        return Err(format!(
            "the open files limit is {limit}; {tool} needs at least {} (ulimit -n)",
            MIN_OPEN_FILES + per_host
        ));
    }
    let allowed = ((limit - RESERVED_FILES) / per_host.max(1)).max(1);
    Ok((usize::try_from(allowed).unwrap_or(usize::MAX), limit))
}

/// `wanted` hosts in flight (`-p`), lowered to what the open-files limit
/// allows, saying so once.
pub fn parallelism_within_file_limit(
    tool: &str,
    wanted: usize,
    per_host: u64,
) -> Result<usize, String> {
    let (allowed, limit) = hosts_the_file_limit_allows(tool, per_host)?;
    if wanted <= allowed {
        return Ok(wanted);
    }
    notice(
        tool,
        &format!("-p {wanted} lowered to {allowed}: open files limit is {limit}"),
    );
    Ok(allowed)
}

/// Cancels `token` when the reader of stdout goes away (`prun ... | head`
/// read what it wanted and left): nobody reads any more, so the run stops
/// and its remote commands are killed, as pssh would die of SIGPIPE. A
/// thread waits for the pipe's end, so this holds even while the hosts
/// print nothing. Only for pipes and sockets: a file or terminal has no
/// such end.
pub fn cancel_when_stdout_closes(token: CancellationToken) {
    // SAFETY: fstat writes only the struct we own.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(libc::STDOUT_FILENO, &mut stat) } != 0 {
        return;
    }
    let kind = stat.st_mode & libc::S_IFMT;
    if kind != libc::S_IFIFO && kind != libc::S_IFSOCK {
        return;
    }
    std::thread::spawn(move || {
        let mut stdout = libc::pollfd {
            fd: libc::STDOUT_FILENO,
            events: 0,
            revents: 0,
        };
        // SAFETY: poll reads and writes only the one pollfd we own; with no
        // events asked, it returns only on POLLERR or POLLHUP.
        while unsafe { libc::poll(&mut stdout, 1, -1) } < 0 {}
        token.cancel();
    });
}

/// One line to the operator on stderr; a closed stderr (a hung-up
/// terminal) is no reason to panic.
pub fn notice(tool: &str, message: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{tool}: {message}");
}

/// Colour only on a terminal and never with NO_COLOR set.
pub fn stdout_color() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// The printers selected by the output flags, in the order they run;
/// `inline` applies when neither `-i` nor `--inline-stdout` was given.
pub fn reporters(
    hosts: &[Host],
    flags: &args::OutputArgs,
    inline: Inline,
) -> std::io::Result<Vec<Box<dyn Reporter + Send>>> {
    let mut reporters: Vec<Box<dyn Reporter + Send>> = Vec::new();
    if flags.outdir.is_some() || flags.errdir.is_some() {
        reporters.push(Box::new(OutputFiles::new(
            hosts,
            flags.outdir.clone(),
            flags.errdir.clone(),
        )?));
    }
    reporters.push(stdout_printer(hosts, flags, inline));
    if !flags.quiet {
        reporters.push(Box::new(Summary::new(std::io::stderr(), flags.summary)));
    }
    if let Some(path) = &flags.failed_hosts {
        reporters.push(Box::new(FailedHostsFile::new(path.clone())?));
    }
    if output::progress_wanted(flags.quiet, flags.json) {
        let inner: Box<dyn Reporter + Send> = Box::new(reporters);
        return Ok(vec![Box::new(Progress::new(hosts.len(), inner))]);
    }
    Ok(reporters)
}

/// The one printer that writes stdout: JSON lines, gathered groups, or
/// pssh's status lines (with `-P` streaming before them).
fn stdout_printer(
    hosts: &[Host],
    flags: &args::OutputArgs,
    inline: Inline,
) -> Box<dyn Reporter + Send> {
    if flags.json {
        return Box::new(JsonLines::new(
            std::io::stdout(),
            hosts,
            flags.outdir.clone(),
            flags.errdir.clone(),
        ));
    }
    if flags.gather {
        return Box::new(Gather::new(
            std::io::stdout(),
            flags.gather_stderr,
            flags.output_limit,
        ));
    }
    let inline = match flags.inline_mode() {
        Inline::Off => inline,
        chosen => chosen,
    };
    let status = Box::new(StatusPrinter::new(
        std::io::stdout(),
        stdout_color(),
        inline,
        flags.output_limit,
    ));
    match flags.print {
        true => Box::new(vec![
            Box::new(LinePrinter::new(std::io::stdout(), std::io::stderr()))
                as Box<dyn Reporter + Send>,
            status,
        ]),
        false => status,
    }
}

/// Every tool's command line, for man pages and shell completions
/// (`fleet-docs`, which adds fleet-lab's), generated from the same clap
/// definitions the tools parse.
pub fn tool_commands() -> Vec<clap::Command> {
    use clap::CommandFactory;
    vec![
        prun::Cli::command(),
        pcp::Cli::command(),
        pslurp::Cli::command(),
        pnuke::Cli::command(),
        pplay::Cli::command(),
    ]
}

/// Parses a tool's flags; `Err` carries the exit code after clap has
/// printed help, the version, or the usage error.
pub fn parse_flags<C: Parser>(args: impl IntoIterator<Item = OsString>) -> Result<C, u8> {
    C::try_parse_from(args).map_err(|error| {
        let _ = error.print();
        if error.use_stderr() {
            exit::USAGE
        } else {
            exit::OK
        }
    })
}

/// The hosts of the run and a connector with every host's settings resolved.
fn connect_hosts(
    targets: &args::TargetArgs,
    connect: &args::ConnectArgs,
) -> Result<(Arc<[Host]>, Connector), UsageError> {
    let hosts = targets.load_hosts()?;
    let options = connect.ssh_options(targets.user.as_deref())?;
    let config = connect.ssh_config()?;
    let connector = Connector::new(&hosts, &options, config.as_ref(), connect.secrets()?)?;
    Ok((hosts.into(), connector))
}

/// How one tool's run is set up once its hosts are known.
pub struct ToolJob {
    pub job: Job,
    pub parallelism: usize,
    /// Status-line mode when the operator chose none (`-i`, `--inline-stdout`).
    pub inline: Inline,
    /// Printers that run before the standard ones (pslurp's files).
    pub reporters: Vec<Box<dyn Reporter + Send>>,
    /// Local files each running host keeps open (pslurp's download).
    pub files_per_host: u64,
}

/// What every tool does after parsing its flags: connect the hosts, let
/// `setup` build the job, add the standard printers, run, and map every
/// failure to its exit code in one place.
pub async fn run_tool(
    tool: &str,
    common: &args::CommonArgs,
    interrupt: CancellationToken,
    setup: impl FnOnce(&[Host]) -> Result<ToolJob, UsageError>,
) -> u8 {
    let args::CommonArgs {
        targets,
        connect,
        output,
        ..
    } = common;
    init_logging(connect.verbose);
    let prepared =
        connect_hosts(targets, connect).and_then(|connected| Ok((setup(&connected.0)?, connected)));
    let (tool_job, connected) = match prepared {
        Ok(prepared) => prepared,
        Err(error) => {
            eprintln!("{tool}: {error}");
            return exit::USAGE;
        }
    };
    let mut all = tool_job.reporters;
    match reporters(&connected.0, output, tool_job.inline) {
        Ok(standard) => all.extend(standard),
        Err(error) => {
            // An output path that cannot be used is the operator's to fix.
            notice(tool, &error.to_string());
            return exit::USAGE;
        }
    }
    // A socket, an agent socket while authenticating, the output files, and
    // the files held output spills to.
    let held = output.inline || output.inline_stdout || output.gather || output.json;
    let per_host = 2
        + tool_job.files_per_host
        + u64::from(output.outdir.is_some())
        + u64::from(output.errdir.is_some())
        + 2 * u64::from(held);
    let parallelism = match parallelism_within_file_limit(tool, tool_job.parallelism, per_host) {
        Ok(parallelism) => parallelism,
        Err(why) => {
            notice(tool, &why);
            return exit::OTHER;
        }
    };
    run_job(tool, connected, tool_job.job, parallelism, all, interrupt).await
}

/// Runs `job` everywhere with `reporters` on the output thread; returns the
/// tool's exit code, computed from every host's result.
async fn run_job(
    tool: &str,
    (hosts, connector): (Arc<[Host]>, Connector),
    job: Job,
    parallelism: usize,
    reporters: Vec<Box<dyn Reporter + Send>>,
    interrupt: CancellationToken,
) -> u8 {
    cancel_when_stdout_closes(interrupt.clone());
    let (events, printer) = spawn_output_thread(Arc::clone(&hosts), reporters, interrupt.clone());
    let run = Run {
        connector: Arc::new(connector),
        hosts,
        job,
        parallelism,
    };
    let results = run.execute(events, interrupt).await;
    let output_failure = match tokio::task::spawn_blocking(move || printer.join()).await {
        Ok(joined) => report_output_error(tool, joined),
        Err(_) => Some(exit::OTHER),
    };
    output_failure.unwrap_or_else(|| exit_code(&results))
}

/// Starts the output thread: the only writer of stdout for the whole run.
/// A closed stdout fires `output_gone`.
pub fn spawn_output_thread(
    hosts: Arc<[Host]>,
    mut reporter: Vec<Box<dyn Reporter + Send>>,
    output_gone: CancellationToken,
) -> (
    tokio::sync::mpsc::Sender<Event>,
    std::thread::JoinHandle<std::io::Result<()>>,
) {
    // Bounded, so a slow terminal or disk slows the hosts instead of filling memory.
    let (sender, mut receiver) = tokio::sync::mpsc::channel(256);
    let thread = std::thread::spawn(move || {
        output::dispatch(&hosts, &mut receiver, &mut reporter, &output_gone)
    });
    (sender, thread)
}

/// Reports an output failure; a closed pipe (`prun ... | head`) is not one.
pub fn report_output_error(
    tool: &str,
    result: std::thread::Result<std::io::Result<()>>,
) -> Option<u8> {
    match result {
        Ok(Ok(())) => None,
        Ok(Err(error)) if error.kind() == std::io::ErrorKind::BrokenPipe => None,
        Ok(Err(error)) => {
            eprintln!("{tool}: output failed: {error}");
            Some(exit::OTHER)
        }
        Err(_) => {
            eprintln!("{tool}: the output thread crashed");
            Some(exit::OTHER)
        }
    }
}
