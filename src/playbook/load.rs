//! Reading a playbook and checking everything in it that needs no host:
//! one action per task, unique names, variables defined for every host,
//! the files `copy` sends readable (and read, once). A mistake is
//! FILE:LINE:COLUMN and what was expected.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_saphyr::{Location, Spanned};
use sha2::{Digest, Sha256};

use super::condition::When;
use super::remote::LOCALHOST;
use super::spec::{Amount, CopySpec, PlayFile, TaskSpec};
use super::vars::{references, valid_name, Vars, FACTS};
use super::{Action, Phase, Play, Playbook, Sources, Task, ACTIONS, PHASES};
use crate::inventory::yaml::InventoryHost;
use crate::ssh::transfer::{parse_account, parse_mode};
use crate::ssh::{parse_pattern, parse_signal};
use crate::text::{decode, read_bounded, MAX_TEXT_FILE};
use crate::yaml::{self, YamlError};

/// The shortest `wait_for` interval: a poll of the host, not a busy loop.
const MIN_WAIT_INTERVAL: Duration = Duration::from_millis(100);

impl Playbook {
    /// Reads and checks a playbook file: one play (a mapping) or a list of
    /// plays.
    pub fn load(path: &Path) -> Result<Playbook, YamlError> {
        let bytes =
            read_bounded(path, MAX_TEXT_FILE).map_err(|error| YamlError::reading(path, error))?;
        let sha256 = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let text = decode(bytes).map_err(|error| YamlError::reading(path, error))?;
        let files: Vec<(PlayFile, Option<Location>)> = match is_a_list(&text) {
            true => yaml::parse::<Vec<Spanned<PlayFile>>>(&text, path)?
                .into_iter()
                .map(|play| (play.value, Some(play.referenced)))
                .collect(),
            false => vec![(yaml::parse::<PlayFile>(&text, path)?, None)],
        };
        if files.is_empty() {
            return Err(YamlError {
                path: path.to_path_buf(),
                line: 1,
                column: 1,
                message: "expected a play (a mapping with `tasks:`) or a list of plays".into(),
            });
        }
        let count = files.len();
        let plays = files
            .into_iter()
            .enumerate()
            .map(|(index, (file, at))| {
                Play::from_file(path, file, at, (index + 1, count)).map(Arc::new)
            })
            .collect::<Result<_, _>>()?;
        Ok(Playbook {
            path: path.to_path_buf(),
            plays,
            sha256,
        })
    }
}

/// Whether the document is a list (of plays): its first line that is not
/// blank, a comment, a directive or `---` starts with `-` (or `[`).
fn is_a_list(text: &str) -> bool {
    text.lines()
        .map(str::trim_start)
        .find(|line| {
            !(line.is_empty() || line.starts_with('#') || line.starts_with('%'))
                && line.trim_end() != "---"
        })
        .is_some_and(|line| {
            line.starts_with("- ") || line.starts_with('[') || line.trim_end() == "-"
        })
}

impl Play {
    /// Checks one play as written; `at` is where it starts in a list.
    fn from_file(
        path: &Path,
        file: PlayFile,
        at: Option<Location>,
        number: (usize, usize),
    ) -> Result<Play, YamlError> {
        let at_top = |message: String| YamlError {
            path: path.to_path_buf(),
            line: at.map_or(1, |at| at.line()),
            column: at.map_or(1, |at| at.column()),
            message,
        };
        let serial = file.serial.map_or(vec![Amount::Percent(100.0)], |s| s.0);
        let none = [Amount::Count(0), Amount::Percent(0.0)];
        if serial.is_empty() || serial.iter().any(|amount| none.contains(amount)) {
            return Err(at_top(
                "serial: expected a positive number of hosts or percentage, or a list of them"
                    .into(),
            ));
        }
        let vars = match &file.vars {
            Some(vars) => checked_vars(path, vars)?,
            None => Vars::new(),
        };
        let mut phases = [
            tasks(path, file.preflight)?,
            tasks(path, file.before_batch)?,
            tasks(path, file.tasks)?,
            tasks(path, file.on_failure)?,
            tasks(path, file.after_batch)?,
        ];
        resolve_conditions(path, &mut phases)?;
        if let Some(user) = &file.sudo_user {
            crate::model::check_user(user).map_err(|why| at_top(format!("become_user: {why}")))?;
        }
        for task in phases.iter_mut().flatten() {
            task.sudo = task.sudo.or(file.sudo);
            task.sudo_user = task.sudo_user.take().or_else(|| file.sudo_user.clone());
        }
        let [preflight, before_batch, tasks, on_failure, after_batch] = phases;
        let name = match number {
            (_, 1) => path.display().to_string(),
            (play, _) => format!("play {play}"),
        };
        refuse_run_once_in_on_failure(path, &on_failure)?;
        Ok(Play {
            path: path.to_path_buf(),
            name: file.name.unwrap_or(name),
            number,
            line: at.map_or(1, |at| at.line()),
            column: at.map_or(1, |at| at.column()),
            hosts: file.hosts.unwrap_or_else(|| "all".into()),
            serial,
            max_fail: file.max_fail.unwrap_or(Amount::Count(0)),
            mode: file.mode,
            order: file.order,
            one_per: file.one_per,
            vars,
            preflight,
            tasks,
            on_failure,
            before_batch,
            after_batch,
        })
    }

