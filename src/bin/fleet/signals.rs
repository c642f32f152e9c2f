//! What every binary does before calling the library: turn the signals
//! that mean "stop" into cancellation tokens. SIGINT (Ctrl-C), SIGTERM
//! (what `timeout`, systemd and `kill` send) and SIGHUP (a closed terminal)
//! all count alike: the first cancels the run (remote commands are killed,
//! hosts report Interrupted), one more of any of them exits at once.

use std::future::Future;
use std::io::Write;
use std::process::ExitCode;

use fleet::engine::Stop;
use futures::future::select_all;
use tokio::signal::unix::{signal, Signal, SignalKind};

/// Runs a tool's async `main` on a multi-threaded runtime. A machine that
/// will not give one (no threads, no file descriptors left) gets a line
/// saying why and exit 1, not a panic. The tool exits as soon as `main`
/// is done, whatever still waits (a question on the terminal no host
/// needs any more), with the terminal's echo back on.
pub fn run<F: Future<Output = u8>>(tool: &str, main: impl FnOnce() -> F) -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => {
            let code = runtime.block_on(async { main().await });
            runtime.shutdown_background();
            fleet::commands::prompt::restore_terminal();
            ExitCode::from(code)
        }
        Err(error) => {
            say(&format!("{tool}: cannot start: {error}"));
            ExitCode::from(1)
        }
    }
}

/// The stop signals, listened to together.
pub struct StopSignals {
    listeners: Vec<(i32, Signal)>,
}

impl StopSignals {
    /// Must be called inside the Tokio runtime. A signal that cannot be
    /// listened to is left at its default (which ends the process).
    pub fn new() -> StopSignals {
        let kinds = [
            (libc::SIGINT, SignalKind::interrupt()),
            (libc::SIGTERM, SignalKind::terminate()),
            (libc::SIGHUP, SignalKind::hangup()),
        ];
        let listeners = kinds
            .into_iter()
            .filter_map(|(number, kind)| signal(kind).ok().map(|s| (number, s)))
            .collect();
        StopSignals { listeners }
    }

    /// Waits for the next stop signal; returns its number.
    pub async fn next(&mut self) -> i32 {
        if self.listeners.is_empty() {
            return std::future::pending().await;
        }
        let waits = self.listeners.iter_mut().map(|(number, listener)| {
            Box::pin(async move {
                listener.recv().await;
                *number
            })
        });
        select_all(waits).await.0
    }
}

/// The name shells give a signal, for messages.
pub fn signal_name(number: i32) -> &'static str {
    match number {
        libc::SIGINT => "Ctrl-C",
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}

/// Exits as a process killed by `number` is reported by shells (128 + N),
/// with the terminal's echo back on if a prompt had turned it off.
pub fn exit_now(number: i32) -> ! {
    fleet::commands::prompt::restore_terminal();
    std::process::exit(128 + number)
}

/// One line on stderr; a hung-up terminal is no reason to panic.
pub fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// The stop the pssh-style tools run under: requested by the first stop
/// signal (its words become a notice in the run's output, above the
/// progress line); the second exits at once, and so does the first while
/// the run has not begun (files read, the operator prompted).
pub fn stop_on_signals() -> Stop {
    let stop = Stop::new();
    escalate(vec![(
        stop.clone(),
        "stopping the commands on the hosts (once more to quit at once)",
    )]);
    stop
}

/// Each stop signal requests the next of `stages`, telling the operator
/// its words; one signal more than there are stages exits at once. A
/// signal before the run has begun (the first stage not engaged yet)
/// exits at once too: there is nothing to stop gracefully.
pub fn escalate(stages: Vec<(Stop, &'static str)>) {
    let mut signals = StopSignals::new();
    tokio::spawn(async move {
        let engaged = stages.first().map(|(stop, _)| stop.clone());
        for (stop, words) in stages {
            let signal = signals.next().await;
            if engaged.as_ref().is_some_and(|first| !first.is_engaged()) {
                exit_now(signal);
            }
            stop.request(format!("{}: {words}", signal_name(signal)));
        }
        exit_now(signals.next().await);
    });
}
