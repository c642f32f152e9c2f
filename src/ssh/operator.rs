//! Asking the operator, on the terminal, what only they can answer while a
//! host authenticates (a one-time code PAM asks for by keyboard-interactive):
//! one host at a time, each question naming its host, and the time spent
//! waiting for the operator not counted against the host's connect timeout.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::{Ask, SshError};

/// The terminal, shared by every host of a run.
pub(super) struct Operator {
    ask: Option<Arc<Ask>>,
    /// Held while a question is on the terminal: hosts ask in turn.
    turn: tokio::sync::Mutex<()>,
}

impl Operator {
    /// Asks through `ask` (on the terminal, echo off); `None`: no terminal.
    pub fn new(ask: Option<Ask>) -> Operator {
        Operator {
            ask: ask.map(Arc::new),
            turn: tokio::sync::Mutex::new(()),
        }
    }

    /// The operator's answer to `prompt` for host `label`, once the hosts
    /// before it had theirs; `None` without a terminal or an answer.
    pub async fn ask(&self, label: &str, prompt: &str, clock: &OperatorClock) -> Option<String> {
        let ask = Arc::clone(self.ask.as_ref()?);
        let _waiting = clock.waiting();
        let _turn = self.turn.lock().await;
        let question = format!("{label}: {} ", prompt.trim_end());
        tokio::task::spawn_blocking(move || ask(&question))
            .await
            .ok()
            .flatten()
    }
}

/// The time one connection attempt spent waiting for the operator.
#[derive(Default)]
pub(super) struct OperatorClock(Mutex<Waited>);

#[derive(Default)]
struct Waited {
    total: Duration,
    since: Option<Instant>,
}

impl OperatorClock {
    /// Counts from now until the returned guard is dropped.
    fn waiting(&self) -> WaitingGuard<'_> {
        if let Ok(mut waited) = self.0.lock() {
            waited.since = Some(Instant::now());
        }
        WaitingGuard(self)
    }

    /// When an attempt that started at `start` with `limit` times out: its
    /// deadline pushed back by the operator's time, or, while the operator
    /// is being asked, a limit from now (to look again then).
    fn deadline(&self, start: Instant, limit: Duration) -> Instant {
        let now = Instant::now();
        match self.0.lock() {
            Ok(waited) if waited.since.is_some() => now + limit,
            Ok(waited) => start + limit + waited.total,
            Err(_) => start + limit,
        }
    }
}

/// Stops counting the operator's time when dropped.
struct WaitingGuard<'a>(&'a OperatorClock);

impl Drop for WaitingGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut waited) = self.0 .0.lock() {
            if let Some(since) = waited.since.take() {
                waited.total += since.elapsed();
            }
        }
    }
}

/// Runs `work` under `limit`, not counting the time it waits for the
/// operator; past the limit, the connect timeout.
pub(super) async fn within<T>(
    limit: Duration,
    clock: &OperatorClock,
    work: impl Future<Output = Result<T, SshError>>,
) -> Result<T, SshError> {
    let start = Instant::now();
    tokio::pin!(work);
    loop {
        let deadline = clock.deadline(start, limit);
        tokio::select! {
            result = &mut work => return result,
            _ = tokio::time::sleep_until(deadline) => {
                if clock.deadline(start, limit) <= Instant::now() {
                    return Err(SshError::ConnectTimeout(limit));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn time_asking_the_operator_moves_the_deadline() {
        let limit = Duration::from_secs(10);
        let clock = OperatorClock::default();
        let slow_operator = async {
            tokio::time::sleep(Duration::from_secs(4)).await;
            let guard = clock.waiting();
            tokio::time::sleep(Duration::from_secs(60)).await;
            drop(guard);
            tokio::time::sleep(Duration::from_secs(4)).await;
            Ok::<_, SshError>("authenticated")
        };
        assert_eq!(
            within(limit, &clock, slow_operator).await.unwrap(),
            "authenticated"
        );

        let clock = OperatorClock::default();
        let stuck = async {
            tokio::time::sleep(Duration::from_secs(11)).await;
            Ok::<_, SshError>("too late")
        };
        assert!(matches!(
            within(limit, &clock, stuck).await,
            Err(SshError::ConnectTimeout(_))
        ));
    }
}
