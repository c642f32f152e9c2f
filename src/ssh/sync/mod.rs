//! Keeping a tree in step on many hosts (prsync, pplay's `sync:`): the
//! local sources are scanned once; each host answers one listing of what it
//! has ([`listing`]); the difference is planned ([`plan`]) and hosts that
//! need the same get the same plan, built once into one verified stream
//! ([`stream`]). Only what changed travels.

mod exclude;
mod listing;
mod local;
mod plan;
mod stream;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

pub use exclude::Excludes;
use local::LocalTree;
use plan::{Action, Needs};

use crate::engine::{Decision, Planned, Planner, Probe};
use crate::ssh::transfer::run_token;
use crate::text::printable;

/// How to sync, from prsync's flags or a `sync:` task.
#[derive(Debug, Clone, Default)]
pub struct SyncOptions {
    /// Enter directories (-r; -a implies it).
    pub recursive: bool,
    /// Symbolic links as links, and owners and groups where the host
    /// allows (-a). Modes and modification times are always kept: the
    /// times are what tell an unchanged file.
    pub archive: bool,
    /// Compress the stream (-z).
    pub compress: bool,
    /// Remove what the sources lack from synced directories (--delete).
    pub delete: bool,
    /// Compare content (SHA-256), not size and time (-c).
    pub checksum: bool,
    /// Say what would change and change nothing (-n).
    pub dry_run: bool,
    /// Keep replaced and deleted files as NAME+SUFFIX (--backup).
    pub backup: Option<String>,
    pub excludes: Excludes,
}

/// Most listing a host may send: about a million entries.
const MAX_LISTING: usize = 256 * 1024 * 1024;
/// Most plans kept for hosts to share (each holds its archive's headers;
/// file content is held within one budget for all, see `stream`).
const MAX_SHARED: usize = 64;

/// One sync to run on many hosts: the scanned sources and the plans made
/// so far, shared by every host that needs the same.
pub struct Syncer {
    local: LocalTree,
    dest: String,
    options: SyncOptions,
    /// Names this run's temporary files on every host.
    token: String,
    plans: Mutex<HashMap<Needs, Arc<Planned>>>,
    /// File content held in memory by all plans together.
    held: AtomicU64,
}

impl Syncer {
    /// Scans the sources (the error names the one that cannot be synced).
    pub fn new(sources: &[PathBuf], dest: &str, options: SyncOptions) -> Result<Syncer, String> {
        if dest.is_empty() || dest.contains('\0') {
            return Err(format!("expected a destination path, found `{dest}`"));
        }
        // The login's home, where remote commands start (never quoted as `~`).
        let dest = match dest {
            "~" | "~/" => ".",
            _ => dest.strip_prefix("~/").unwrap_or(dest),
        };
        let local = LocalTree::scan(sources, &options)?;
        Ok(Syncer {
            local,
            dest: dest.to_string(),
            options,
            token: run_token(),
            plans: Mutex::new(HashMap::new()),
            held: AtomicU64::new(0),
        })
    }

    /// What the sources hold that is not sent, said before the run: symbolic
    /// links without -a, and devices, FIFOs and sockets.
    pub fn skipped(&self) -> Option<String> {
        let (links, special) = (self.local.skipped_links, self.local.skipped_special);
        let links =
            (links > 0).then(|| format!("{links} symbolic link(s) (-a copies them as links)"));
        let special = (special > 0).then(|| format!("{special} device(s), FIFO(s) or socket(s)"));
        let skipped: Vec<String> = links.into_iter().chain(special).collect();
        (!skipped.is_empty()).then(|| format!("skipping {}", skipped.join(" and ")))
    }

    /// The listing each host answers, and this syncer to plan from it.
    pub fn probe(self: &Arc<Self>) -> Probe {
        Probe {
            command: listing::command(
                &self.dest,
                self.local.tops.as_deref(),
                self.options.checksum,
            ),
            max_output: MAX_LISTING,
            planner: Arc::clone(self) as Arc<dyn Planner>,
        }
    }

    /// The plan for needs, made once for all hosts that have them.
    fn shared(&self, needs: Needs, entries: &local::Entries) -> Result<Arc<Planned>, String> {
        let mut shared = self.plans.lock().map_err(|_| "a plan failed to build")?;
        if let Some(planned) = shared.get(&needs) {
            return Ok(Arc::clone(planned));
        }
        let planned = Arc::new(stream::build(
            &needs,
            entries,
            &self.dest,
            &self.options,
            &self.token,
            &self.held,
        )?);
        if shared.len() < MAX_SHARED {
            shared.insert(needs, Arc::clone(&planned));
        }
        Ok(planned)
    }
}

impl Planner for Syncer {
    fn decide(&self, listing: &[u8]) -> Result<Decision, String> {
        let listing = listing::parse(listing)?;
        let (needs, entries) = plan::needs(&self.local, listing, &self.dest, &self.options)?;
        if needs.is_empty() {
            return Ok(Decision::Unchanged);
        }
        let changes = needs.changes(&entries);
        if self.options.dry_run {
            let text = Bytes::from(dry_run_report(&needs, &changes));
            return Ok(Decision::Report(text));
        }
        Ok(Decision::Run(self.shared(needs, &entries)?))
    }
}

/// What a dry run would do: the counts, then one line per entry.
fn dry_run_report(needs: &Needs, changes: &crate::engine::Changes) -> String {
    let mut text = format!("would: {changes}\n");
    let line =
        |verb: &str, path: &[u8]| format!("{verb} {}\n", printable(&String::from_utf8_lossy(path)));
    for (path, action) in &needs.sends {
        let verb = match action {
            Action::Create => "create",
            _ => "update",
        };
        text.push_str(&line(verb, path));
    }
    for path in &needs.deletes {
        text.push_str(&line("delete", path));
    }
    text
}
