//! pplay's `--json`: JSON Lines on stdout, one object per event (`type`
//! says which: plan, preflight, batch, task, host, notice), then one
//! summary object. Nothing else goes to stdout.

use std::io::{self, Write};

use serde_json::{json, Value};

use super::Reporter;
use crate::playbook::spec::Mode;
use crate::playbook::{HostEnd, PlayEvent, PlayReport, TaskStatus};

/// Writes a playbook run's events and report as JSON Lines.
pub struct PlayJson<W: Write> {
    out: W,
}

impl<W: Write> PlayJson<W> {
    pub fn new(out: W) -> Self {
        PlayJson { out }
    }
}

impl<W: Write> Reporter for PlayJson<W> {
    fn play(&mut self, event: &PlayEvent) -> io::Result<()> {
        match event_json(event) {
            Some(object) => writeln!(self.out, "{object}"),
            None => Ok(()),
        }
    }

    fn report(&mut self, report: &PlayReport) -> io::Result<()> {
        writeln!(self.out, "{}", summary_json(report))?;
        self.out.flush()
    }
}

/// An event as a JSON object (`type` says which); progress ticks are none.
fn event_json(event: &PlayEvent) -> Option<Value> {
    Some(match event {
        PlayEvent::Plan {
            playbook,
            play,
            batches,
            mode,
            max_fail,
            earlier,
            journal,
            check,
        } => json!({
            "type": "plan", "playbook": playbook, "play": play.0, "plays": play.1,
            "batches": batches, "check": check,
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
                TaskStatus::Ok(note)
                | TaskStatus::Changed(note)
                | TaskStatus::Skipped(note)
                | TaskStatus::WouldRun(note) => note.as_str(),
                TaskStatus::Failed => detail.as_str(),
                TaskStatus::Running | TaskStatus::Aborted => "",
            };
            json!({
                "type": "task", "host": host, "phase": phase, "task": task,
                "status": status.journal_name(), "detail": note, "duration_s": duration.as_secs_f64(),
            })
        }
        PlayEvent::HostEnd { host, end } => json!({
            "type": "host", "host": host,
            "status": match end { HostEnd::Done => "done", HostEnd::Failed(_) => "failed", HostEnd::Stopped => "stopped" },
            "error": match end { HostEnd::Failed(why) => Some(&why.detail), _ => None },
        }),
        PlayEvent::Notice(text) => json!({"type": "notice", "message": text}),
    })
}

fn summary_json(report: &PlayReport) -> Value {
    json!({
        "type": "summary",
        "done": report.done.iter().chain(&report.earlier.done).collect::<Vec<_>>(),
        "failed": report.failed.iter().chain(&report.earlier.failed).map(|(host, why)| json!({"host": host, "error": why})).collect::<Vec<_>>(),
        "stopped": report.stopped,
        "not_started": report.not_started,
        "stop_reason": report.stop_reason,
        "unchecked": report.unchecked.iter().map(|(host, why)| json!({"host": host, "error": why})).collect::<Vec<_>>(),
        "duration_s": report.elapsed.as_secs_f64(),
        "journal": report.journal,
    })
}
