//! The local side of a sync: the sources scanned once, before any host is
//! contacted, into entries named as they are to be on the host (rsync's
//! trailing-slash rule decides the names).

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::SyncOptions;
use crate::ssh::transfer::hash_file;

/// One file, directory or symbolic link to have on the host.
#[derive(Debug, Clone)]
pub struct LocalEntry {
    pub kind: LocalKind,
    /// Permission bits (with set-id and sticky bits).
    pub mode: u32,
    /// Modification time: seconds, and nanoseconds within the second.
    pub mtime: i64,
    pub mtime_nsec: u32,
    pub uid: u32,
    pub gid: u32,
}

#[derive(Debug, Clone)]
pub enum LocalKind {
    File {
        source: PathBuf,
        len: u64,
        /// SHA-256 in hex, only with `--checksum`.
        sha256: Option<String>,
    },
    Dir,
    Symlink(Vec<u8>),
}

/// Entries keyed by their path under the destination.
pub type Entries = BTreeMap<Vec<u8>, LocalEntry>;

/// Everything to sync, keyed by the path under the destination.
#[derive(Debug, Default)]
pub struct LocalTree {
    pub entries: Entries,
    /// What to list on the host: the top names, or `None` for all of the
    /// destination (a source given as `dir/`).
    pub tops: Option<Vec<Vec<u8>>>,
    /// Where `--delete` may remove what the sources lack: `b""` for all of
    /// the destination, or a directory's name.
    pub delete_scopes: Vec<Vec<u8>>,
    /// Sources that were one plain file (the destination may name it).
    pub single_file: bool,
    /// Symbolic links left out (without -a), for the warning.
    pub skipped_links: usize,
    /// Devices, FIFOs and sockets left out (never content), for the warning.
    pub skipped_special: usize,
}

impl LocalTree {
    /// Scans every source. A directory needs -r (or -a); `dir/` means its
    /// contents, `dir` the directory itself.
    pub fn scan(sources: &[PathBuf], options: &SyncOptions) -> Result<LocalTree, String> {
        let mut tree = LocalTree {
            tops: Some(Vec::new()),
            ..LocalTree::default()
        };
        for source in sources {
            tree.add_source(source, options)
                .map_err(|why| format!("{}: {why}", source.display()))?;
        }
        tree.single_file = match sources {
            [only] => std::fs::metadata(only).is_ok_and(|m| m.is_file()),
            _ => false,
        };
        Ok(tree)
    }

    fn add_source(&mut self, source: &Path, options: &SyncOptions) -> Result<(), String> {
        let metadata = std::fs::metadata(source).map_err(|e| e.to_string())?;
        // `dir/`, and `.` or `/` (which have no name of their own): the contents.
        let bytes = source.as_os_str().as_bytes();
        let contents_only = bytes.ends_with(b"/")
            || bytes == b"."
            || bytes.ends_with(b"/.")
            || source.file_name().is_none();
        if metadata.is_dir() && !options.recursive {
            return Err("is a directory; use -r or -a".into());
        }
        if metadata.is_dir() && contents_only {
            self.tops = None;
            self.delete_scopes.push(Vec::new());
            return self.walk(source, Vec::new(), options);
        }
        let name = source
            .file_name()
            .map(|n| n.as_bytes().to_vec())
            .ok_or("has no file name")?;
        if !metadata.is_dir() && !metadata.is_file() {
            return Err("is not a regular file or a directory (a device, FIFO or socket)".into());
        }
        if self.entries.contains_key(&name) {
            return Err(format!(
                "another source is also named {}",
                String::from_utf8_lossy(&name)
            ));
        }
        if let Some(tops) = &mut self.tops {
            tops.push(name.clone());
        }
        if metadata.is_dir() {
            self.delete_scopes.push(name.clone());
        }
        self.add(source, name, &metadata, options)
    }

