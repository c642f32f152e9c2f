//! The operator's request to stop a run, as the binary hears it (a signal)
//! and the run sees it: a token to watch, and the words that tell the
//! operator what happens now, which the run prints as a notice in its
//! output (never across its progress line). Before the run begins (files
//! being read, the operator being prompted) there is nothing to stop
//! gracefully, and the binary ends the process instead.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use tokio_util::sync::CancellationToken;

/// A stop that may be requested once; cloning shares it.
#[derive(Debug, Clone, Default)]
pub struct Stop {
    token: CancellationToken,
    words: Arc<OnceLock<String>>,
    engaged: Arc<AtomicBool>,
}

impl Stop {
    pub fn new() -> Stop {
        Stop::default()
    }

    /// Asks the run to stop; the first request's `words` are the ones said.
    pub fn request(&self, words: impl Into<String>) {
        let _ = self.words.set(words.into());
        self.token.cancel();
    }

    /// Says that the run has begun and handles a stop from now on.
    pub fn engage(&self) {
        self.engaged.store(true, Ordering::SeqCst);
    }

    /// Whether a run handles a stop yet; if not, the process should end.
    pub fn is_engaged(&self) -> bool {
        self.engaged.load(Ordering::SeqCst)
    }

    /// The token the run watches.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// Waits until a stop is requested; what to tell the operator, if anything.
    pub async fn requested(&self) -> Option<String> {
        self.token.cancelled().await;
        self.words.get().cloned()
    }
}
