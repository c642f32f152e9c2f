//! `sync:` prsync's semantics for one tree: the host lists what it has,
//! and gets only what differs, in one verified stream (see
//! [`crate::ssh::sync`]). Changed only when something was sent or deleted.

use std::sync::Arc;

use bytes::Bytes;

use super::{Done, Step, TaskError, TaskStatus};
use crate::engine::{Decision, Planner};
use crate::playbook::spec::SyncSpec;
use crate::playbook::Sources;
use crate::ssh::sync::{Excludes, SyncOptions};
use crate::ssh::transfer::parse_suffix;
use crate::ssh::OutputSink;
use crate::ssh::Stream;

/// Most listing a host may send (as prsync).
const MAX_LISTING: usize = 256 * 1024 * 1024;

/// The prsync options a spec asks for; the error names the bad field.
pub fn options(spec: &SyncSpec, dry_run: bool) -> Result<SyncOptions, String> {
    if spec.src.is_empty() || spec.dest.is_empty() {
        return Err("sync: expected a non-empty `src` and `dest`".into());
    }
    let mut excludes = Excludes::default();
    for pattern in &spec.exclude {
        excludes
            .add(pattern)
            .map_err(|why| format!("sync exclude: {why}"))?;
    }
    let backup = match spec.backup.as_deref() {
        None | Some("false") => None,
        Some("true") => Some("~".to_string()),
        Some(suffix) => Some(parse_suffix(suffix).map_err(|why| format!("sync backup: {why}"))?),
    };
    Ok(SyncOptions {
        recursive: true,
        archive: spec.archive,
        compress: spec.compress,
        delete: spec.delete,
        checksum: spec.checksum,
        dry_run,
        backup,
        excludes,
    })
}

pub async fn sync(mut step: Step<'_>, spec: &SyncSpec, sources: &Arc<Sources>) -> Done {
    match decide(&mut step, spec, sources, false).await? {
        Decision::Unchanged => Ok(TaskStatus::Ok("unchanged".into())),
        Decision::Run(planned) => {
            step.remote
                .exec(&planned.command, &planned.stdin, step.timeout)
                .await?
                .accepted(&[0])?;
            Ok(TaskStatus::Changed(planned.changes.to_string()))
        }
        Decision::RunJob | Decision::Report(_) => {
            Err(TaskError::Local("sync: no plan was made".into()))
        }
    }
}

/// For `--check`: `None` when the host has the tree already, else what a
/// sync would do (the counts).
pub async fn would(
    mut step: Step<'_>,
    spec: &SyncSpec,
    sources: &Arc<Sources>,
) -> Result<Option<String>, TaskError> {
    Ok(match decide(&mut step, spec, sources, true).await? {
        Decision::Report(text) => Some(
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or_default()
                .to_string(),
        ),
        _ => None,
    })
}

/// Lists the host's side and plans from it.
async fn decide(
    step: &mut Step<'_>,
    spec: &SyncSpec,
    sources: &Arc<Sources>,
    dry_run: bool,
) -> Result<Decision, TaskError> {
    let expanded = SyncSpec {
        src: step.expand(&spec.src)?,
        dest: step.expand(&spec.dest)?,
        ..spec.clone()
    };
    let options = options(&expanded, dry_run).map_err(TaskError::Local)?;
    let syncer = sources
        .syncer(&expanded, options)
        .await
        .map_err(TaskError::Local)?;
    let probe = syncer.probe();
    let mut listing = Listing::default();
    let captured = step
        .remote
        .exec_into(&probe.command, &[], step.timeout, &mut listing)
        .await?;
    captured.accepted(&[0])?;
    if listing.overflowed {
        return Err(TaskError::Local(format!(
            "sync: the host's listing was over {MAX_LISTING} bytes"
        )));
    }
    let bytes = Bytes::from(listing.bytes);
    tokio::task::spawn_blocking(move || syncer.decide(&bytes))
        .await
        .map_err(|e| TaskError::Local(e.to_string()))?
        .map_err(TaskError::Local)
}

/// The host's listing, kept whole up to the limit.
#[derive(Default)]
struct Listing {
    bytes: Vec<u8>,
    overflowed: bool,
}

impl OutputSink for Listing {
    async fn output(&mut self, _: Stream, data: Bytes) -> std::io::Result<()> {
        let room = MAX_LISTING.saturating_sub(self.bytes.len());
        self.overflowed |= data.len() > room;
        self.bytes.extend_from_slice(&data[..data.len().min(room)]);
        Ok(())
    }
}
