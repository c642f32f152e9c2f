//! `pslurp`: pull a file from many hosts into one directory per host (pssh's parallel-slurp).

mod common;

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let interrupt = common::cancel_on_stop_signal("pslurp");
    ExitCode::from(fleet::commands::pslurp::main(std::env::args_os(), interrupt).await)
}
