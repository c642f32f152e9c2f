//! What one host needs, from the local tree and the host's listing: which
//! entries to create, update and delete. Hosts whose needs are the same
//! get the same plan (see [`super::Syncer`]).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use super::listing::{Destination, Listing, RemoteEntry, RemoteKind};
use super::local::{Entries, LocalEntry, LocalKind, LocalTree};
use super::SyncOptions;
use crate::engine::Changes;

/// What happens to one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    Create,
    Update,
    /// Updated where the host has another kind of thing (a directory
    /// where a file goes): that is removed first.
    Replace,
    /// The same content with another mode or time: those are set, nothing is sent.
    Attributes,
}

/// One host's plan: the entries to send (by path, with the local entry)
/// and the paths to delete, sorted so parents come first.
#[derive(Debug, Default, PartialEq, Eq, Hash)]
pub struct Needs {
    /// Where, on the host, the paths start (`None`: the destination itself).
    pub base: Option<String>,
    /// The destination directory does not exist yet and is made first.
    pub make_base: bool,
    pub sends: Vec<(Vec<u8>, Action)>,
    /// Topmost paths to remove (a directory goes with what it holds).
    pub deletes: Vec<Vec<u8>>,
    /// Every entry removed, counted one by one.
    pub deleted: u64,
    /// Temporary files of earlier runs (removed, with the next change, if
    /// their run is gone).
    pub stale: Vec<Vec<u8>>,
}

impl Needs {
    pub fn is_empty(&self) -> bool {
        // Leftovers alone are no reason to run: whose they are is for the
        // host to judge, and another host's (a shared filesystem) stay.
        self.sends.is_empty() && self.deletes.is_empty() && !self.make_base
    }

    pub fn changes(&self, local: &BTreeMap<Vec<u8>, LocalEntry>) -> Changes {
        let mut changes = Changes {
            deleted: self.deleted,
            ..Changes::default()
        };
        for (path, action) in &self.sends {
            match action {
                Action::Create => changes.created += 1,
                _ => changes.updated += 1,
            }
            let sent = local.get(path).map(|e| &e.kind);
            if let (Some(LocalKind::File { len, .. }), false) =
                (sent, *action == Action::Attributes)
            {
                changes.bytes += len;
            }
        }
        changes
    }
}

/// Works out what the host lacks, and the local entries by the names they
/// have there (the local tree itself, but for one file named by `dest`).
/// `dest` is the destination as given; the error says why nothing can be
/// synced there.
pub fn needs<'a>(
    local: &'a LocalTree,
    listing: Listing,
    dest: &str,
    options: &SyncOptions,
) -> Result<(Needs, Cow<'a, Entries>), String> {
    let mut entries = Cow::Borrowed(&local.entries);
    let mut plan = Needs::default();
    let mut remote = listing.entries;
    // prsync's own temporary files are never synced, replaced or deleted
    // as content; those of other runs are left to the script to judge.
    remote.retain(|path, _| {
        let ours = path.split(|&b| b == b'/').position(is_temporary);
        let depth = path.split(|&b| b == b'/').count();
        if ours == Some(depth - 1) {
            plan.stale.push(path.clone());
        }
        ours.is_none()
    });
    match listing.destination {
        Destination::Directory => {}
        // One file to a path that is not a directory: that path is the file.
        _ if local.single_file && !dest.ends_with('/') => {
            let (name, parent) = split_last(dest);
            let renamed = local.entries.values().next().cloned();
            entries = Cow::Owned(
                renamed
                    .map(|e| (name.as_bytes().to_vec(), e))
                    .into_iter()
                    .collect(),
            );
            if let Some(entry) = remote.remove(&Vec::new()) {
                remote.insert(name.as_bytes().to_vec(), entry);
            }
            plan.base = Some(parent.to_string());
        }
        Destination::Other => return Err(format!("{dest} is not a directory")),
        Destination::Missing => plan.make_base = true,
    }
    for (path, entry) in entries.iter() {
        if let Some(action) = action(entry, remote.get(path), options) {
            plan.sends.push((path.clone(), action));
        }
    }
    let in_the_way = |(path, action): &&(Vec<u8>, Action)| {
        *action == Action::Replace && remote.range(children(path)).next().is_some()
    };
    for (path, _) in plan.sends.iter().filter(in_the_way) {
        let name = String::from_utf8_lossy(path);
        if !options.delete {
            return Err(format!(
                "{name} is a directory with files in it on the host; --delete replaces it"
            ));
        }
        let held: Vec<(&Vec<u8>, &RemoteEntry)> = remote.range(children(path)).collect();
        let excluded = |(inside, entry): &(&Vec<u8>, &RemoteEntry)| {
            options
                .excludes
                .covers(inside, entry.kind == RemoteKind::Dir)
        };
        if held.iter().any(excluded) {
            return Err(format!(
                "{name} is a directory holding excluded files on the host; not replaced"
            ));
        }
        plan.deleted += held.len() as u64;
    }
    if options.delete {
        plan_deletes(&mut plan, local, &entries, &remote, options);
    }
    Ok((plan, entries))
}

