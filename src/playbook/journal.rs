//! The journal: every host's progress through a playbook, one JSON object
//! per line, appended and fsynced as it happens, so that `pplay --resume`
//! after Ctrl-C, kill -9 or a power cut knows exactly where each host was.
//! A torn last line (the crash hit mid-write) is ignored.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::vars::Vars;
use super::Phase;

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
        time: f64,
    },
    /// A later `--resume` picked the journal up.
    Resume { time: f64 },
    TaskStart {
        host: String,
        phase: Phase,
        task: usize,
        name: String,
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
    /// No new host was started from here on, and why.
    Stop { reason: String, time: f64 },
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
    queue: std::sync::mpsc::Sender<(Vec<u8>, Ack)>,
}

/// Tells a [`Journal::record`] caller that its entry is on disk (or why not).
type Ack = tokio::sync::oneshot::Sender<Result<(), String>>;

impl Journal {
    /// Creates a new journal; refuses to overwrite one.
    pub fn create(path: &Path) -> Result<Journal, JournalError> {
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(path)
            .map_err(io(path))?;
        Ok(Journal::start(path, file))
    }

    /// Opens an existing journal to add to it.
    pub fn reopen(path: &Path) -> Result<Journal, JournalError> {
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(io(path))?;
        Ok(Journal::start(path, file))
    }

    fn start(path: &Path, file: File) -> Journal {
        let (queue, entries) = std::sync::mpsc::channel();
        std::thread::spawn(move || write_entries(&file, &entries));
        Journal {
            path: path.to_path_buf(),
            queue,
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

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> JournalError + '_ {
    move |source| JournalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Where one host stood when the journal ended.
#[derive(Debug, Clone, Default)]
pub struct HostProgress {
    /// `Some(ok)` once the host finished, well or not.
    pub finished: Option<bool>,
    /// The task to run next (the one interrupted, or the one after the last done).
    pub next: Option<(Phase, usize)>,
    /// Whether a task of `Phase::Tasks` ever started (preflight is then over).
    pub started_tasks: bool,
    pub registers: Vars,
    /// A reboot sent and not yet seen back: (task, boot_id before it).
    pub reboot_pending: Option<(usize, String)>,
}

/// What a journal says, for `--resume`.
#[derive(Debug)]
pub struct Replay {
    pub argv: Vec<String>,
    pub cwd: PathBuf,
    pub playbook_sha256: String,
    pub hosts: HashMap<String, HostProgress>,
}

impl Replay {
    /// Reads a journal from its start.
    pub fn read(path: &Path) -> Result<Replay, JournalError> {
        let text = std::fs::read_to_string(path).map_err(io(path))?;
        let lines: Vec<&str> = text.lines().collect();
        let mut replay: Option<Replay> = None;
        for (index, line) in lines.iter().enumerate() {
            let corrupt = |message: String| JournalError::Corrupt {
                path: path.to_path_buf(),
                line: index + 1,
                message,
            };
            let entry: Entry = match serde_json::from_str(line) {
                Ok(entry) => entry,
                // A crash mid-write tears only the last line.
                Err(_) if index + 1 == lines.len() && !text.ends_with('\n') => break,
                Err(error) => return Err(corrupt(error.to_string())),
            };
            match (&mut replay, entry) {
                (
                    None,
                    Entry::Start {
                        argv,
                        cwd,
                        playbook_sha256,
                        ..
                    },
                ) => {
                    replay = Some(Replay {
                        argv,
                        cwd,
                        playbook_sha256,
                        hosts: HashMap::new(),
                    })
                }
                (None, _) => return Err(corrupt("expected a `start` entry first".into())),
                (Some(replay), entry) => replay.apply(entry),
            }
        }
        replay.ok_or_else(|| JournalError::Corrupt {
            path: path.to_path_buf(),
            line: 1,
            message: "the journal is empty".into(),
        })
    }

    fn apply(&mut self, entry: Entry) {
        match entry {
            Entry::TaskStart {
                host, phase, task, ..
            } => {
                let progress = self.hosts.entry(host).or_default();
                progress.next = Some((phase, task));
                progress.started_tasks |= phase == Phase::Tasks;
            }
            Entry::TaskEnd {
                host,
                phase,
                task,
                status,
                ..
            } => {
                let progress = self.hosts.entry(host).or_default();
                progress.next = Some(match status.as_str() {
                    "failed" if phase == Phase::Tasks => (Phase::OnFailure, 0),
                    "failed" => (phase, task),
                    _ => (phase, task + 1),
                });
            }
            Entry::Register { host, name, value } => {
                self.hosts
                    .entry(host)
                    .or_default()
                    .registers
                    .insert(name, value);
            }
            Entry::RebootIssued {
                host,
                task,
                boot_id,
                ..
            } => {
                self.hosts.entry(host).or_default().reboot_pending = Some((task, boot_id));
            }
            Entry::RebootUp { host, .. } => {
                self.hosts.entry(host).or_default().reboot_pending = None;
            }
            Entry::HostEnd { host, ok, .. } => {
                self.hosts.entry(host).or_default().finished = Some(ok);
            }
            Entry::Start { .. } | Entry::Resume { .. } | Entry::Stop { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn replays_progress_and_ignores_a_torn_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let journal = Journal::create(&path).unwrap();
        let start = |task| Entry::TaskStart {
            host: "a".into(),
            phase: Phase::Tasks,
            task,
            name: "t".into(),
            time: now(),
        };
        let end = |task| Entry::TaskEnd {
            host: "a".into(),
            phase: Phase::Tasks,
            task,
            status: "ok".into(),
            message: None,
            time: now(),
        };
        journal
            .record(&Entry::Start {
                argv: vec!["p.yml".into()],
                cwd: PathBuf::from("/"),
                playbook_sha256: "x".into(),
                time: now(),
            })
            .await
            .unwrap();
        for entry in [start(0), end(0), start(1)] {
            journal.record(&entry).await.unwrap();
        }
        journal
            .record(&Entry::HostEnd {
                host: "b".into(),
                ok: true,
                message: None,
                time: now(),
            })
            .await
            .unwrap();
        drop(journal);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"{\"event\":\"task_e").unwrap();
        let replay = Replay::read(&path).unwrap();
        assert_eq!(replay.argv, ["p.yml"]);
        assert_eq!(replay.hosts["a"].next, Some((Phase::Tasks, 1)));
        assert_eq!(replay.hosts["b"].finished, Some(true));
        assert!(
            Journal::create(&path).is_err(),
            "never overwrites a journal"
        );
    }
}
