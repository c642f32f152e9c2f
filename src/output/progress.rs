//! A progress line on stderr (indicatif): done/total, failed, running,
//! elapsed, ETA, for pplay the batch and what the hosts are doing, and the
//! hosts still running once the run stalls. It wraps the other printers and
//! hides itself while they write, so it never tears an output line. Only
//! drawn on a terminal, and never with --json, -q or -v (log lines would
//! cut through it).

use std::collections::BTreeMap;
use std::io::{self, IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use super::{HostRef, Reporter};
use crate::engine::{HostResult, Stream};
use crate::playbook::{HostEnd, PlayEvent, PlayReport, TaskStatus};

/// The progress line on screen, if any: a question asked on the terminal
/// mid-run (a one-time code, a pause) hides it while the operator answers.
static SHOWN: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Runs `ask` with the progress line, if one is shown, off the screen.
/// The line is not locked meanwhile: output and a Ctrl-C's words still get
/// through while the operator types.
pub fn hidden_while<T>(ask: impl FnOnce() -> T) -> T {
    let shown = SHOWN.lock().ok().and_then(|bar| bar.clone());
    let Some(bar) = shown else {
        return ask();
    };
    bar.set_draw_target(ProgressDrawTarget::hidden());
    let _ = write!(io::stderr(), "\r\x1b[2K");
    let answer = ask();
    bar.set_draw_target(ProgressDrawTarget::stderr());
    answer
}

/// No host finished for this long: the line lists the hosts still running.
const STALL: Duration = Duration::from_secs(5);
/// Most running hosts named on the line.
const NAMED: usize = 5;

/// Whether to draw progress: stderr is a terminal and nothing asked for
/// quiet, JSON or logs.
pub fn wanted(quiet: bool, json: bool, verbose: u8) -> bool {
    !quiet
        && !json
        && verbose == 0
        && io::stderr().is_terminal()
        && std::env::var_os("TERM").is_some_and(|t| t != "dumb")
}

/// What the line says, shared with indicatif's draw thread.
struct Running {
    /// Each running host and what it is doing (a task's name, for pplay).
    hosts: BTreeMap<String, String>,
    last_finish: Instant,
}

/// Progress around the printers that write the run's output.
pub struct Progress {
    bar: ProgressBar,
    inner: Box<dyn Reporter + Send>,
    running: Arc<Mutex<Running>>,
    failed: usize,
    /// `, batch 3/11` while a playbook rolls in batches.
    batch: String,
}

impl Progress {
    /// `total` hosts (0 for a playbook: its plan says how many).
    pub fn new(total: usize, inner: Box<dyn Reporter + Send>) -> Self {
        let running = Arc::new(Mutex::new(Running {
            hosts: BTreeMap::new(),
            last_finish: Instant::now(),
        }));
        let stalled = Arc::clone(&running);
        let style = ProgressStyle::with_template(
            "{spinner} {pos}/{len} done, {msg}, {elapsed} elapsed, ETA {eta}{stalled}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .with_key(
            "stalled",
            move |_: &ProgressState, out: &mut dyn std::fmt::Write| {
                let _ = write!(out, "{}", stall_note(&stalled));
            },
        );
        let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr())
            .with_style(style);
        bar.set_message("0 failed, 0 running");
        bar.enable_steady_tick(Duration::from_millis(250));
        if let Ok(mut shown) = SHOWN.lock() {
            *shown = Some(bar.clone());
        }
        Progress {
            bar,
            inner,
            running,
            failed: 0,
            batch: String::new(),
        }
    }

    fn begin(&mut self, host: String, doing: String) {
        if let Ok(mut running) = self.running.lock() {
            running.hosts.insert(host, doing);
        }
        self.note();
    }

    fn end(&mut self, host: &str, failed: bool) {
        if let Ok(mut running) = self.running.lock() {
            running.hosts.remove(host);
            running.last_finish = Instant::now();
        }
        self.failed += usize::from(failed);
        self.bar.inc(1);
        self.note();
    }

    fn note(&self) {
        let (count, doing) = self.running.lock().map_or((0, String::new()), |r| {
            let doing: Vec<String> = r
                .hosts
                .iter()
                .filter(|(_, task)| !task.is_empty())
                .take(3)
                .map(|(host, task)| format!("{host}: {task}"))
                .collect();
            (r.hosts.len(), doing.join(", "))
        });
        let doing = match doing.is_empty() {
            true => String::new(),
            false => format!(" — {doing}"),
        };
        self.bar.set_message(format!(
            "{} failed, {count} running{}{doing}",
            self.failed, self.batch
        ));
    }

    /// Keeps the line's counts for a playbook's event.
    fn track(&mut self, event: &PlayEvent) {
        match event {
            PlayEvent::Plan { batches, .. } => {
                self.bar
                    .set_length(batches.iter().map(Vec::len).sum::<usize>() as u64);
            }
            PlayEvent::Batch { number, of, .. } => {
                self.batch = format!(", batch {number}/{of}");
                self.note();
            }
            PlayEvent::Task {
                host,
                task,
                status: TaskStatus::Running,
                ..
            } => self.begin(host.clone(), task.clone()),
            PlayEvent::HostEnd { host, end } => self.end(host, matches!(end, HostEnd::Failed(_))),
            _ => {}
        }
    }
}

/// " — still running: a b c (+N)" once no host finished for a while.
fn stall_note(running: &Mutex<Running>) -> String {
    let Ok(running) = running.lock() else {
        return String::new();
    };
    if running.hosts.is_empty() || running.last_finish.elapsed() < STALL {
        return String::new();
    }
    let names: Vec<&str> = running
        .hosts
        .keys()
        .take(NAMED)
        .map(String::as_str)
        .collect();
    let more = running.hosts.len().saturating_sub(NAMED);
    let more = if more > 0 {
        format!(" (+{more})")
    } else {
        String::new()
    };
    format!(" — still running: {}{more}", names.join(" "))
}

impl Reporter for Progress {
    fn started(&mut self, host: HostRef<'_>) -> io::Result<()> {
        self.begin(host.host.label(), String::new());
        let inner = &mut self.inner;
        self.bar.suspend(|| inner.started(host))
    }

    fn output(&mut self, host: HostRef<'_>, stream: Stream, data: &[u8]) -> io::Result<()> {
        let inner = &mut self.inner;
        self.bar.suspend(|| inner.output(host, stream, data))
    }

    fn finished(&mut self, host: HostRef<'_>, result: &HostResult) -> io::Result<()> {
        self.end(&host.host.label(), !result.outcome.category().is_success());
        let inner = &mut self.inner;
        self.bar.suspend(|| inner.finished(host, result))
    }

    fn play(&mut self, event: &PlayEvent) -> io::Result<()> {
        self.track(event);
        let inner = &mut self.inner;
        self.bar.suspend(|| inner.play(event))
    }

    fn report(&mut self, report: &PlayReport) -> io::Result<()> {
        self.bar.finish_and_clear();
        self.inner.report(report)
    }

    fn notice(&mut self, text: &str) -> io::Result<()> {
        let inner = &mut self.inner;
        self.bar.suspend(|| inner.notice(text))
    }

    fn run_finished(&mut self) -> io::Result<()> {
        self.bar.finish_and_clear();
        self.inner.run_finished()
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Ok(mut shown) = SHOWN.lock() {
            *shown = None;
        }
    }
}
