//! A local file that appears under its final name only once it is whole
//! and on disk: pslurp's pulls and pplay's fetches. It is written unnamed
//! (`O_TMPFILE`) where the filesystem allows it, so that a crash, a kill -9
//! or a second Ctrl-C leaves nothing behind; elsewhere under a dot-name
//! beside the final one, removed when the pull fails. Blocking I/O: use it
//! from the output thread or a blocking task, never on the async runtime.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::io::{AsRawFd, FromRawFd};
use std::path::{Path, PathBuf};

/// A file being written for `final_path`.
#[derive(Debug)]
pub struct PartialFile {
    file: File,
    final_path: PathBuf,
    /// The dot-name it is written under where it could not be unnamed.
    named: Option<PathBuf>,
}

impl PartialFile {
    /// Starts a file for `final_path`, whose directory must exist. A
    /// symbolic link is followed, so that its target is replaced and the
    /// link stays; anything there that is not a regular file (a device, a
    /// FIFO, a directory) is refused rather than replaced.
    pub fn create(final_path: &Path) -> io::Result<PartialFile> {
        PartialFile::create_in(parent_of(final_path), final_path)
    }

    /// The same, written in `staging` (an existing directory on the same
    /// filesystem); the final directory is made only on commit, so that a
    /// pull that fails or is killed leaves no empty directory either.
    pub fn create_in(staging: &Path, final_path: &Path) -> io::Result<PartialFile> {
        PartialFile::start(staging, &regular_target(final_path)?)
    }

    /// Starts a file that replaces the name `final_path` itself, a
    /// symbolic link there included, as install(1) does: for files this
    /// program makes (man pages), never for an operator's own.
    pub fn replacing(final_path: &Path) -> io::Result<PartialFile> {
        PartialFile::start(parent_of(final_path), final_path)
    }

    /// A file that is never given `final_path` itself: an archive that its
    /// caller unpacks into a directory there on success (pslurp -r), so
    /// whatever is there now (an earlier pull) is the caller's to replace.
    pub fn scratch_for(staging: &Path, final_path: &Path) -> io::Result<PartialFile> {
        PartialFile::start(staging, final_path)
    }

    fn start(staging: &Path, final_path: &Path) -> io::Result<PartialFile> {
        if let Some(file) = unnamed_in(staging) {
            return Ok(PartialFile {
                file,
                final_path: final_path.to_path_buf(),
                named: None,
            });
        }
        let named = temp_name(staging, final_path);
        Ok(PartialFile {
            file: std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&named)?,
            final_path: final_path.to_path_buf(),
            named: Some(named),
        })
    }

    /// Makes it readable and writable by this user only (what came from a
    /// host may be a secret there).
    pub fn keep_private(&self) -> io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        self.file
            .set_permissions(std::fs::Permissions::from_mode(0o600))
    }

    pub fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.file.write_all(data)
    }

    /// Flushes it to disk and gives it its final name (making its
    /// directory if need be), replacing what was there; on an error
    /// nothing of it stays.
    pub fn commit(self) -> io::Result<()> {
        let result = self
            .file
            .sync_all()
            .and_then(|()| std::fs::create_dir_all(parent_of(&self.final_path)))
            .and_then(|()| self.link());
        if result.is_err() {
            self.discard();
        }
        result
    }

    /// Forgets the file: nothing of it stays.
    pub fn discard(self) {
        if let Some(named) = &self.named {
            let _ = std::fs::remove_file(named);
        }
    }

    /// The file as a reader from its start (to unpack an archive).
    pub fn reader(&self) -> io::Result<File> {
        let mut copy = self.file.try_clone()?;
        io::Seek::seek(&mut copy, io::SeekFrom::Start(0))?;
        Ok(copy)
    }

    fn link(&self) -> io::Result<()> {
        let named = match &self.named {
            Some(named) => named.clone(),
            None => {
                // An unnamed file gets a dot-name first (linkat cannot
                // replace a file), then is renamed over the final one.
                let named = temp_name(parent_of(&self.final_path), &self.final_path);
                let source = CString::new(format!("/proc/self/fd/{}", self.file.as_raw_fd()))?;
                let target = CString::new(named.as_os_str().as_bytes())?;
                // SAFETY: both paths are NUL-terminated C strings we own.
                let linked = unsafe {
                    libc::linkat(
                        libc::AT_FDCWD,
                        source.as_ptr(),
                        libc::AT_FDCWD,
                        target.as_ptr(),
                        libc::AT_SYMLINK_FOLLOW,
                    )
                };
                if linked != 0 {
                    return Err(io::Error::last_os_error());
                }
                named
            }
        };
        std::fs::rename(&named, &self.final_path).inspect_err(|_| {
            let _ = std::fs::remove_file(&named);
        })
    }
}

