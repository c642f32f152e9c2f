//! pplay's printer: the plan, one line per finished task per host, batch
//! headers, notices, and the closing summary with the resume command; or
//! the same as JSON Lines; and a progress line on a terminal.

use std::io::{self, Write};
use std::time::SystemTime;

use std::collections::BTreeMap;

use console::Style;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{json, Value};

use super::fold::fold;
use super::summary::group_by_reason;
use crate::clock::time_of_day;
use crate::playbook::spec::Mode;
use crate::playbook::{Earlier, HostEnd, Phase, PlayEvent, PlayReport, TaskStatus};

/// Prints [`PlayEvent`]s as lines, or as JSON Lines with `--json`; owns
/// stdout for the run. On a terminal a progress line on stderr shows hosts
/// done, failed and running, the batch and what the hosts are doing.
pub struct PlayPrinter<W: Write> {
    out: W,
    color: bool,
    json: bool,
    progress: Option<ProgressBar>,
    /// What each running host is doing now, for the progress line.
    doing: BTreeMap<String, String>,
    batch: String,
    failed: usize,
}

impl<W: Write> PlayPrinter<W> {
    pub fn new(out: W, color: bool, json: bool, progress: bool) -> Self {
        let progress = progress.then(|| {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} {pos}/{len} hosts done, {msg}, {elapsed} elapsed",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_message("connecting");
            bar.enable_steady_tick(std::time::Duration::from_millis(250));
            bar
        });
        PlayPrinter {
            out,
            color,
            json,
            progress,
            doing: BTreeMap::new(),
            batch: String::new(),
            failed: 0,
        }
    }

    /// Prints one event, the progress line hidden meanwhile.
    pub fn print(&mut self, event: &PlayEvent) -> io::Result<()> {
        self.track(event);
        let result = match self.progress.clone() {
            Some(bar) => bar.suspend(|| self.write_event(event)),
            None => self.write_event(event),
        };
        if let Some(bar) = &self.progress {
            let doing: Vec<String> = self
                .doing
                .iter()
                .take(3)
                .map(|(h, t)| format!("{h}: {t}"))
                .collect();
            let more = self.doing.len().saturating_sub(3);
            let more = if more > 0 {
                format!(" (+{more})")
            } else {
                String::new()
            };
            bar.set_message(format!(
                "{} failed, {} running{}{}{more}",
                self.failed,
                self.doing.len(),
                self.batch,
                if doing.is_empty() {
                    String::new()
                } else {
                    format!(" — {}", doing.join(", "))
                }
            ));
        }
        result
    }

    /// Keeps the progress line's counts.
    fn track(&mut self, event: &PlayEvent) {
        match event {
            PlayEvent::Plan { batches, .. } => {
                if let Some(bar) = &self.progress {
                    bar.set_length(batches.iter().map(Vec::len).sum::<usize>() as u64);
                }
            }
            PlayEvent::Batch { number, of, .. } => self.batch = format!(", batch {number}/{of}"),
            PlayEvent::Task {
                host,
                task,
                status: TaskStatus::Running,
                ..
            } => {
                self.doing.insert(host.clone(), task.clone());
            }
            PlayEvent::HostEnd { host, end } => {
                self.doing.remove(host);
                self.failed += usize::from(matches!(end, HostEnd::Failed(_)));
                if let Some(bar) = &self.progress {
                    bar.inc(1);
                }
            }
            _ => {}
        }
    }

    fn write_event(&mut self, event: &PlayEvent) -> io::Result<()> {
        match self.json {
            true => match event_json(event) {
                Some(object) => writeln!(self.out, "{object}"),
                None => Ok(()),
            },
            false => self.write_text(event),
        }
    }

    fn paint(&self, style: Style, text: &str) -> String {
        match self.color {
            true => style.apply_to(text).to_string(),
            false => text.to_string(),
        }
    }

    fn write_text(&mut self, event: &PlayEvent) -> io::Result<()> {
        match event {
            PlayEvent::Plan {
                playbook,
                batches,
                mode,
                max_fail,
                earlier,
                journal,
            } => self.plan(
                playbook,
                batches,
                *mode,
                *max_fail,
                earlier,
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
                    time_of_day(SystemTime::now()),
                    self.paint(Style::new().green(), "DONE")
                ),
                HostEnd::Failed(why) => writeln!(
                    self.out,
                    "[{}] {host} {} {why}",
                    time_of_day(SystemTime::now()),
                    self.paint(Style::new().red().bold(), "FAILED")
                ),
                HostEnd::Stopped => writeln!(
                    self.out,
                    "[{}] {host} stopped; --resume continues it",
                    time_of_day(SystemTime::now())
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
        earlier: &Earlier,
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
        if !earlier.failed.is_empty() {
            writeln!(
                self.out,
                "pplay: {} host(s) that failed earlier stay failed (--skip-failed)",
                earlier.failed.len()
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
            time_of_day(SystemTime::now()),
            self.paint(style, word)
        )
    }

    /// The closing lines: counts, failures with where, the resume command.
    pub fn summary(
        &mut self,
        report: &PlayReport,
        journal: Option<&std::path::Path>,
    ) -> io::Result<()> {
        if let Some(bar) = self.progress.take() {
            bar.finish_and_clear();
        }
        if self.json {
            writeln!(self.out, "{}", summary_json(report, journal))?;
            return self.out.flush();
        }
        let earlier = &report.earlier;
        let (done, failed) = (
            counted(report.done.len(), earlier.done.len(), "done"),
            counted(report.failed.len(), earlier.failed.len(), "failed"),
        );
        writeln!(
            self.out,
            "pplay: {done}, {failed}, {} stopped, {} not started in {:.1}s",
            report.stopped.len(),
            report.not_started.len(),
            report.elapsed.as_secs_f64()
        )?;
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

/// `8 done`, or `8 done (4 earlier)` when some ended in an earlier run.
fn counted(now: usize, earlier: usize, word: &str) -> String {
    match earlier {
        0 => format!("{now} {word}"),
        _ => format!("{} {word} ({earlier} earlier)", now + earlier),
    }
}

/// An event as a JSON object (`type` says which); progress ticks are none.
fn event_json(event: &PlayEvent) -> Option<Value> {
    Some(match event {
        PlayEvent::Plan {
            playbook,
            batches,
            mode,
            max_fail,
            earlier,
            journal,
        } => json!({
            "type": "plan", "playbook": playbook, "batches": batches,
            "mode": match mode { Mode::Batch => "batch", Mode::Window => "window" },
            "max_fail": max_fail, "finished_earlier": earlier.done.len(),
            "failed_earlier": earlier.failed.len(), "retried": earlier.retried,
            "journal": journal,
        }),
        PlayEvent::Preflight { hosts } => json!({"type": "preflight", "hosts": hosts}),
        PlayEvent::Batch { number, of, hosts } => {
            json!({"type": "batch", "number": number, "of": of, "hosts": hosts})
        }
        PlayEvent::Task {
            status: TaskStatus::Running,
            ..
        } => return None,
        PlayEvent::Task {
            host,
            phase,
            task,
            status,
            duration,
            detail,
        } => {
            let note = match status {
                TaskStatus::Done(note) | TaskStatus::Skipped(note) | TaskStatus::WouldRun(note) => {
                    note.as_str()
                }
                TaskStatus::Failed => detail.as_str(),
                _ => "",
            };
            json!({
                "type": "task", "host": host, "phase": phase, "task": task,
                "status": status.journal_name(), "detail": note, "duration_s": duration.as_secs_f64(),
            })
        }
        PlayEvent::HostEnd { host, end } => json!({
            "type": "host", "host": host,
            "status": match end { HostEnd::Done => "done", HostEnd::Failed(_) => "failed", HostEnd::Stopped => "stopped" },
            "error": match end { HostEnd::Failed(why) => Some(why), _ => None },
        }),
        PlayEvent::Notice(text) => json!({"type": "notice", "message": text}),
    })
}

fn summary_json(report: &PlayReport, journal: Option<&std::path::Path>) -> Value {
    json!({
        "type": "summary",
        "done": report.done.iter().chain(&report.earlier.done).collect::<Vec<_>>(),
        "failed": report.failed.iter().chain(&report.earlier.failed).map(|(host, why)| json!({"host": host, "error": why})).collect::<Vec<_>>(),
        "stopped": report.stopped,
        "not_started": report.not_started,
        "stop_reason": report.stop_reason,
        "duration_s": report.elapsed.as_secs_f64(),
        "journal": journal,
    })
}
