//! Printers that turn engine events into what people and scripts read.
//!
//! Every printer implements [`Reporter`]; only `finished` is required. The
//! [`dispatch`] loop runs on one dedicated thread and is the only code that
//! writes to stdout, so host outputs never interleave inside a line.

mod files;
pub mod fold;
mod gather;
mod held;
mod json;
mod lines;
mod play;
mod progress;
mod slurp;
mod status;
mod summary;

use std::io;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use files::OutputFiles;
pub use gather::Gather;
pub(crate) use held::Held;
pub use held::{DEFAULT_OUTPUT_LIMIT, HELD_IN_MEMORY};
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
/// a write error events are still drained, so the engine never blocks on a
/// printer that gave up; the first error is returned. A closed stdout
/// (`prun ... | head`) also fires `output_gone`: nobody reads any more, so
/// the run stops and its remote commands are killed, as pssh dies of SIGPIPE.
pub fn dispatch(
    hosts: &[Host],
    events: &mut mpsc::Receiver<Event>,
    reporter: &mut dyn Reporter,
    output_gone: &CancellationToken,
) -> io::Result<()> {
    let mut failure = None;
    while let Some(event) = events.blocking_recv() {
        if failure.is_none() {
            failure = deliver(hosts, event, reporter).err();
            if matches!(&failure, Some(e) if e.kind() == io::ErrorKind::BrokenPipe) {
                output_gone.cancel();
            }
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
