//! A progress line on stderr (indicatif): done/total, failed, running,
//! elapsed, ETA, and the hosts still running once the run stalls. It wraps
//! the other printers and hides itself while they write, so it never tears
//! an output line. Only drawn on a terminal, and never with --json or -q.

use std::collections::BTreeMap;
use std::io::{self, IsTerminal};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use super::{HostRef, Reporter};
use crate::engine::{HostResult, Stream};

/// No host finished for this long: the line lists the hosts still running.
const STALL: Duration = Duration::from_secs(5);
/// Most running hosts named on a stalled line.
const NAMED: usize = 5;

/// Whether to draw progress: stderr is a terminal and nothing asked for quiet.
pub fn wanted(quiet: bool, json: bool) -> bool {
    !quiet
        && !json
        && io::stderr().is_terminal()
        && std::env::var_os("TERM").is_some_and(|t| t != "dumb")
}

/// What the bar's stall note needs, shared with indicatif's draw thread.
struct Running {
    hosts: BTreeMap<usize, String>,
    last_finish: Instant,
}

/// Progress around the printers that write the run's output.
pub struct Progress {
    bar: ProgressBar,
    inner: Box<dyn Reporter + Send>,
    running: Arc<Mutex<Running>>,
    failed: usize,
}

impl Progress {
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
        Progress {
            bar,
            inner,
            running,
            failed: 0,
        }
    }

    fn note(&self) {
        let running = self.running.lock().map_or(0, |r| r.hosts.len());
        self.bar
            .set_message(format!("{} failed, {running} running", self.failed));
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
        .values()
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
        if let Ok(mut running) = self.running.lock() {
            running.hosts.insert(host.index, host.host.label());
        }
        self.note();
        let inner = &mut self.inner;
        self.bar.suspend(|| inner.started(host))
    }

    fn output(&mut self, host: HostRef<'_>, stream: Stream, data: &[u8]) -> io::Result<()> {
        let inner = &mut self.inner;
        self.bar.suspend(|| inner.output(host, stream, data))
    }

    fn finished(&mut self, host: HostRef<'_>, result: &HostResult) -> io::Result<()> {
        if let Ok(mut running) = self.running.lock() {
            running.hosts.remove(&host.index);
            running.last_finish = Instant::now();
        }
        if !result.outcome.category().is_success() {
            self.failed += 1;
        }
        self.bar.inc(1);
        self.note();
        let inner = &mut self.inner;
        self.bar.suspend(|| inner.finished(host, result))
    }

    fn run_finished(&mut self) -> io::Result<()> {
        self.bar.finish_and_clear();
        self.inner.run_finished()
    }
}
