//! Running many hosts: the one bounded [`FanOut`] every tool's hosts go
//! through, and [`Run`], the pssh-style job on it (one command per host,
//! per-host connect and command timeouts, cancellation from outside). A run
//! emits [`Event`]s into whatever channel its caller gives and returns every
//! host's result; it never prints and never exits the process.

mod event;
mod fanout;
mod stop;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use event::{Category, Changes, Event, HostResult, Outcome, Stream};
pub use fanout::FanOut;
pub use stop::Stop;

use crate::model::Host;
use crate::ssh::{
    Command, Connector, Kill, OutputSink, RemoteExit, RunEnd, Session, SshError, StdinPiece, Sudo,
};

/// What to run on every host.
///
/// ```
/// use std::time::Duration;
/// let mut job = fleet::engine::Job::new("uptime");
/// job.timeout = Some(Duration::from_secs(30)); // prun -t 30
/// assert_eq!(job.command, "uptime");
/// ```
#[derive(Debug, Clone)]
pub struct Job {
    /// Shell command line, run by the remote login shell.
    pub command: String,
    /// Sent to every host's command as its stdin (`-I`, pcp's files);
    /// empty closes it at once.
    pub stdin: Vec<StdinPiece>,
    /// Per-host limit on the command's run time (`-t`); `None` waits forever.
    pub timeout: Option<Duration>,
    /// A quick command run first on each host; when its output says the
    /// host is already as wanted, the main command is not run at all.
    pub probe: Option<Probe>,
    /// Run the command on a pseudo-terminal (prun `--tty`, `-x -t`).
    pub tty: bool,
    /// Run the command (and the probe) through sudo (`--sudo`); every
    /// tool's is set from the common flags.
    pub sudo: Option<Sudo>,
}

impl Job {
    /// `command` on every host, with no input, no time limit, no probe,
    /// no terminal and no sudo: `prun HOSTS COMMAND` with no flags.
    pub fn new(command: impl Into<String>) -> Job {
        Job {
            command: command.into(),
            stdin: Vec::new(),
            timeout: None,
            probe: None,
            tty: false,
            sudo: None,
        }
    }

    /// Refuses a command too long for one SSH request before any host is
    /// contacted: every host would fail the same way.
    pub fn check_length(&self, hosts: &[Host]) -> Result<(), SshError> {
        // pssh's variables, quoted, exported, and held twice by the wrapper.
        let longest_name = hosts.iter().map(|h| h.name.len()).max().unwrap_or(0);
        let env_bytes = 4 * (128 + longest_name);
        let command = Command {
            line: &self.command,
            env: &[],
            stdin: &self.stdin,
            timeout: self.timeout,
            tty: self.tty,
            sudo: self.sudo.as_ref(),
        };
        crate::ssh::check_length(command, env_bytes)
    }
}

/// A quick look at each host before the main command (and its stdin) is
/// sent, whose output decides what the host gets: pcp's `--skip-unchanged`
/// compares checksums this way, prsync lists the remote tree and plans.
#[derive(Clone)]
pub struct Probe {
    pub command: String,
    /// Most stdout the decision may need; more fails the host.
    pub max_output: usize,
    pub planner: Arc<dyn Planner>,
}

impl std::fmt::Debug for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probe")
            .field("command", &self.command)
            .finish_non_exhaustive()
    }
}

/// Turns what a probe printed on a host into what that host gets.
pub trait Planner: Send + Sync {
    /// `Err` fails the host with that reason (the host is not as the job
    /// needs, or said something the planner cannot read).
    fn decide(&self, probe_stdout: &[u8]) -> Result<Decision, String>;
}

/// What a host gets once its probe has been read.
pub enum Decision {
    /// Already as wanted: nothing is run or sent.
    Unchanged,
    /// The job's own command and stdin.
    RunJob,
    /// A command made for this host's state (hosts in the same state share it).
    Run(Arc<Planned>),
    /// Nothing to run: this text is the host's output (a dry run's plan).
    Report(Bytes),
}

