//! `pplay`: roll a YAML playbook over an inventory, a few hosts at a time.

use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

/// Exit status of a process stopped by SIGINT, as shells report it.
const EXIT_INTERRUPTED: i32 = 130;

#[tokio::main]
async fn main() -> ExitCode {
    let (stop, abort) = (CancellationToken::new(), CancellationToken::new());
    tokio::spawn(escalate_on_ctrl_c(stop.clone(), abort.clone()));
    ExitCode::from(fleet::commands::pplay::main(std::env::args_os(), stop, abort).await)
}

/// First Ctrl-C: start no new host, let running tasks finish. Second: kill
/// the running commands (they run again on --resume). Third: exit now.
async fn escalate_on_ctrl_c(stop: CancellationToken, abort: CancellationToken) {
    if tokio::signal::ctrl_c().await.is_err() {
        return;
    }
    eprintln!(
        "pplay: interrupted; running tasks finish, no new host starts (Ctrl-C again to kill them)"
    );
    stop.cancel();
    if tokio::signal::ctrl_c().await.is_err() {
        return;
    }
    eprintln!("pplay: killing the running tasks (Ctrl-C again to quit at once)");
    abort.cancel();
    if tokio::signal::ctrl_c().await.is_ok() {
        std::process::exit(EXIT_INTERRUPTED);
    }
}
