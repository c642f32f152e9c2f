//! `assert:` a command whose trimmed stdout must equal a value or match a
//! wildcard pattern. It only reads: `ok` when it holds.

use super::{Done, Step, TaskError, TaskStatus};
use crate::pattern::wildcard_match;
use crate::playbook::spec::AssertSpec;

pub async fn assert(step: Step<'_>, spec: &AssertSpec) -> Done {
    let command = step.expand(&spec.command)?;
    let captured = step.remote.exec(&command, &[], step.timeout).await?;
    captured.accepted(&[0])?;
    let got = captured.stdout.trim();
    let (holds, wanted) = match (&spec.equals, &spec.matches) {
        (Some(equals), _) => {
            let equals = step.expand(equals)?;
            (got == equals, format!("`{equals}`"))
        }
        (None, Some(pattern)) => {
            let pattern = step.expand(pattern)?;
            (
                wildcard_match(&pattern, got),
                format!("a match of `{pattern}`"),
            )
        }
        (None, None) => (true, String::new()),
    };
    match holds {
        true => Ok(TaskStatus::ok()),
        false => Err(TaskError::Assert {
            got: got.to_string(),
            wanted,
            message: spec
                .message
                .as_deref()
                .map(|m| step.expand(m))
                .transpose()?,
        }),
    }
}
