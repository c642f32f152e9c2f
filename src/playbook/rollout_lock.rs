//! One rollout of a playbook over an inventory at a time on this machine.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::journal::{now, try_lock, JournalError};

/// Held while a playbook rolls over an inventory: a second pplay of the
/// same playbook over the same inventory (typed twice, or started by a
/// colleague on the same bastion) would take down twice the hosts `serial`
/// allows. Other playbooks and `--check` are not held back. The lock is
/// the kernel's (flock), so it dies with its process: a killed run never
/// blocks the next one.
#[derive(Debug)]
pub struct RolloutLock {
    _file: File,
}

impl RolloutLock {
    /// Takes the lock of `playbook` over `inventory` in `locks` (the state
    /// directory's), or says who holds it.
    pub fn take(
        locks: &Path,
        playbook: &Path,
        inventory: &Path,
    ) -> Result<RolloutLock, JournalError> {
        let (playbook, inventory) = (canonical(playbook), canonical(inventory));
        let io = |source| JournalError::Io {
            path: locks.to_path_buf(),
            source,
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(locks)
            .map_err(io)?;
        let key = Sha256::new()
            .chain_update(playbook.as_os_str().as_encoded_bytes())
            .chain_update([0])
            .chain_update(inventory.as_os_str().as_encoded_bytes())
            .finalize();
        let path = locks.join(format!("{}.lock", crate::ssh::transfer::hex(&key[..16])));
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io)?;
        if !try_lock(&file).map_err(io)? {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            return Err(JournalError::RolloutRunning {
                playbook,
                inventory,
                holder: match holder.is_empty() {
                    true => "another pplay".into(),
                    false => holder.into(),
                },
            });
        }
        let holder = format!(
            "pplay pid {} (started {})",
            std::process::id(),
            crate::clock::date_time(now())
        );
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(holder.as_bytes()))
            .map_err(io)?;
        Ok(RolloutLock { _file: file })
    }
}

fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path)
        .or_else(|_| std::path::absolute(path))
        .unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rollout_of_a_playbook_over_an_inventory_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let locks = dir.path().join("locks");
        let (playbook, other, inventory) = (
            dir.path().join("p.yml"),
            dir.path().join("q.yml"),
            dir.path().join("i.yml"),
        );
        for file in [&playbook, &other, &inventory] {
            std::fs::write(file, "").unwrap();
        }
        let first = RolloutLock::take(&locks, &playbook, &inventory).unwrap();
        // The same files by another name are the same rollout.
        let again = dir.path().join(".").join("p.yml");
        let refused = RolloutLock::take(&locks, &again, &inventory)
            .unwrap_err()
            .to_string();
        let holder = format!("by pplay pid {} (started ", std::process::id());
        assert!(
            refused.contains("p.yml is already being rolled out over"),
            "{refused}"
        );
        assert!(refused.contains(&holder), "{refused}");
        let _other = RolloutLock::take(&locks, &other, &inventory).unwrap();
        drop(first);
        RolloutLock::take(&locks, &playbook, &inventory).unwrap();
    }
}
