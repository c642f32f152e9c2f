//! pplay's text: the plan, batch headers, the tasks, the playbook's
//! notices, and the closing summary with the resume command. Tasks are one
//! line per task per batch with the hosts folded ([`Groups`]), plus a line
//! per host for a failure; with `-v`, one line per task per host.

use std::io::{self, Write};
use std::time::SystemTime;

use console::Style;

use super::fold::fold;
use super::play_groups::Groups;
use super::summary::group_by_reason;
use super::Reporter;
use crate::clock::time_of_day;
use crate::playbook::spec::Mode;
use crate::playbook::{
    Earlier, HostEnd, Phase, PlayEvent, PlayReport, TaskStatus, FAILED_IN_AN_EARLIER_PLAY,
};

/// One task's end on one host, as the printer needs it.
struct TaskLine<'a> {
    host: &'a str,
    phase: Phase,
    task: &'a str,
    status: &'a TaskStatus,
    seconds: f64,
    detail: &'a str,
}

/// Prints a playbook run's events as lines on `out` (stdout), and its
/// report as the closing summary.
pub struct PlayText<W: Write> {
    out: W,
    color: bool,
    /// Tasks folded per batch; `None`: a line per task per host (`-v`).
    groups: Option<Groups>,
    /// Every host of the plan, for preflight and `--check`.
    hosts: Vec<String>,
    /// Window mode has no batches: its tasks go a line per host.
    window: bool,
    /// The journal is named once, by the first play's plan.
    journal_named: bool,
}

impl<W: Write> PlayText<W> {
    pub fn new(out: W, color: bool, per_host: bool) -> Self {
        PlayText {
            out,
            color,
            groups: (!per_host).then(Groups::default),
            hosts: Vec::new(),
            window: false,
            journal_named: false,
        }
    }

    /// Starts a group of hosts in the folded view, printing what the last
    /// one left.
    fn begin(&mut self, scope: String, hosts: Vec<String>) -> io::Result<()> {
        let lines = match &mut self.groups {
            Some(groups) => groups.begin(scope, hosts),
            None => Vec::new(),
        };
        self.lines(lines)
    }

    fn lines(&mut self, lines: Vec<String>) -> io::Result<()> {
        lines
            .iter()
            .try_for_each(|line| writeln!(self.out, "{line}"))
    }

    /// A task's end: a folded line once the batch has answered (the host's
    /// end says why it failed), or its own line.
    fn task_event(&mut self, line: TaskLine<'_>) -> io::Result<()> {
        let per_host = self.window && line.phase != Phase::Preflight;
        match &mut self.groups {
            Some(groups) if !per_host => {
                let lines = groups.task(line.host, line.phase, line.task, line.status);
                self.lines(lines)
            }
            _ => self.task(&line),
        }
    }

    /// A host's end: said when it failed or stopped, or when its tasks go a
    /// line each; folded lines it completes follow.
    fn host_end_event(&mut self, host: &str, end: &HostEnd) -> io::Result<()> {
        let lines = match &mut self.groups {
            Some(groups) => groups.host_end(host),
            None => Vec::new(),
        };
        let folded = self.groups.is_some() && !self.window;
        if !(folded && *end == HostEnd::Done) {
            self.host_end(host, end)?;
        }
        self.lines(lines)
    }

    fn paint(&self, style: Style, text: &str) -> String {
        match self.color {
            true => style.apply_to(text).to_string(),
            false => text.to_string(),
        }
    }

