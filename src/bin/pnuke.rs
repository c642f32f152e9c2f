//! `pnuke`: signal processes by name on many hosts (pssh's parallel-nuke).

mod common;

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let interrupt = common::cancel_on_stop_signal("pnuke");
    ExitCode::from(fleet::commands::pnuke::main(std::env::args_os(), interrupt).await)
}