/// Where writing `path` lands: the path itself, or what its symbolic
/// links lead to, which must be a regular file or nothing yet.
fn regular_target(path: &Path) -> io::Result<PathBuf> {
    let mut path = path.to_path_buf();
    // The kernel's own limit on links followed in one lookup.
    for _ in 0..40 {
        let metadata = match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(path),
            other => other?,
        };
        if metadata.is_file() {
            return Ok(path);
        }
        if !metadata.file_type().is_symlink() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "is not a regular file",
            ));
        }
        let target = std::fs::read_link(&path)?;
        path = match path.parent() {
            Some(dir) => dir.join(target),
            None => target,
        };
    }
    Err(io::Error::other("too many levels of symbolic links"))
}

/// An unnamed file in `dir`, where the filesystem supports them.
fn unnamed_in(dir: &Path) -> Option<File> {
    let dir = CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: open with a NUL-terminated path; the descriptor is owned by
    // the File made from it, and only when it is valid.
    let fd = unsafe {
        libc::open(
            dir.as_ptr(),
            libc::O_TMPFILE | libc::O_RDWR | libc::O_CLOEXEC,
            0o644,
        )
    };
    (fd >= 0).then(|| unsafe { File::from_raw_fd(fd) })
}

/// The directory `path` is in.
pub(crate) fn parent_of(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// `.NAME.fleet-PID-N` in `dir`, NAME being `final_path`'s.
fn temp_name(dir: &Path, final_path: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let name = final_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let unique = NEXT.fetch_add(1, Ordering::Relaxed);
    dir.join(format!(".{name}.fleet-{}-{unique}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileTypeExt;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn appears_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("messages");
        std::fs::write(&target, "old").unwrap();
        let mut partial = PartialFile::create(&target).unwrap();
        partial.write_all(b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "old");
        partial.commit().unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "new");
        let mut dropped = PartialFile::create(&target).unwrap();
        dropped.write_all(b"half").unwrap();
        dropped.discard();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "new");
        assert_eq!(names(dir.path()), ["messages"]);
        let mut read_back = PartialFile::create(&target).unwrap();
        read_back.write_all(b"tar").unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut read_back.reader().unwrap(), &mut text).unwrap();
        assert_eq!(text, "tar");
    }

    #[test]
    fn its_directory_is_made_only_when_it_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("host").join("messages");
        let dropped = PartialFile::create_in(dir.path(), &target).unwrap();
        dropped.discard();
        assert!(names(dir.path()).is_empty());
        let mut kept = PartialFile::create_in(dir.path(), &target).unwrap();
        kept.write_all(b"kept").unwrap();
        kept.commit().unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "kept");
        assert_eq!(names(dir.path()), ["host"]);
    }

    #[test]
    fn a_link_is_followed_and_what_is_not_a_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("target", &link).unwrap();
        let mut partial = PartialFile::create(&link).unwrap();
        partial.write_all(b"through").unwrap();
        partial.commit().unwrap();
        assert!(link.symlink_metadata().unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "through");
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        for refused in [fifo.as_path(), dir.path()] {
            let error = PartialFile::create(refused).unwrap_err();
            assert_eq!(error.to_string(), "is not a regular file");
        }
        assert!(fifo.symlink_metadata().unwrap().file_type().is_fifo());
    }
}
