//! Tasks that run somewhere else, or once for many hosts. `delegate_to`
//! sends a host's task to this machine or to another inventory host, whose
//! connection is made once and kept for the play; `run_once` runs a task on
//! the first host that gets to it and hands its outcome and registered
//! value to every other host of the play (of the batch, in batch hooks).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{Mutex as AsyncMutex, OnceCell, OwnedMutexGuard};
use tokio_util::sync::CancellationToken;

use super::error::TaskError;
use super::event::TaskStatus;
use super::remote::{Remote, LOCALHOST};
use super::Phase;
use crate::model::Host;
use crate::ssh::Connector;

/// The hosts tasks may be delegated to, and their open connections.
pub struct Delegates {
    connector: Arc<Connector>,
    abort: CancellationToken,
    /// Inventory hosts a task names in `delegate_to`, by name.
    hosts: HashMap<String, Host>,
    /// One connection per delegated host, made when first needed; a task
    /// holds it while it runs.
    open: Mutex<HashMap<String, Arc<AsyncMutex<Remote>>>>,
    /// Delegated hosts that could not be reached, with why: the play's
    /// other hosts fail at once instead of each waiting out the timeout.
    unreachable: Mutex<HashMap<String, String>>,
}

/// Where a delegated task runs: a local "connection" of its own, or the
/// delegated host's shared one, held for the task.
pub enum Delegated {
    Local(Box<Remote>),
    Pooled(OwnedMutexGuard<Remote>),
}

impl Delegated {
    pub fn remote(&mut self) -> &mut Remote {
        match self {
            Delegated::Local(remote) => remote,
            Delegated::Pooled(guard) => guard,
        }
    }
}

impl Delegates {
    pub fn new(
        connector: Arc<Connector>,
        abort: CancellationToken,
        hosts: HashMap<String, Host>,
    ) -> Delegates {
        Delegates {
            connector,
            abort,
            hosts,
            open: Mutex::new(HashMap::new()),
            unreachable: Mutex::new(HashMap::new()),
        }
    }

    /// The place `name` (`localhost` or an inventory host) runs tasks.
    pub async fn get(&self, name: &str) -> Result<Delegated, TaskError> {
        if name == LOCALHOST {
            let local = Remote::local(Arc::clone(&self.connector), self.abort.clone());
            return Ok(Delegated::Local(Box::new(local)));
        }
        let host = self.hosts.get(name).ok_or_else(|| {
            TaskError::Local(format!("delegate_to {name}: not a host of the inventory"))
        })?;
        let failed = |why: &str| TaskError::Local(format!("delegate_to {name}: {why}"));
        if let Some(why) = lock(&self.unreachable).get(name) {
            return Err(failed(why));
        }
        let slot = {
            let mut open = lock(&self.open);
            let slot = open.entry(name.to_string()).or_insert_with(|| {
                let remote = Remote::new(
                    Arc::clone(&self.connector),
                    host.clone(),
                    self.abort.clone(),
                );
                Arc::new(AsyncMutex::new(remote))
            });
            Arc::clone(slot)
        };
        let mut remote = slot.lock_owned().await;
        // Another host may have found it unreachable while this one waited.
        if let Some(why) = lock(&self.unreachable).get(name) {
            return Err(failed(why));
        }
        if let Err(error) = remote.session().await {
            if matches!(error, TaskError::Aborted) {
                return Err(error);
            }
            let why = error.to_string();
            lock(&self.unreachable).insert(name.to_string(), why.clone());
            return Err(failed(&why));
        }
        Ok(Delegated::Pooled(remote))
    }

    /// Closes the connections of the play.
    pub async fn close(&self) {
        let open: Vec<_> = {
            let mut open = lock(&self.open);
            open.drain().map(|(_, slot)| slot).collect()
        };
        for slot in open {
            slot.lock().await.disconnect().await;
        }
    }
}

/// What a `run_once` task left for the other hosts.
#[derive(Debug, Clone)]
pub struct Once {
    /// The host it ran on.
    pub host: String,
    /// Its status, or why it failed (`None`: it was aborted).
    pub outcome: Result<TaskStatus, Option<String>>,
    /// What it registered.
    pub register: Option<String>,
}

impl Once {
    /// The outcome as another host's: the same status, said to come from
    /// the host it ran on.
    pub fn for_another_host(&self) -> Result<TaskStatus, TaskError> {
        let on = format!("run once, on {}", self.host);
        match &self.outcome {
            Ok(TaskStatus::Ok(_)) => Ok(TaskStatus::Ok(on)),
            Ok(TaskStatus::Changed(_)) => Ok(TaskStatus::Changed(on)),
            Ok(TaskStatus::Skipped(why)) => Ok(TaskStatus::Skipped(format!("{why} ({on})"))),
            Ok(other) => Ok(other.clone()),
            Err(Some(why)) => Err(TaskError::Local(format!("{on}: {why}"))),
            Err(None) => Err(TaskError::Aborted),
        }
    }
}

/// A `run_once` task's place: phase, task, and batch (0 outside hooks).
type OnceKey = (Phase, usize, usize);

/// The outcomes of `run_once` tasks, by phase, task and batch.
#[derive(Default)]
pub struct RunOnce {
    cells: Mutex<HashMap<OnceKey, Arc<OnceCell<Once>>>>,
    /// The last batch id given out.
    batches: std::sync::atomic::AtomicUsize,
}

impl RunOnce {
    /// An id for a new batch, from 1.
    pub fn new_batch(&self) -> usize {
        self.batches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1
    }

    /// The place of one task's outcome; `batch` is 0 outside batch hooks.
    pub fn cell(&self, phase: Phase, task: usize, batch: usize) -> Arc<OnceCell<Once>> {
        let mut cells = lock(&self.cells);
        Arc::clone(cells.entry((phase, task, batch)).or_default())
    }
}

/// A std mutex's guard; a panic elsewhere while it was held leaves the map
/// as it was, still usable.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
