//! `fetch:` pslurp's semantics inside a playbook: the remote file streams
//! into DEST/HOST/NAME through a [`PartialFile`], which takes its name only
//! once the whole file arrived, so memory stays bounded and a failed pull
//! never leaves a file behind. The disk is written by a blocking task fed
//! through a bounded channel, never on the async runtime.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::{Done, Step, TaskError, TaskStatus};
use crate::model::file_names;
use crate::partial_file::PartialFile;
use crate::playbook::spec::FetchSpec;
use crate::ssh::{shell_quote, OutputSink, RemoteExit, Stream};

/// Chunks in flight between the connection and the disk.
const CHUNKS_IN_FLIGHT: usize = 16;

/// The files `flat` fetches of a run wrote, each by the host that wrote
/// it: two hosts must never write one file, one silently over the other
/// (however the path is spelled: `..` and symlinked directories resolved).
#[derive(Default)]
pub struct FlatFiles(Mutex<HashMap<PathBuf, String>>);

impl FlatFiles {
    /// `path` is `host`'s to write, unless another host's already.
    fn claim(&self, path: &Path, host: &str) -> Result<(), TaskError> {
        let path = resolved(path);
        let mut claimed = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match claimed.get(&path) {
            Some(owner) if owner != host => Err(TaskError::Local(format!(
                "fetch dest {}: {owner} fetched into it already in this run; make dest differ per host",
                path.display()
            ))),
            _ => {
                claimed.insert(path, host.to_string());
                Ok(())
            }
        }
    }
}

/// `path` with `.` and `..` taken out, and its longest existing ancestor's
/// symlinks resolved: one name per file.
fn resolved(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut plain = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                plain.pop();
            }
            other => plain.push(other),
        }
    }
    let mut rest = Vec::new();
    let mut existing = plain.as_path();
    while existing.canonicalize().is_err() {
        let Some(parent) = existing.parent() else {
            return plain;
        };
        rest.push(existing.file_name().unwrap_or_default().to_os_string());
        existing = parent;
    }
    let mut path = existing
        .canonicalize()
        .unwrap_or_else(|_| existing.to_path_buf());
    path.extend(rest.iter().rev());
    path
}

/// Pulls the file into `base`/DEST/HOST/NAME (DEST may be absolute), or
/// `base`/DEST with `flat`.
pub async fn fetch(step: Step<'_>, spec: &FetchSpec, base: &Path, flat: &FlatFiles) -> Done {
    let (src, dest) = (step.expand(&spec.src)?, step.expand(&spec.dest)?);
    let failed = |message: String| TaskError::Local(message);
    let name = Path::new(&src)
        .file_name()
        .ok_or_else(|| failed(format!("fetch src `{src}` has no file name")))?;
    let (dest, final_path) = match spec.flat {
        true if dest.ends_with('/') => (base.join(&dest), base.join(&dest).join(name)),
        true => {
            let file = base.join(&dest);
            let dir = file.parent().map_or(base.to_path_buf(), Path::to_path_buf);
            (dir, file)
        }
        false => {
            let host_dir = file_names(std::slice::from_ref(&step.remote.host)).remove(0);
            let dir = base.join(&dest).join(host_dir);
            (dir.clone(), dir.join(name))
        }
    };
    if spec.flat {
        flat.claim(&final_path, &step.remote.host.label())?;
    }
    let (chunks, written) = mpsc::channel::<Bytes>(CHUNKS_IN_FLIGHT);
    let writer = tokio::task::spawn_blocking({
        let final_path = final_path.clone();
        move || write_chunks(&dest, &final_path, written)
    });
    let mut sink = ToDisk { chunks, bytes: 0 };
    let command = format!("cat -- {}", shell_quote(&src));
    let pulled = step
        .remote
        .exec_into(&command, &[], step.timeout, &mut sink)
        .await;
    let bytes = sink.bytes;
    drop(sink);
    let file = writer
        .await
        .map_err(|e| failed(e.to_string()))?
        .map_err(|e| failed(format!("{}: {e}", final_path.display())))?;
    let finished = match pulled {
        Ok(captured) if captured.exit == RemoteExit::Code(0) => Ok(()),
        Ok(captured) => Err(captured.failure()),
        Err(error) => Err(error),
    };
    let outcome = tokio::task::spawn_blocking(move || match finished {
        Ok(()) => file.commit().map_err(|e| failed(e.to_string())),
        Err(error) => {
            file.discard();
            Err(error)
        }
    })
    .await
    .map_err(|e| failed(e.to_string()))?;
    outcome.map(|()| TaskStatus::Ok(format!("{bytes} bytes to {}", final_path.display())))
}

/// The async side: chunks to the blocking writer, waiting when it is behind.
struct ToDisk {
    chunks: mpsc::Sender<Bytes>,
    bytes: u64,
}

impl OutputSink for ToDisk {
    async fn output(&mut self, _: Stream, data: Bytes) -> std::io::Result<()> {
        self.bytes += data.len() as u64;
        self.chunks
            .send(data)
            .await
            .map_err(|_| std::io::Error::other("the local file could not be written"))
    }
}

/// The blocking side: makes DEST and writes every chunk there, unnamed;
/// hands the file back once the chunks end. The host's directory is made
/// only when the file is kept.
fn write_chunks(
    dest: &Path,
    final_path: &Path,
    mut chunks: mpsc::Receiver<Bytes>,
) -> std::io::Result<PartialFile> {
    std::fs::create_dir_all(dest)?;
    let mut file = PartialFile::create_in(dest, final_path)?;
    // Fetched under `become`, it may be a file only root may read there.
    file.keep_private()?;
    while let Some(chunk) = chunks.blocking_recv() {
        if let Err(error) = file.write_all(&chunk) {
            file.discard();
            return Err(error);
        }
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_file_however_its_path_is_spelled() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::os::unix::fs::symlink(&real, dir.path().join("link")).unwrap();
        let flat = FlatFiles::default();
        flat.claim(&real.join("new/one"), "lab-001").unwrap();
        for spelled in ["real/x/../new/one", "link/new/one", "./real/new/./one"] {
            let error = flat
                .claim(&dir.path().join(spelled), "lab-002")
                .unwrap_err();
            assert!(
                error.to_string().contains("lab-001 fetched into it"),
                "{spelled}: {error}"
            );
        }
        flat.claim(&real.join("new/one"), "lab-001").unwrap();
    }
}