/// A command planned from a probe, and what it changes when it succeeds.
pub struct Planned {
    pub command: String,
    pub stdin: Vec<StdinPiece>,
    pub changes: Changes,
}

/// A planner for a probe whose trimmed stdout, when it equals the text,
/// means the host is already as wanted.
pub struct UnchangedWhen(pub String);

impl Planner for UnchangedWhen {
    fn decide(&self, probe_stdout: &[u8]) -> Result<Decision, String> {
        Ok(
            match String::from_utf8_lossy(probe_stdout).trim() == self.0 {
                true => Decision::Unchanged,
                false => Decision::RunJob,
            },
        )
    }
}

/// Everything a run needs, shared by all host tasks: the one fan-out every
/// tool's job goes through, and the entry point for programs using fleet
/// as a library.
///
/// ```no_run
/// use std::sync::Arc;
/// use fleet::engine::{Event, Job, Run};
/// use fleet::ssh::{Connector, Secrets, SshOptions};
///
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// let hosts: Arc<[_]> = fleet::inventory::read_hosts_file("hosts.txt".as_ref())?.into();
/// let connector = Connector::new(&hosts, &SshOptions::default(), None, Secrets::default())?;
/// let run = Run::new(Arc::new(connector), Arc::clone(&hosts), Job::new("uname -r"));
/// let (events, mut received) = tokio::sync::mpsc::channel::<Event>(256);
/// let running = tokio::spawn(run.execute(events, Default::default()));
/// while let Some(event) = received.recv().await {
///     if let Event::Finished { host, result } = event {
///         println!("{} {:?}", hosts[host].name, result.outcome.category());
///     }
/// }
/// let results = running.await?; // one per host, in the hosts' order
/// # Ok(()) }
/// ```
pub struct Run {
    pub connector: Arc<Connector>,
    pub hosts: Arc<[Host]>,
    pub job: Job,
    /// Most hosts in flight at once (`-p`).
    pub parallelism: usize,
}

impl Run {
    /// `job` on `hosts` through `connector`, 32 hosts at a time (pssh's
    /// default `-p`); set `parallelism` for more.
    pub fn new(connector: Arc<Connector>, hosts: Arc<[Host]>, job: Job) -> Run {
        Run {
            connector,
            hosts,
            job,
            parallelism: 32,
        }
    }

    /// Runs the job everywhere. When `cancel` fires, no new host starts,
    /// running commands are killed on their hosts and report Interrupted, and
    /// hosts never started report Cancelled. Results are indexed like `hosts`.
    pub async fn execute<E: From<Event> + Send + 'static>(
        self,
        events: mpsc::Sender<E>,
        cancel: CancellationToken,
    ) -> Vec<Arc<HostResult>> {
        let run = Arc::new(self);
        let mut fanout = FanOut::new(run.parallelism);
        for index in 0..run.hosts.len() {
            let worker = HostWorker {
                run: Arc::clone(&run),
                index,
                events: events.clone(),
                cancel: cancel.clone(),
            };
            let label = run.hosts[index].label();
            if !fanout.start(index, &label, &cancel, worker.run()).await {
                break;
            }
        }
        let mut results: Vec<Option<Arc<HostResult>>> = vec![None; run.hosts.len()];
        while let Some((index, result)) = fanout.next().await {
            let result = match result {
                Ok(result) => result,
                Err(why) => report_unrun(&events, index, Outcome::Internal(why)).await,
            };
            results[index] = Some(result);
        }
        let mut finished = Vec::with_capacity(results.len());
        for (index, result) in results.into_iter().enumerate() {
            let result = match result {
                Some(result) => result,
                None => report_unrun(&events, index, Outcome::Cancelled).await,
            };
            finished.push(result);
        }
        finished
    }
}

/// One host's task: connect, run, supervise, report.
struct HostWorker<E> {
    run: Arc<Run>,
    index: usize,
    events: mpsc::Sender<E>,
    cancel: CancellationToken,
}

