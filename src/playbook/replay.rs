//! Reading a journal back for `--resume`: where each host stood (the task
//! to run next, its registered values, what it changed, a reboot cut
//! short), and the checks that the journal belongs to the playbook.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::journal::{intact_len, read_journal, Entry, JournalError};
use super::vars::Vars;
use super::Phase;
use crate::text::{decode, TextError};

/// Where one host stood when the journal ended.
#[derive(Debug, Clone, Default)]
pub struct HostProgress {
    /// `Some(ok)` once the host finished, well or not.
    pub finished: Option<bool>,
    /// Why it failed, when it did.
    pub failure: Option<String>,
    /// The task to run next (the one interrupted, or the one after the last done).
    pub next: Option<(Phase, usize)>,
    /// Whether a task of `Phase::Tasks` ever started (preflight is then over).
    pub started_tasks: bool,
    /// The task of `Phase::Tasks` that failed, since the last one started.
    pub failed_task: Option<usize>,
    /// `on_failure` ran after that failure: a retry starts the tasks over.
    pub rolled_back: bool,
    /// A task of `on_failure` failed: the host was not put back, and a
    /// retry continues `on_failure` rather than record its state afresh.
    pub rollback_failed: bool,
    pub registers: Vars,
    /// The tasks that changed the host, in any attempt of this run: a retry
    /// that finds a file already installed still knows it was installed
    /// (for `when: changed: TASK`).
    pub changed: HashSet<(Phase, usize)>,
    /// A reboot task that started and did not end: it may have rebooted the host.
    pub reboot: Option<RebootMark>,
}

/// A reboot task a crash cut short, and what a resume needs to tell whether
/// the host went down already.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebootMark {
    pub phase: Phase,
    pub task: usize,
    /// The boot_id before the reboot.
    pub boot_id: String,
    /// The reboot command was journaled as sent.
    pub sent: bool,
}

impl HostProgress {
    /// Makes a host that failed in an earlier run go again: from the task
    /// that failed, from preflight when `on_failure` rolled it back or it
    /// never got to its tasks, or from where it was when it failed between
    /// tasks.
    pub fn retry(&mut self) {
        self.finished = None;
        self.failure = None;
        let failed_here = |mark: &RebootMark| match mark.phase {
            Phase::Tasks => Some(mark.task) == self.failed_task && !self.rolled_back,
            Phase::OnFailure => {
                self.rollback_failed && self.next == Some((Phase::OnFailure, mark.task))
            }
            _ => false,
        };
        if !self.reboot.as_ref().is_some_and(failed_here) {
            self.reboot = None;
        }
        match (self.failed_task, self.rolled_back) {
            (Some(task), false) => self.next = Some((Phase::Tasks, task)),
            // Not put back: on_failure goes on from the task that failed
            // (`next`), with what preflight recorded before any change.
            (Some(_), true) if self.rollback_failed => {}
            // Put back as it was: preflight again, so that what it records
            // (the old module, the count of BUG lines) is of now.
            (Some(_), true) => {
                self.next = None;
                self.started_tasks = false;
            }
            (None, _) if self.started_tasks => {}
            (None, _) => self.next = None,
        }
    }
}

/// What a journal says, for `--resume`.
#[derive(Debug, Clone)]
pub struct Replay {
    pub argv: Vec<String>,
    pub cwd: PathBuf,
    pub playbook_sha256: String,
    pub inputs: BTreeMap<String, String>,
    /// The play the journal ends in (numbered from 0), and the line that
    /// began it.
    pub play: usize,
    pub play_line: usize,
    /// Each host's progress in that play.
    pub hosts: HashMap<String, HostProgress>,
    /// What hosts registered in earlier plays.
    pub carried: HashMap<String, Vars>,
    /// Hosts that failed in earlier plays, with why: they stay failed.
    pub failed_before: BTreeMap<String, String>,
    /// Batches of that play begun and never put back by `after_batch`:
    /// number, count and hosts.
    pub open_batches: BTreeMap<usize, (usize, Vec<String>)>,
    /// Per phase, the highest task number an entry names, and its line: a
    /// resume checks it against the playbook.
    pub last_task: HashMap<Phase, (usize, usize)>,
    /// The journal, for messages.
    pub path: PathBuf,
}