    /// Adds one entry (and, for a directory, what it holds).
    fn add(
        &mut self,
        path: &Path,
        name: Vec<u8>,
        metadata: &std::fs::Metadata,
        options: &SyncOptions,
    ) -> Result<(), String> {
        let kind = if metadata.is_dir() {
            LocalKind::Dir
        } else if metadata.file_type().is_symlink() {
            if !options.archive {
                self.skipped_links += 1;
                return Ok(());
            }
            let target = std::fs::read_link(path).map_err(|e| e.to_string())?;
            LocalKind::Symlink(target.as_os_str().as_bytes().to_vec())
        } else if metadata.is_file() {
            let sha256 = match options.checksum {
                true => Some(hash_file(path).map_err(|e| e.to_string())?.0),
                false => None,
            };
            LocalKind::File {
                source: path.to_path_buf(),
                len: metadata.len(),
                sha256,
            }
        } else {
            // Devices, FIFOs and sockets are not content to copy (rsync skips them too).
            self.skipped_special += 1;
            return Ok(());
        };
        let is_dir = matches!(kind, LocalKind::Dir);
        self.entries.insert(
            name.clone(),
            LocalEntry {
                kind,
                mode: metadata.mode() & 0o7777,
                mtime: metadata.mtime(),
                mtime_nsec: u32::try_from(metadata.mtime_nsec()).unwrap_or(0),
                uid: metadata.uid(),
                gid: metadata.gid(),
            },
        );
        match is_dir {
            true => self.walk(path, name, options),
            false => Ok(()),
        }
    }

    /// Adds what directory `path` holds, under `prefix`, skipping excluded names.
    fn walk(&mut self, path: &Path, prefix: Vec<u8>, options: &SyncOptions) -> Result<(), String> {
        let listing = std::fs::read_dir(path).map_err(|e| format!("{}: {e}", path.display()))?;
        for child in listing {
            let child = child.map_err(|e| format!("{}: {e}", path.display()))?;
            let child_path = child.path();
            let metadata = std::fs::symlink_metadata(&child_path)
                .map_err(|e| format!("{}: {e}", child_path.display()))?;
            let mut name = prefix.clone();
            if !name.is_empty() {
                name.push(b'/');
            }
            name.extend_from_slice(child.file_name().as_bytes());
            if options.excludes.excludes(&name, metadata.is_dir()) {
                continue;
            }
            self.add(&child_path, name, &metadata, options)?;
        }
        Ok(())
    }

    /// Whether `--delete` may remove `path` from the host.
    pub fn in_delete_scope(&self, path: &[u8]) -> bool {
        self.delete_scopes.iter().any(|scope| {
            scope.is_empty() || (path.starts_with(scope) && path.get(scope.len()) == Some(&b'/'))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> SyncOptions {
        SyncOptions {
            recursive: true,
            archive: true,
            ..SyncOptions::default()
        }
    }

    #[test]
    fn a_trailing_slash_syncs_the_contents_and_none_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::write(src.join("sub/file"), "x").unwrap();
        std::os::unix::fs::symlink("sub/file", src.join("link")).unwrap();
        let itself = LocalTree::scan(std::slice::from_ref(&src), &options()).unwrap();
        let names: Vec<&[u8]> = itself.entries.keys().map(|k| k.as_slice()).collect();
        assert_eq!(
            names,
            [&b"src"[..], b"src/link", b"src/sub", b"src/sub/file"]
        );
        assert_eq!(itself.tops, Some(vec![b"src".to_vec()]));
        assert!(itself.in_delete_scope(b"src/other"));
        assert!(!itself.in_delete_scope(b"srcx"));
        let mut slash = src.into_os_string();
        slash.push("/");
        let contents = LocalTree::scan(&[PathBuf::from(slash)], &options()).unwrap();
        let dot = LocalTree::scan(&[dir.path().join("src/.")], &options()).unwrap();
        assert_eq!(
            dot.entries.len(),
            contents.entries.len(),
            "`dir/.` is what dir holds"
        );
        let names: Vec<&[u8]> = contents.entries.keys().map(|k| k.as_slice()).collect();
        assert_eq!(names, [&b"link"[..], b"sub", b"sub/file"]);
        assert_eq!(contents.tops, None);
        assert!(contents.in_delete_scope(b"anything"));
    }

    #[test]
    fn directories_need_recursion_and_links_need_archive() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("x", dir.path().join("link")).unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.unwrap().success());
        let plain = SyncOptions::default();
        let error = LocalTree::scan(&[dir.path().to_path_buf()], &plain).unwrap_err();
        assert!(error.ends_with("is a directory; use -r or -a"), "{error}");
        let recursive = SyncOptions {
            recursive: true,
            ..SyncOptions::default()
        };
        let tree = LocalTree::scan(&[dir.path().to_path_buf()], &recursive).unwrap();
        assert_eq!((tree.skipped_links, tree.skipped_special), (1, 1));
        assert_eq!(tree.entries.len(), 1);
    }
}
