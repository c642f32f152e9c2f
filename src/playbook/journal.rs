//! The journal: every host's progress through a playbook, one JSON object
//! per line, appended and fsynced as it happens, so that `pplay --resume`
//! after Ctrl-C, kill -9 or a power cut knows exactly where each host was.
//! A torn last line (the crash hit mid-write, or the disk filled) is
//! ignored, and cut before a resume appends to the journal.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio_util::sync::CancellationToken;

use super::event::{Events, PlayEvent};
use super::Phase;
use crate::text::{read_bounded, TextError};

/// The largest journal a resume reads: far beyond the 60 MB or so of
/// twenty tasks on ten thousand hosts, and still a bound on memory.
const MAX_JOURNAL: u64 = 1024 * 1024 * 1024;

/// One line of the journal.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Entry {
    /// First line: how pplay was started, to start it the same way again.
    Start {
        argv: Vec<String>,
        /// Relative paths in `argv` are relative to this directory.
        cwd: PathBuf,
        playbook_sha256: String,
        /// SHA-256 of every other input (the inventory, each file `copy`
        /// sends): a resume refuses to mix them with changed ones.
        #[serde(default)]
        inputs: BTreeMap<String, String>,
        /// The pplay that writes the journal, to name it to a second one.
        #[serde(default)]
        pid: u32,
        time: f64,
    },
    /// A later `--resume` picked the journal up.
    Resume {
        #[serde(default)]
        pid: u32,
        time: f64,
    },
    /// A play of the playbook begins (numbered from 0); the host entries
    /// after it are of that play.
    Play {
        play: usize,
        name: String,
        time: f64,
    },
    /// A `copy` source named by host facts was read, with its SHA-256: a
    /// resume refuses it changed (as the inputs of `start`).
    Input { name: String, sha256: String },
    TaskStart {
        host: String,
        phase: Phase,
        task: usize,
        name: String,
        /// For a reboot: the boot_id it starts from. A resume that finds
        /// another knows the reboot happened, even if the crash lost the
        /// `reboot_issued` line after this one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        boot_id: Option<String>,
        time: f64,
    },
    TaskEnd {
        host: String,
        phase: Phase,
        task: usize,
        status: String,
        message: Option<String>,
        time: f64,
    },
    Register {
        host: String,
        name: String,
        value: String,
    },
    /// The reboot command was sent; a resumed run that finds another
    /// boot_id knows the reboot happened and only verifies it.
    RebootIssued {
        host: String,
        #[serde(default = "tasks_phase")]
        phase: Phase,
        task: usize,
        boot_id: String,
        time: f64,
    },
    /// The host answered again with a new boot_id.
    RebootUp {
        host: String,
        task: usize,
        time: f64,
    },
    HostEnd {
        host: String,
        ok: bool,
        message: Option<String>,
        time: f64,
    },
    /// A batch begins: its hosts are about to go through `before_batch`.
    BatchBegin {
        number: usize,
        of: usize,
        hosts: Vec<String>,
        time: f64,
    },
    /// `after_batch` put the batch back; a begun batch without this is
    /// put back first on `--resume`.
    BatchEnd { number: usize, time: f64 },
    /// No new host was started from here on, and why.
    Stop { reason: String, time: f64 },
}

/// Journals written before reboots in `on_failure` were journaled.
fn tasks_phase() -> Phase {
    Phase::Tasks
}