    /// Checks every task against every host's variables and loads the
    /// files `copy` sends, so nothing undefined or unreadable is found
    /// halfway through a rollout. `carried` names what earlier plays
    /// register. Returns each host's starting variables, the copy sources
    /// by their expanded path, and the hosts tasks are delegated to.
    pub fn prepare(
        &self,
        hosts: &[InventoryHost],
        extra: &Vars,
        sources: &Sources,
        carried: &[String],
    ) -> Result<Prepared, YamlError> {
        let mut prepared = Prepared::default();
        let registered: BTreeSet<&str> = self
            .registers()
            .map(String::as_str)
            .chain(carried.iter().map(String::as_str))
            .collect();
        for host in hosts {
            // Playbook vars are defaults; the inventory refines them per
            // group and host; -e overrides everything.
            let mut vars = self.vars.clone();
            vars.extend(host.vars.clone());
            vars.extend(extra.clone());
            if let Some(name) = vars.keys().find(|name| is_builtin(name)) {
                return Err(YamlError {
                    path: self.path.clone(),
                    line: self.line,
                    column: self.column,
                    message: format!(
                        "play `{}`: variable `{name}` (of the playbook, the inventory or -e) is pplay's own \
                         (host facts, batch variables) for host {}; rename it",
                        self.name,
                        host.host.label()
                    ),
                });
            }
            let mut known: Vec<String> = vars.keys().cloned().collect();
            known.extend(FACTS.iter().map(|f| f.to_string()));
            known.extend(carried.iter().cloned());
            let check = Check {
                host,
                vars: &vars,
                sources,
                registered: &registered,
            };
            let mut after_preflight =
                self.check_phase(Phase::Preflight, &check, &known, &mut prepared)?;
            self.check_one_per(host, &after_preflight)?;
            after_preflight.extend(BATCH_VARS.iter().map(|v| v.to_string()));
            let batched =
                self.check_phase(Phase::BeforeBatch, &check, &after_preflight, &mut prepared)?;
            self.check_phase(Phase::Tasks, &check, &batched, &mut prepared)?;
            self.check_phase(Phase::OnFailure, &check, &batched, &mut prepared)?;
            self.check_phase(Phase::AfterBatch, &check, &batched, &mut prepared)?;
            prepared.vars.push(vars);
        }
        Ok(prepared)
    }

    /// `one_per` may name facts and what preflight registers.
    fn check_one_per(&self, host: &InventoryHost, known: &[String]) -> Result<(), YamlError> {
        let Some(template) = &self.one_per else {
            return Ok(());
        };
        let error = |message: String| YamlError {
            path: self.path.clone(),
            line: self.line,
            column: self.column,
            message: format!("play `{}`: one_per: {message}", self.name),
        };
        for name in references(template).map_err(|e| error(e.to_string()))? {
            if !known.contains(&name) {
                return Err(error(format!(
                    "variable `{name}` is not defined for host {}",
                    host.host.label()
                )));
            }
        }
        Ok(())
    }

    /// The names of what the play's tasks register, for later plays.
    pub fn registers(&self) -> impl Iterator<Item = &String> {
        PHASES
            .into_iter()
            .flat_map(|phase| self.phase(phase))
            .filter_map(|task| task.register.as_ref())
    }

