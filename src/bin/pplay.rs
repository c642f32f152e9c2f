//! `pplay`: roll a YAML playbook over an inventory, a few hosts at a time.

mod common;

use std::process::ExitCode;

use fleet::engine::Stop;

use common::{exit_now, signal_name, StopSignals};

fn main() -> ExitCode {
    common::run("pplay", || async {
        let (stop, abort) = (Stop::new(), Stop::new());
        tokio::spawn(escalate(StopSignals::new(), stop.clone(), abort.clone()));
        fleet::commands::pplay::main(std::env::args_os(), stop, abort).await
    })
}

/// A stop signal before the play begins ends pplay at once. Once it runs,
/// the first stop signal (Ctrl-C, SIGTERM or SIGHUP): start no new host, let
/// running tasks finish; the closing summary gives the resume command.
/// Second: kill the running commands (they run again on --resume). Third:
/// exit now.
async fn escalate(mut signals: StopSignals, stop: Stop, abort: Stop) {
    let first = signals.next().await;
    if !stop.is_engaged() {
        exit_now(first);
    }
    stop.request(format!(
        "{}: running tasks finish, no new host starts (once more to kill them)",
        signal_name(first)
    ));
    let second = signals.next().await;
    abort.request(format!(
        "{}: killing the running tasks (once more to quit at once)",
        signal_name(second)
    ));
    exit_now(signals.next().await);
}
