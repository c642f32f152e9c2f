//! pplay's text at fleet scale: one line per task per batch (or per
//! preflight check, or per task of a `--check`), its outcome and the hosts
//! folded (`[batch 3/11] install the new module: changed lab-[004-006] (3)`),
//! instead of one line per task per host. A line is printed as soon as
//! every host of the group has reported the task or left the rollout.

use std::collections::HashSet;

use super::fold::fold;
use crate::playbook::{Phase, TaskStatus};

/// How a host's task ended, as the folded line says it: the status, and
/// for a skip or a `--check` what decided it (the same on many hosts, so
/// it folds; the notes of tasks that ran, such as reboot timings, do not).
fn outcome(status: &TaskStatus) -> String {
    match status {
        TaskStatus::WouldRun(note) => format!("would ({note})"),
        TaskStatus::Skipped(note) if !note.is_empty() => format!("skipped ({note})"),
        other => other.journal_name().to_string(),
    }
}

/// The tasks of one group of hosts (a batch, preflight, a check), folded.
#[derive(Debug, Default)]
pub struct Groups {
    /// What the lines are prefixed with: `batch 3/11`, `preflight`, or nothing.
    scope: String,
    hosts: Vec<String>,
    /// Hosts that left the rollout: they report no more tasks.
    ended: HashSet<String>,
    tasks: Vec<TaskGroup>,
    /// `tasks[..printed]` are printed.
    printed: usize,
}

/// One task's reports from the hosts of the group, in arrival order.
#[derive(Debug)]
struct TaskGroup {
    phase: Phase,
    task: String,
    /// Each host and its outcome (`changed`, `skipped (why)`).
    reports: Vec<(String, String)>,
    /// The hosts in `reports`, asked on every event: a batch or preflight
    /// of a thousand hosts must not rescan the reports each time.
    reported: HashSet<String>,
}

impl TaskGroup {
    fn has(&self, host: &str) -> bool {
        self.reported.contains(host)
    }

    /// `install the new module: changed lab-[004-006] (3), ok lab-007 (1)`
    fn line(&self, scope: &str, show_phase: bool) -> String {
        let mut words: Vec<(&str, Vec<&str>)> = Vec::new();
        for (host, word) in &self.reports {
            match words.iter_mut().find(|(w, _)| *w == word) {
                Some((_, hosts)) => hosts.push(host),
                None => words.push((word, vec![host])),
            }
        }
        let outcomes: Vec<String> = words
            .iter()
            .map(|(word, hosts)| format!("{word} {} ({})", fold(hosts), hosts.len()))
            .collect();
        let scope = match scope.is_empty() {
            true => String::new(),
            false => format!("[{scope}] "),
        };
        let phase = match (show_phase, self.phase) {
            (true, Phase::Preflight) => "preflight: ",
            (_, Phase::OnFailure) => "on_failure: ",
            (_, Phase::BeforeBatch) => "before_batch: ",
            (_, Phase::AfterBatch) => "after_batch: ",
            _ => "",
        };
        format!("{scope}{phase}{}: {}", self.task, outcomes.join(", "))
    }
}

impl Groups {
    /// Starts a group of `hosts`; returns the lines the previous one had left.
    pub fn begin(&mut self, scope: String, hosts: Vec<String>) -> Vec<String> {
        let left = self.finish();
        *self = Groups {
            scope,
            hosts,
            ..Groups::default()
        };
        left
    }

    /// A host finished a task; returns the lines that are now complete.
    pub fn task(
        &mut self,
        host: &str,
        phase: Phase,
        task: &str,
        status: &TaskStatus,
    ) -> Vec<String> {
        if *status == TaskStatus::Running {
            return Vec::new();
        }
        let word = outcome(status);
        let open = &mut self.tasks[self.printed..];
        match open
            .iter_mut()
            .find(|group| group.phase == phase && group.task == task && !group.has(host))
        {
            Some(group) => {
                group.reported.insert(host.to_string());
                group.reports.push((host.to_string(), word));
            }
            None => self.tasks.push(TaskGroup {
                phase,
                task: task.to_string(),
                reports: vec![(host.to_string(), word)],
                reported: HashSet::from([host.to_string()]),
            }),
        }
        self.complete()
    }