/// `.prsync-TOKEN-...`: a name prsync gives its temporary files.
fn is_temporary(name: &[u8]) -> bool {
    name.strip_prefix(b".prsync-").is_some_and(|rest| {
        rest.len() > 13 && rest[..12].iter().all(u8::is_ascii_hexdigit) && rest[12] == b'-'
    })
}

/// The paths under directory `path`, as a range of sorted keys.
fn children(path: &[u8]) -> std::ops::Range<Vec<u8>> {
    [path, b"/"].concat()..[path, b"0"].concat()
}

/// `dir/name` as (`name`, `dir`); a bare name is in `.`.
fn split_last(path: &str) -> (&str, &str) {
    match path.rsplit_once('/') {
        Some(("", name)) => (name, "/"),
        Some((dir, name)) => (name, dir),
        None => (path, "."),
    }
}

/// What an entry needs, given what the host has at its path.
fn action(
    local: &LocalEntry,
    remote: Option<&RemoteEntry>,
    options: &SyncOptions,
) -> Option<Action> {
    let Some(remote) = remote else {
        return Some(Action::Create);
    };
    let same = match (&local.kind, &remote.kind) {
        // A directory's time changes as files land in it: only its mode counts.
        (LocalKind::Dir, RemoteKind::Dir) => local.mode == remote.mode,
        (LocalKind::Symlink(target), RemoteKind::Symlink(there)) => target == there,
        (LocalKind::File { len, sha256, .. }, RemoteKind::File) => {
            // Without -c, a file of the same size and time has the same content.
            let content = match options.checksum {
                true => sha256.is_some() && *sha256 == remote.sha256,
                false => *len == remote.len && same_time(local, remote),
            };
            if !content {
                return Some(Action::Update);
            }
            let attributes = same_time(local, remote) && local.mode == remote.mode;
            return (!attributes).then_some(Action::Attributes);
        }
        _ => return Some(Action::Replace),
    };
    (!same).then_some(Action::Update)
}

/// Whether the host's time is the local one: to the nanosecond, or to the
/// second where the host's filesystem keeps no fraction (ext3, FAT...).
fn same_time(local: &LocalEntry, remote: &RemoteEntry) -> bool {
    local.mtime == remote.mtime && (remote.mtime_nsec == 0 || local.mtime_nsec == remote.mtime_nsec)
}

/// `--delete`: what the host has under a synced directory and the sources
/// lack, unless excluded (or a backup this sync keeps). A directory is
/// removed whole unless something in it stays.
fn plan_deletes(
    plan: &mut Needs,
    local: &LocalTree,
    entries: &BTreeMap<Vec<u8>, LocalEntry>,
    remote: &BTreeMap<Vec<u8>, RemoteEntry>,
    options: &SyncOptions,
) {
    // What a replaced directory held goes with it, before the install.
    let replaced: Vec<&Vec<u8>> = plan
        .sends
        .iter()
        .filter(|(_, action)| *action == Action::Replace)
        .map(|(path, _)| path)
        .collect();
    let doomed = |path: &Vec<u8>, entry: &RemoteEntry| {
        !path.is_empty()
            && !replaced.iter().any(|gone| children(gone).contains(path))
            && !entries.contains_key(path)
            && local.in_delete_scope(path)
            && !options.excludes.covers(path, entry.kind == RemoteKind::Dir)
            && !options.backup.as_deref().is_some_and(|suffix| {
                path.split(|&b| b == b'/')
                    .any(|name| name.ends_with(suffix.as_bytes()))
            })
    };
    // Children sort after their parent: walking backwards sees them first.
    let mut kept: BTreeSet<&[u8]> = BTreeSet::new();
    let mut removed: BTreeSet<&[u8]> = BTreeSet::new();
    for (path, entry) in remote.iter().rev() {
        let mut prefix = path.clone();
        prefix.push(b'/');
        let inside = |set: &BTreeSet<&[u8]>| -> Vec<Vec<u8>> {
            set.range::<[u8], _>((Bound::Included(&prefix[..]), Bound::Unbounded))
                .take_while(|other| other.starts_with(&prefix))
                .map(|other| other.to_vec())
                .collect()
        };
        if doomed(path, entry) && inside(&kept).is_empty() {
            plan.deleted += 1;
            for child in inside(&removed) {
                removed.remove(&child[..]);
            }
            removed.insert(path);
        } else {
            kept.insert(path);
        }
    }
    plan.deletes = removed.into_iter().map(<[u8]>::to_vec).collect();
}

