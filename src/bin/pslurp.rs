//! `pslurp`: see fleet::commands::pslurp.

mod common;

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let interrupt = common::cancel_on_ctrl_c("pslurp");
    ExitCode::from(fleet::commands::pslurp::main(std::env::args_os(), interrupt).await)
}
