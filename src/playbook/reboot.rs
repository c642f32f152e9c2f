//! The verified reboot: a host counts as rebooted only when its connection
//! dropped, it answered again with a different boot_id, its test command
//! passed, and it then stayed reachable for a while. Each phase has its own
//! timeout and reports its duration.

use std::time::{Duration, Instant};

use super::host::{is_uuid, HostRun, TaskError};
use super::journal::{now, Entry};
use super::rollout::TaskStatus;
use super::spec::RebootSpec;
use super::Phase;

/// Longest pause between reconnection attempts (an attempt on a host that
/// is still down is a refused TCP connection: cheap).
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How often the old connection is checked while waiting for it to drop.
const DOWN_POLL: Duration = Duration::from_millis(100);
/// Every this many polls, a command checks that the connection still works.
const PROBE_EVERY: u32 = 20;
/// How often a returned host is checked while it must stay up.
const STABLE_POLL: Duration = Duration::from_secs(1);

const BOOT_ID: &str = "cat /proc/sys/kernel/random/boot_id";

/// Runs a reboot task. A resumed run whose journal shows this reboot sent,
/// or shows it started from a boot_id the host no longer has (the crash
/// lost the line saying it was sent), skips straight to waiting for the
/// host: a host is never rebooted twice.
pub async fn reboot(
    host: &mut HostRun,
    phase: Phase,
    index: usize,
    spec: &RebootSpec,
) -> Result<TaskStatus, TaskError> {
    let mut report = Vec::new();
    let mark = host
        .reboot_mark
        .take()
        .filter(|mark| mark.phase == phase && mark.task == index);
    let old = match mark {
        Some(mark) if mark.sent => {
            report.push("resumed after the reboot was sent".to_string());
            mark.boot_id
        }
        mark => {
            let now_booted = read_boot_id(host).await?;
            match mark {
                Some(mark) if mark.boot_id != now_booted => {
                    report.push("resumed: the host had rebooted already".to_string());
                    mark.boot_id
                }
                _ => {
                    let down = send_reboot(host, phase, index, spec, &now_booted).await?;
                    report.push(format!("down {:.1}s", down.as_secs_f64()));
                    now_booted
                }
            }
        }
    };
    let clock = Instant::now();
    come_up(host, &old, spec.up_timeout.0).await?;
    host.journal(Entry::RebootUp {
        host: host.label.clone(),
        task: index,
        time: now(),
    })
    .await;
    report.push(format!("up {:.1}s", clock.elapsed().as_secs_f64()));
    host.gather_facts().await?;
    let clock = Instant::now();
    let test = host.expand(&spec.test_command)?;
    host.wait_for(&test, spec.test_timeout.0, Duration::from_secs(1))
        .await
        .map_err(|error| in_phase("test", error))?;
    report.push(format!("test {:.1}s", clock.elapsed().as_secs_f64()));
    stay_up(host, spec.stable_for.0).await?;
    report.push(format!("stable {:.0}s", spec.stable_for.0.as_secs_f64()));
    Ok(TaskStatus::Done(report.join(", ")))
}

/// Journals the reboot as sent, sends it and waits for the host to go
/// down; returns how long that took.
async fn send_reboot(
    host: &mut HostRun,
    phase: Phase,
    index: usize,
    spec: &RebootSpec,
    boot_id: &str,
) -> Result<Duration, TaskError> {
    host.journal(Entry::RebootIssued {
        host: host.label.clone(),
        phase,
        task: index,
        boot_id: boot_id.to_string(),
        time: now(),
    })
    .await;
    let clock = Instant::now();
    go_down(host, spec).await?;
    Ok(clock.elapsed())
}

/// The host's current boot_id.
pub(super) async fn read_boot_id(host: &mut HostRun) -> Result<String, TaskError> {
    let captured = host
        .exec(BOOT_ID, &[], Some(Duration::from_secs(30)))
        .await?;
    let boot_id = captured.stdout.trim().to_string();
    match is_uuid(&boot_id) {
        true => Ok(boot_id),
        false => Err(TaskError::Failed(format!(
            "boot_id is not a UUID (`{boot_id}`): {}",
            captured.failure()
        ))),
    }
}

