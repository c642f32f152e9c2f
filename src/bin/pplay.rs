//! `pplay`: roll a YAML playbook over an inventory, a few hosts at a time.

mod common;

use std::process::ExitCode;

use fleet::engine::Stop;

/// A stop signal before the play begins ends pplay at once. Once it runs,
/// the first stop signal (Ctrl-C, SIGTERM or SIGHUP) starts no new host and
/// lets running tasks finish (the closing summary gives the resume
/// command); the second kills the running commands (they run again on
/// --resume); the third exits now.
fn main() -> ExitCode {
    common::run("pplay", || async {
        let (stop, abort) = (Stop::new(), Stop::new());
        common::escalate(vec![
            (
                stop.clone(),
                "running tasks finish, no new host starts (once more to kill them)",
            ),
            (
                abort.clone(),
                "killing the running tasks (once more to quit at once)",
            ),
        ]);
        fleet::commands::pplay::main(std::env::args_os(), stop, abort).await
    })
}
