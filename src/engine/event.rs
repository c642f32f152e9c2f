//! What the engine reports: per-host events while a run goes on, and each
//! host's final result. Printers consume these; the binary maps results to
//! an exit code.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

pub use crate::ssh::Stream;
use crate::ssh::{Kill, SshError};

/// One thing that happened on one host; `host` indexes the run's host list.
#[derive(Debug, Clone)]
pub enum Event {
    /// The host got a slot and the engine started connecting.
    Started { host: usize },
    /// Bytes the remote command wrote, in order, exactly as received.
    Output {
        host: usize,
        stream: Stream,
        data: Bytes,
    },
    /// The host is done; no more events for it follow.
    Finished {
        host: usize,
        result: Arc<HostResult>,
    },
}

/// How a host's part of the run ended.
#[derive(Debug)]
pub enum Outcome {
    /// The command ran and exited with this status.
    Exited(u32),
    /// The probe found the host already as wanted; nothing was run or sent.
    Unchanged,
    /// The command was killed by a signal on the host.
    Signaled(String),
    /// The command outlived `-t`; it was killed on the host (or the host
    /// did not confirm it).
    TimedOut(Kill),
    /// Ctrl-C (or TERM, HUP) arrived while the host was running; its
    /// command was killed (or the host did not confirm it).
    Interrupted(Kill),
    /// The run was cancelled before this host started.
    Cancelled,
    /// The host could not be reached, authenticated, or kept connected.
    Failed(SshError),
    /// What the probe found rules the job out on this host (why): a
    /// destination of the wrong kind, an answer that cannot be read.
    NotPlanned(String),
    /// A bug in fleet stopped this host's task; the rest of the run went on.
    Internal(String),
}

/// Broad classes of outcomes, for counts and exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Category {
    Ok,
    /// Nothing needed doing (pcp --skip-unchanged).
    Unchanged,
    /// The command ran and failed (non-zero exit or a signal).
    Failed,
    TimedOut,
    /// Connecting failed: refused, no route, or connect timeout.
    Unreachable,
    /// Reached, but SSH refused us or broke: host key, auth, protocol.
    SshError,
    /// Interrupted or cancelled by the operator.
    Interrupted,
    Internal,
}

impl Category {
    /// Whether the host ended as wanted.
    pub fn is_success(self) -> bool {
        matches!(self, Category::Ok | Category::Unchanged)
    }
}

impl Outcome {
    /// The class of this outcome.
    pub fn category(&self) -> Category {
        match self {
            Outcome::Exited(0) => Category::Ok,
            Outcome::Unchanged => Category::Unchanged,
            Outcome::Exited(_) | Outcome::Signaled(_) | Outcome::NotPlanned(_) => Category::Failed,
            Outcome::TimedOut(_) => Category::TimedOut,
            Outcome::Interrupted(_) | Outcome::Cancelled => Category::Interrupted,
            Outcome::Failed(error) if error.is_command_refused() => Category::Failed,
            Outcome::Failed(error) if error.is_unreachable() => Category::Unreachable,
            Outcome::Failed(_) => Category::SshError,
            Outcome::Internal(_) => Category::Internal,
        }
    }

    /// pssh's wording for a failure, or `None` for success.
    pub fn failure_reason(&self) -> Option<String> {
        match self {
            Outcome::Exited(0) | Outcome::Unchanged => None,
            Outcome::Exited(code) => Some(format!("Exited with error code {code}")),
            Outcome::Signaled(signal) => Some(format!("Killed by signal {signal}")),
            Outcome::TimedOut(kill) => Some(format!("Timed out{}", kill_note(kill))),
            Outcome::Interrupted(kill) => Some(format!("Interrupted{}", kill_note(kill))),
            Outcome::Cancelled => Some("Cancelled before it started".into()),
            Outcome::Failed(error) => Some(error.to_string()),
            Outcome::NotPlanned(why) => Some(why.clone()),
            Outcome::Internal(message) => Some(format!("internal error: {message}")),
        }
    }

    /// [`Outcome::failure_reason`] without what differs per host, for
    /// summaries that group hosts failing alike.
    pub fn summary_reason(&self) -> Option<String> {
        match self {
            Outcome::Failed(error) => Some(error.summary_reason()),
            other => other.failure_reason(),
        }
    }
}

/// Nothing when the kill was confirmed; otherwise the warning that the
/// command may still be running.
fn kill_note(kill: &Kill) -> &'static str {
    match kill {
        Kill::Confirmed => "",
        Kill::NotConfirmed(_) => " (remote process may still run: KILL not confirmed)",
    }
}

/// What a planned job changed on a host (prsync's counts), or would
/// change in a dry run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Changes {
    pub created: u64,
    pub updated: u64,
    pub deleted: u64,
    /// Bytes of file content sent.
    pub bytes: u64,
}

impl Changes {
    /// Whether anything was (or would be) sent or deleted.
    pub fn any(&self) -> bool {
        *self != Changes::default()
    }

    pub fn add(&mut self, other: &Changes) {
        self.created += other.created;
        self.updated += other.updated;
        self.deleted += other.deleted;
        self.bytes += other.bytes;
    }
}

impl std::fmt::Display for Changes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} created, {} updated, {} deleted, {} bytes",
            self.created, self.updated, self.deleted, self.bytes
        )
    }
}

/// A host's final result.
#[derive(Debug)]
pub struct HostResult {
    pub outcome: Outcome,
    /// What a planned job changed (set only when all of it was done).
    pub changes: Option<Changes>,
    /// When the engine started on the host (None if it never did).
    pub started_at: Option<SystemTime>,
    /// Connect plus command time.
    pub duration: Duration,
}