    /// A host left the rollout; returns the lines that are now complete.
    pub fn host_end(&mut self, host: &str) -> Vec<String> {
        self.ended.insert(host.to_string());
        self.complete()
    }

    /// Every line not printed yet, complete or not.
    pub fn finish(&mut self) -> Vec<String> {
        let lines = self.lines(self.tasks.len());
        self.printed = self.tasks.len();
        lines
    }

    /// The lines of the groups, in order, that every host has answered.
    fn complete(&mut self) -> Vec<String> {
        // after_batch runs on every host of the batch once they all ended.
        let answered = |group: &TaskGroup| {
            let waits_for_ended = group.phase == Phase::AfterBatch;
            self.hosts
                .iter()
                .all(|host| group.has(host) || (self.ended.contains(host) && !waits_for_ended))
        };
        let ready = self.tasks[self.printed..]
            .iter()
            .take_while(|group| answered(group))
            .count();
        let lines = self.lines(self.printed + ready);
        self.printed += ready;
        lines
    }

    fn lines(&self, up_to: usize) -> Vec<String> {
        let show_phase = self.scope != "preflight";
        self.tasks[self.printed..up_to]
            .iter()
            .map(|group| group.line(&self.scope, show_phase))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn a_line_per_task_once_every_host_of_the_batch_answered() {
        let mut groups = Groups::default();
        let batch = hosts(&["lab-004", "lab-005", "lab-006"]);
        assert!(groups.begin("batch 3/11".into(), batch).is_empty());
        let install = |groups: &mut Groups, host: &str, status: TaskStatus| {
            groups.task(host, Phase::Tasks, "install", &status)
        };
        assert!(install(&mut groups, "lab-004", TaskStatus::changed()).is_empty());
        assert!(install(&mut groups, "lab-006", TaskStatus::Running).is_empty());
        assert!(install(&mut groups, "lab-006", TaskStatus::changed()).is_empty());
        assert!(groups
            .task("lab-004", Phase::Tasks, "reboot", &TaskStatus::changed())
            .is_empty());
        assert_eq!(
            install(&mut groups, "lab-005", TaskStatus::ok()),
            ["[batch 3/11] install: changed lab-[004,006] (2), ok lab-005 (1)"]
        );
        // lab-005 fails its reboot and leaves; lab-006 never reboots.
        groups.task("lab-005", Phase::Tasks, "reboot", &TaskStatus::Failed);
        assert_eq!(
            groups.host_end("lab-006"),
            ["[batch 3/11] reboot: changed lab-004 (1), failed lab-005 (1)"]
        );
        groups.task(
            "lab-005",
            Phase::OnFailure,
            "restore",
            &TaskStatus::changed(),
        );
        assert_eq!(
            groups.begin("batch 4/11".into(), hosts(&["lab-007"])),
            ["[batch 3/11] on_failure: restore: changed lab-005 (1)"]
        );
    }

    #[test]
    fn preflight_lines_carry_no_phase_and_a_check_names_it() {
        let mut groups = Groups::default();
        groups.begin("preflight".into(), hosts(&["a1", "a2"]));
        groups.task("a1", Phase::Preflight, "disk", &TaskStatus::ok());
        assert_eq!(
            groups.task("a2", Phase::Preflight, "disk", &TaskStatus::ok()),
            ["[preflight] disk: ok a[1-2] (2)"]
        );
        groups.begin(String::new(), hosts(&["a1"]));
        assert_eq!(
            groups.task("a1", Phase::Preflight, "disk", &TaskStatus::ok()),
            ["preflight: disk: ok a1 (1)"]
        );
    }
}
