//! `prun`: run a command on many hosts (pssh's parallel-ssh).

mod common;

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let interrupt = common::cancel_on_stop_signal("prun");
    ExitCode::from(fleet::commands::prun::main(std::env::args_os(), interrupt).await)
}
