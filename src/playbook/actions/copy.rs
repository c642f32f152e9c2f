//! `copy:` pcp's install of one file: a temporary file beside the
//! destination, SHA-256 verified, fsynced and renamed over it. Unchanged
//! (and nothing sent) when `skip_unchanged` finds the destination already
//! holding the file.

use std::sync::Arc;
use std::time::Duration;

use super::{Done, Step, TaskError, TaskStatus};
use crate::playbook::remote::Remote;
use crate::playbook::spec::CopySpec;
use crate::playbook::Sources;
use crate::ssh::transfer::{
    checksum_probe, install_script, parse_account, stdin_of, InstallOptions, Item,
};

pub async fn copy(step: Step<'_>, spec: &CopySpec, sources: &Sources) -> Done {
    let (item, dest) = source(&step, spec, sources)?;
    if spec.skip_unchanged && holds(step.remote, step.timeout, &item, &dest).await? {
        return Ok(TaskStatus::Ok("unchanged: the same SHA-256".into()));
    }
    let options = InstallOptions {
        backup: backup_suffix(spec.backup.as_ref().map(|b| b.0.as_str())),
        owner: account(&step, spec.owner.as_deref())?,
        group: account(&step, spec.group.as_deref())?,
    };
    let items = std::slice::from_ref(item.as_ref());
    let script = install_script(&options, &dest, items);
    let captured = step
        .remote
        .exec(&script, &stdin_of(items), step.timeout)
        .await?;
    captured.accepted(&[0])?;
    Ok(TaskStatus::changed())
}

/// For `--check`: whether `skip_unchanged` would find the destination
/// already holding the file (always false without it).
pub async fn unchanged(
    step: Step<'_>,
    spec: &CopySpec,
    sources: &Sources,
) -> Result<bool, TaskError> {
    if !spec.skip_unchanged {
        return Ok(false);
    }
    let (item, dest) = source(&step, spec, sources)?;
    holds(step.remote, step.timeout, &item, &dest).await
}

/// Whether the destination's SHA-256 is the file's.
async fn holds(
    remote: &mut Remote,
    timeout: Option<Duration>,
    item: &Item,
    dest: &str,
) -> Result<bool, TaskError> {
    let (probe, unchanged_when) = checksum_probe(dest, std::slice::from_ref(item));
    let captured = remote.exec(&probe, &[], timeout).await?;
    Ok(captured.stdout.trim() == unchanged_when)
}

/// The loaded source of a copy and its expanded destination.
fn source(
    step: &Step<'_>,
    spec: &CopySpec,
    sources: &Sources,
) -> Result<(Arc<Item>, String), TaskError> {
    let src = step.expand(&spec.src)?;
    let item = match sources.get(&src, spec.mode.as_deref()) {
        Some(item) => item,
        // Named by a fact of a host that skipped preflight (resumed).
        None => {
            sources
                .load(&src, spec.mode.as_deref())
                .map_err(TaskError::Local)?
                .item
        }
    };
    Ok((item, step.expand(&spec.dest)?))
}

/// An owner or group, expanded and checked: never shell text.
fn account(step: &Step<'_>, name: Option<&str>) -> Result<Option<String>, TaskError> {
    name.map(|name| parse_account(&step.expand(name)?).map_err(TaskError::Local))
        .transpose()
}

/// `backup: true` means `.bak`; `false` or absent, none; else the suffix.
fn backup_suffix(value: Option<&str>) -> Option<String> {
    match value {
        None | Some("false") => None,
        Some("true") => Some(".bak".into()),
        Some(suffix) => Some(suffix.to_string()),
    }
}
