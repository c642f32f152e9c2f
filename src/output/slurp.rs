//! pslurp's files: each host's stream lands in `LOCALDIR/<host>/LOCALNAME`
//! through a [`PartialFile`], which takes its name only when the host
//! succeeded, so a failed, cut or killed pull never leaves a partial file.
//! Directories (`-r`) arrive as tar and are unpacked then.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use super::{HostRef, Reporter};
use crate::engine::{HostResult, Stream};
use crate::model::{file_names, Host};
use crate::partial_file::PartialFile;

/// Writes every host's pull under its own directory.
pub struct SlurpFiles {
    root: PathBuf,
    local_name: String,
    /// Unpack a tar stream into a directory instead of keeping a file.
    unpack: bool,
    /// Directory name of each host, safe on disk and unique within the run.
    names: Vec<String>,
    /// Pulls in progress, written unnamed in the root until they succeed.
    open: HashMap<usize, PartialFile>,
}

impl SlurpFiles {
    /// Makes `root` now, so that a directory that cannot be made fails
    /// before any host is contacted.
    pub fn new(
        hosts: &[Host],
        root: PathBuf,
        local_name: String,
        unpack: bool,
    ) -> io::Result<Self> {
        std::fs::create_dir_all(&root)?;
        Ok(SlurpFiles {
            root,
            local_name,
            unpack,
            names: file_names(hosts),
            open: HashMap::new(),
        })
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
        let final_path = self.host_dir(host.index).join(&self.local_name);
        let file =
            PartialFile::create_in(&self.root, &final_path).map_err(with_path(&final_path))?;
        // `cat` brings no mode; a file only root could read there (under
        // --sudo) must not become readable by all here.
        file.keep_private().map_err(with_path(&final_path))?;
        self.open.insert(host.index, file);
        Ok(())
    }

    fn output(&mut self, host: HostRef<'_>, stream: Stream, data: &[u8]) -> io::Result<()> {
        match (stream, self.open.get_mut(&host.index)) {
            (Stream::Stdout, Some(file)) => file.write_all(data),
            _ => Ok(()),
        }
    }

    fn finished(&mut self, host: HostRef<'_>, result: &HostResult) -> io::Result<()> {
        let Some(file) = self.open.remove(&host.index) else {
            return Ok(());
        };
        let dir = self.host_dir(host.index);
        let final_path = dir.join(&self.local_name);
        if !result.outcome.category().is_success() {
            file.discard();
            return Ok(());
        }
        let created = !dir.exists();
        let kept = self.put_in_place(file, &final_path);
        if kept.is_err() && created {
            // Fails, as it should, when the directory is not empty.
            let _ = std::fs::remove_dir(&dir);
        }
        kept.map_err(with_path(&final_path))
    }
}

impl SlurpFiles {
    /// A file is renamed into place; a directory's archive is unpacked
    /// beside it (owners and modes as this user's, never the host's
    /// setuid bits), then moved into place.
    fn put_in_place(&self, file: PartialFile, final_path: &Path) -> io::Result<()> {
        if !self.unpack {
            return file.commit();
        }
        let archive = file.reader();
        file.discard();
        let unpacked = final_path.with_file_name(format!(
            ".{}.pslurp-{}.d",
            self.local_name,
            std::process::id()
        ));
        std::fs::create_dir_all(&unpacked)?;
        let status = std::process::Command::new("tar")
            .args(["--no-same-owner", "--no-same-permissions", "-xf", "-", "-C"])
            .arg(&unpacked)
            .stdin(archive?)
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
