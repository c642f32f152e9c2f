//! `run:` a shell command. It changed the host unless the task says it only
//! reads (`read_only`) or `changed_when:` says how to tell; an exit code of
//! `ok_codes` other than 0 is accepted and said.

use super::{Step, TaskError, TaskStatus};
use crate::pattern::wildcard_match;
use crate::playbook::spec::ChangedWhen;

/// How a `run` task is judged: its accepted exit codes and how it changes.
pub struct RunRules<'a> {
    pub ok_codes: &'a [u32],
    pub read_only: bool,
    pub changed_when: Option<&'a ChangedWhen>,
}

/// Runs `command`; returns its status and its trimmed stdout (for `register`).
pub async fn run(
    step: Step<'_>,
    command: &str,
    rules: RunRules<'_>,
) -> Result<(TaskStatus, String), TaskError> {
    let command = step.expand(command)?;
    let captured = step.remote.exec(&command, &[], step.timeout).await?;
    let mut ok_codes = rules.ok_codes.to_vec();
    if let Some(ChangedWhen::ExitCode(code)) = rules.changed_when {
        ok_codes.push(*code);
    }
    let code = captured.accepted(&ok_codes)?;
    let note = match code {
        0 => String::new(),
        code => format!("exit {code}, accepted"),
    };
    let changed = match rules.changed_when {
        Some(ChangedWhen::Always(changed)) => *changed,
        Some(ChangedWhen::ExitCode(changing)) => code == *changing,
        Some(ChangedWhen::Output(pattern)) => captured
            .stdout
            .lines()
            .any(|line| wildcard_match(pattern, line)),
        None => !rules.read_only,
    };
    let status = match changed {
        true => TaskStatus::Changed(note),
        false => TaskStatus::Ok(note),
    };
    Ok((status, captured.stdout.trim().to_string()))
}
