//! `pplay`: not built yet; see the project's issues.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("pplay: not implemented yet");
    ExitCode::from(1)
}
