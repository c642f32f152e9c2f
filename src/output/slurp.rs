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
use crate::partial_file::{parent_of, PartialFile};

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
    /// Pulls that could not be kept (a full disk), said at the end of the run.
    failures: Vec<String>,
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
            failures: Vec::new(),
        })
    }

    fn host_dir(&self, index: usize) -> PathBuf {
        self.root.join(&self.names[index])
    }

    fn final_path(&self, index: usize) -> PathBuf {
        self.host_dir(index).join(&self.local_name)
    }

    /// Notes a pull that could not be kept; the others go on.
    fn failed(&mut self, index: usize, error: &io::Error) {
        let path = self.final_path(index);
        self.failures.push(format!(
            "cannot write {}: {error}; not kept",
            path.display()
        ));
    }
}

impl Reporter for SlurpFiles {
    fn started(&mut self, host: HostRef<'_>) -> io::Result<()> {
        let final_path = self.final_path(host.index);
        let file = match self.unpack {
            true => PartialFile::scratch_for(&self.root, &final_path),
            false => PartialFile::create_in(&self.root, &final_path),
        };
        // `cat` brings no mode; a file only root could read there (under
        // --sudo) must not become readable by all here.
        match file.and_then(|file| file.keep_private().map(|()| file)) {
            Ok(file) => drop(self.open.insert(host.index, file)),
            Err(error) => self.failed(host.index, &error),
        }
        Ok(())
    }

    /// A pull the disk has no room for is given up at once, never
    /// committed cut short.
    fn output(&mut self, host: HostRef<'_>, stream: Stream, data: &[u8]) -> io::Result<()> {
        let written = match (stream, self.open.get_mut(&host.index)) {
            (Stream::Stdout, Some(file)) => file.write_all(data),
            _ => return Ok(()),
        };
        if let Err(error) = written {
            if let Some(file) = self.open.remove(&host.index) {
                file.discard();
            }
            self.failed(host.index, &error);
        }
        Ok(())
    }

    fn finished(&mut self, host: HostRef<'_>, result: &HostResult) -> io::Result<()> {
        let Some(file) = self.open.remove(&host.index) else {
            return Ok(());
        };
        if !result.outcome.category().is_success() {
            file.discard();
            return Ok(());
        }
        let dir = self.host_dir(host.index);
        let created = !dir.exists();
        if let Err(error) = self.put_in_place(file, &self.final_path(host.index)) {
            if created {
                // Fails, as it should, when the directory is not empty.
                let _ = std::fs::remove_dir(&dir);
            }
            self.failed(host.index, &error);
        }
        Ok(())
    }

    fn run_finished(&mut self) -> io::Result<()> {
        match self.failures.is_empty() {
            true => Ok(()),
            false => Err(io::Error::other(self.failures.join("; "))),
        }
    }
}

impl SlurpFiles {
    /// A file is renamed into place; a directory's archive is unpacked
    /// beside it (owners and modes as this user's, never the host's
    /// setuid bits), then swapped with what was there in one step, so a
    /// crash leaves the old pull or the new one, never neither.
    fn put_in_place(&self, file: PartialFile, final_path: &Path) -> io::Result<()> {
        if !self.unpack {
            return file.commit();
        }
        let archive = file.reader();
        file.discard();
        let dir = parent_of(final_path);
        std::fs::create_dir_all(dir)?;
        let prefix = format!(".{}.pslurp-", self.local_name);
        remove_abandoned_unpacks(dir, &prefix);
        let unpacked = dir.join(format!("{prefix}{}.d", std::process::id()));
        std::fs::create_dir_all(&unpacked)?;
        let status = std::process::Command::new("tar")
            .args(["--no-same-owner", "--no-same-permissions", "-xf", "-", "-C"])
            .arg(&unpacked)
            .stdin(archive?)
            .status()?;
        let entry = std::fs::read_dir(&unpacked)?.next().transpose()?;
        let result = match (status.success(), entry) {
            (true, Some(entry)) => swap_into_place(&entry.path(), final_path),
            _ => Err(io::Error::other("the pulled archive could not be unpacked")),
        };
        let _ = std::fs::remove_dir_all(&unpacked);
        result
    }
}

/// Moves `new` to `target`; what was at `target` ends up at `new`.
fn swap_into_place(new: &Path, target: &Path) -> io::Result<()> {
    if std::fs::symlink_metadata(target).is_err() {
        return std::fs::rename(new, target);
    }
    let (new, target) = (c_path(new)?, c_path(target)?);
    // SAFETY: both are NUL-terminated paths we own.
    let swapped = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            new.as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    match swapped {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

fn c_path(path: &Path) -> io::Result<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)
}

/// Removes the unpack directories (`PREFIX<pid>.d`) of pslurp runs that
/// were killed mid-unpack: their process is gone.
fn remove_abandoned_unpacks(dir: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let pid = name
            .to_str()
            .and_then(|name| name.strip_prefix(prefix))
            .and_then(|rest| rest.strip_suffix(".d"))
            .and_then(|pid| pid.parse::<libc::pid_t>().ok());
        if pid.is_some_and(|pid| !process_exists(pid)) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn process_exists(pid: libc::pid_t) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    let alive = unsafe { libc::kill(pid, 0) } == 0;
    alive || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}
