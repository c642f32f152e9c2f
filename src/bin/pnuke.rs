//! `pnuke`: see fleet::commands::pnuke.

mod common;

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let interrupt = common::cancel_on_ctrl_c("pnuke");
    ExitCode::from(fleet::commands::pnuke::main(std::env::args_os(), interrupt).await)
}
