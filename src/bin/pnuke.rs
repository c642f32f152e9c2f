//! `pnuke`: signal processes by name on many hosts (pssh's parallel-nuke).

mod common;

use std::process::ExitCode;

fn main() -> ExitCode {
    common::run("pnuke", || async {
        let interrupt = common::cancel_on_stop_signal("pnuke");
        fleet::commands::pnuke::main(std::env::args_os(), interrupt).await
    })
}
