//! pslurp's files: each host's stream lands in `LOCALDIR/<host>/LOCALNAME`,
//! written to a temporary file beside it and renamed into place only when
//! the host succeeded, so a failed pull never leaves a partial file under
//! the final name. Directories (`-r`) arrive as tar and are unpacked then.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::{HostRef, Reporter};
use crate::engine::{HostResult, Stream};
use crate::model::file_names;
use crate::model::Host;

/// Writes every host's pull under its own directory.
pub struct SlurpFiles {
    root: PathBuf,
    local_name: String,
    /// Unpack a tar stream into a directory instead of keeping a file.
    unpack: bool,
    /// Directory name of each host, safe on disk and unique within the run.
    names: Vec<String>,
    open: HashMap<usize, Pull>,
}

/// A pull in progress: its temporary file, and whether its host directory
/// is new (a failed pull then leaves no empty directory behind).
struct Pull {
    file: File,
    temp: PathBuf,
    created: bool,
}

impl SlurpFiles {
    pub fn new(hosts: &[Host], root: PathBuf, local_name: String, unpack: bool) -> Self {
        SlurpFiles {
            root,
            local_name,
            unpack,
            names: file_names(hosts),
            open: HashMap::new(),
        }
    }

    fn host_dir(&self, index: usize) -> PathBuf {
        self.root.join(&self.names[index])
    }
}

fn with_path(path: &Path) -> impl FnOnce(io::Error) -> io::Error + '_ {
    move |e| io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

impl Reporter for SlurpFiles {
    fn started(&mut self, host: HostRef<'_>) -> io::Result<()> {
        let dir = self.host_dir(host.index);
        let created = !dir.exists();
        std::fs::create_dir_all(&dir).map_err(with_path(&dir))?;
        let temp = dir.join(format!(
            ".{}.pslurp-{}",
            self.local_name,
            std::process::id()
        ));
        let file = File::create(&temp).map_err(with_path(&temp))?;
        self.open.insert(
            host.index,
            Pull {
                file,
                temp,
                created,
            },
        );
        Ok(())
    }

    fn output(&mut self, host: HostRef<'_>, stream: Stream, data: &[u8]) -> io::Result<()> {
        match (stream, self.open.get_mut(&host.index)) {
            (Stream::Stdout, Some(pull)) => {
                pull.file.write_all(data).map_err(with_path(&pull.temp))
            }
            _ => Ok(()),
        }
    }

    fn finished(&mut self, host: HostRef<'_>, result: &HostResult) -> io::Result<()> {
        let Some(pull) = self.open.remove(&host.index) else {
            return Ok(());
        };
        let dir = self.host_dir(host.index);
        let final_path = dir.join(&self.local_name);
        let kept = match result.outcome.category().is_success() {
            true => pull
                .file
                .sync_all()
                .and_then(|()| self.put_in_place(&pull.temp, &final_path)),
            false => Ok(()),
        };
        let _ = std::fs::remove_file(&pull.temp);
        if pull.created && !final_path.exists() {
            // Fails, as it should, when the directory is not empty.
            let _ = std::fs::remove_dir(&dir);
        }
        kept.map_err(with_path(&final_path))
    }
}

impl SlurpFiles {
    fn put_in_place(&self, temp: &Path, final_path: &Path) -> io::Result<()> {
        if !self.unpack {
            return std::fs::rename(temp, final_path);
        }
        let unpacked = temp.with_extension("d");
        std::fs::create_dir_all(&unpacked)?;
        let status = std::process::Command::new("tar")
            .arg("-xf")
            .arg(temp)
            .arg("-C")
            .arg(&unpacked)
            .status()?;
        let entry = std::fs::read_dir(&unpacked)?.next().transpose()?;
        let result = match (status.success(), entry) {
            (true, Some(entry)) => {
                if final_path.exists() {
                    std::fs::remove_dir_all(final_path)?;
                }
                std::fs::rename(entry.path(), final_path)
            }
            _ => Err(io::Error::other("the pulled archive could not be unpacked")),
        };
        let _ = std::fs::remove_dir_all(&unpacked);
        result
    }
}