    /// Checks one phase; returns the names known after it (with its registers).
    fn check_phase(
        &self,
        phase: Phase,
        check: &Check<'_>,
        known: &[String],
        prepared: &mut Prepared,
    ) -> Result<Vec<String>, YamlError> {
        let mut known = known.to_vec();
        for task in self.phase(phase) {
            let error = |message: String| YamlError {
                path: self.path.clone(),
                line: task.line,
                column: task.column,
                message: match phase {
                    Phase::Tasks => format!("task `{}`: {message}", task.name),
                    other => format!("{}: task `{}`: {message}", other.key(), task.name),
                },
            };
            for field in task.templates() {
                for name in references(field).map_err(|e| error(e.to_string()))? {
                    if !known.contains(&name) {
                        return Err(error(format!(
                            "variable `{name}` is not defined for host {} \
                             (set it in the inventory, under vars:, with -e, or register it in an earlier task)",
                            check.host.host.label()
                        )));
                    }
                }
            }
            check_local_side(task, check, prepared).map_err(error)?;
            known.extend(task.register.clone());
        }
        Ok(known)
    }
}

/// Checks what a task names on this machine: where it is delegated to, and
/// the local paths of `copy` and `fetch` (a source is loaded now, unless
/// it names a host fact). These come from this side only: registered
/// values are a host's output, and a host must not choose where on this
/// machine its files land or which machine runs a command. Facts are
/// allowed in paths: they are checked when gathered, one word each.
fn check_local_side(task: &Task, check: &Check<'_>, prepared: &mut Prepared) -> Result<(), String> {
    let not_registered = |field: &str, text: &str| {
        let names = references(text).unwrap_or_default();
        match names.iter().find(|name| check.registered.contains(name.as_str())) {
            Some(name) => Err(format!(
                "{field} may not use `{name}`: a task registers it, and a host's output must not choose paths or hosts here"
            )),
            None => Ok(()),
        }
    };
    let local_only = |field: &str, text: &str| {
        not_registered(field, text)?;
        super::vars::expand(text, check.vars)
            .map_err(|e| format!("{field} may use only inventory, playbook and -e variables: {e}"))
    };
    let local_or_fact = |field: &str, text: &str| {
        not_registered(field, text)?;
        let local = |name: &String| check.vars.contains_key(name) || FACTS.contains(&name.as_str());
        match references(text).unwrap_or_default().iter().find(|n| !local(n)) {
            Some(name) => Err(format!(
                "{field} may use only inventory, playbook and -e variables and host facts, not `{name}`"
            )),
            None => Ok(()),
        }
    };
    if let Some(target) = &task.delegate_to {
        let target = local_only("delegate_to", target)?;
        let runs_here = matches!(
            task.action,
            Action::Run(_) | Action::Assert(_) | Action::WaitFor(_)
        );
        if target == LOCALHOST && !runs_here {
            return Err(
                "delegate_to: localhost: only `run`, `assert` and `wait_for` run on this machine"
                    .into(),
            );
        }
        let at = (task.line, task.column, task.name.clone());
        prepared.delegates.entry(target).or_insert(at);
    }
    match &task.action {
        Action::Copy(copy) if names_a_fact(&copy.src) => local_or_fact("copy src", &copy.src),
        Action::Copy(copy) => {
            let src = local_only("copy src", &copy.src)?;
            check.sources.load(&src, copy.mode.as_deref()).map(|_| ())
        }
        Action::Sync(sync) => {
            let src = local_only("sync src", &sync.src)?;
            check
                .sources
                .exists(&src)
                .map_err(|why| format!("sync src {src}: {why}"))
        }
        Action::Fetch(fetch) if names_a_fact(&fetch.dest) => {
            local_or_fact("fetch dest", &fetch.dest)
        }
        Action::Fetch(fetch) => local_only("fetch dest", &fetch.dest).map(|_| ()),
        _ => Ok(()),
    }
}

/// Whether a variable name is one pplay sets itself: `host.*` facts and
/// `batch.*` variables, which nothing else may define or register.
fn is_builtin(name: &str) -> bool {
    name.starts_with("host.") || name.starts_with("batch.")
}

/// The variables a batch hook (and the tasks after it) has of its batch.
const BATCH_VARS: [&str; 3] = ["batch.hosts", "batch.number", "batch.count"];

