//! `pause:` a fixed wait, or a question to the operator on the terminal,
//! one host at a time.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::{Done, TaskError, TaskStatus};
use crate::playbook::spec::PauseSpec;

/// Asks the operator a question on the terminal (`None`: no terminal).
pub type Ask = fn(&str) -> Option<String>;

/// How pauses ask: the question function, and one question at a time.
pub struct Asker {
    pub ask: Ask,
    pub turn: tokio::sync::Mutex<()>,
}

/// Waits `duration`, or asks `prompt` (already expanded) for `label`.
pub async fn pause(
    spec: &PauseSpec,
    prompt: String,
    label: &str,
    asker: &Arc<Asker>,
    abort: &CancellationToken,
) -> Done {
    if let Some(duration) = spec.duration {
        return tokio::select! {
            _ = tokio::time::sleep(duration.0) => Ok(TaskStatus::ok()),
            _ = abort.cancelled() => Err(TaskError::Aborted),
        };
    }
    let _turn = asker.turn.lock().await;
    let question = format!("[{label}] {prompt} — continue? [y/N] ");
    let ask = asker.ask;
    let answer = tokio::task::spawn_blocking(move || ask(&question))
        .await
        .map_err(|e| TaskError::Local(e.to_string()))?;
    match answer {
        Some(answer) if answer.trim().eq_ignore_ascii_case("y") => Ok(TaskStatus::ok()),
        Some(_) => Err(TaskError::Declined("the operator said no")),
        None => Err(TaskError::Declined(
            "pause needs a terminal to ask on (/dev/tty)",
        )),
    }
}