impl<E: From<Event> + Send + 'static> HostWorker<E> {
    async fn run(self) -> Arc<HostResult> {
        let started_at = SystemTime::now();
        let clock = Instant::now();
        self.emit(Event::Started { host: self.index }).await;
        let (outcome, changes) = self.connect_and_execute().await;
        let result = Arc::new(HostResult {
            outcome,
            changes,
            started_at: Some(started_at),
            duration: clock.elapsed(),
        });
        self.emit(Event::Finished {
            host: self.index,
            result: Arc::clone(&result),
        })
        .await;
        result
    }

    /// The host's outcome, and what it changed when it was planned.
    async fn connect_and_execute(&self) -> (Outcome, Option<Changes>) {
        if let Some(host) = self.run.connector.sudo_password_refused() {
            let why = format!("not asked: the password was refused on {host}");
            return (Outcome::Failed(SshError::Sudo(why)), None);
        }
        // The connection's and the command's futures are boxed: a host
        // waiting for its turn then holds a small task, not the largest
        // state it will ever need (about 20 KB, times -p 1000).
        let connected = tokio::select! {
            _ = self.cancel.cancelled() => return (Outcome::Interrupted(Kill::Confirmed), None),
            connected = Box::pin(self.run.connector.connect(self.host())) => connected,
        };
        let session = match connected {
            Ok(session) => session,
            Err(error) => {
                tracing::debug!("connection failed: {error}");
                return (Outcome::Failed(error), None);
            }
        };
        tracing::debug!("connected and authenticated");
        let (outcome, changes) = Box::pin(self.execute(&session)).await;
        session.close().await;
        if let Outcome::Failed(error) = &outcome {
            if error.is_wrong_sudo_password() {
                self.run
                    .connector
                    .sudo_password_refused_on(&self.host().label());
            }
        }
        (outcome, changes)
    }

    async fn execute(&self, session: &Session) -> (Outcome, Option<Changes>) {
        let job = &self.run.job;
        let decision = match &job.probe {
            Some(probe) => match self.probe(session, probe).await {
                Ok(decision) => decision,
                Err(outcome) => return (outcome, None),
            },
            None => Decision::RunJob,
        };
        let (line, stdin, changes) = match &decision {
            Decision::Unchanged => return (Outcome::Unchanged, None),
            Decision::Report(text) => {
                self.emit_output(Stream::Stdout, text.clone()).await;
                return (Outcome::Exited(0), None);
            }
            Decision::RunJob => (&job.command, &job.stdin, None),
            Decision::Run(planned) => (&planned.command, &planned.stdin, Some(planned.changes)),
        };
        let env = self.pssh_environment();
        let command = Command {
            line,
            env: &env,
            stdin,
            timeout: job.timeout,
            tty: job.tty,
            sudo: job.sudo.as_ref(),
        };
        tracing::debug!(command = %line, "command sent");
        let mut sink = EventSink {
            host: self.index,
            events: &self.events,
        };
        let outcome = match session.run(command, &self.cancel, &mut sink).await {
            Ok(end) => end_outcome(end),
            Err(error) => Outcome::Failed(error),
        };
        // What a plan changes is only claimed once it has all been done.
        let changes = changes.filter(|_| outcome.category() == Category::Ok);
        (outcome, changes)
    }

    /// Runs the probe and lets its planner decide. Its stderr is
    /// forwarded, so a failing probe explains itself.
    async fn probe(&self, session: &Session, probe: &Probe) -> Result<Decision, Outcome> {
        let job = &self.run.job;
        let command = Command::new(&probe.command)
            .timeout(job.timeout)
            .sudo(job.sudo.as_ref());
        let mut sink = ProbeSink {
            stdout: Vec::new(),
            limit: probe.max_output,
            overflowed: false,
            stderr: EventSink {
                host: self.index,
                events: &self.events,
            },
        };
        match session.run(command, &self.cancel, &mut sink).await {
            Ok(RunEnd::Exited(RemoteExit::Code(_))) if sink.overflowed => Err(Outcome::NotPlanned(
                format!("the host's answer was over {} bytes", probe.max_output),
            )),
            Ok(RunEnd::Exited(RemoteExit::Code(_))) => {
                // Planning may read and hash files: off the async threads.
                let planner = Arc::clone(&probe.planner);
                let stdout = sink.stdout;
                match tokio::task::spawn_blocking(move || planner.decide(&stdout)).await {
                    Ok(decision) => decision.map_err(Outcome::NotPlanned),
                    Err(crashed) => Err(Outcome::Internal(crashed.to_string())),
                }
            }
            Ok(end) => Err(end_outcome(end)),
            Err(error) => Err(Outcome::Failed(error)),
        }
    }

    fn host(&self) -> &Host {
        &self.run.hosts[self.index]
    }

    /// pssh's variables, exported in the command's shell.
    fn pssh_environment(&self) -> [(&'static str, String); 3] {
        [
            ("PSSH_NODENUM", self.index.to_string()),
            ("PSSH_NUMNODES", self.run.hosts.len().to_string()),
            ("PSSH_HOST", self.host().name.clone()),
        ]
    }

    async fn emit_output(&self, stream: Stream, data: Bytes) {
        let host = self.index;
        self.emit(Event::Output { host, stream, data }).await;
    }

    async fn emit(&self, event: Event) {
        // A closed receiver means nobody is listening any more; the run goes on.
        let _ = self.events.send(E::from(event)).await;
    }
}

