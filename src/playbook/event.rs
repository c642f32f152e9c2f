//! What a playbook run tells the world: events while it goes on (for the
//! printers, the progress line and `--json`), and the report it ends with.
//! The playbook emits them; it prints nothing.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use std::sync::Arc;

use super::error::TaskError;
use super::spec::Mode;
use super::vars::Vars;
use super::Phase;
use crate::engine::Category;

/// Where a playbook run's events go: the output thread's channel, which
/// the output layer (above this one) provides.
pub trait PlaySink: Send + Sync {
    /// Hands over one event; an event nobody listens to any more is dropped.
    fn emit(&self, event: PlayEvent);
}

/// A run's sink for its events, shared by every host.
pub type Events = Arc<dyn PlaySink>;

/// How one task went on one host. A note says more (counts, reboot phase
/// durations, why a file was left alone); it may be empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskStatus {
    Running,
    /// Done, and the host is as it was (an assertion held, the file was
    /// already there, a command that only reads).
    Ok(String),
    /// Done, and it changed the host (a command ran, a file was installed,
    /// the host rebooted).
    Changed(String),
    /// A guard (`when`, `creates`, `unless`) said the task is not needed.
    Skipped(String),
    Failed,
    /// Killed by a second Ctrl-C; the task runs again on `--resume`.
    Aborted,
    /// `--check`: what the task would do.
    WouldRun(String),
}

impl TaskStatus {
    /// Done with nothing to say.
    pub fn ok() -> TaskStatus {
        TaskStatus::Ok(String::new())
    }

    /// Changed with nothing to say.
    pub fn changed() -> TaskStatus {
        TaskStatus::Changed(String::new())
    }

    /// The word in the journal and on the status line.
    pub fn journal_name(&self) -> &'static str {
        match self {
            TaskStatus::Running => "running",
            TaskStatus::Ok(_) => "ok",
            TaskStatus::Changed(_) => "changed",
            TaskStatus::Skipped(_) => "skipped",
            TaskStatus::Failed => "failed",
            TaskStatus::Aborted => "aborted",
            TaskStatus::WouldRun(_) => "would run",
        }
    }
}

/// How a host left the rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostEnd {
    Done,
    Failed(Failure),
    /// Stopped between or inside tasks; `--resume` continues it.
    Stopped,
}

/// Why a host failed, said twice: in full for its own line and the journal,
/// and without what differs from host to host (a host key's fingerprint)
/// for the summary, where a thousand hosts refused alike are one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub detail: String,
    pub reason: String,
}

impl Failure {
    /// A failure said the same way on its line and in the summary.
    pub fn said(text: String) -> Failure {
        Failure {
            reason: text.clone(),
            detail: text,
        }
    }

    /// `error`, after what failed (`facts`, a task's name).
    pub fn of(what: &str, error: &TaskError) -> Failure {
        Failure {
            detail: format!("{what}: {error}"),
            reason: format!("{what}: {}", error.summary_reason()),
        }
    }

    /// Both sayings rewritten alike (a phase before, a note after).
    pub fn map(self, say: impl Fn(&str) -> String) -> Failure {
        Failure {
            detail: say(&self.detail),
            reason: say(&self.reason),
        }
    }
}

/// Something that happened during a rollout, for printers.
#[derive(Debug, Clone)]
pub enum PlayEvent {
    /// Before anything runs: the hosts in the order and groups they will go.
    Plan {
        playbook: String,
        /// The play's number in the file, from 1, and how many there are.
        play: (usize, usize),
        batches: Vec<Vec<String>>,
        mode: Mode,
        max_fail: usize,
        /// What a resumed journal shows of hosts finished before.
        earlier: Earlier,
        journal: Option<PathBuf>,
        /// `--check`: nothing will be changed.
        check: bool,
    },
    /// Preflight begins on this many hosts.
    Preflight {
        hosts: usize,
    },
    /// A batch begins (batch mode), numbered from 1.
    Batch {
        number: usize,
        of: usize,
        hosts: Vec<String>,
    },
    Task {
        host: String,
        phase: Phase,
        task: String,
        status: TaskStatus,
        duration: Duration,
        detail: String,
    },
    HostEnd {
        host: String,
        end: HostEnd,
    },
    /// A line for the operator (a stop, a journal that cannot be written).
    Notice(String),
}

/// How a host that failed in an earlier play of a resumed run is reported
/// when a later play leaves it out.
pub const FAILED_IN_AN_EARLIER_PLAY: &str = "failed in an earlier play";

/// Hosts a resumed journal shows finished in an earlier run.
#[derive(Debug, Clone, Default)]
pub struct Earlier {
    /// Done: not contacted again.
    pub done: Vec<String>,
    /// Failed and left failed (`--skip-failed`), with why.
    pub failed: Vec<(String, String)>,
    /// Failed, and run again now.
    pub retried: usize,
}

