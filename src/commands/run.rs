//! What every pssh-style tool does after parsing its flags: load the hosts,
//! resolve their SSH settings, build the job, choose the printers, run the
//! job on the engine with the output thread printing, and turn every host's
//! outcome into the exit code. Also the pieces pplay shares: the output
//! thread with the operator's notices fed into it.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::args::{CommonArgs, ConnectArgs, OutputArgs, TargetArgs};
use super::process::{
    cancel_when_stdout_closes, init_logging, notice, parallelism_within_file_limit, stdout_color,
};
use super::{exit, exit_code, UsageError};
use crate::engine::{Job, Run, Stop};
use crate::model::Host;
use crate::output::{
    self, Event, EventSource, FailedHostsFile, Gather, Inline, JsonLines, LinePrinter, Notices,
    OutputFiles, Progress, Reporter, StatusPrinter, Summary,
};
use crate::ssh::{Connector, Sudo};

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

/// Runs a pssh-style tool: connect the hosts, let `setup` build the job,
/// add the standard printers, run, and map every failure to its exit code.
pub async fn run_tool(
    tool: &'static str,
    common: &CommonArgs,
    stop: Stop,
    setup: impl FnOnce(&[Host]) -> Result<ToolJob, UsageError>,
) -> u8 {
    let CommonArgs {
        targets,
        connect,
        output,
        ..
    } = common;
    init_logging(connect.verbose);
    let prepared = connect_hosts(targets, connect)
        .and_then(|connected| Ok((setup(&connected.hosts)?, connected)));
    let (
        mut tool_job,
        Reach {
            hosts,
            connector,
            sudo,
        },
    ) = match prepared {
        Ok(prepared) => prepared,
        Err(error) => {
            notice(tool, &error.to_string());
            return exit::USAGE;
        }
    };
    tool_job.job.sudo = sudo;
    if let Err(error) = tool_job.job.check_length(&hosts) {
        notice(tool, &error.to_string());
        return exit::USAGE;
    }
    let mut all = tool_job.reporters;
    let private = tool_job.job.sudo.is_some();
    match reporters(
        tool,
        &hosts,
        output,
        connect.verbose,
        tool_job.inline,
        private,
    ) {
        Ok(standard) => all.extend(standard),
        Err(error) => {
            // An output path that cannot be used is the operator's to fix.
            notice(tool, &error.to_string());
            return exit::USAGE;
        }
    }
    let per_host = files_per_host(output, tool_job.files_per_host);
    let parallelism = match parallelism_within_file_limit(tool, tool_job.parallelism, per_host) {
        Ok(parallelism) => parallelism,
        Err(why) => {
            notice(tool, &why);
            return exit::OTHER;
        }
    };
    let run = Run {
        connector: Arc::new(connector),
        hosts: Arc::clone(&hosts),
        job: tool_job.job,
        parallelism,
    };
    // Bounded, so a slow terminal or disk slows the hosts instead of filling memory.
    let (events, receiver) = mpsc::channel::<Event>(256);
    let notices = events.clone();
    let token = stop.token().clone();
    let results = with_output(tool, hosts, receiver, all, &[stop], notices, |_| async {
        run.execute(events, token).await
    })
    .await;
    match results {
        Ok(results) => exit_code(results.iter().map(|r| r.outcome.category())),
        Err(code) => code,
    }
}

/// Runs `work` with the output thread printing what it sends, and the
/// operator's words when a stop is requested (`stops`: the first one also
/// fires when stdout's reader goes away) fed into the same stream; `Err`
/// carries the exit code when the output failed. The stops are engaged
/// here: from now on a stop signal stops the run instead of the process.
pub async fn with_output<S, F, T>(
    tool: &str,
    hosts: Arc<[Host]>,
    receiver: impl EventSource,
    reporter: impl Reporter + Send + 'static,
    stops: &[Stop],
    notices: S,
    work: impl FnOnce(S) -> F,
) -> Result<T, u8>
where
    S: NoticeSender + Clone + Send + Sync + 'static,
    F: Future<Output = T>,
{
    for stop in stops {
        stop.engage();
    }
    let first = stops
        .first()
        .map(|stop| stop.token().clone())
        .unwrap_or_default();
    cancel_when_stdout_closes(first.clone());
    let printer = output::spawn(hosts, receiver, reporter, first);
    let forwards: Vec<_> = stops
        .iter()
        .map(|stop| {
            let (stop, notices) = (stop.clone(), notices.clone());
            tokio::spawn(async move {
                if let Some(words) = stop.requested().await {
                    notices.notice(words).await;
                }
            })
        })
        .collect();
    let result = work(notices).await;
    for forward in forwards {
        forward.abort();
        let _ = forward.await;
    }
    match tokio::task::spawn_blocking(move || printer.join()).await {
        Ok(joined) => match report_output_error(tool, joined) {
            None => Ok(result),
            Some(code) => Err(code),
        },
        Err(_) => Err(exit::OTHER),
    }
}

