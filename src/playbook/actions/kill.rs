//! `kill:` pnuke's semantics on one host: processes matching a pattern get
//! a signal, pid 1 and the host's sshd spared unless `force`.

use super::{Done, Step, TaskStatus};
use crate::playbook::spec::KillSpec;
use crate::ssh::Nuke;

pub async fn kill(step: Step<'_>, spec: &KillSpec) -> Done {
    let nuke = Nuke {
        pattern: step.expand(&spec.pattern)?,
        signal: spec.signal.clone(),
        list: false,
        force: spec.force,
    };
    let captured = step.remote.exec(&nuke.script(), &[], step.timeout).await?;
    captured.accepted(&[0])?;
    let first = captured.stdout.lines().next().unwrap_or_default().trim();
    Ok(match Nuke::signalled_none(first) {
        true => TaskStatus::Ok(first.to_string()),
        false => TaskStatus::Changed(first.to_string()),
    })
}
