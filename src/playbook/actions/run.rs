//! `run:` a shell command. It changed the host unless the task says it only
//! reads (`read_only`); an exit code of `ok_codes` other than 0 is accepted
//! and said.

use super::{Step, TaskError, TaskStatus};

/// Runs `command`; returns its status and its trimmed stdout (for `register`).
pub async fn run(
    step: Step<'_>,
    command: &str,
    ok_codes: &[u32],
    read_only: bool,
) -> Result<(TaskStatus, String), TaskError> {
    let command = step.expand(command)?;
    let captured = step.remote.exec(&command, &[], step.timeout).await?;
    let status = match captured.accepted(ok_codes)? {
        0 if read_only => TaskStatus::Ok,
        0 => TaskStatus::Changed,
        code => TaskStatus::Done(format!("exit {code}, accepted")),
    };
    Ok((status, captured.stdout.trim().to_string()))
}
