//! `pcp`: copy files to many hosts, atomically and verified (pssh's parallel-scp).

mod common;

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let interrupt = common::cancel_on_stop_signal("pcp");
    ExitCode::from(fleet::commands::pcp::main(std::env::args_os(), interrupt).await)
}
