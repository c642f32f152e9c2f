//! `prun`: run a command on many hosts (pssh's parallel-ssh).

mod common;

use std::process::ExitCode;

fn main() -> ExitCode {
    common::run("prun", || async {
        let stop = common::stop_on_signals();
        fleet::commands::prun::main(std::env::args_os(), stop).await
    })
}
