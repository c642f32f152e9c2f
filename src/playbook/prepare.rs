//! What a run works out before it contacts any host: each play's hosts
//! and the inventory hosts its tasks are delegated to, every host's
//! connection settings, the digests of the run's inputs (and, on a resume,
//! whether they changed), and where its run directory and journal go.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::journal::{now, JournalError};
use super::play::{PlayError, PlayRequest};
use super::remote::LOCALHOST;
use super::replay::Replay;
use super::sources::input_name;
use super::vars::Vars;
use super::{Play, Playbook, Sources};
use crate::inventory::yaml::{matches_patterns, Inventory, InventoryHost};
use crate::model::Host;
use crate::ssh::transfer::hash_file;
use crate::ssh::{expand_tilde, Connector, SetupError, SshOptions};
use crate::yaml::YamlError;

/// A play with its hosts, their starting variables, and the inventory
/// hosts its tasks are delegated to.
pub struct PreparedPlay {
    pub play: Arc<Play>,
    pub hosts: Vec<InventoryHost>,
    pub vars: Vec<Vars>,
    pub delegates: HashMap<String, InventoryHost>,
}

/// The connection settings a host's inventory variables give (`address`
/// and its `port`, `identity_file`, `known_hosts_file`, `proxy_jump`),
/// ranked like its hosts entry.
pub fn connection_options(vars: &Vars) -> SshOptions {
    SshOptions {
        host_name: vars.get("address").cloned(),
        port: vars.get("port").and_then(|port| port.parse().ok()),
        identity_files: vars
            .get("identity_file")
            .map(|path| vec![expand_tilde(path)])
            .unwrap_or_default(),
        user_known_hosts_files: vars
            .get("known_hosts_file")
            .map(|path| vec![expand_tilde(path)]),
        proxy_jump: vars
            .get("proxy_jump")
            .map(|jumps| jumps.split(',').map(str::to_string).collect()),
        ..SshOptions::default()
    }
}

/// Refuses a journal written for another playbook, or for this one
/// before it changed.
pub fn check_journal(
    request: &PlayRequest,
    playbook: &Playbook,
    replay: &Replay,
) -> Result<(), PlayError> {
    if replay.playbook_sha256 != playbook.sha256 {
        return Err(PlayError::Usage(format!(
            "{} changed since the journal was started; resuming would mix two rollouts \
             (start a new one, or put the old playbook back)",
            request.playbook.display()
        )));
    }
    let play = playbook
        .plays
        .get(replay.play)
        .ok_or_else(|| JournalError::Corrupt {
            path: replay.path.clone(),
            line: replay.play_line,
            message: format!(
                "names play {}, but the playbook has {}",
                replay.play + 1,
                playbook.plays.len()
            ),
        })?;
    replay.check_tasks(|phase| play.phase(phase).len())?;
    Ok(())
}

/// The inventory hosts `delegate_to` names, by name; `names` gives the
/// first task naming each (line, column, name), for messages.
pub fn delegate_hosts(
    inventory: &Inventory,
    play: &Play,
    names: &BTreeMap<String, (u64, u64, String)>,
) -> Result<HashMap<String, InventoryHost>, PlayError> {
    let mut hosts = HashMap::new();
    if let Some((line, column, task)) = names.get(LOCALHOST) {
        if !inventory.select(LOCALHOST).is_empty() {
            return Err(YamlError {
                path: play.path.clone(),
                line: *line,
                column: *column,
                message: format!(
                    "task `{task}`: delegate_to localhost: {} has a host named localhost too; \
                     `localhost` means this machine, so rename that host",
                    inventory.path.display()
                ),
            }
            .into());
        }
    }
    for (name, (line, column, task)) in names.iter().filter(|(name, _)| *name != LOCALHOST) {
        let host = inventory
            .select(name)
            .into_iter()
            .find(|h| h.host.label() == *name || h.host.name == *name)
            .ok_or_else(|| YamlError {
                path: play.path.clone(),
                line: *line,
                column: *column,
                message: format!(
                    "task `{task}`: delegate_to {name}: not a host of {} (`localhost` is this machine)",
                    inventory.path.display()
                ),
            })?;
        hosts.insert(name.clone(), host);
    }
    Ok(hosts)
}

/// Resolves the SSH settings of every host any play (or delegation)
/// contacts, each once.
pub fn connect_all(
    plays: &[PreparedPlay],
    connect: impl FnOnce(&[(&Host, &SshOptions)]) -> Result<Connector, SetupError>,
) -> Result<Connector, SetupError> {
    let mut seen = HashSet::new();
    let mut hosts: Vec<(&Host, SshOptions)> = Vec::new();
    for prepared in plays {
        for host in &prepared.hosts {
            if seen.insert(&host.host) {
                hosts.push((&host.host, connection_options(&host.vars)));
            }
        }
        for host in prepared.delegates.values() {
            if seen.insert(&host.host) {
                hosts.push((&host.host, connection_options(&host.vars)));
            }
        }
    }
    let pairs: Vec<_> = hosts
        .iter()
        .map(|(host, options)| (*host, options))
        .collect();
    connect(&pairs)
}