/// What checking a play against its hosts gives a run.
#[derive(Default)]
pub struct Prepared {
    /// Each host's starting variables, in the hosts' order.
    pub vars: Vec<Vars>,
    /// `delegate_to` targets, expanded (`localhost` or inventory host
    /// names), each with the first task naming it: line, column, name.
    pub delegates: BTreeMap<String, (u64, u64, String)>,
}

/// One host's part of checking a playbook: its variables, and the run's
/// `copy` sources.
struct Check<'a> {
    host: &'a InventoryHost,
    vars: &'a Vars,
    sources: &'a Sources,
    /// What the play's tasks (and earlier plays') register: a host's output,
    /// so never part of a local path, even where a variable of the same
    /// name is defined too.
    registered: &'a BTreeSet<&'a str>,
}

/// Whether a `copy` source names a host fact (`{{ host.kernel }}`), so
/// that it can be loaded only once the host's facts are known.
pub fn names_a_fact(src: &str) -> bool {
    references(src)
        .unwrap_or_default()
        .iter()
        .any(|name| FACTS.contains(&name.as_str()))
}

fn checked_vars(
    path: &Path,
    vars: &Spanned<std::collections::BTreeMap<String, yaml::Scalar>>,
) -> Result<Vars, YamlError> {
    match vars.value.keys().find(|name| !valid_name(name)) {
        Some(name) => Err(YamlError::at(
            path,
            vars.referenced,
            format!("`{name}` is not a variable name (letters, digits, `_`, `-`, `.`)"),
        )),
        None => Ok(vars
            .value
            .iter()
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect()),
    }
}

/// A phase's tasks; names are unique within it (`--start-at-task` and
/// `changed:` conditions name tasks).
fn tasks(path: &Path, specs: Vec<Spanned<TaskSpec>>) -> Result<Vec<Task>, YamlError> {
    let mut tasks: Vec<Task> = Vec::with_capacity(specs.len());
    for spec in specs {
        let task = task(path, spec)?;
        if let Some(first) = tasks.iter().find(|t| t.name == task.name) {
            return Err(YamlError {
                path: path.to_path_buf(),
                line: task.line,
                column: task.column,
                message: format!(
                    "a second task named `{}` (the first is at line {}); give each task its own name",
                    task.name, first.line
                ),
            });
        }
        tasks.push(task);
    }
    Ok(tasks)
}

/// `on_failure` puts back each failed host: no task of it runs once for all.
fn refuse_run_once_in_on_failure(path: &Path, on_failure: &[Task]) -> Result<(), YamlError> {
    match on_failure.iter().find(|task| task.run_once) {
        Some(task) => Err(YamlError {
            path: path.to_path_buf(),
            line: task.line,
            column: task.column,
            message: format!(
                "on_failure: task `{}`: run_once: putting back is each failed host's own; it cannot run once for all",
                task.name
            ),
        }),
        None => Ok(()),
    }
}

/// Points every `when: changed: NAME` at its task: an earlier one of the
/// same phase, or one of an earlier phase (so `on_failure` may ask what
/// `tasks` changed). `phases` are in the order a host goes through them.
fn resolve_conditions(path: &Path, phases: &mut [Vec<Task>; 5]) -> Result<(), YamlError> {
    const ORDER: [Phase; 5] = PHASES;
    let names: Vec<Vec<String>> = phases
        .iter()
        .map(|tasks| tasks.iter().map(|task| task.name.clone()).collect())
        .collect();
    for (at, tasks) in phases.iter_mut().enumerate() {
        for (index, task) in tasks.iter_mut().enumerate() {
            let find = |name: &str| {
                (0..=at).rev().find_map(|phase| {
                    let before = if phase == at {
                        index
                    } else {
                        names[phase].len()
                    };
                    let position = names[phase][..before].iter().position(|n| n == name)?;
                    Some((ORDER[phase], position))
                })
            };
            let (line, column, task_name) = (task.line, task.column, task.name.clone());
            if let Some(when) = &mut task.when {
                when.condition.resolve(&find).map_err(|message| YamlError {
                    path: path.to_path_buf(),
                    line,
                    column,
                    message: format!("task `{task_name}`: {message}"),
                })?;
            }
        }
    }
    Ok(())
}