/// A channel the operator's notices can be sent into.
pub trait NoticeSender {
    fn notice(&self, words: String) -> impl Future<Output = ()> + Send;
}

impl NoticeSender for mpsc::Sender<Event> {
    async fn notice(&self, words: String) {
        let _ = self.send(Event::Notice(words)).await;
    }
}

impl NoticeSender for mpsc::UnboundedSender<Event> {
    async fn notice(&self, words: String) {
        let _ = self.send(Event::Notice(words));
    }
}

/// The files each running host holds: its socket, an agent socket while it
/// authenticates, its output files, and the files held output spills to.
fn files_per_host(output: &OutputArgs, own: u64) -> u64 {
    let held = output.inline || output.inline_stdout || output.gather || output.json;
    2 + own
        + u64::from(output.outdir.is_some())
        + u64::from(output.errdir.is_some())
        + 2 * u64::from(held)
}

/// The hosts of the run and a connector with every host's settings resolved.
/// A tool's hosts, how to reach them, and the sudo to run commands under.
struct Reach {
    hosts: Arc<[Host]>,
    connector: Connector,
    sudo: Option<Sudo>,
}

fn connect_hosts(targets: &TargetArgs, connect: &ConnectArgs) -> Result<Reach, UsageError> {
    let hosts = targets.load_hosts()?;
    let options = connect.ssh_options(targets.user.as_deref())?;
    let config = connect.ssh_config()?;
    let connector = Connector::new(&hosts, &options, config.as_ref(), connect.secrets()?)?;
    let sudo = connect.sudo_user()?.map(|user| connector.sudo_as(user));
    Ok(Reach {
        hosts: hosts.into(),
        connector,
        sudo,
    })
}

/// The printers selected by the output flags, in the order they run;
/// `inline` applies when neither `-i` nor `--inline-stdout` was given;
/// `private`: -o/-e files hold root's output (`--sudo`).
fn reporters(
    tool: &'static str,
    hosts: &[Host],
    flags: &OutputArgs,
    verbose: u8,
    inline: Inline,
    private: bool,
) -> std::io::Result<Vec<Box<dyn Reporter + Send>>> {
    let mut reporters: Vec<Box<dyn Reporter + Send>> = Vec::new();
    if flags.outdir.is_some() || flags.errdir.is_some() {
        reporters.push(Box::new(OutputFiles::new(
            hosts,
            flags.outdir.clone(),
            flags.errdir.clone(),
            private,
        )?));
    }
    reporters.push(stdout_printer(hosts, flags, inline));
    reporters.push(Box::new(Notices::new(std::io::stderr(), tool)));
    if !flags.quiet {
        reporters.push(Box::new(Summary::new(std::io::stderr(), flags.summary)));
    }
    if let Some(path) = &flags.failed_hosts {
        reporters.push(Box::new(FailedHostsFile::new(path.clone())?));
    }
    if output::progress_wanted(flags.quiet, flags.json, verbose) {
        let inner: Box<dyn Reporter + Send> = Box::new(reporters);
        return Ok(vec![Box::new(Progress::new(hosts.len(), inner))]);
    }
    Ok(reporters)
}

/// The one printer that writes stdout: JSON lines, gathered groups, or
/// pssh's status lines (with `-P` streaming before them).
fn stdout_printer(hosts: &[Host], flags: &OutputArgs, inline: Inline) -> Box<dyn Reporter + Send> {
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

/// Reports an output failure; a closed pipe (`prun ... | head`) is not one.
fn report_output_error(tool: &str, result: std::thread::Result<std::io::Result<()>>) -> Option<u8> {
    match result {
        Ok(Ok(())) => None,
        Ok(Err(error)) if error.kind() == std::io::ErrorKind::BrokenPipe => None,
        Ok(Err(error)) => {
            notice(tool, &format!("output failed: {error}"));
            Some(exit::OTHER)
        }
        Err(_) => {
            notice(tool, "the output thread crashed");
            Some(exit::OTHER)
        }
    }
}
