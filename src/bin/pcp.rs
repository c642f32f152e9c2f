//! `pcp`: copy files to many hosts, atomically and verified (pssh's parallel-scp).

mod common;

use std::process::ExitCode;

fn main() -> ExitCode {
    common::run("pcp", || async {
        let interrupt = common::cancel_on_stop_signal("pcp");
        fleet::commands::pcp::main(std::env::args_os(), interrupt).await
    })
}