/// Reports the result of a host whose task never produced one (it was never
/// started, or it crashed), so printers hear of every host exactly once.
async fn report_unrun<E: From<Event>>(
    events: &mpsc::Sender<E>,
    host: usize,
    outcome: Outcome,
) -> Arc<HostResult> {
    let result = Arc::new(HostResult {
        outcome,
        changes: None,
        started_at: None,
        duration: Duration::ZERO,
    });
    let _ = events
        .send(E::from(Event::Finished {
            host,
            result: Arc::clone(&result),
        }))
        .await;
    result
}

/// The outcome of a command that ran.
fn end_outcome(end: RunEnd) -> Outcome {
    match end {
        RunEnd::Exited(RemoteExit::Code(code)) => Outcome::Exited(code),
        RunEnd::Exited(RemoteExit::Signal(signal)) => Outcome::Signaled(signal),
        RunEnd::Exited(RemoteExit::Lost) => Outcome::Failed(SshError::ConnectionLost),
        RunEnd::TimedOut(kill) => Outcome::TimedOut(kill),
        RunEnd::Cancelled(kill) => Outcome::Interrupted(kill),
        RunEnd::SinkFailed(error, _) => Outcome::Internal(error.to_string()),
    }
}

/// Hands a host's output to the printers as events.
struct EventSink<'a, E> {
    host: usize,
    events: &'a mpsc::Sender<E>,
}

impl<E: From<Event> + Send> OutputSink for EventSink<'_, E> {
    async fn output(&mut self, stream: Stream, data: Bytes) -> std::io::Result<()> {
        // A closed receiver means nobody is listening any more; the run goes on.
        let _ = self
            .events
            .send(E::from(Event::Output {
                host: self.host,
                stream,
                data,
            }))
            .await;
        Ok(())
    }
}

/// Keeps a probe's stdout (what it decides by) and shows its stderr.
struct ProbeSink<'a, E> {
    stdout: Vec<u8>,
    limit: usize,
    /// More than `limit` came: kept no further, and not decided on.
    overflowed: bool,
    stderr: EventSink<'a, E>,
}

impl<E: From<Event> + Send> OutputSink for ProbeSink<'_, E> {
    async fn output(&mut self, stream: Stream, data: Bytes) -> std::io::Result<()> {
        match stream {
            Stream::Stdout => {
                let room = self.limit.saturating_sub(self.stdout.len());
                self.overflowed |= data.len() > room;
                self.stdout.extend_from_slice(&data[..data.len().min(room)]);
                Ok(())
            }
            Stream::Stderr => self.stderr.output(stream, data).await,
        }
    }
}
