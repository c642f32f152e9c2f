//! pplay's printer: the plan, one line per finished task per host, batch
//! headers, notices, and the closing summary with the resume command.

use std::io::{self, Write};
use std::time::SystemTime;

use console::Style;

use super::fold::fold;
use super::summary::group_by_reason;
use crate::playbook::spec::Mode;
use crate::playbook::{HostEnd, Phase, PlayEvent, RolloutReport, TaskStatus};

/// Prints [`PlayEvent`]s as lines; owns stdout for the run.
pub struct PlayPrinter<W: Write> {
    out: W,
    color: bool,
}

impl<W: Write> PlayPrinter<W> {
    pub fn new(out: W, color: bool) -> Self {
        PlayPrinter { out, color }
    }

    fn paint(&self, style: Style, text: &str) -> String {
        match self.color {
            true => style.apply_to(text).to_string(),
            false => text.to_string(),
        }
    }

    pub fn print(&mut self, event: &PlayEvent) -> io::Result<()> {
        match event {
            PlayEvent::Plan {
                playbook,
                batches,
                mode,
                max_fail,
                finished,
                journal,
            } => self.plan(
                playbook,
                batches,
                *mode,
                *max_fail,
                *finished,
                journal.as_deref(),
            ),
            PlayEvent::Preflight { hosts } => {
                writeln!(
                    self.out,
                    "{}",
                    self.paint(
                        Style::new().bold(),
                        &format!("== preflight on {hosts} host(s)")
                    )
                )
            }
            PlayEvent::Batch { number, of, hosts } => writeln!(
                self.out,
                "{}",
                self.paint(
                    Style::new().bold(),
                    &format!("== batch {number}/{of}: {}", hosts.join(" "))
                )
            ),
            PlayEvent::Task {
                host,
                phase,
                task,
                status,
                duration,
                detail,
            } => self.task(host, *phase, task, status, duration.as_secs_f64(), detail),
            PlayEvent::HostEnd { host, end } => match end {
                HostEnd::Done => writeln!(
                    self.out,
                    "[{}] {host} {}",
                    clock(),
                    self.paint(Style::new().green(), "DONE")
                ),
                HostEnd::Failed(why) => writeln!(
                    self.out,
                    "[{}] {host} {} {why}",
                    clock(),
                    self.paint(Style::new().red().bold(), "FAILED")
                ),
                HostEnd::Stopped => writeln!(
                    self.out,
                    "[{}] {host} stopped; --resume continues it",
                    clock()
                ),
            },
            PlayEvent::Notice(text) => writeln!(self.out, "pplay: {text}"),
        }
    }

    fn plan(
        &mut self,
        playbook: &str,
        batches: &[Vec<String>],
        mode: Mode,
        max_fail: usize,
        finished: usize,
        journal: Option<&std::path::Path>,
    ) -> io::Result<()> {
        let hosts: usize = batches.iter().map(Vec::len).sum();
        let sizes: Vec<String> = batches.iter().map(|b| b.len().to_string()).collect();
        let mode = match mode {
            Mode::Batch => "batches",
            Mode::Window => "a window growing",
        };
        writeln!(
            self.out,
            "pplay: {playbook}: {hosts} host(s), {mode} of {}; max_fail {max_fail}",
            sizes.join(", ")
        )?;
        if finished > 0 {
            writeln!(
                self.out,
                "pplay: {finished} host(s) finished earlier are left alone"
            )?;
        }
        if let Some(journal) = journal {
            writeln!(self.out, "pplay: journal {}", journal.display())?;
        }
        Ok(())
    }

    fn task(
        &mut self,
        host: &str,
        phase: Phase,
        task: &str,
        status: &TaskStatus,
        seconds: f64,
        detail: &str,
    ) -> io::Result<()> {
        let (word, style, note) = match status {
            TaskStatus::Running => return Ok(()),
            TaskStatus::Ok => ("ok", Style::new().green(), String::new()),
            TaskStatus::Changed => ("changed", Style::new().yellow(), String::new()),
            TaskStatus::Done(note) => ("ok", Style::new().green(), note.clone()),
            TaskStatus::Unchanged => ("unchanged", Style::new().green(), String::new()),
            TaskStatus::Skipped(why) => ("skipped", Style::new().cyan(), why.clone()),
            TaskStatus::Failed => ("failed", Style::new().red().bold(), detail.to_string()),
            TaskStatus::Aborted => ("aborted", Style::new().red(), String::new()),
            TaskStatus::WouldRun(what) => ("would", Style::new().yellow(), what.clone()),
        };
        let phase = match phase {
            Phase::Preflight => "preflight: ",
            Phase::Tasks => "",
            Phase::OnFailure => "on_failure: ",
        };
        let note = match note.is_empty() {
            true => String::new(),
            false => format!(" ({note})"),
        };
        writeln!(
            self.out,
            "[{}] {host} {phase}{task}: {}{note} {seconds:.1}s",
            clock(),
            self.paint(style, word)
        )
    }

    /// The closing lines: counts, failures with where, the resume command.
    pub fn summary(
        &mut self,
        report: &RolloutReport,
        journal: Option<&std::path::Path>,
    ) -> io::Result<()> {
        writeln!(
            self.out,
            "pplay: {} done, {} failed, {} stopped, {} not started in {:.1}s",
            report.done.len(),
            report.failed.len(),
            report.stopped.len(),
            report.not_started.len(),
            report.elapsed.as_secs_f64()
        )?;
        for (why, hosts) in group_by_reason(&report.failed) {
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
        let unfinished = !report.stopped.is_empty() || !report.not_started.is_empty();
        if let (true, Some(journal)) = (unfinished, journal) {
            writeln!(
                self.out,
                "pplay: resume with: pplay --resume {}",
                journal.display()
            )?;
        }
        self.out.flush()
    }
}

/// Wall-clock time of day (UTC) for each line: when did it happen?
fn clock() -> String {
    let seconds = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let day = seconds % 86_400;
    format!("{:02}:{:02}:{:02}", day / 3600, day % 3600 / 60, day % 60)
}