/// Sends the reboot command and waits for the connection to drop. The
/// command may never report back (the host is going down); only a quick,
/// clear failure of it counts as an error.
async fn go_down(host: &mut HostRun, spec: &RebootSpec) -> Result<(), TaskError> {
    let command = host.expand(&spec.command)?;
    let deadline = Instant::now() + spec.down_timeout.0;
    let sent = tokio::time::timeout(Duration::from_secs(5), host.exec(&command, &[], None)).await;
    if let Ok(Ok(captured)) = &sent {
        if let crate::ssh::RemoteExit::Code(code @ 1..) = captured.exit {
            return Err(TaskError::Failed(format!(
                "`{command}` failed: exit {code}: {}",
                captured.stderr.trim()
            )));
        }
    }
    let mut polls = 0u32;
    while Instant::now() < deadline {
        if host.ctx.abort.is_cancelled() {
            return Err(TaskError::Aborted);
        }
        // A closed connection is seen at once; a command probe (which costs
        // the host a shell) only every PROBE_EVERY polls.
        polls += 1;
        if host.is_disconnected()
            || (polls.is_multiple_of(PROBE_EVERY) && !still_connected(host).await)
        {
            host.disconnect().await;
            return Ok(());
        }
        tokio::time::sleep(DOWN_POLL).await;
    }
    Err(TaskError::Failed(format!(
        "did not go down within {:?} after `{command}`",
        spec.down_timeout.0
    )))
}

/// Whether the connection still runs commands (a host that lost power
/// never closes it; a probe that does not answer counts as down).
async fn still_connected(host: &mut HostRun) -> bool {
    let probe = host.exec("true", &[], Some(Duration::from_secs(2)));
    matches!(
        tokio::time::timeout(Duration::from_secs(3), probe).await,
        Ok(Ok(captured)) if captured.exit == crate::ssh::RemoteExit::Code(0)
    )
}

/// Reconnects with capped backoff until the host answers with a boot_id
/// other than `old`.
async fn come_up(host: &mut HostRun, old: &str, timeout: Duration) -> Result<(), TaskError> {
    let deadline = Instant::now() + timeout;
    let mut backoff = Duration::from_millis(200);
    loop {
        let last = match read_boot_id(host).await {
            Ok(boot_id) if boot_id != old => return Ok(()),
            Ok(_) => "still the old boot_id".to_string(),
            // A host that answers with a changed key or refuses us will not
            // do better by waiting: say so now, not after up_timeout.
            Err(TaskError::Ssh(error)) if error.is_permanent() => {
                return Err(TaskError::Failed(format!("came back, but {error}")))
            }
            Err(TaskError::Aborted) => return Err(TaskError::Aborted),
            Err(error) => error.to_string(),
        };
        host.disconnect().await;
        if Instant::now() + backoff > deadline {
            return Err(TaskError::Failed(format!(
                "did not come back within {timeout:?} (last: {last})"
            )));
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = host.ctx.abort.cancelled() => return Err(TaskError::Aborted),
        }
        backoff = backoff.mul_f32(1.5).min(MAX_BACKOFF);
    }
}

/// The host must answer, with the same boot_id, for `period`.
async fn stay_up(host: &mut HostRun, period: Duration) -> Result<(), TaskError> {
    let booted = read_boot_id(host)
        .await
        .map_err(|e| in_phase("stable", e))?;
    let until = Instant::now() + period;
    while Instant::now() < until {
        tokio::select! {
            _ = tokio::time::sleep(STABLE_POLL.min(until - Instant::now())) => {}
            _ = host.ctx.abort.cancelled() => return Err(TaskError::Aborted),
        }
        match read_boot_id(host).await {
            Ok(boot_id) if boot_id == booted => {}
            Ok(_) => {
                return Err(TaskError::Failed(
                    "rebooted again while it had to stay up".into(),
                ))
            }
            Err(error) => return Err(in_phase("stable", error)),
        }
    }
    Ok(())
}

fn in_phase(phase: &str, error: TaskError) -> TaskError {
    match error {
        TaskError::Aborted => TaskError::Aborted,
        other => TaskError::Failed(format!("{phase}: {other}")),
    }
}
