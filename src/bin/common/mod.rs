//! What every binary does before calling the library: turn Ctrl-C into a
//! cancellation token. The first Ctrl-C cancels the run (remote commands are
//! killed, hosts report Interrupted); a second one exits at once.

use tokio_util::sync::CancellationToken;

/// Exit status of a process stopped by SIGINT, as shells report it.
const EXIT_INTERRUPTED: i32 = 130;

/// Must be called inside the Tokio runtime.
pub fn cancel_on_ctrl_c(tool: &'static str) -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_err() {
            return;
        }
        eprintln!("{tool}: interrupted; stopping the commands on the hosts (Ctrl-C again to quit at once)");
        trigger.cancel();
        if tokio::signal::ctrl_c().await.is_ok() {
            std::process::exit(EXIT_INTERRUPTED);
        }
    });
    token
}
