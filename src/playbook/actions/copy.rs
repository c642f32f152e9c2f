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
use crate::ssh::shell_quote;
use crate::ssh::transfer::{
    checksum_probe, install_script, parse_account, stdin_of, InstallOptions, Item,
};

pub async fn copy(step: Step<'_>, spec: &CopySpec, sources: &Arc<Sources>) -> Done {
    let (item, dest) = source(&step, spec, sources).await?;
    let options = InstallOptions {
        backup: backup_suffix(spec.backup.as_ref().map(|b| b.0.as_str())),
        owner: account(&step, spec.owner.as_deref())?,
        group: account(&step, spec.group.as_deref())?,
    };
    if spec.skip_unchanged && holds(step.remote, step.timeout, &item, &dest).await? {
        return settle(step, &item, &dest, &options).await;
    }
    let items = std::slice::from_ref(item.as_ref());
    let script = install_script(&options, &dest, items);
    let captured = step
        .remote
        .exec(&script, &stdin_of(items), step.timeout)
        .await?;
    captured.accepted(&[0])?;
    Ok(TaskStatus::changed())
}

/// The content is already there: the mode (and owner and group) an
/// install would give are set where they differ, so a `mode: "0600"` of a
/// file that is there with 0644 is never left readable by all.
async fn settle(step: Step<'_>, item: &Item, dest: &str, options: &InstallOptions) -> Done {
    let file = format!(
        "f={}; if [ -d \"$f\" ]; then f=\"$f\"/{}; fi; ",
        shell_quote(dest),
        shell_quote(&item.name)
    );
    let probe = format!("{file}stat -c '%a %U %G %u %g' -- \"$f\"");
    let captured = step.remote.exec(&probe, &[], step.timeout).await?;
    captured.accepted(&[0])?;
    let now: Vec<&str> = captured.stdout.split_whitespace().collect();
    let mut fixes = Vec::new();
    if let Some(mode) = item
        .mode
        .filter(|mode| now.first() != Some(&format!("{mode:o}").as_str()))
    {
        fixes.push(format!("chmod {mode:o} -- \"$f\""));
    }
    // A name or a number: either matching is the same account.
    let is = |at: [usize; 2], want: &str| at.iter().any(|&i| now.get(i) == Some(&want));
    if let Some(owner) = options.owner.as_deref().filter(|o| !is([1, 3], o)) {
        fixes.push(format!("chown {} -- \"$f\"", shell_quote(owner)));
    }
    if let Some(group) = options.group.as_deref().filter(|g| !is([2, 4], g)) {
        fixes.push(format!("chgrp {} -- \"$f\"", shell_quote(group)));
    }
    if fixes.is_empty() {
        return Ok(TaskStatus::Ok("unchanged: the same SHA-256".into()));
    }
    let fix = format!("{file}{}", fixes.join(" && "));
    step.remote
        .exec(&fix, &[], step.timeout)
        .await?
        .accepted(&[0])?;
    Ok(TaskStatus::Changed(
        "the same SHA-256; mode or owner set".into(),
    ))
}

/// For `--check`: whether `skip_unchanged` would find the destination
/// already holding the file (always false without it).
pub async fn unchanged(
    step: Step<'_>,
    spec: &CopySpec,
    sources: &Arc<Sources>,
) -> Result<bool, TaskError> {
    if !spec.skip_unchanged {
        return Ok(false);
    }
    let (item, dest) = source(&step, spec, sources).await?;
    holds(step.remote, step.timeout, &item, &dest).await
}

/// Whether the destination's SHA-256 is the file's.
async fn holds(
    remote: &mut Remote,
    timeout: Option<Duration>,
    item: &Item,
    dest: &str,
) -> Result<bool, TaskError> {
    let (probe, unchanged_when) = checksum_probe(dest, std::slice::from_ref(item), None);
    let captured = remote.exec(&probe, &[], timeout).await?;
    Ok(captured.stdout.trim() == unchanged_when)
}

/// The loaded source of a copy and its expanded destination.
async fn source(
    step: &Step<'_>,
    spec: &CopySpec,
    sources: &Arc<Sources>,
) -> Result<(Arc<Item>, String), TaskError> {
    let src = step.expand(&spec.src)?;
    let item = match sources.get(&src, spec.mode.as_deref()) {
        Some(item) => item,
        // Named by a fact of a host that skipped preflight (resumed).
        None => {
            let loaded = sources.load_off_runtime(&src, spec.mode.as_deref()).await;
            loaded.map_err(TaskError::Local)?.item
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
