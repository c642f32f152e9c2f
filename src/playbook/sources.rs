//! The files `copy` sends, each read and hashed once whatever the number of
//! hosts. A source that names only inventory, playbook and `-e` variables
//! is loaded when the playbook is checked; one that names a host fact
//! (`modules/{{ host.kernel }}/xen-evtchn.ko`) is loaded in preflight, once
//! the facts are known, before any host is changed. A resumed run refuses
//! a source whose SHA-256 changed since the journal started.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::spec::SyncSpec;
use crate::ssh::sync::{SyncOptions, Syncer};
use crate::ssh::transfer::{parse_mode, Item};

/// Every source of a run, by its expanded path.
pub struct Sources {
    /// Where relative sources are.
    base: PathBuf,
    /// Each path loaded so far (with the mode a task gives it: two tasks
    /// may send one file with different modes), or why it could not be.
    files: Mutex<HashMap<SourceKey, Result<Arc<Item>, String>>>,
    /// From a resumed journal: the inputs as they were when it started.
    journaled: BTreeMap<String, String>,
    /// Each `sync` scanned so far, by its expanded spec (and whether a
    /// dry run, for --check): hosts with the same one share its plans.
    syncers: Mutex<HashMap<(SyncSpec, bool), Arc<Syncer>>>,
}

/// A source as a task sends it: its path, and the mode the task sets.
type SourceKey = (String, Option<String>);

/// A source loaded now for the first time, to journal its SHA-256.
pub struct Loaded {
    pub item: Arc<Item>,
    pub first: bool,
}

impl Sources {
    pub fn new(base: &Path) -> Sources {
        Sources {
            base: base.to_path_buf(),
            files: Mutex::new(HashMap::new()),
            journaled: BTreeMap::new(),
            syncers: Mutex::new(HashMap::new()),
        }
    }

    /// Checks sources loaded later against a resumed journal's inputs.
    pub fn resuming(&mut self, journaled: &BTreeMap<String, String>) {
        self.journaled = journaled.clone();
    }

    /// The file at `src` (relative to the base), read and hashed the first
    /// time it is asked for; `mode` (octal text) overrides the file's.
    pub fn load(&self, src: &str, mode: Option<&str>) -> Result<Loaded, String> {
        let mut files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        let key = (src.to_string(), mode.map(str::to_string));
        if let Some(loaded) = files.get(&key) {
            return loaded.clone().map(|item| Loaded { item, first: false });
        }
        let loaded = self.read(src, mode).map(Arc::new);
        files.insert(key, loaded.clone());
        loaded.map(|item| Loaded { item, first: true })
    }

    /// [`Sources::load`] on the blocking pool, for a run under way: reading
    /// and hashing a large module must not hold up the async runtime.
    pub async fn load_off_runtime(
        self: &Arc<Self>,
        src: &str,
        mode: Option<&str>,
    ) -> Result<Loaded, String> {
        let (sources, src, mode) = (Arc::clone(self), src.to_string(), mode.map(str::to_string));
        tokio::task::spawn_blocking(move || sources.load(&src, mode.as_deref()))
            .await
            .map_err(|e| format!("copy src: {e}"))?
    }

    /// The syncer of an expanded `sync` spec, its source scanned (off the
    /// async threads) the first time it is asked for.
    pub async fn syncer(
        self: &Arc<Self>,
        spec: &SyncSpec,
        options: SyncOptions,
    ) -> Result<Arc<Syncer>, String> {
        let key = (spec.clone(), options.dry_run);
        if let Some(syncer) = self
            .syncers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(Arc::clone(syncer));
        }
        let source = self.base.join(&spec.src);
        let dest = spec.dest.clone();
        let scanned = tokio::task::spawn_blocking(move || Syncer::new(&[source], &dest, options))
            .await
            .map_err(|e| format!("sync src: {e}"))?
            .map_err(|why| format!("sync src {why}"))?;
        let mut syncers = self.syncers.lock().unwrap_or_else(|e| e.into_inner());
        Ok(Arc::clone(
            syncers.entry(key).or_insert_with(|| Arc::new(scanned)),
        ))
    }

    /// Whether `src` (relative to the base) is there to be read.
    pub fn exists(&self, src: &str) -> Result<(), String> {
        std::fs::metadata(self.base.join(src))
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// A source loaded before, with that mode.
    pub fn get(&self, src: &str, mode: Option<&str>) -> Option<Arc<Item>> {
        let files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        let key = (src.to_string(), mode.map(str::to_string));
        files.get(&key).and_then(|loaded| loaded.clone().ok())
    }

    /// `copy src PATH` and SHA-256 of every source loaded so far.
    pub fn inputs(&self) -> BTreeMap<String, String> {
        let files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        files
            .iter()
            .filter_map(|((src, _), loaded)| {
                Some((input_name(src), loaded.as_ref().ok()?.sha256.clone()))
            })
            .collect()
    }

    fn read(&self, src: &str, mode: Option<&str>) -> Result<Item, String> {
        let mode = mode
            .map(parse_mode)
            .transpose()
            .map_err(|why| format!("mode: {why}"))?;
        let item = Item::load(&self.base.join(src), false, mode)
            .map_err(|why| format!("copy src {src}: {why}"))?;
        match self.journaled.get(&input_name(src)) {
            Some(sha256) if *sha256 != item.sha256 => Err(format!(
                "copy src {src} changed since the journal was started; resuming would mix two rollouts"
            )),
            _ => Ok(item),
        }
    }
}

/// How a source is named among a run's inputs.
pub fn input_name(src: &str) -> String {
    format!("copy src {src}")
}
