//! Printers that turn engine events into what people and scripts read.
//!
//! Every printer implements [`Reporter`]; only `finished` is required. The
//! [`dispatch`] loop runs on one dedicated thread and is the only code that
//! writes to stdout, so host outputs never interleave inside a line.

mod files;
pub mod fold;
mod gather;
mod json;
mod lines;
mod play;
mod progress;
mod slurp;
mod status;
mod summary;

use std::io;

use tokio::sync::mpsc;

pub use files::OutputFiles;
pub use gather::Gather;
pub use json::{status_name, JsonLines, MAX_JSON_OUTPUT};
pub use lines::LinePrinter;
pub use play::PlayPrinter;
pub use progress::{wanted as progress_wanted, Progress};
pub use slurp::SlurpFiles;
pub use status::{Inline, StatusPrinter};
pub use summary::{FailedHostsFile, Summary};

use crate::engine::{Event, HostResult, Stream};
use crate::model::Host;

/// A host as printers see it: its position in the run and its entry.
#[derive(Debug, Clone, Copy)]
pub struct HostRef<'a> {
    pub index: usize,
    pub host: &'a Host,
}

/// What `-i` and `-b` hold of one host's output by default (`--output-limit`).
pub const DEFAULT_OUTPUT_LIMIT: usize = 64 * 1024 * 1024;

/// A host's output held until it can be printed, at most `limit` bytes:
/// ten hosts printing 50 MB each must not hold 500 MB. What is past the
/// limit is counted, not kept, and a marker says so where it would be.
#[derive(Debug, Default)]
pub(crate) struct Held {
    pub bytes: Vec<u8>,
    dropped: u64,
}

impl Held {
    pub fn push(&mut self, data: &[u8], limit: usize) {
        let room = limit.saturating_sub(self.bytes.len());
        let kept = data.len().min(room);
        self.bytes.extend_from_slice(&data[..kept]);
        self.dropped += (data.len() - kept) as u64;
    }

    /// The line printed after the held bytes when some were dropped.
    pub fn marker(&self, limit: usize) -> Option<String> {
        (self.dropped > 0).then(|| {
            let newline = match self.bytes.last() {
                Some(b'\n') | None => "",
                Some(_) => "\n",
            };
            format!(
                "{newline}[output truncated after {}: {} more bytes not shown; -o DIR keeps all of it]\n",
                human_size(limit),
                self.dropped
            )
        })
    }
}

/// `64 MiB`, `512 KiB`, `100 bytes`.
fn human_size(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{} GiB", b >> 30),
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}

/// A consumer of a run's events, called from the output thread only.
pub trait Reporter {
    /// The engine started on a host.
    fn started(&mut self, _host: HostRef<'_>) -> io::Result<()> {
        Ok(())
    }

    /// The host's command wrote `data` on `stream`.
    fn output(&mut self, _host: HostRef<'_>, _stream: Stream, _data: &[u8]) -> io::Result<()> {
        Ok(())
    }

    /// The host is done.
    fn finished(&mut self, host: HostRef<'_>, result: &HostResult) -> io::Result<()>;

    /// Every host is done.
    fn run_finished(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Several reporters fed in order, e.g. status lines plus files plus summary.
impl Reporter for Vec<Box<dyn Reporter + Send>> {
    fn started(&mut self, host: HostRef<'_>) -> io::Result<()> {
        self.iter_mut().try_for_each(|r| r.started(host))
    }

    fn output(&mut self, host: HostRef<'_>, stream: Stream, data: &[u8]) -> io::Result<()> {
        self.iter_mut()
            .try_for_each(|r| r.output(host, stream, data))
    }

    fn finished(&mut self, host: HostRef<'_>, result: &HostResult) -> io::Result<()> {
        self.iter_mut().try_for_each(|r| r.finished(host, result))
    }

    fn run_finished(&mut self) -> io::Result<()> {
        self.iter_mut().try_for_each(|r| r.run_finished())
    }
}

/// Feeds every event to `reporter` until the engine drops its sender. After
/// a write error (say, a closed pipe) events are still drained, so the engine
/// never blocks on a printer that gave up; the first error is returned.
pub fn dispatch(
    hosts: &[Host],
    events: &mut mpsc::Receiver<Event>,
    reporter: &mut dyn Reporter,
) -> io::Result<()> {
    let mut failure = None;
    while let Some(event) = events.blocking_recv() {
        if failure.is_none() {
            failure = deliver(hosts, event, reporter).err();
        }
    }
    match failure {
        Some(error) => Err(error),
        None => reporter.run_finished(),
    }
}

fn deliver(hosts: &[Host], event: Event, reporter: &mut dyn Reporter) -> io::Result<()> {
    let at = |index: usize| HostRef {
        index,
        host: &hosts[index],
    };
    match event {
        Event::Started { host } => reporter.started(at(host)),
        Event::Output { host, stream, data } => reporter.output(at(host), stream, &data),
        Event::Finished { host, result } => reporter.finished(at(host), &result),
    }
}