/// Turns a task as written into a [`Task`], refusing what serde cannot see.
fn task(path: &Path, spec: Spanned<TaskSpec>) -> Result<Task, YamlError> {
    let location = spec.referenced;
    let error = |message: String| YamlError::at(path, location, message);
    let mut spec = spec.value;
    let (kind, action) = the_action(&mut spec).map_err(error)?;
    if let Some(register) = &spec.register {
        if kind != "run" || !valid_name(register) {
            return Err(error(format!(
                "register: expected a variable name on a `run` task, found `{register}` on `{kind}`"
            )));
        }
        if is_builtin(register) {
            return Err(error(format!(
                "register: `{register}` is pplay's own (host facts, batch variables); choose another name"
            )));
        }
    }
    if spec.ok_codes.is_some() && kind != "run" {
        return Err(error(format!(
            "ok_codes: only a `run` task has exit codes, this is `{kind}`"
        )));
    }
    if spec.changed_when.is_some() && kind != "run" {
        return Err(error(format!(
            "changed_when: only a `run` task decides whether it changed the host, this is `{kind}`"
        )));
    }
    let when = spec
        .when
        .as_deref()
        .map(When::parse)
        .transpose()
        .map_err(error)?;
    if spec.delegate_to.is_some() && matches!(kind, "reboot" | "kill" | "pause") {
        return Err(error(format!(
            "delegate_to: a `{kind}` task acts on its own host; it cannot be delegated"
        )));
    }
    if let Some(user) = &spec.sudo_user {
        crate::model::check_user(user).map_err(|why| error(format!("become_user: {why}")))?;
    }
    let local = spec.delegate_to.as_deref() == Some(LOCALHOST);
    if local && spec.sudo == Some(true) {
        return Err(error(
            "become: a task delegated to localhost runs as you on this machine; \
             run sudo in its command if it needs to"
                .into(),
        ));
    }
    if spec.run_once && kind == "reboot" {
        return Err(error(
            "run_once: a reboot is each host's own; it cannot run once for all".into(),
        ));
    }
    if let Some(code) = spec.ok_codes.iter().flatten().find(|&&code| code > 255) {
        return Err(error(format!(
            "ok_codes: expected exit codes from 0 to 255, found {code}"
        )));
    }
    Ok(Task {
        name: spec.name.unwrap_or_else(|| default_name(kind, &action)),
        action,
        register: spec.register,
        ok_codes: spec.ok_codes.unwrap_or_else(|| vec![0]),
        when,
        changed_when: spec.changed_when,
        creates: spec.creates,
        unless: spec.unless,
        timeout: spec.timeout.map(|t| t.0),
        read_only: spec.read_only,
        delegate_to: spec.delegate_to,
        run_once: spec.run_once,
        sudo: spec.sudo,
        sudo_user: spec.sudo_user,
        line: location.line(),
        column: location.column(),
    })
}

