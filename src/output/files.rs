//! `-o DIR` / `-e DIR`: each host's stdout and stderr streamed byte for byte
//! into `DIR/<host>`, named as pssh names them, with memory bounded by one
//! chunk whatever the output size. A file that cannot be written whole (a
//! full disk) is renamed `<host>.partial`, so that no torn file passes for
//! a complete one, and the run goes on; the end of the run says which.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use super::{HostRef, Reporter};
use crate::engine::{HostResult, Stream};
use crate::model::{file_names, Host};

/// Writes per-host output files.
pub struct OutputFiles {
    stdout_dir: Option<PathBuf>,
    stderr_dir: Option<PathBuf>,
    /// File name of each host, unique within the run.
    names: Vec<String>,
    open: HashMap<(usize, Stream), (File, PathBuf)>,
    /// Files that could not be written whole, said when the run ends.
    failures: Vec<String>,
    /// Readable by this user only.
    private: bool,
    /// Held for the run: two runs writing one directory would mix their files.
    _locks: Vec<File>,
}

/// Takes an exclusive lock on `dir` for this run, or says it is in use.
fn lock_dir(dir: &Path) -> io::Result<File> {
    let handle = File::open(dir)?;
    // SAFETY: flock on a descriptor we own; the lock lives as long as it.
    if unsafe { libc::flock(handle.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(io::Error::other(format!(
            "{} is in use by another run; give this one another directory",
            dir.display()
        )));
    }
    Ok(handle)
}

impl OutputFiles {
    /// Creates the directories (as pssh does) and plans one name per host;
    /// `private` files (output of commands run as root) are readable by
    /// this user only.
    pub fn new(
        hosts: &[Host],
        stdout_dir: Option<PathBuf>,
        stderr_dir: Option<PathBuf>,
        private: bool,
    ) -> io::Result<Self> {
        for dir in stdout_dir.iter().chain(&stderr_dir) {
            if dir.exists() && !dir.is_dir() {
                return Err(io::Error::other(format!(
                    "{} exists and is not a directory",
                    dir.display()
                )));
            }
            std::fs::create_dir_all(dir).map_err(|e| {
                io::Error::new(e.kind(), format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        if let (Some(out), Some(err)) = (&stdout_dir, &stderr_dir) {
            refuse_one_dir_for_both(out, err)?;
        }
        let dirs = stdout_dir.iter().chain(&stderr_dir);
        let locks = dirs
            .map(|dir| lock_dir(dir))
            .collect::<io::Result<Vec<_>>>()?;
        Ok(OutputFiles {
            stdout_dir,
            stderr_dir,
            names: file_names(hosts),
            open: HashMap::new(),
            failures: Vec::new(),
            private,
            _locks: locks,
        })
    }

    fn dir(&self, stream: Stream) -> Option<&Path> {
        match stream {
            Stream::Stdout => self.stdout_dir.as_deref(),
            Stream::Stderr => self.stderr_dir.as_deref(),
        }
    }
}

impl Reporter for OutputFiles {
    /// Files exist (empty) from the moment a host starts, as in pssh.
    fn started(&mut self, host: HostRef<'_>) -> io::Result<()> {
        for stream in [Stream::Stdout, Stream::Stderr] {
            if let Some(dir) = self.dir(stream) {
                let path = dir.join(&self.names[host.index]);
                let cannot = |e: io::Error| {
                    io::Error::new(e.kind(), format!("cannot create {}: {e}", path.display()))
                };
                let file = File::create(&path).map_err(cannot)?;
                if self.private {
                    use std::os::unix::fs::PermissionsExt;
                    let private = std::fs::Permissions::from_mode(0o600);
                    file.set_permissions(private).map_err(cannot)?;
                }
                self.open.insert((host.index, stream), (file, path));
            }
        }
        Ok(())
    }

    fn output(&mut self, host: HostRef<'_>, stream: Stream, data: &[u8]) -> io::Result<()> {
        let key = (host.index, stream);
        let Some((file, _)) = self.open.get_mut(&key) else {
            return Ok(());
        };
        if let Err(error) = file.write_all(data) {
            if let Some((_, path)) = self.open.remove(&key) {
                self.failures.push(set_aside(&path, &error));
            }
        }
        Ok(())
    }

    fn finished(&mut self, host: HostRef<'_>, _result: &HostResult) -> io::Result<()> {
        self.open.remove(&(host.index, Stream::Stdout));
        self.open.remove(&(host.index, Stream::Stderr));
        Ok(())
    }

    fn run_finished(&mut self) -> io::Result<()> {
        match self.failures.is_empty() {
            true => Ok(()),
            false => Err(io::Error::other(self.failures.join("; "))),
        }
    }
}

/// `-o` and `-e` naming one directory (both made by now) would write each host's stdout and
/// stderr to one file, each over the other.
fn refuse_one_dir_for_both(out: &Path, err: &Path) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let (out_meta, err_meta) = (std::fs::metadata(out)?, std::fs::metadata(err)?);
    match (out_meta.dev(), out_meta.ino()) == (err_meta.dev(), err_meta.ino()) {
        true => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "-o and -e name one directory ({}): each host's stdout and stderr would \
                 overwrite each other there; give two directories",
                out.display()
            ),
        )),
        false => Ok(()),
    }
}

/// Renames a file that could not be written whole to `NAME.partial`, and
/// says so.
fn set_aside(path: &Path, error: &io::Error) -> String {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    match std::fs::rename(path, &partial) {
        Ok(()) => format!(
            "cannot write {}: {error}; what was written is in {}",
            path.display(),
            Path::new(&partial).display()
        ),
        Err(_) => format!("cannot write {}: {error}; it is incomplete", path.display()),
    }
}
