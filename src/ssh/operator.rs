//! Asking the operator, on the terminal, what only they can answer while a
//! host authenticates (a one-time code PAM asks for by keyboard-interactive):
//! one host at a time, each question naming its host, and the time spent
//! waiting for the operator not counted against the host's connect timeout.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::{Ask, SshError};

/// The terminal, shared by every host of a run.
pub(super) struct Operator {
    ask: Option<Arc<Ask>>,
    /// Held while a host waits for its question: hosts ask in turn.
    turn: tokio::sync::Mutex<()>,
    /// Held by the thread reading the terminal: a read that outlives its
    /// host (a Ctrl-C while the operator types) still ends before another.
    terminal: Arc<Mutex<()>>,
}

impl Operator {
    /// Asks through `ask` (on the terminal, echo off); `None`: no terminal.
    pub fn new(ask: Option<Ask>) -> Operator {
        Operator {
            ask: ask.map(Arc::new),
            turn: tokio::sync::Mutex::new(()),
            terminal: Arc::new(Mutex::new(())),
        }
    }

    /// The operator's answer to `prompt` for host `label`, once the hosts
    /// before it had theirs; `None` without a terminal or an answer.
    pub async fn ask(&self, label: &str, prompt: &str, clock: &OperatorClock) -> Option<String> {
        let ask = Arc::clone(self.ask.as_ref()?);
        let _waiting = clock.waiting();
        let _turn = self.turn.lock().await;
        let question = format!("{label}: {} ", prompt.trim_end());
        let wanted = Wanted::new();
        let still_wanted = Arc::clone(&wanted.0);
        let terminal = Arc::clone(&self.terminal);
        let (answer, answered) = tokio::sync::oneshot::channel();
        // A thread of its own, not the blocking pool: a read of the
        // terminal cannot be cancelled, and the process must be able to
        // exit without waiting for it.
        std::thread::spawn(move || {
            let _terminal = terminal.lock();
            // The host may have been stopped while an earlier read went on.
            let reply = match still_wanted.load(Ordering::SeqCst) {
                true => ask(&question),
                false => None,
            };
            let _ = answer.send(reply);
        });
        answered.await.ok().flatten()
    }
}

/// Whether a question's host still waits for it: cleared when the host's
/// task is dropped (stopped), so a question not yet on the screen is never
/// shown.
struct Wanted(Arc<AtomicBool>);

impl Wanted {
    fn new() -> Wanted {
        Wanted(Arc::new(AtomicBool::new(true)))
    }
}

impl Drop for Wanted {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
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
