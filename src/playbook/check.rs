//! `--check`: connect, gather facts, run only what cannot change a host
//! (guards, checksum probes, tasks marked `read_only`), and say what every
//! other task would do. Nothing is written on any host, nor a journal. A
//! scheduler on the one fan-out, like preflight and the rolling.

use std::sync::Arc;
use std::time::Instant;

use super::actions::{copy, sync, Step};
use super::error::TaskError;
use super::event::TaskStatus;
use super::host::HostRun;
use super::{Action, Phase, Task};
use crate::engine::FanOut;

/// What `--check` found: hosts that could not be checked, and hosts where
/// a task that may run under `--check` failed (an assertion, a probe), each
/// with why.
#[derive(Debug, Default)]
pub struct Checked {
    pub unchecked: Vec<(String, String)>,
    pub failed: Vec<(String, String)>,
}

/// Checks every host, `parallelism` at a time.
pub async fn check_plan(hosts: Vec<HostRun>, parallelism: usize, start_at: usize) -> Checked {
    let mut fanout = FanOut::new(parallelism);
    let mut labels = Vec::with_capacity(hosts.len());
    for (index, mut host) in hosts.into_iter().enumerate() {
        labels.push(host.label.clone());
        let abort = host.ctx.abort.clone();
        let work = async move {
            let result = check_host(&mut host, start_at).await;
            host.disconnect().await;
            result
        };
        if !fanout.start(index, &labels[index], &abort, work).await {
            break;
        }
    }
    let mut checked = Checked::default();
    while let Some((index, joined)) = fanout.next().await {
        let label = labels[index].clone();
        match joined {
            Ok(Ok(None)) => {}
            Ok(Ok(Some(failure))) => checked.failed.push((label, failure)),
            Ok(Err(error)) => checked.unchecked.push((label, error.to_string())),
            Err(why) => checked.unchecked.push((label, why)),
        }
    }
    checked
}

/// Checks one host; returns the first task that failed, if one did.
async fn check_host(host: &mut HostRun, start_at: usize) -> Result<Option<String>, TaskError> {
    host.gather_facts().await?;
    host.load_sources().await.map_err(TaskError::Local)?;
    let playbook = Arc::clone(&host.ctx.play);
    // Tasks before --start-at-task, and batch hooks, do not run: what they
    // register is unknown.
    let not_run = playbook
        .tasks
        .iter()
        .take(start_at)
        .chain(&playbook.before_batch);
    for task in not_run {
        stand_in_for_register(host, task);
    }
    let mut first_failure = None;
    let phases = [(Phase::Preflight, 0), (Phase::Tasks, start_at)];
    for (phase, first) in phases {
        for (index, task) in playbook.phase(phase).iter().enumerate().skip(first) {
            let clock = Instant::now();
            let (status, detail) = match check_task(host, phase, task).await {
                Ok(status) => (status, String::new()),
                Err(TaskError::Aborted) => return Err(TaskError::Aborted),
                Err(error) => (TaskStatus::Failed, error.to_string()),
            };
            if status == TaskStatus::Failed && first_failure.is_none() {
                first_failure = Some(format!("{}: {detail}", task.name));
            }
            // What would change counts as changed for later `when`s.
            if let TaskStatus::WouldRun(_) | TaskStatus::Changed(_) = status {
                host.changed.insert((phase, index));
            }
            stand_in_for_register(host, task);
            host.emit_task(phase, task, status, clock.elapsed(), detail);
        }
    }
    Ok(first_failure)
}

/// A task that did not run registers `<NAME>`, so that later tasks can
/// still say what they would do.
/// What a task's probe works with on `host`, on its own connection.
fn step_of<'a>(host: &'a mut HostRun, task: &Task) -> Step<'a> {
    Step {
        timeout: host.timeout_of(task),
        remote: &mut host.remote,
        vars: &host.vars,
    }
}

fn stand_in_for_register(host: &mut HostRun, task: &Task) {
    if let Some(name) = &task.register {
        host.vars
            .entry(name.clone())
            .or_insert_with(|| format!("<{name}>"));
    }
}

/// What a task would do: guards and probes run, everything else is told.
async fn check_task(
    host: &mut HostRun,
    phase: Phase,
    task: &Task,
) -> Result<TaskStatus, TaskError> {
    if let Some(reason) = host.skip_reason(task).await? {
        return Ok(TaskStatus::Skipped(reason));
    }
    if task.runs_in_check_mode() {
        return host.perform(phase, 0, task).await;
    }
    let would = match &task.action {
        Action::Copy(spec) => {
            let ctx = Arc::clone(&host.ctx);
            match copy::unchanged(step_of(host, task), spec, &ctx.sources).await? {
                true => return Ok(TaskStatus::Ok("unchanged: the same SHA-256".into())),
                false => format!("install {}", host.expand(&spec.dest)?),
            }
        }
        Action::Sync(spec) => {
            let ctx = Arc::clone(&host.ctx);
            match sync::would(step_of(host, task), spec, &ctx.sources).await? {
                None => return Ok(TaskStatus::Ok("unchanged".into())),
                Some(counts) => format!("sync {}: {counts}", host.expand(&spec.dest)?),
            }
        }
        Action::Run(command) => format!("run `{}`", host.expand(command)?),
        Action::Fetch(fetch) => format!("fetch {}", host.expand(&fetch.src)?),
        Action::Kill(kill) => format!(
            "kill `{}` with {}",
            host.expand(&kill.pattern)?,
            kill.signal
        ),
        Action::Reboot(reboot) => format!("reboot with `{}`", host.expand(&reboot.command)?),
        Action::WaitFor(wait) => format!("wait for `{}`", host.expand(&wait.command)?),
        Action::Assert(assert) => format!("assert on `{}`", host.expand(&assert.command)?),
        Action::Pause(_) => "pause".to_string(),
    };
    Ok(TaskStatus::WouldRun(would))
}
