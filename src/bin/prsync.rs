//! `prsync`: keep a tree in step on many hosts (pssh's parallel-rsync).

mod common;

use std::process::ExitCode;

fn main() -> ExitCode {
    common::run("prsync", || async {
        let stop = common::stop_on_signals();
        fleet::commands::prsync::main(std::env::args_os(), stop).await
    })
}