#[cfg(test)]
mod tests {
    use super::super::listing::parse;
    use super::*;
    use std::path::PathBuf;

    fn tree(dir: &std::path::Path) -> LocalTree {
        let mut slash = dir.as_os_str().to_owned();
        slash.push("/");
        LocalTree::scan(&[PathBuf::from(slash)], &recursive()).unwrap()
    }

    fn recursive() -> SyncOptions {
        SyncOptions {
            recursive: true,
            delete: true,
            ..SyncOptions::default()
        }
    }

    fn entry(kind: &str, mode: &str, size: u64, time: i64, path: &str) -> String {
        format!("{kind} {mode} {size} {time}.0 ./{path}\0\0")
    }

    #[test]
    fn only_what_differs_is_sent_and_extras_are_deleted_topmost() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("same"), "same").unwrap();
        std::fs::write(dir.path().join("new"), "new").unwrap();
        std::fs::write(dir.path().join("edited"), "edited").unwrap();
        let local = tree(dir.path());
        let meta = |name: &str| {
            let entry = &local.entries[name.as_bytes()];
            (format!("{:o}", entry.mode), entry.mtime)
        };
        let (mode, time) = meta("same");
        let listing = [
            "D\n".to_string(),
            entry("f", &mode, 4, time, "same"),
            entry("f", &mode, 4, time, "edited"),
            entry("d", "755", 0, 0, "old"),
            entry("f", "644", 1, 0, "old/a"),
            entry("f", "644", 1, 0, "old/b"),
        ]
        .concat();
        let listing = parse(listing.as_bytes()).unwrap();
        let (plan, entries) = needs(&local, listing.clone(), "/x", &recursive()).unwrap();
        assert_eq!(
            plan.sends,
            [
                (b"edited".to_vec(), Action::Update),
                (b"new".to_vec(), Action::Create)
            ]
        );
        assert_eq!(plan.deletes, [b"old".to_vec()]);
        let changes = plan.changes(&entries);
        assert_eq!(
            (
                changes.created,
                changes.updated,
                changes.deleted,
                changes.bytes
            ),
            (1, 1, 3, 9)
        );
    }

    #[test]
    fn an_excluded_file_keeps_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        let mut options = recursive();
        options.excludes.add("*.keep").unwrap();
        let local = LocalTree::scan(
            &[PathBuf::from(format!("{}/", dir.path().display()))],
            &options,
        )
        .unwrap();
        let listing = [
            "D\n".to_string(),
            entry("d", "755", 0, 0, "old"),
            entry("f", "644", 1, 0, "old/a"),
            entry("f", "644", 1, 0, "old/b.keep"),
        ]
        .concat();
        let listing = parse(listing.as_bytes()).unwrap();
        let (plan, _) = needs(&local, listing.clone(), "/x", &options).unwrap();
        assert_eq!(plan.deletes, [b"old/a".to_vec()]);
        assert_eq!(plan.deleted, 1);
    }

    #[test]
    fn a_directory_in_the_way_of_a_file_goes_only_with_delete() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x"), "file now").unwrap();
        let local = tree(dir.path());
        let listing = [
            "D\n".to_string(),
            entry("d", "755", 0, 0, "x"),
            entry("f", "644", 1, 0, "x/inside"),
        ]
        .concat();
        let listing = parse(listing.as_bytes()).unwrap();
        let keep = SyncOptions {
            delete: false,
            ..recursive()
        };
        let error = needs(&local, listing.clone(), "/d", &keep).unwrap_err();
        assert!(
            error.contains("x is a directory with files in it"),
            "{error}"
        );
        let (plan, _) = needs(&local, listing.clone(), "/d", &recursive()).unwrap();
        assert_eq!(plan.sends, [(b"x".to_vec(), Action::Replace)]);
        assert!(plan.deletes.is_empty());
        assert_eq!(plan.deleted, 1, "what the directory held is counted");
        let mut protecting = recursive();
        protecting.excludes.add("inside").unwrap();
        let error = needs(&local, listing.clone(), "/d", &protecting).unwrap_err();
        assert!(error.contains("holding excluded files"), "{error}");
    }

    #[test]
    fn one_file_may_be_named_by_the_destination() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        let local = LocalTree::scan(&[file], &SyncOptions::default()).unwrap();
        let missing = parse(b"N\n").unwrap();
        let (plan, entries) = needs(&local, missing, "/etc/motd", &SyncOptions::default()).unwrap();
        assert_eq!(plan.base.as_deref(), Some("/etc"));
        assert!(entries.contains_key(b"motd".as_slice()));
        let into = parse(b"D\n").unwrap();
        let (plan, _) = needs(&local, into, "/etc/motd/", &SyncOptions::default()).unwrap();
        assert_eq!(plan.sends, [(b"f".to_vec(), Action::Create)]);
    }
}