/// Seconds since the epoch, the journal's clock.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Why the journal cannot be written or read.
#[derive(Debug, Error)]
pub enum JournalError {
    #[error("journal {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is in use by {holder}; wait for it to end (or stop it) before resuming", path.display())]
    InUse { path: PathBuf, holder: String },
    #[error("{} is already being rolled out over {} by {holder}; wait for it to end (or stop it)", playbook.display(), inventory.display())]
    RolloutRunning {
        playbook: PathBuf,
        inventory: PathBuf,
        holder: String,
    },
    #[error("journal {}: is not a regular file", path.display())]
    NotAFile { path: PathBuf },
    #[error("journal {}: {source}", path.display())]
    Unreadable { path: PathBuf, source: TextError },
    #[error("journal {shown} already exists: continue it with `pplay --resume {shown}`, or choose another --journal", shown = path.display())]
    Exists { path: PathBuf },
    #[error("journal {}:{line}: {message}", path.display())]
    Corrupt {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

/// The open journal of a run. Entries go to a writer thread that appends
/// and fsyncs them; entries arriving while it syncs share the next fsync
/// (group commit), so a hundred hosts do not queue behind each other's
/// disk flushes, and no fsync ever blocks the async runtime.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    queue: Option<std::sync::mpsc::Sender<(Vec<u8>, Ack)>>,
    /// Owns the file, and so the lock: joined on drop, so the lock is
    /// free the moment the journal is.
    writer: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Journal {
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// Tells a [`Journal::record`] caller that its entry is on disk (or why not).
type Ack = tokio::sync::oneshot::Sender<Result<(), String>>;

impl Journal {
    /// Creates a new journal and takes its lock; refuses to overwrite one.
    pub fn create(path: &Path) -> Result<Journal, JournalError> {
        // Registered values (what `become` tasks read) are kept in it.
        let file = match OpenOptions::new()
            .create_new(true)
            .append(true)
            .mode(0o600)
            .open(path)
        {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                if !path.is_file() {
                    return Err(JournalError::NotAFile {
                        path: path.to_path_buf(),
                    });
                }
                // Say who holds it when someone does; else how to go on.
                open_locked(path)?;
                return Err(JournalError::Exists {
                    path: path.to_path_buf(),
                });
            }
            Err(error) => return Err(io(path)(error)),
        };
        lock(path, &file)?;
        Ok(Journal::start(path, file))
    }

    /// Opens an existing journal to add to it, taking its lock first: one
    /// pplay at a time may own a journal, or two would run every remaining
    /// task twice. The lock dies with its process, so a killed run never
    /// blocks a resume. `read` reads it under the lock; only once it has
    /// accepted the journal is a torn tail cut, so a file that is refused
    /// (a playbook given by mistake) is never written to.
    pub fn reopen<T>(
        path: &Path,
        read: impl FnOnce(&Path, Vec<u8>) -> Result<T, JournalError>,
    ) -> Result<(Journal, T), JournalError> {
        let file = open_locked(path)?;
        let bytes = read_journal(path)?;
        let (len, intact) = (bytes.len(), intact_len(&bytes));
        let read = read(path, bytes)?;
        cut_torn_tail(path, &file, len, intact)?;
        Ok((Journal::start(path, file), read))
    }

    fn start(path: &Path, file: File) -> Journal {
        let (queue, entries) = std::sync::mpsc::channel();
        let writer = std::thread::spawn(move || write_entries(&file, &entries));
        Journal {
            path: path.to_path_buf(),
            queue: Some(queue),
            writer: Some(writer),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one entry; returns once it is on disk.
    pub async fn record(&self, entry: &Entry) -> Result<(), JournalError> {
        let failed = |message: String| JournalError::Io {
            path: self.path.clone(),
            source: std::io::Error::other(message),
        };
        let mut line = serde_json::to_vec(entry).map_err(|e| failed(e.to_string()))?;
        line.push(b'\n');
        let (ack, written) = tokio::sync::oneshot::channel();
        self.queue
            .as_ref()
            .ok_or_else(|| failed("the journal is closed".into()))?
            .send((line, ack))
            .map_err(|_| failed("the journal writer stopped".into()))?;
        match written.await {
            Ok(result) => result.map_err(failed),
            Err(_) => Err(failed("the journal writer stopped".into())),
        }
    }
}

/// The writer thread: everything queued is written, then one fsync for all.
fn write_entries(file: &File, entries: &std::sync::mpsc::Receiver<(Vec<u8>, Ack)>) {
    while let Ok(first) = entries.recv() {
        let mut batch = vec![first];
        batch.extend(entries.try_iter());
        let bytes: Vec<u8> = batch
            .iter()
            .flat_map(|(line, _)| line.iter().copied())
            .collect();
        let result = (&*file)
            .write_all(&bytes)
            .and_then(|()| file.sync_data())
            .map_err(|e| e.to_string());
        for (_, ack) in batch {
            let _ = ack.send(result.clone());
        }
    }
}

/// An existing journal opened to append to, with its lock taken.
fn open_locked(path: &Path) -> Result<File, JournalError> {
    let not_a_file = || JournalError::NotAFile {
        path: path.to_path_buf(),
    };
    // Without blocking: opening a FIFO to write waits for a reader.
    let file = match OpenOptions::new()
        .append(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
    {
        Err(error) if error.raw_os_error() == Some(libc::ENXIO) => return Err(not_a_file()),
        other => other.map_err(io(path))?,
    };
    if !file.metadata().map_err(io(path))?.is_file() {
        return Err(not_a_file());
    }
    lock(path, &file)?;
    Ok(file)
}

/// How much of a journal's bytes are whole entries, and whether the last
/// of them lost only its newline. A crash mid-write or a full disk tears
/// the last line; a crash before the data reached the disk can leave NUL
/// bytes where it should have been. Both are left out.
pub(crate) fn intact_len(bytes: &[u8]) -> (usize, bool) {
    let end = bytes
        .iter()
        .rposition(|&byte| byte != 0 && byte != b'\n')
        .map_or(0, |last| last + 1);
    let line_start = bytes[..end]
        .iter()
        .rposition(|&byte| byte == b'\n')
        .map_or(0, |newline| newline + 1);
    if bytes.get(end) == Some(&b'\n') {
        // A whole line, even one that does not parse: that is corruption,
        // for the reader to report, not a torn write.
        return (end + 1, false);
    }
    match serde_json::from_slice::<Entry>(&bytes[line_start..end]) {
        Ok(_) => (end, true),
        Err(_) => (line_start, false),
    }
}

/// The journal's bytes, bounded.
pub(crate) fn read_journal(path: &Path) -> Result<Vec<u8>, JournalError> {
    read_bounded(path, MAX_JOURNAL).map_err(|source| JournalError::Unreadable {
        path: path.to_path_buf(),
        source,
    })
}

/// Cuts what a crash left after the journal's last whole entry (`len`
/// bytes of which `keep` are whole), so that the next entry starts a line
/// of its own (appended onto a torn line, it would make the journal
/// unreadable for every later resume).
fn cut_torn_tail(
    path: &Path,
    file: &File,
    len: usize,
    (keep, add_newline): (usize, bool),
) -> Result<(), JournalError> {
    if keep == len && !add_newline {
        return Ok(());
    }
    file.set_len(keep as u64).map_err(io(path))?;
    if add_newline {
        (&*file).write_all(b"\n").map_err(io(path))?;
    }
    file.sync_data().map_err(io(path))
}

/// Takes the journal's exclusive lock without waiting; a held lock names
/// its holder from the journal's last `start` or `resume` line.
fn lock(path: &Path, file: &File) -> Result<(), JournalError> {
    match try_lock(file).map_err(io(path))? {
        true => Ok(()),
        false => Err(JournalError::InUse {
            path: path.to_path_buf(),
            holder: holder(path),
        }),
    }
}

/// Takes `file`'s exclusive lock without waiting: false when another
/// process holds it. The lock lives as long as the descriptor.
pub(super) fn try_lock(file: &File) -> std::io::Result<bool> {
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let error = std::io::Error::last_os_error();
    match error.raw_os_error() == Some(libc::EWOULDBLOCK) {
        true => Ok(false),
        false => Err(error),
    }
}

/// "pplay pid N (started ...)" from the journal's last start or resume.
fn holder(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let last = text
        .lines()
        .rev()
        .filter_map(|line| serde_json::from_str::<Entry>(line).ok())
        .find_map(|entry| match entry {
            Entry::Start { pid, time, .. } | Entry::Resume { pid, time } => Some((pid, time)),
            _ => None,
        });
    match last {
        Some((pid, time)) if pid > 0 => {
            format!(
                "pplay pid {pid} (started {})",
                crate::clock::date_time(time)
            )
        }
        _ => "another pplay".into(),
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> JournalError + '_ {
    move |source| JournalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// How a run records into its journal (none under `--check`). A journal
/// that cannot be written must not go unnoticed: the recorder says so and
/// stops the run, so no host goes on unrecorded.
#[derive(Clone)]
pub struct Recorder {
    pub journal: Option<Arc<Journal>>,
    pub events: Events,
    pub stop: CancellationToken,
    /// Why the journal could not be written, once it could not: the run
    /// then ends as a local failure (exit 1), not as one the operator
    /// stopped.
    pub broken: Arc<std::sync::OnceLock<String>>,
}

impl Recorder {
    /// Where the run is journaled, if it is.
    pub fn journal_path(&self) -> Option<PathBuf> {
        self.journal.as_ref().map(|j| j.path().to_path_buf())
    }

    pub async fn record(&self, entry: Entry) {
        let Some(journal) = &self.journal else {
            return;
        };
        if let Err(error) = journal.record(&entry).await {
            // Said once: every later entry fails the same way.
            if self.broken.set(error.to_string()).is_ok() {
                self.events.emit(PlayEvent::Notice(format!(
                    "cannot write the journal, stopping: {error}"
                )));
            }
            self.stop.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::replay::{RebootMark, Replay};
    use super::*;

    fn task_start(host: &str, phase: Phase, task: usize, boot_id: Option<&str>) -> Entry {
        Entry::TaskStart {
            host: host.into(),
            phase,
            task,
            name: "t".into(),
            boot_id: boot_id.map(Into::into),
            time: now(),
        }
    }

    fn task_end(host: &str, phase: Phase, task: usize, status: &str) -> Entry {
        Entry::TaskEnd {
            host: host.into(),
            phase,
            task,
            status: status.into(),
            message: None,
            time: now(),
        }
    }

    fn host_end(host: &str, ok: bool) -> Entry {
        Entry::HostEnd {
            host: host.into(),
            ok,
            message: (!ok).then(|| "broke".into()),
            time: now(),
        }
    }

    async fn journal_of(path: &Path, entries: Vec<Entry>) {
        let journal = Journal::create(path).unwrap();
        journal
            .record(&Entry::Start {
                argv: vec!["p.yml".into()],
                cwd: PathBuf::from("/"),
                playbook_sha256: "x".into(),
                inputs: BTreeMap::new(),
                pid: std::process::id(),
                time: now(),
            })
            .await
            .unwrap();
        for entry in entries {
            journal.record(&entry).await.unwrap();
        }
    }

    #[tokio::test]
    async fn replays_progress_and_ignores_a_torn_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let (start, end) = (
            |task| task_start("a", Phase::Tasks, task, None),
            |task| task_end("a", Phase::Tasks, task, "ok"),
        );
        journal_of(&path, vec![start(0), end(0), start(1), host_end("b", true)]).await;
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"{\"event\":\"task_e").unwrap();
        let replay = Replay::read(&path).unwrap();
        assert_eq!(replay.argv, ["p.yml"]);
        assert_eq!(replay.hosts["a"].next, Some((Phase::Tasks, 1)));
        assert_eq!(replay.hosts["b"].finished, Some(true));
        assert!(replay.check_tasks(|_| 2).is_ok());
        // Line 1 is the start, line 2 task 0's start, line 4 task 1's.
        let error = replay.check_tasks(|_| 1).unwrap_err().to_string();
        assert!(error.contains(":4: names task 2 of tasks"), "{error}");
    }

    #[tokio::test]
    async fn a_resume_cuts_a_torn_tail_so_every_later_resume_reads_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        journal_of(&path, vec![host_end("a", true)]).await;
        let whole = std::fs::read(&path).unwrap();
        for tail in [&b"{\"event\":\"host_e"[..], b"\0\0\0\0", b"\0\0\n\0"] {
            std::fs::write(&path, [&whole[..], tail].concat()).unwrap();
            for resume in 0..2 {
                let (journal, _) = Journal::reopen(&path, Replay::parse).unwrap();
                journal.record(&host_end("b", false)).await.unwrap();
                drop(journal);
                let replay = Replay::read(&path).unwrap();
                assert_eq!(replay.hosts["a"].finished, Some(true), "{resume}");
                assert_eq!(replay.hosts["b"].finished, Some(false), "{resume}");
            }
        }
        // A last entry that lost only its newline is kept, and ended.
        std::fs::write(&path, &whole[..whole.len() - 1]).unwrap();
        Journal::reopen(&path, Replay::parse).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), whole);
        // A file the resume refuses is not written to, torn tail and all.
        let refused = [&b"tasks:\n  - run: true\n"[..], b"  - run: tr"].concat();
        std::fs::write(&path, &refused).unwrap();
        assert!(Journal::reopen(&path, Replay::parse).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), refused);
    }

    #[tokio::test]
    async fn one_pplay_at_a_time_owns_a_journal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        journal_of(&path, Vec::new()).await;
        let unread = |_: &Path, _| Ok(());
        let first = Journal::reopen(&path, unread).unwrap();
        let second = Journal::reopen(&path, unread).unwrap_err().to_string();
        let pid = format!("is in use by pplay pid {} (started ", std::process::id());
        assert!(second.contains(&pid), "{second}");
        let fresh = Journal::create(&path).unwrap_err().to_string();
        assert!(fresh.contains("is in use by pplay pid"), "{fresh}");
        drop(first);
        // The lock goes with the writer thread; a moment later it is free.
        let mut reopened = Journal::reopen(&path, unread);
        for _ in 0..100 {
            if reopened.is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
            reopened = Journal::reopen(&path, unread);
        }
        assert!(reopened.is_ok());
        let exists = Journal::create(&path).unwrap_err().to_string();
        assert!(
            exists.contains("is in use") || exists.contains("already exists"),
            "{exists}"
        );
    }

    #[tokio::test]
    async fn failed_hosts_retry_from_where_they_failed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        journal_of(
            &path,
            vec![
                // a: task 2 failed, no on_failure: retried from task 2.
                task_start("a", Phase::Tasks, 2, None),
                task_end("a", Phase::Tasks, 2, "failed"),
                host_end("a", false),
                // b: task 1 failed and on_failure ran: retried from task 0.
                task_start("b", Phase::Tasks, 1, None),
                task_end("b", Phase::Tasks, 1, "failed"),
                task_start("b", Phase::OnFailure, 0, None),
                task_end("b", Phase::OnFailure, 0, "ok"),
                host_end("b", false),
                // c: failed in preflight: preflight again.
                task_start("c", Phase::Preflight, 0, None),
                task_end("c", Phase::Preflight, 0, "failed"),
                host_end("c", false),
                // d: a reboot started from boot B and the journal ends there.
                task_start("d", Phase::Tasks, 3, Some("B")),
                // e: its reboot was sent and it never came back in time.
                task_start("e", Phase::Tasks, 1, Some("C")),
                Entry::RebootIssued {
                    host: "e".into(),
                    phase: Phase::Tasks,
                    task: 1,
                    boot_id: "C".into(),
                    time: now(),
                },
                task_end("e", Phase::Tasks, 1, "failed"),
                host_end("e", false),
                // f: like e, then a retry that came up with boot E and failed its test.
                task_start("f", Phase::Tasks, 1, Some("D")),
                Entry::RebootIssued {
                    host: "f".into(),
                    phase: Phase::Tasks,
                    task: 1,
                    boot_id: "D".into(),
                    time: now(),
                },
                task_end("f", Phase::Tasks, 1, "failed"),
                host_end("f", false),
                task_start("f", Phase::Tasks, 1, Some("E")),
                task_end("f", Phase::Tasks, 1, "failed"),
                host_end("f", false),
            ],
        )
        .await;
        let mut replay = Replay::read(&path).unwrap();
        let mut retried = |host: &str| {
            let progress = replay.hosts.get_mut(host).unwrap();
            assert_eq!(progress.finished, Some(false));
            progress.retry();
            (progress.next, progress.started_tasks)
        };
        assert_eq!(retried("a"), (Some((Phase::Tasks, 2)), true));
        // Rolled back by on_failure: preflight again, then its tasks.
        assert_eq!(retried("b"), (None, false));
        assert_eq!(retried("c"), (None, false));
        let mark = RebootMark {
            phase: Phase::Tasks,
            task: 3,
            boot_id: "B".into(),
            sent: false,
        };
        assert_eq!(retried("e"), (Some((Phase::Tasks, 1)), true));
        assert_eq!(replay.hosts["d"].reboot, Some(mark));
        let waited_for = replay.hosts["e"]
            .reboot
            .clone()
            .map(|m| (m.boot_id, m.sent));
        assert_eq!(
            waited_for,
            Some(("C".to_string(), true)),
            "a retry waits, not reboots"
        );
        let second_retry = replay.hosts["f"]
            .reboot
            .clone()
            .map(|m| (m.boot_id, m.sent));
        assert_eq!(
            second_retry,
            Some(("D".to_string(), true)),
            "a second retry waits too"
        );
    }

    #[tokio::test]
    async fn a_later_play_carries_registers_and_keeps_earlier_failures_failed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let play = |play: usize| Entry::Play {
            play,
            name: format!("play {play}"),
            time: now(),
        };
        let register = Entry::Register {
            host: "a".into(),
            name: "kernel".into(),
            value: "6.1".into(),
        };
        let entries = vec![
            play(0),
            task_start("a", Phase::Tasks, 0, None),
            register,
            task_end("a", Phase::Tasks, 0, "ok"),
            host_end("a", true),
            task_start("b", Phase::Tasks, 0, None),
            task_end("b", Phase::Tasks, 0, "failed"),
            host_end("b", false),
            play(1),
            // A batch hook is the batch's: it moves no host's progress.
            task_start("a", Phase::BeforeBatch, 0, None),
            task_end("a", Phase::BeforeBatch, 0, "ok"),
            task_start("a", Phase::Tasks, 1, None),
        ];
        journal_of(&path, entries).await;
        let replay = Replay::read(&path).unwrap();
        assert_eq!((replay.play, replay.play_line), (1, 10));
        assert_eq!(replay.carried["a"]["kernel"], "6.1");
        assert_eq!(replay.failed_before["b"], "broke");
        assert_eq!(replay.hosts.len(), 1);
        assert_eq!(replay.hosts["a"].next, Some((Phase::Tasks, 1)));
        assert_eq!(replay.last_task.get(&Phase::Tasks), Some(&(1, 13)));
    }

    #[tokio::test]
    async fn a_rollback_that_failed_goes_on_where_it_failed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let entries = vec![
            task_start("a", Phase::Tasks, 1, None),
            task_end("a", Phase::Tasks, 1, "failed"),
            task_start("a", Phase::OnFailure, 0, None),
            task_end("a", Phase::OnFailure, 0, "ok"),
            task_start("a", Phase::OnFailure, 1, None),
            task_end("a", Phase::OnFailure, 1, "failed"),
            host_end("a", false),
        ];
        journal_of(&path, entries).await;
        let mut replay = Replay::read(&path).unwrap();
        let progress = replay.hosts.get_mut("a").unwrap();
        progress.retry();
        // Not put back: preflight must not record the half-changed host.
        assert_eq!(progress.next, Some((Phase::OnFailure, 1)));
        assert!(progress.started_tasks);
    }
}