/// The one action of a task, checked; taken out of `spec`.
fn the_action(spec: &mut TaskSpec) -> Result<(&'static str, Action), String> {
    let mut actions: Vec<(&'static str, Action)> = Vec::new();
    if let Some(command) = spec.run.take() {
        actions.push(("run", Action::Run(command)));
    }
    if let Some(copy) = spec.copy.take() {
        check_copy(&copy)?;
        actions.push(("copy", Action::Copy(copy)));
    }
    if let Some(sync) = spec.sync.take() {
        super::actions::sync::options(&sync, false)?;
        actions.push(("sync", Action::Sync(sync)));
    }
    if let Some(fetch) = spec.fetch.take() {
        if fetch.src.is_empty() || fetch.dest.is_empty() {
            return Err("fetch: expected a non-empty `src` and `dest`".into());
        }
        actions.push(("fetch", Action::Fetch(fetch)));
    }
    if let Some(mut kill) = spec.kill.take() {
        kill.signal = parse_signal(&kill.signal).map_err(|why| format!("kill signal: {why}"))?;
        parse_pattern(&kill.pattern).map_err(|why| format!("kill pattern: {why}"))?;
        actions.push(("kill", Action::Kill(kill)));
    }
    if let Some(reboot) = spec.reboot.take() {
        actions.push(("reboot", Action::Reboot(reboot)));
    }
    if let Some(wait) = spec.wait_for.take() {
        if wait.interval.0 < MIN_WAIT_INTERVAL {
            return Err(format!(
                "wait_for interval: expected at least {} s, so that a host is not polled in a busy loop",
                MIN_WAIT_INTERVAL.as_secs_f64()
            ));
        }
        actions.push(("wait_for", Action::WaitFor(wait)));
    }
    if let Some(assert) = spec.assertion.take() {
        if assert.equals.is_some() == assert.matches.is_some() {
            return Err("assert: expected exactly one of `equals` or `matches`".into());
        }
        actions.push(("assert", Action::Assert(assert)));
    }
    if let Some(pause) = spec.pause.take() {
        if pause.duration.is_some() == pause.prompt.is_some() {
            return Err("pause: expected exactly one of `duration` or `prompt`".into());
        }
        actions.push(("pause", Action::Pause(pause)));
    }
    match (actions.pop(), actions.first()) {
        (Some(one), None) => Ok(one),
        (None, _) => Err(format!(
            "a task needs one action; expected one of: {ACTIONS}"
        )),
        (Some((kind, _)), Some((first, _))) => Err(format!(
            "a task has one action, this one has `{first}` and `{kind}`; split it into two tasks"
        )),
    }
}

/// What can be checked of a `copy` before any host: its paths, mode and
/// (untemplated) owner and group.
fn check_copy(copy: &CopySpec) -> Result<(), String> {
    if copy.src.is_empty() || copy.dest.is_empty() {
        return Err("copy: expected a non-empty `src` and `dest`".into());
    }
    if let Some(mode) = &copy.mode {
        parse_mode(mode).map_err(|why| format!("copy mode: {why}"))?;
    }
    for (field, name) in [("owner", &copy.owner), ("group", &copy.group)] {
        // A templated name is checked once expanded, on the host.
        match name.as_deref() {
            Some(name) if !name.contains("{{") => {
                parse_account(name).map_err(|why| format!("copy {field}: {why}"))?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// A name for an unnamed task: its action and the start of its argument.
fn default_name(kind: &str, action: &Action) -> String {
    let detail = match action {
        Action::Run(command) => command.lines().next().unwrap_or_default().to_string(),
        Action::Copy(copy) => copy.dest.clone(),
        Action::Sync(sync) => sync.dest.clone(),
        Action::Fetch(fetch) => fetch.src.clone(),
        Action::Kill(kill) => kill.pattern.clone(),
        Action::WaitFor(wait) => wait.command.clone(),
        Action::Assert(assert) => assert.command.clone(),
        Action::Reboot(_) | Action::Pause(_) => String::new(),
    };
    let detail: String = detail.chars().take(40).collect();
    match detail.is_empty() {
        true => kind.to_string(),
        false => format!("{kind} {detail}"),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::super::spec::Mode;
    use super::*;

    fn load(text: &str) -> Result<Arc<Play>, YamlError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("play.yml");
        std::fs::write(&path, text).unwrap();
        let result = Playbook::load(&path).map(|book| Arc::clone(&book.plays[0]));
        result.map_err(|mut e| {
            e.path = PathBuf::from("play.yml");
            e
        })
    }

    #[test]
    fn reads_a_playbook() {
        let play = load(
            "name: t\nserial: [1, \"10%\"]\nmax_fail: 1\nmode: window\n\
             tasks:\n  - run: uname -r\n    register: kernel\n  - name: boot\n    reboot: {stable_for: 2s}\n",
        )
        .unwrap();
        assert_eq!(play.serial, [Amount::Count(1), Amount::Percent(10.0)]);
        assert_eq!(play.mode, Mode::Window);
        assert_eq!(play.tasks[0].name, "run uname -r");
        assert_eq!(play.tasks[1].line, 8);
        assert!(
            matches!(&play.tasks[1].action, Action::Reboot(r) if r.stable_for.0 == Duration::from_secs(2))
        );
    }

    #[test]
    fn errors_have_file_line_column_and_choices() {
        let cases = [
            (
                "tasks:\n  - run: x\n    regster: y\n",
                "play.yml:3:5",
                "expected one of",
            ),
            (
                "tasks:\n  - run: x\n    copy: {src: a, dest: b}\n",
                "play.yml:2:5",
                "split it",
            ),
            (
                "tasks:\n  - name: nothing\n",
                "play.yml:2:5",
                "expected one of: run, copy",
            ),
            ("mode: rolling\ntasks: []\n", "play.yml:1:7", "batch"),
            ("serial: lots\ntasks: []\n", "play.yml:1:9", "percentage"),
            (
                "serial: 1000%\ntasks: []\n",
                "play.yml:1:9",
                "from 0% to 100%",
            ),
            ("tasks: []\ntasks: []\n", "play.yml:2:1", "duplicate"),
            (
                "tasks:\n  - run: x\n    timeout: soon\n",
                "play.yml:3:14",
                "duration",
            ),
        ];
        for (text, position, words) in cases {
            let message = load(text).unwrap_err().to_string();
            assert!(message.starts_with(position), "{text:?} gave {message}");
            assert!(
                message.to_lowercase().contains(words),
                "{text:?} gave {message}"
            );
        }
    }

    fn load_all(text: &str) -> Result<Playbook, YamlError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("play.yml");
        std::fs::write(&path, text).unwrap();
        Playbook::load(&path).map_err(|mut e| {
            e.path = PathBuf::from("play.yml");
            e
        })
    }

    #[test]
    fn a_list_of_plays_runs_in_order() {
        let book = load_all(
            "# two plays\n---\n- name: build\n  one_per: \"{{ host.kernel }}\"\n  tasks: [{run: make}]\n\
             - hosts: xen\n  before_batch: [{run: drain, delegate_to: localhost, run_once: true}]\n  tasks: [{run: x}]\n",
        )
        .unwrap();
        let names: Vec<_> = book
            .plays
            .iter()
            .map(|p| (p.name.as_str(), p.number))
            .collect();
        assert_eq!(names, [("build", (1, 2)), ("play 2", (2, 2))]);
        assert_eq!(book.plays[0].one_per.as_deref(), Some("{{ host.kernel }}"));
        let hook = &book.plays[1].before_batch[0];
        assert!(hook.run_once && hook.delegate_to.as_deref() == Some("localhost"));
    }

    #[test]
    fn become_is_the_tasks_else_the_plays_else_sudos() {
        let play = load(
            "become: true\nbecome_user: app\ntasks:\n  - {name: a, run: x}\n\
             \x20 - {name: b, run: x, become: false}\n  - {name: c, run: x, become_user: db}\n",
        )
        .unwrap();
        let users: Vec<_> = play.tasks.iter().map(|t| t.sudo_user(None)).collect();
        assert_eq!(users, [Some("app"), None, Some("db")]);
        let plain =
            load("tasks:\n  - {name: a, run: x}\n  - {name: b, run: x, become: false}\n").unwrap();
        let users: Vec<_> = plain
            .tasks
            .iter()
            .map(|t| t.sudo_user(Some("root")))
            .collect();
        assert_eq!(users, [Some("root"), None]);
        assert_eq!(plain.tasks[0].sudo_user(None), None);
    }

    #[test]
    fn plays_and_delegation_are_checked_with_their_position() {
        let cases = [
            ("[]\n", "play.yml:1:1", "expected a play"),
            (
                "- tasks: []\n- serial: 0\n  tasks: []\n",
                "play.yml:2:3",
                "serial",
            ),
            (
                "- tasks: []\n- tasks: [{run: x}]\n  bogus: 1\n",
                "play.yml:3:3",
                "unknown field `bogus`",
            ),
            (
                "tasks:\n  - {reboot: {}, delegate_to: localhost}\n",
                "play.yml:2:5",
                "cannot be delegated",
            ),
            (
                "tasks:\n  - {reboot: {}, run_once: true}\n",
                "play.yml:2:5",
                "cannot run once",
            ),
            (
                "tasks:\n  - {run: x, delegate_to: localhost, become: true}\n",
                "play.yml:2:5",
                "runs as you on this machine",
            ),
            (
                "become_user: '-x'\ntasks: [{run: x}]\n",
                "play.yml:1:1",
                "become_user: expected a user name",
            ),
        ];
        for (text, position, words) in cases {
            let message = load_all(text).unwrap_err().to_string();
            assert!(message.starts_with(position), "{text:?} gave {message}");
            assert!(message.contains(words), "{text:?} gave {message}");
        }
    }

    #[test]
    fn a_list_is_told_by_its_first_line_that_says_something() {
        assert!(is_a_list("# comment\n\n---\n- name: a\n"));
        assert!(is_a_list("-\n  name: a\n"));
        assert!(!is_a_list("# - not this\nname: a\n"));
        assert!(!is_a_list("name: a\ntasks:\n  - run: x\n"));
    }
}