impl Entry {
    /// The task an entry is about, as (phase, number).
    fn task(&self) -> Option<(Phase, usize)> {
        match self {
            Entry::TaskStart { phase, task, .. }
            | Entry::TaskEnd { phase, task, .. }
            | Entry::RebootIssued { phase, task, .. } => Some((*phase, *task)),
            _ => None,
        }
    }
}

impl Replay {
    /// Refuses a journal that names a task the playbook does not have
    /// (`tasks` gives each phase's count): it was not written for it.
    pub fn check_tasks(&self, tasks: impl Fn(Phase) -> usize) -> Result<(), JournalError> {
        for (&phase, &(task, line)) in &self.last_task {
            let count = tasks(phase);
            if task >= count {
                return Err(JournalError::Corrupt {
                    path: self.path.clone(),
                    line,
                    message: format!(
                        "names task {} of {}, but the playbook has {count} there",
                        task + 1,
                        phase.key()
                    ),
                });
            }
        }
        Ok(())
    }

    /// Reads a journal from its start.
    pub fn read(path: &Path) -> Result<Replay, JournalError> {
        Replay::parse(path, read_journal(path)?)
    }

    /// Reads a journal's bytes, read from `path`.
    pub fn parse(path: &Path, bytes: Vec<u8>) -> Result<Replay, JournalError> {
        let text = whole_entries(path, bytes)?;
        let mut replay: Option<Replay> = None;
        for (index, line) in text.lines().enumerate() {
            let corrupt = |message: String| JournalError::Corrupt {
                path: path.to_path_buf(),
                line: index + 1,
                message,
            };
            let entry: Entry = match serde_json::from_str(line) {
                Ok(entry) => entry,
                Err(error) => return Err(corrupt(error.to_string())),
            };
            match (&mut replay, entry) {
                (
                    None,
                    Entry::Start {
                        argv,
                        cwd,
                        playbook_sha256,
                        inputs,
                        ..
                    },
                ) => {
                    replay = Some(Replay {
                        argv,
                        cwd,
                        playbook_sha256,
                        inputs,
                        play: 0,
                        play_line: 1,
                        hosts: HashMap::new(),
                        carried: HashMap::new(),
                        failed_before: BTreeMap::new(),
                        open_batches: BTreeMap::new(),
                        last_task: HashMap::new(),
                        path: path.to_path_buf(),
                    })
                }
                (None, _) => return Err(corrupt("expected a `start` entry first".into())),
                (Some(replay), Entry::Play { play, .. }) => replay.next_play(play, index + 1),
                (Some(replay), entry) => {
                    if let Some((phase, task)) = entry.task() {
                        let last = replay.last_task.entry(phase).or_insert((task, index + 1));
                        if task > last.0 {
                            *last = (task, index + 1);
                        }
                    }
                    replay.apply(entry)
                }
            }
        }
        replay.ok_or_else(|| JournalError::Corrupt {
            path: path.to_path_buf(),
            line: 1,
            message: "the journal is empty".into(),
        })
    }

    /// A `play` entry: from here on, entries are of play `play`. What the
    /// hosts registered so far is carried over, and those that failed
    /// stay failed.
    fn next_play(&mut self, play: usize, line: usize) {
        if play == self.play {
            return;
        }
        for (host, progress) in self.hosts.drain() {
            self.carried
                .entry(host.clone())
                .or_default()
                .extend(progress.registers);
            if progress.finished == Some(false) {
                let why = progress.failure.unwrap_or_default();
                self.failed_before.insert(host, why);
            }
        }
        self.last_task.clear();
        self.open_batches.clear();
        self.play = play;
        self.play_line = line;
    }