/// How a run of a playbook ended; `earlier` accounts for the hosts of the
/// play this run did not touch, so that every host is in the report.
#[derive(Debug, Default)]
pub struct PlayReport {
    pub earlier: Earlier,
    pub done: Vec<String>,
    /// Host and where and why it failed.
    pub failed: Vec<(String, String)>,
    /// Stopped mid-way (Ctrl-C); `--resume` continues them.
    pub stopped: Vec<String>,
    pub not_started: Vec<String>,
    /// Why no new host was started, when it came to that.
    pub stop_reason: Option<String>,
    /// The operator stopped the run (Ctrl-C, TERM, HUP), rather than
    /// failures passing max_fail.
    pub interrupted: bool,
    /// `--check`: hosts that could not be checked, with why.
    pub unchecked: Vec<(String, String)>,
    /// The journal of the run (none under `--check`).
    pub journal: Option<PathBuf>,
    pub elapsed: Duration,
    /// What each host registered, for the plays after this one.
    pub registered: HashMap<String, Vars>,
}

impl PlayReport {
    /// Every host of the play as an outcome class, for the exit code: done
    /// is ok; failed (now, or left failed earlier) failed; stopped or never
    /// started is interrupted when the operator stopped the run, only a
    /// consequence when failures did, and a local failure otherwise (a
    /// journal that could not be written); a host `--check` could not reach
    /// is unreachable.
    pub fn categories(&self) -> impl Iterator<Item = Category> + '_ {
        let no_failures = self.failed.is_empty() && self.earlier.failed.is_empty();
        let stop = match (self.interrupted, no_failures) {
            (true, _) => Some(Category::Interrupted),
            (false, true) => Some(Category::Internal),
            (false, false) => None,
        };
        let done = self
            .done
            .iter()
            .chain(&self.earlier.done)
            .map(|_| Category::Ok);
        let failed = self
            .failed
            .iter()
            .chain(&self.earlier.failed)
            .map(|_| Category::Failed);
        let stopped = self
            .stopped
            .iter()
            .chain(&self.not_started)
            .filter_map(move |_| stop);
        let unchecked = self.unchecked.iter().map(|_| Category::Unreachable);
        done.chain(failed).chain(stopped).chain(unchecked)
    }

    /// Adds the report of a later play: each host is reported as the last
    /// play it was in left it.
    pub fn merge(&mut self, later: PlayReport) {
        let named: HashSet<String> = later.hosts().map(str::to_string).collect();
        let keep = |host: &String| !named.contains(host);
        self.done.retain(keep);
        self.earlier.done.retain(keep);
        self.stopped.retain(keep);
        self.not_started.retain(keep);
        self.failed.retain(|(host, _)| keep(host));
        self.earlier.failed.retain(|(host, _)| keep(host));
        self.unchecked.retain(|(host, _)| keep(host));
        self.done.extend(later.done);
        self.earlier.done.extend(later.earlier.done);
        self.earlier.failed.extend(later.earlier.failed);
        self.earlier.retried += later.earlier.retried;
        self.failed.extend(later.failed);
        self.stopped.extend(later.stopped);
        self.not_started.extend(later.not_started);
        self.unchecked.extend(later.unchecked);
        self.stop_reason = later.stop_reason.or(self.stop_reason.take());
        self.interrupted |= later.interrupted;
        self.journal = later.journal.or(self.journal.take());
        self.elapsed += later.elapsed;
    }

    /// Every host the report names.
    fn hosts(&self) -> impl Iterator<Item = &str> {
        let named = self.done.iter().chain(&self.earlier.done);
        let named = named.chain(&self.stopped).chain(&self.not_started);
        let failed = self.failed.iter().chain(&self.earlier.failed);
        let failed = failed.chain(&self.unchecked).map(|(host, _)| host);
        named.chain(failed).map(String::as_str)
    }

    /// Whether some host is left to finish with `--resume`.
    pub fn unfinished(&self) -> bool {
        !self.stopped.is_empty() || !self.not_started.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_a_later_play_reports_each_host_as_it_last_ended() {
        let mut first = PlayReport {
            done: vec!["a".into(), "b".into(), "c".into()],
            failed: vec![("d".into(), "broke".into())],
            elapsed: Duration::from_secs(1),
            ..PlayReport::default()
        };
        let second = PlayReport {
            done: vec!["a".into()],
            failed: vec![("b".into(), "second play".into())],
            not_started: vec!["c".into()],
            stop_reason: Some("max_fail".into()),
            elapsed: Duration::from_secs(2),
            ..PlayReport::default()
        };
        first.merge(second);
        assert_eq!(first.done, ["a"]);
        assert_eq!(
            first.failed,
            [
                ("d".into(), "broke".into()),
                ("b".into(), "second play".into())
            ]
        );
        assert_eq!(first.not_started, ["c"]);
        assert_eq!(first.stop_reason.as_deref(), Some("max_fail"));
        assert_eq!(first.elapsed, Duration::from_secs(3));
        // c never started because b failed: only its failure counts.
        assert_eq!(first.categories().count(), 3);
    }
}
