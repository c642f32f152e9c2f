//! `reboot:` the verified reboot. A host counts as rebooted only when its
//! connection dropped, it answered again with a different boot_id, its test
//! command passed, and it then stayed up (same boot_id, connection held)
//! for a while. Each phase has its own timeout and reports its duration.
//! Going down and staying up wait on the connection's end; coming back
//! and the test retry twice a second, jittered (see `attempt_gap`).

use std::time::Duration;

use tokio::time::Instant;

use super::wait_for::until_success;
use super::{Step, TaskError, TaskStatus};
use crate::playbook::journal::{now, Entry, Recorder};
use crate::playbook::remote::{Facts, Remote};
use crate::playbook::replay::RebootMark;
use crate::playbook::spec::RebootSpec;
use crate::playbook::vars::Vars;
use crate::playbook::Phase;
use crate::ssh::RemoteExit;

/// The shortest time from one reconnection attempt's start to the next:
/// at most two a second per host, however fast a refusal comes back.
const ATTEMPT_GAP: Duration = Duration::from_millis(500);
/// Up to this much is added to each gap at random, so that a batch's hosts,
/// which went down together, are not knocked on in step.
const ATTEMPT_JITTER: Duration = Duration::from_millis(100);
/// How long the reboot command gets to fail clearly before the host is
/// taken to be going down.
const COMMAND_GRACE: Duration = Duration::from_secs(5);

/// Where the reboot is recorded: the host and the task.
pub struct At<'a> {
    pub recorder: &'a Recorder,
    pub host: &'a str,
    pub phase: Phase,
    pub task: usize,
}

/// Runs a reboot task; returns its status and the host's facts after it. A
/// resumed run whose journal shows this reboot sent (`mark.sent`), or
/// started from a boot_id the host no longer has, skips straight to
/// waiting for the host: a host is never rebooted twice.
pub async fn reboot(
    mut step: Step<'_>,
    spec: &RebootSpec,
    mark: Option<RebootMark>,
    at: At<'_>,
) -> Result<(TaskStatus, Facts), TaskError> {
    let mut report = Vec::new();
    let old = match mark {
        Some(mark) if mark.sent => {
            report.push("resumed after the reboot was sent".to_string());
            if !reboot_under_way(step.remote, &mark.boot_id, spec.down_timeout.0).await {
                // The journal says sent, the host says not: fleet was killed
                // between the two. The boot_id proves it never rebooted.
                report.push("it never reached the host; sent now".to_string());
                let down = send(&mut step, spec, &mark.boot_id, &at).await?;
                report.push(format!("down {:.1}s", down.as_secs_f64()));
            }
            mark.boot_id
        }
        mark => {
            let booted = step.remote.boot_id().await?;
            match mark {
                Some(mark) if mark.boot_id != booted => {
                    report.push("resumed: the host had rebooted already".to_string());
                    mark.boot_id
                }
                _ => {
                    let down = send(&mut step, spec, &booted, &at).await?;
                    report.push(format!("down {:.1}s", down.as_secs_f64()));
                    booted
                }
            }
        }
    };
    let clock = Instant::now();
    come_up(step.remote, &old, spec.up_timeout.0).await?;
    at.recorder
        .record(Entry::RebootUp {
            host: at.host.to_string(),
            task: at.task,
            time: now(),
        })
        .await;
    report.push(format!("up {:.1}s", clock.elapsed().as_secs_f64()));
    let facts = step.remote.facts().await?;
    let clock = Instant::now();
    let test = expand_after(&spec.test_command, step.vars, &facts)?;
    until_success(step.remote, &test, spec.test_timeout.0, attempt_gap)
        .await
        .map_err(|error| error.in_phase("test"))?;
    report.push(format!("test {:.1}s", clock.elapsed().as_secs_f64()));
    stay_up(step.remote, &facts.boot_id, spec.stable_for.0).await?;
    report.push(format!("stable {:.0}s", spec.stable_for.0.as_secs_f64()));
    Ok((TaskStatus::Changed(report.join(", ")), facts))
}

/// Journals the reboot as sent, sends it and waits for the host to go
/// down; returns how long that took.
async fn send(
    step: &mut Step<'_>,
    spec: &RebootSpec,
    boot_id: &str,
    at: &At<'_>,
) -> Result<Duration, TaskError> {
    at.recorder
        .record(Entry::RebootIssued {
            host: at.host.to_string(),
            phase: at.phase,
            task: at.task,
            boot_id: boot_id.to_string(),
            time: now(),
        })
        .await;
    let clock = Instant::now();
    go_down(step, spec).await?;
    Ok(clock.elapsed())
}

