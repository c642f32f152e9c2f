//! `pslurp`: pull a file from many hosts into one directory per host (pssh's parallel-slurp).

mod common;

use std::process::ExitCode;

fn main() -> ExitCode {
    common::run("pslurp", || async {
        let stop = common::stop_on_signals();
        fleet::commands::pslurp::main(std::env::args_os(), stop).await
    })
}
