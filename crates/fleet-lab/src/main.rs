//! `fleet-lab`: a local fleet of real OpenSSH hosts in Linux namespaces, for
//! tests, benchmarks and the demo. `up`, `down`, `status`, `fault`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use fleet_lab::cli::{Action, Cli};
use fleet_lab::{self as lab, LabConfig, LabError, Layout};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

fn seconds(value: f64, flag: &str) -> Result<Duration, LabError> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| LabError::Invalid(format!("{flag} takes seconds of 0 or more, not {value}")))
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(if error.use_stderr() { 2 } else { 0 });
        }
    };
    init_logging();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("fleet-lab: {error}");
            ExitCode::from(1)
        }
    }
}

/// Logs on stderr: fleet-lab's own at debug level, or as RUST_LOG says.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("fleet_lab=debug"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .try_init();
}

async fn run(cli: Cli) -> Result<(), LabError> {
    match cli.command {
        Action::Up {
            count,
            net,
            port,
            downtime,
            slow_boot,
            crash_share,
            kernels,
            faults,
        } => {
            let kernels = lab::parse_kernels(kernels.as_deref().unwrap_or_default())
                .map_err(|why| LabError::Invalid(format!("--kernels: {why}")))?;
            let config = LabConfig {
                count,
                net,
                port,
                downtime: seconds(downtime, "--downtime")?,
                slow_boot: seconds(slow_boot, "--slow-boot")?,
                crash_share,
                kernels,
            };
            let exe = std::env::current_exe().map_err(|source| LabError::Io {
                path: "fleet-lab".into(),
                source,
            })?;
            let took = tokio::task::spawn_blocking({
                let dir = cli.dir.clone();
                move || lab::up(&dir, &config, &faults, &exe)
            })
            .await
            .map_err(|e| LabError::Invalid(e.to_string()))??;
            print_up(&cli.dir, count, took);
            Ok(())
        }
        // down polls for the supervisor's exit; keep that off the runtime.
        Action::Down => {
            let dir = cli.dir.clone();
            tokio::task::spawn_blocking(move || lab::down(&dir))
                .await
                .map_err(|e| LabError::Invalid(e.to_string()))?
        }
        Action::Status => {
            for host in lab::status(&cli.dir)? {
                // A down host's state already names its fault.
                let fault = host.fault.as_deref().unwrap_or("-");
                let column = match host.state.contains(&format!("fault={fault}")) {
                    true => String::new(),
                    false => format!("\tfault={fault}"),
                };
                println!("{}\t{}\t{}{column}", host.name, host.address, host.state);
            }
            Ok(())
        }
        Action::Fault { host, kind } => {
            let fault = match kind.as_str() {
                "clear" => None,
                other => Some(other.parse().map_err(LabError::Invalid)?),
            };
            lab::set_fault(&cli.dir, &host, fault)
        }
        Action::Supervise => supervise(cli.dir).await,
    }
}

fn print_up(dir: &std::path::Path, count: usize, took: Duration) {
    let layout = Layout::new(dir);
    println!(
        "fleet-lab: {count} hosts up in {:.1}s in {}",
        took.as_secs_f64(),
        dir.display()
    );
    println!(
        "  prun -h {} -O UserKnownHostsFile={} --identity {} uptime",
        layout.hosts_file().display(),
        layout.known_hosts().display(),
        layout.key().display()
    );
}

/// The daemon: SIGTERM/SIGINT stop the lab, SIGUSR1 re-reads faults.
async fn supervise(dir: PathBuf) -> Result<(), LabError> {
    let shutdown = CancellationToken::new();
    let reload = Arc::new(Notify::new());
    let io = |source| LabError::Io {
        path: "signal handler".into(),
        source,
    };
    let mut terminate = signal(SignalKind::terminate()).map_err(io)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(io)?;
    let mut user1 = signal(SignalKind::user_defined1()).map_err(io)?;
    let (stop, notify) = (shutdown.clone(), Arc::clone(&reload));
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = terminate.recv() => break,
                _ = interrupt.recv() => break,
                _ = user1.recv() => notify.notify_one(),
            }
        }
        stop.cancel();
    });
    lab::supervise(&dir, shutdown, reload).await
}