    fn write_event(&mut self, event: &PlayEvent) -> io::Result<()> {
        match event {
            PlayEvent::Plan {
                playbook,
                play,
                batches,
                mode,
                max_fail,
                earlier,
                journal,
                check,
            } => {
                self.hosts = batches.concat();
                self.window = *mode == Mode::Window;
                self.begin(String::new(), self.hosts.clone())?;
                let title = match play {
                    (_, 1) => playbook.clone(),
                    (number, plays) => format!("play {number}/{plays}: {playbook}"),
                };
                self.plan(
                    &title,
                    batches,
                    *mode,
                    *max_fail,
                    earlier,
                    journal.as_deref(),
                )?;
                match check {
                    true => self.batch_plan(batches),
                    false => Ok(()),
                }
            }
            PlayEvent::Preflight { hosts } => {
                self.heading(&format!("== preflight on {hosts} host(s)"))?;
                self.begin("preflight".into(), self.hosts.clone())
            }
            PlayEvent::Batch { number, of, hosts } => {
                self.begin(format!("batch {number}/{of}"), hosts.clone())?;
                let names: Vec<&str> = hosts.iter().map(String::as_str).collect();
                self.heading(&format!("== batch {number}/{of}: {}", fold(&names)))
            }
            PlayEvent::Task {
                host,
                phase,
                task,
                status,
                duration,
                detail,
            } => self.task_event(TaskLine {
                host,
                phase: *phase,
                task,
                status,
                seconds: duration.as_secs_f64(),
                detail,
            }),
            PlayEvent::HostEnd { host, end } => self.host_end_event(host, end),
            PlayEvent::Notice(text) => writeln!(self.out, "pplay: {text}"),
        }
    }

    fn heading(&mut self, text: &str) -> io::Result<()> {
        writeln!(self.out, "{}", self.paint(Style::new().bold(), text))
    }

    fn host_end(&mut self, host: &str, end: &HostEnd) -> io::Result<()> {
        let now = time_of_day(SystemTime::now());
        match end {
            HostEnd::Done => writeln!(
                self.out,
                "[{now}] {host} {}",
                self.paint(Style::new().green(), "DONE")
            ),
            HostEnd::Failed(why) => writeln!(
                self.out,
                "[{now}] {host} {} {}",
                self.paint(Style::new().red().bold(), "FAILED"),
                why.detail
            ),
            HostEnd::Stopped => writeln!(self.out, "[{now}] {host} stopped; --resume continues it"),
        }
    }

    fn plan(
        &mut self,
        playbook: &str,
        batches: &[Vec<String>],
        mode: Mode,
        max_fail: usize,
        earlier: &Earlier,
        journal: Option<&std::path::Path>,
    ) -> io::Result<()> {
        let hosts: usize = batches.iter().map(Vec::len).sum();
        let sizes: Vec<String> = batches.iter().map(|b| b.len().to_string()).collect();
        let mode = match mode {
            Mode::Batch => "batches",
            Mode::Window => "a window growing",
        };
        match hosts {
            0 => writeln!(self.out, "pplay: {playbook}: no host left to run")?,
            _ => writeln!(
                self.out,
                "pplay: {playbook}: {hosts} host(s), {mode} of {}; max_fail {max_fail}",
                sizes.join(", ")
            )?,
        }
        if !earlier.done.is_empty() {
            writeln!(
                self.out,
                "pplay: {} host(s) finished earlier are left alone",
                earlier.done.len()
            )?;
        }
        if earlier.retried > 0 {
            writeln!(
                self.out,
                "pplay: {} host(s) that failed earlier go again (--skip-failed leaves them)",
                earlier.retried
            )?;
        }
        let (in_earlier_plays, skipped): (Vec<_>, Vec<_>) = earlier
            .failed
            .iter()
            .partition(|(_, why)| why.starts_with(FAILED_IN_AN_EARLIER_PLAY));
        if !in_earlier_plays.is_empty() {
            writeln!(
                self.out,
                "pplay: {} host(s) that failed in an earlier play stay failed",
                in_earlier_plays.len()
            )?;
        }
        if !skipped.is_empty() {
            writeln!(
                self.out,
                "pplay: {} host(s) that failed earlier stay failed (--skip-failed)",
                skipped.len()
            )?;
        }
        if let (Some(journal), false) = (journal, self.journal_named) {
            self.journal_named = true;
            writeln!(self.out, "pplay: journal {}", journal.display())?;
        }
        Ok(())
    }

