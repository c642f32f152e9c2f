//! One rollout of a playbook over an inventory at a time on this machine.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::journal::{now, try_lock, JournalError};
use crate::ssh::transfer::hex;

/// Held while a playbook rolls over an inventory: a second pplay of the
/// same playbook over the same inventory (typed twice, or started by a
/// colleague on the same bastion, or from a copy of either file) would take
/// down twice the hosts `serial` allows. The lock is keyed by the two
/// files' contents, and kept where every user of the machine sees it
/// ([`machine_locks`]). Other playbooks and `--check` are not held back.
/// It is the kernel's (flock), so it dies with its process: a killed run
/// never blocks the next one.
#[derive(Debug)]
pub struct RolloutLock {
    _file: File,
}

impl RolloutLock {
    /// Takes the lock of `playbook` over `inventory` (each a path and the
    /// SHA-256 of its contents) in `locks`, or says who holds it.
    pub fn take(
        locks: &Path,
        (playbook, playbook_sha256): (&Path, &str),
        (inventory, inventory_sha256): (&Path, &str),
    ) -> Result<RolloutLock, JournalError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| JournalError::Io { path, source }
        };
        let key = Sha256::new()
            .chain_update(playbook_sha256)
            .chain_update(inventory_sha256)
            .finalize();
        std::fs::create_dir_all(locks).map_err(io(locks))?;
        let path = locks.join(format!("{}.lock", hex(&key[..16])));
        let (mut file, writable) = open_lock_file(&path).map_err(io(&path))?;
        if !try_lock(&file).map_err(io(&path))? {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            return Err(JournalError::RolloutRunning {
                playbook: playbook.to_path_buf(),
                inventory: inventory.to_path_buf(),
                holder: match holder.is_empty() {
                    true => "another pplay".into(),
                    false => holder.into(),
                },
            });
        }
        if writable {
            let holder = format!(
                "pplay pid {} of {} (started {})",
                std::process::id(),
                user(),
                crate::clock::date_time(now())
            );
            file.set_len(0)
                .and_then(|()| file.rewind())
                .and_then(|()| file.write_all(holder.as_bytes()))
                .map_err(io(&path))?;
        }
        Ok(RolloutLock { _file: file })
    }
}

/// The machine's lock directory, `/run/lock/fleet`, made world-writable
/// and sticky (as /run/lock itself) by whoever comes first; `None` where
/// there is no /run/lock or the directory there is not one to trust (a
/// link, or not sticky).
pub fn machine_locks() -> Option<PathBuf> {
    let run_lock = Path::new("/run/lock");
    if !run_lock.is_dir() {
        return None;
    }
    let dir = run_lock.join("fleet");
    if std::fs::DirBuilder::new().create(&dir).is_ok() {
        let shared = std::fs::Permissions::from_mode(0o1777);
        std::fs::set_permissions(&dir, shared).ok()?;
    }
    let metadata = std::fs::symlink_metadata(&dir).ok()?;
    let sticky_and_shared = metadata.mode() & 0o1777 == 0o1777;
    (metadata.is_dir() && sticky_and_shared).then_some(dir)
}

/// Opens (or makes, writable by every user) a lock file, never through a
/// symbolic link; read-only where another user made it and it is not
/// writable. Says whether it was opened for writing.
fn open_lock_file(path: &Path) -> std::io::Result<(File, bool)> {
    let open = |write: bool| {
        std::fs::OpenOptions::new()
            .read(true)
            .write(write)
            .create(write)
            .truncate(false)
            .mode(0o666)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)
    };
    let (file, writable) = match open(true) {
        Ok(file) => (file, true),
        Err(error) if error.kind() == std::io::ErrorKind::PermissionDenied => (open(false)?, false),
        Err(error) => return Err(error),
    };
    let metadata = file.metadata()?;
    if !metadata.is_file() || metadata.nlink() != 1 {
        return Err(std::io::Error::other("is not a plain lock file"));
    }
    if writable && metadata.uid() == current_uid() {
        // The umask must not keep other users from taking the lock.
        file.set_permissions(std::fs::Permissions::from_mode(0o666))?;
    }
    Ok((file, writable))
}

fn current_uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// Who runs this pplay: the login name, else the uid.
fn user() -> String {
    std::env::var("USER")
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| format!("uid {}", current_uid()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ssh::transfer::hash_file;

    /// The lock of two files, by their contents as pplay hashes them.
    fn take(locks: &Path, playbook: &Path, inventory: &Path) -> Result<RolloutLock, JournalError> {
        let sha256 = |path: &Path| hash_file(path).unwrap().0;
        RolloutLock::take(
            locks,
            (playbook, &sha256(playbook)),
            (inventory, &sha256(inventory)),
        )
    }

    #[test]
    fn one_rollout_of_a_playbook_over_an_inventory_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let locks = dir.path().join("locks");
        let (playbook, other, inventory) = (
            dir.path().join("p.yml"),
            dir.path().join("q.yml"),
            dir.path().join("i.yml"),
        );
        for (file, text) in [(&playbook, "a"), (&other, "b"), (&inventory, "hosts")] {
            std::fs::write(file, text).unwrap();
        }
        let first = take(&locks, &playbook, &inventory).unwrap();
        // The same files by another name are the same rollout.
        let again = dir.path().join(".").join("p.yml");
        let refused = take(&locks, &again, &inventory).unwrap_err().to_string();
        let holder = format!("by pplay pid {} of ", std::process::id());
        assert!(
            refused.contains("p.yml is already being rolled out over"),
            "{refused}"
        );
        assert!(refused.contains(&holder), "{refused}");
        // So is a copy.
        let copy = dir.path().join("copy.yml");
        std::fs::copy(&playbook, &copy).unwrap();
        assert!(take(&locks, &copy, &inventory).is_err());
        let _other = take(&locks, &other, &inventory).unwrap();
        drop(first);
        take(&locks, &playbook, &inventory).unwrap();
    }
}
