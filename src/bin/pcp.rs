//! `pcp`: copy files to many hosts, atomically and verified (pssh's parallel-scp).

mod common;

use std::process::ExitCode;

fn main() -> ExitCode {
    common::run("pcp", || async {
        let stop = common::stop_on_signals();
        fleet::commands::pcp::main(std::env::args_os(), stop).await
    })
}
