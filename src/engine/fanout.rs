//! The one bounded fan-out every tool runs its hosts through: at most
//! `limit` host tasks at once, a permit taken *before* a task is spawned
//! (so a run of 10,000 hosts holds 10,000 futures never, `limit` always),
//! each task under a span naming its host, and a task that panics reported
//! as that host's failure instead of taking the run down. What a host task
//! does (one command, a playbook's tasks) and in what order hosts start
//! (all, a batch, a window) is for the caller.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::{Id, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Host tasks in flight, each returning a `T`.
pub struct FanOut<T> {
    limit: usize,
    slots: Arc<Semaphore>,
    tasks: JoinSet<T>,
    /// Which host each task is, to report a task that died.
    hosts: HashMap<Id, usize>,
}

impl<T: Send + 'static> FanOut<T> {
    /// At most `limit` (at least 1) host tasks at once.
    pub fn new(limit: usize) -> Self {
        FanOut {
            limit: limit.max(1),
            slots: Arc::new(Semaphore::new(limit.max(1))),
            tasks: JoinSet::new(),
            hosts: HashMap::new(),
        }
    }

    /// Waits for a free slot, then starts `work` for host `index` (`label`
    /// names it in every log line of the task). Returns false, starting
    /// nothing, when `cancel` fires first.
    pub async fn start(
        &mut self,
        index: usize,
        label: &str,
        cancel: &CancellationToken,
        work: impl Future<Output = T> + Send + 'static,
    ) -> bool {
        let permit = tokio::select! {
            biased;
            _ = cancel.cancelled() => return false,
            permit = Arc::clone(&self.slots).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return false,
            },
        };
        // At warn level, so the warnings a host causes name it.
        let span = tracing::warn_span!("host", host = %label);
        let handle = self.tasks.spawn(
            async move {
                let result = work.await;
                drop(permit);
                result
            }
            .instrument(span),
        );
        self.hosts.insert(handle.id(), index);
        true
    }

    /// The next host task to end: its host's index, and its result or why
    /// the task died. `None` once nothing is in flight.
    pub async fn next(&mut self) -> Option<(usize, Result<T, String>)> {
        let joined = self.tasks.join_next_with_id().await?;
        Some(match joined {
            Ok((id, result)) => (self.hosts.remove(&id).unwrap_or_default(), Ok(result)),
            Err(error) => {
                let index = self.hosts.remove(&error.id()).unwrap_or_default();
                (index, Err(error.to_string()))
            }
        })
    }

    /// How many host tasks are running now (holding a slot).
    pub fn running(&self) -> usize {
        self.limit - self.slots.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn never_more_than_the_limit_in_flight() {
        let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let mut fanout = FanOut::new(3);
        let cancel = CancellationToken::new();
        for index in 0..10 {
            let (now, most) = (Arc::clone(&now), Arc::clone(&most));
            let started = fanout
                .start(index, "h", &cancel, async move {
                    let in_flight = now.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(in_flight, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_secs(index as u64 % 4 + 1)).await;
                    now.fetch_sub(1, Ordering::SeqCst);
                    index * 10
                })
                .await;
            assert!(started);
            assert!(fanout.running() <= 3);
        }
        let mut seen = Vec::new();
        while let Some((index, result)) = fanout.next().await {
            assert_eq!(result, Ok(index * 10));
            seen.push(index);
        }
        seen.sort();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        assert_eq!(most.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn cancel_stops_waiting_for_a_slot_and_a_panic_is_reported() {
        let mut fanout = FanOut::new(1);
        let cancel = CancellationToken::new();
        assert!(
            fanout
                .start(0, "h", &cancel, async {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    panic!("boom")
                })
                .await
        );
        let trigger = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            trigger.cancel();
        });
        assert!(!fanout.start(1, "h", &cancel, async {}).await);
        let (index, result) = fanout.next().await.unwrap();
        assert_eq!(index, 0);
        assert!(result.unwrap_err().contains("boom"));
        assert!(fanout.next().await.is_none());
    }
}