/// Sends the reboot command and waits for the connection to end. The
/// command may never report back (the host is going down); only a quick,
/// clear failure of it counts as an error.
async fn go_down(step: &mut Step<'_>, spec: &RebootSpec) -> Result<(), TaskError> {
    let command = step.expand(&spec.command)?;
    let deadline = Instant::now() + spec.down_timeout.0;
    let remote = &mut *step.remote;
    let sent = tokio::time::timeout(COMMAND_GRACE, remote.exec(&command, &[], None)).await;
    if let Ok(Ok(captured)) = &sent {
        if let RemoteExit::Code(1..) = captured.exit {
            return Err(TaskError::NotReturned(format!(
                "`{command}` failed: {}",
                captured.failure()
            )));
        }
    }
    tokio::select! {
        _ = remote.closed() => {}
        _ = tokio::time::sleep_until(deadline) => {
            return Err(TaskError::NotReturned(format!(
                "did not go down within {:?} after `{command}`",
                spec.down_timeout.0
            )))
        }
        _ = remote.abort().cancelled() => return Err(TaskError::Aborted),
    }
    remote.disconnect().await;
    Ok(())
}

/// After a resume, whether a reboot journaled as sent is happening or has
/// happened: the host is unreachable, answers with another boot_id, or
/// goes away within `down_timeout`. A host still up on the `old` boot
/// after that never got the reboot.
async fn reboot_under_way(remote: &mut Remote, old: &str, down_timeout: Duration) -> bool {
    match remote.boot_id().await {
        Ok(booted) if booted == old => tokio::time::timeout(down_timeout, remote.closed())
            .await
            .is_ok(),
        _ => true,
    }
}

/// The gap before the next attempt: [`ATTEMPT_GAP`] plus jitter. Not a
/// backoff: a host back from its reboot is noticed within about half a
/// second however long it was down, and an attempt on a host still down
/// is a refused (or unanswered) connection, cheap for both ends.
fn attempt_gap() -> Duration {
    use std::hash::{BuildHasher, Hasher};
    // A fresh RandomState is seeded from the OS: enough randomness for jitter.
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let jitter = ATTEMPT_JITTER.as_micros() as u64;
    ATTEMPT_GAP + Duration::from_micros(random % (jitter + 1))
}

/// Reconnects, at most two attempts a second, until the host answers with
/// a boot_id other than `old`. The first attempt is made as soon as the old
/// connection is gone. A host that answers with a changed key or refuses
/// us will not do better by waiting: that fails at once.
async fn come_up(remote: &mut Remote, old: &str, timeout: Duration) -> Result<(), TaskError> {
    let deadline = Instant::now() + timeout;
    loop {
        let next = Instant::now() + attempt_gap();
        let last = match remote.boot_id().await {
            Ok(boot_id) if boot_id != old => return Ok(()),
            Ok(_) => "still the old boot_id".to_string(),
            Err(TaskError::Ssh(error)) if error.is_permanent() => {
                return Err(TaskError::CameBackRefused(error))
            }
            Err(TaskError::Aborted) => return Err(TaskError::Aborted),
            Err(error) => error.to_string(),
        };
        remote.disconnect().await;
        if next > deadline {
            return Err(TaskError::NotReturned(format!(
                "did not come back within {timeout:?} (last: {last})"
            )));
        }
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = remote.abort().cancelled() => return Err(TaskError::Aborted),
        }
    }
}

/// The host must keep its connection and its boot_id for `period`: the
/// wait ends early only if the connection does.
async fn stay_up(remote: &mut Remote, booted: &str, period: Duration) -> Result<(), TaskError> {
    remote.session().await.map_err(|e| e.in_phase("stable"))?;
    let lost = tokio::select! {
        _ = remote.closed() => true,
        _ = tokio::time::sleep(period) => false,
        _ = remote.abort().cancelled() => return Err(TaskError::Aborted),
    };
    if lost {
        return Err(TaskError::NotReturned(
            "stable: the connection dropped while it had to stay up".into(),
        ));
    }
    match remote.boot_id().await {
        Ok(boot_id) if boot_id == booted => Ok(()),
        Ok(_) => Err(TaskError::NotReturned(
            "rebooted again while it had to stay up".into(),
        )),
        Err(error) => Err(error.in_phase("stable")),
    }
}

/// `text` expanded with the host's variables, its facts as they are after
/// the reboot (the kernel may have changed).
fn expand_after(text: &str, vars: &Vars, facts: &Facts) -> Result<String, TaskError> {
    let mut vars = vars.clone();
    facts.set_in(&mut vars);
    Ok(crate::playbook::vars::expand(text, &vars)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two attempts a second at most, and never slower than 0.6 s apart;
    /// the gaps differ, so hosts that went down together drift apart.
    #[test]
    fn attempts_are_half_a_second_apart_with_jitter() {
        let gaps: Vec<Duration> = (0..200).map(|_| attempt_gap()).collect();
        assert!(gaps.iter().all(|gap| *gap >= ATTEMPT_GAP));
        assert!(gaps.iter().all(|gap| *gap <= ATTEMPT_GAP + ATTEMPT_JITTER));
        let distinct: std::collections::HashSet<&Duration> = gaps.iter().collect();
        assert!(
            distinct.len() > 100,
            "{} distinct gaps of 200",
            distinct.len()
        );
    }
}
