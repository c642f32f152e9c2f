//! `wait_for:` a command retried at an interval until it succeeds, or the
//! timeout passes. Also the test phase of a verified reboot.

use std::time::Duration;

use tokio::time::Instant;

use super::{Done, Step, TaskError, TaskStatus};
use crate::playbook::remote::Remote;
use crate::playbook::spec::WaitForSpec;

pub async fn wait_for(step: Step<'_>, spec: &WaitForSpec) -> Done {
    let command = step.expand(&spec.command)?;
    let interval = spec.interval.0;
    let tries = until_success(step.remote, &command, spec.timeout.0, || interval).await?;
    Ok(TaskStatus::Ok(format!("after {tries} tries")))
}

/// Retries `command` until it exits 0; returns how many tries it took. A
/// failed connection is made again at the next try, `gap()` after the
/// start of the one before.
pub async fn until_success(
    remote: &mut Remote,
    command: &str,
    timeout: Duration,
    mut gap: impl FnMut() -> Duration,
) -> Result<u32, TaskError> {
    let deadline = Instant::now() + timeout;
    let mut tries = 0;
    loop {
        tries += 1;
        let next = Instant::now() + gap();
        let left = deadline.saturating_duration_since(Instant::now());
        let last = match remote
            .exec(command, &[], Some(left.max(Duration::from_secs(1))))
            .await
        {
            Ok(captured) if captured.code() == Some(0) => return Ok(tries),
            Ok(captured) => captured.failure().to_string(),
            Err(TaskError::Aborted) => return Err(TaskError::Aborted),
            Err(error) => {
                remote.disconnect().await;
                error.to_string()
            }
        };
        if next > deadline {
            return Err(TaskError::NotReturned(format!(
                "`{command}` did not succeed within {timeout:?} ({tries} tries; last: {last})"
            )));
        }
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = remote.abort().cancelled() => return Err(TaskError::Aborted),
        }
    }
}