    fn apply(&mut self, entry: Entry) {
        match entry {
            Entry::TaskStart {
                host,
                phase,
                task,
                boot_id,
                ..
            } => self.progress(host).task_started(phase, task, boot_id),
            Entry::TaskEnd {
                host,
                phase,
                task,
                status,
                ..
            } => self.progress(host).task_ended(phase, task, &status),
            Entry::Register { host, name, value } => {
                self.progress(host).registers.insert(name, value);
            }
            Entry::RebootIssued {
                host,
                phase,
                task,
                boot_id,
                ..
            } => {
                self.progress(host).reboot = Some(RebootMark {
                    phase,
                    task,
                    boot_id,
                    sent: true,
                });
            }
            Entry::HostEnd {
                host, ok, message, ..
            } => {
                let progress = self.progress(host);
                progress.finished = Some(ok);
                progress.failure = message;
            }
            Entry::Input { name, sha256 } => {
                self.inputs.insert(name, sha256);
            }
            Entry::BatchBegin {
                number, of, hosts, ..
            } => {
                self.open_batches.insert(number, (of, hosts));
            }
            Entry::BatchEnd { number, .. } => {
                self.open_batches.remove(&number);
            }
            Entry::RebootUp { .. }
            | Entry::Play { .. }
            | Entry::Start { .. }
            | Entry::Resume { .. }
            | Entry::Stop { .. } => {}
        }
    }

    fn progress(&mut self, host: String) -> &mut HostProgress {
        self.hosts.entry(host).or_default()
    }
}

/// The journal's whole entries as text, which must be UTF-8.
fn whole_entries(path: &Path, mut bytes: Vec<u8>) -> Result<String, JournalError> {
    let (keep, add_newline) = intact_len(&bytes);
    bytes.truncate(keep);
    if add_newline {
        bytes.push(b'\n');
    }
    decode(bytes).map_err(|error| match error {
        TextError::NotUtf8 { line, column } => JournalError::Corrupt {
            path: path.to_path_buf(),
            line,
            message: format!("column {column}: not UTF-8"),
        },
        other => JournalError::Unreadable {
            path: path.to_path_buf(),
            source: other,
        },
    })
}

impl HostProgress {
    fn task_started(&mut self, phase: Phase, task: usize, boot_id: Option<String>) {
        // Batch hooks are the batch's, not a step of the host's own way.
        if phase.is_hook() {
            return;
        }
        self.next = Some((phase, task));
        match phase {
            Phase::Tasks => {
                self.started_tasks = true;
                self.failed_task = None;
                self.rolled_back = false;
                self.rollback_failed = false;
            }
            Phase::OnFailure => self.rolled_back = true,
            Phase::Preflight | Phase::BeforeBatch | Phase::AfterBatch => {}
        }
        // A retry of a reboot that was sent keeps that mark: however often
        // it is retried, the host is waited for, not rebooted.
        if !self.reboot_sent_by(phase, task) {
            self.reboot = boot_id.map(|boot_id| RebootMark {
                phase,
                task,
                boot_id,
                sent: false,
            });
        }
    }

    fn task_ended(&mut self, phase: Phase, task: usize, status: &str) {
        // A reboot that was sent and then failed (the host did not come
        // back in time) stays marked: a retry waits for the host instead
        // of rebooting it again.
        if phase.is_hook() {
            if status == "changed" {
                self.changed.insert((phase, task));
            }
            return;
        }
        if !(self.reboot_sent_by(phase, task) && status == "failed") {
            self.reboot = None;
        }
        if status == "changed" {
            self.changed.insert((phase, task));
        }
        if phase == Phase::OnFailure && status == "failed" {
            self.rollback_failed = true;
        }
        self.next = Some(match status {
            "failed" if phase == Phase::Tasks => {
                self.failed_task = Some(task);
                (Phase::OnFailure, 0)
            }
            "failed" => (phase, task),
            _ => (phase, task + 1),
        });
    }

    fn reboot_sent_by(&self, phase: Phase, task: usize) -> bool {
        self.reboot
            .as_ref()
            .is_some_and(|mark| mark.sent && mark.phase == phase && mark.task == task)
    }
}