pub fn select_hosts(
    inventory: &Inventory,
    play: &Play,
    limit: Option<&str>,
) -> Result<Vec<InventoryHost>, PlayError> {
    let play_hosts = &play.hosts;
    let mut hosts = inventory.select(play_hosts);
    if let Some(limit) = limit {
        hosts.retain(|host| matches_patterns(host, limit));
    }
    match hosts.is_empty() {
        true => Err(PlayError::Usage(format!(
            "{}:{}:{}: play `{}`: no host of {} matches `hosts: {play_hosts}`{}; its groups are: {}",
            play.path.display(),
            play.line,
            play.column,
            play.name,
            inventory.path.display(),
            limit
                .map(|l| format!(" and --limit {l}"))
                .unwrap_or_default(),
            inventory.groups.join(", ")
        ))),
        false => Ok(hosts),
    }
}

/// What a rollout is made of besides its playbook: the inventory and the
/// files it sends, by SHA-256, so that a resume never mixes old and new.
pub fn inputs_of(
    (inventory, inventory_sha256): (&Path, &str),
    sources: &Sources,
) -> BTreeMap<String, String> {
    let mut inputs = sources.inputs();
    let name = format!("inventory {}", inventory.display());
    inputs.insert(name, inventory_sha256.to_string());
    inputs
}

/// `now` with the sources a journal says were read in preflight (named
/// by host facts) hashed again, so that a resume compares them too.
pub fn with_read_later(
    mut now: BTreeMap<String, String>,
    journaled: &BTreeMap<String, String>,
    base: &Path,
) -> BTreeMap<String, String> {
    let prefix = input_name("");
    for name in journaled.keys() {
        if now.contains_key(name) {
            continue;
        }
        if let Some(src) = name.strip_prefix(&prefix) {
            let sha256 =
                hash_file(&base.join(src)).map_or_else(|e| format!("({e})"), |(sha, _)| sha);
            now.insert(name.clone(), sha256);
        }
    }
    now
}

/// Refuses a resume whose inventory or copied files changed since the
/// journal was started (journals from before inputs were recorded pass).
pub fn check_inputs(
    journaled: &BTreeMap<String, String>,
    now: &BTreeMap<String, String>,
) -> Result<(), PlayError> {
    if journaled.is_empty() || journaled == now {
        return Ok(());
    }
    let changed: BTreeSet<&str> = journaled
        .keys()
        .chain(now.keys())
        .filter(|name| journaled.get(*name) != now.get(*name))
        .map(String::as_str)
        .collect();
    Err(PlayError::Usage(format!(
        "changed since the journal was started: {}; resuming would mix two rollouts \
         (start a new one, or put the old files back)",
        changed.into_iter().collect::<Vec<_>>().join(", ")
    )))
}

/// A new run directory under the state directory
/// (`$XDG_STATE_HOME/fleet/runs`, else `~/.local/state/fleet/runs`),
/// `PLAYBOOK.EPOCH/` (`.2`, `.3`... when runs start in the same second),
/// private to this user, and the journal in it. Fetched files with a
/// relative destination go there too, not wherever pplay happened to be
/// started.
pub fn default_journal(playbook: &Path) -> Result<PathBuf, JournalError> {
    let stem = playbook
        .file_stem()
        .map_or("pplay".into(), |s| s.to_string_lossy().into_owned());
    let dir = new_run_dir(&state_dir()?.join("runs"), &stem)?;
    Ok(dir.join(format!("{stem}.journal")))
}

/// Makes `runs/STEM.EPOCH/` (or `.2`, `.3`...: never another run's),
/// private to this user.
fn new_run_dir(runs: &Path, stem: &str) -> Result<PathBuf, JournalError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| JournalError::Io { path, source }
    };
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true).mode(0o700);
    builder.create(runs).map_err(io(runs))?;
    builder.recursive(false);
    let epoch = now() as u64;
    for attempt in 1..=1000 {
        let name = match attempt {
            1 => format!("{stem}.{epoch}"),
            n => format!("{stem}.{epoch}.{n}"),
        };
        let dir = runs.join(name);
        match builder.create(&dir) {
            Ok(()) => return Ok(dir),
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(error) => return Err(io(&dir)(error)),
        }
    }
    let taken = std::io::Error::other("a thousand runs started this second; give --journal");
    Err(io(runs)(taken))
}

/// Where fleet keeps what runs leave: `$XDG_STATE_HOME/fleet`, else
/// `~/.local/state/fleet`. Without either, a run needs `--journal`.
pub(super) fn state_dir() -> Result<PathBuf, JournalError> {
    let absolute = |name| std::env::var_os(name).filter(|dir| Path::new(dir).is_absolute());
    match (absolute("XDG_STATE_HOME"), absolute("HOME")) {
        (Some(state), _) => Ok(PathBuf::from(state).join("fleet")),
        (None, Some(home)) => Ok(PathBuf::from(home).join(".local/state/fleet")),
        (None, None) => Err(JournalError::Io {
            path: PathBuf::from("~/.local/state/fleet"),
            source: std::io::Error::other(
                "neither HOME nor XDG_STATE_HOME is an absolute path; give --journal FILE",
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_started_in_the_same_second_get_their_own_directories() {
        let state = tempfile::tempdir().unwrap();
        let runs = state.path().join("runs");
        let dirs: Vec<PathBuf> = (0..3)
            .map(|_| new_run_dir(&runs, "roll").unwrap())
            .collect();
        assert_eq!(dirs.iter().collect::<HashSet<_>>().len(), 3, "{dirs:?}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&dirs[0]).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}