    fn task(&mut self, line: &TaskLine<'_>) -> io::Result<()> {
        let (word, style, note) = match line.status {
            TaskStatus::Running => return Ok(()),
            TaskStatus::Ok(note) => ("ok", Style::new().green(), note.clone()),
            TaskStatus::Changed(note) => ("changed", Style::new().yellow(), note.clone()),
            TaskStatus::Skipped(why) => ("skipped", Style::new().cyan(), why.clone()),
            TaskStatus::Failed => ("failed", Style::new().red().bold(), line.detail.to_string()),
            TaskStatus::Aborted => ("aborted", Style::new().red(), String::new()),
            TaskStatus::WouldRun(what) => ("would", Style::new().yellow(), what.clone()),
        };
        let phase = match line.phase {
            Phase::Tasks => String::new(),
            other => format!("{}: ", other.key()),
        };
        let note = match note.is_empty() {
            true => String::new(),
            false => format!(" ({note})"),
        };
        writeln!(
            self.out,
            "[{}] {} {phase}{}: {}{note} {:.1}s",
            time_of_day(SystemTime::now()),
            line.host,
            line.task,
            self.paint(style, word),
            line.seconds
        )
    }

    /// `--check`: which hosts would go in which batch.
    fn batch_plan(&mut self, batches: &[Vec<String>]) -> io::Result<()> {
        for (index, hosts) in batches.iter().enumerate() {
            let names: Vec<&str> = hosts.iter().map(String::as_str).collect();
            writeln!(
                self.out,
                "pplay: batch {}/{}: {}",
                index + 1,
                batches.len(),
                fold(&names)
            )?;
        }
        Ok(())
    }

    /// The closing lines: counts, failures with where, the resume command.
    fn summary(&mut self, report: &PlayReport) -> io::Result<()> {
        let earlier = &report.earlier;
        let (done, failed) = (
            counted(report.done.len(), earlier.done.len(), "done"),
            counted(report.failed.len(), earlier.failed.len(), "failed"),
        );
        let unchecked = match report.unchecked.len() {
            0 => String::new(),
            count => format!(", {count} not checked"),
        };
        writeln!(
            self.out,
            "pplay: {done}, {failed}, {} stopped, {} not started{unchecked} in {:.1}s",
            report.stopped.len(),
            report.not_started.len(),
            report.elapsed.as_secs_f64()
        )?;
        for (why, hosts) in group_by_reason(&report.unchecked) {
            writeln!(
                self.out,
                "pplay: not checked ({}): {why}: {}",
                hosts.len(),
                fold(&hosts)
            )?;
        }
        let all_failed: Vec<(String, String)> = report
            .failed
            .iter()
            .chain(&earlier.failed)
            .cloned()
            .collect();
        for (why, hosts) in group_by_reason(&all_failed) {
            writeln!(
                self.out,
                "pplay: failed ({}): {why}: {}",
                hosts.len(),
                fold(&hosts)
            )?;
        }
        if let Some(reason) = &report.stop_reason {
            writeln!(self.out, "pplay: stopped: {reason}")?;
        }
        if let (true, Some(journal)) = (report.unfinished(), &report.journal) {
            writeln!(
                self.out,
                "pplay: resume with: pplay --resume {}",
                journal.display()
            )?;
        }
        self.out.flush()
    }
}

/// `8 done`, or `8 done (4 earlier)` when some ended in an earlier run.
fn counted(now: usize, earlier: usize, word: &str) -> String {
    match earlier {
        0 => format!("{now} {word}"),
        _ => format!("{} {word} ({earlier} earlier)", now + earlier),
    }
}

impl<W: Write> Reporter for PlayText<W> {
    fn play(&mut self, event: &PlayEvent) -> io::Result<()> {
        self.write_event(event)
    }

    fn report(&mut self, report: &PlayReport) -> io::Result<()> {
        let left = self.groups.as_mut().map(Groups::finish).unwrap_or_default();
        self.lines(left)?;
        self.summary(report)
    }
}
