//! `prun`: run a command on many hosts (pssh's parallel-ssh).

mod common;

use std::process::ExitCode;

fn main() -> ExitCode {
    common::run("prun", || async {
        let interrupt = common::cancel_on_stop_signal("prun");
        fleet::commands::prun::main(std::env::args_os(), interrupt).await
    })
}
