//! `pnuke`: signal processes by name on many hosts (pssh's parallel-nuke).

mod common;

use std::process::ExitCode;

fn main() -> ExitCode {
    common::run("pnuke", || async {
        let stop = common::stop_on_signals();
        fleet::commands::pnuke::main(std::env::args_os(), stop).await
    })
}
