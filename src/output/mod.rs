//! Printers that turn a run's events into what people and scripts read.
//!
//! Every tool, pplay included, feeds one [`Event`] stream to one output
//! thread ([`spawn`]), the only code that writes to stdout: host outputs
//! never interleave inside a line, and the progress line is hidden while
//! anything is written. Every printer implements [`Reporter`], whose
//! methods all default to doing nothing.

mod files;
pub mod fold;
mod gather;
mod held;
mod json;
mod lines;
mod notices;
mod play_groups;
mod play_json;
mod play_text;
mod progress;
mod slurp;
mod status;
mod summary;

use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use files::OutputFiles;
pub use gather::Gather;
pub(crate) use held::Held;
pub use held::{DEFAULT_OUTPUT_LIMIT, HELD_IN_MEMORY};
pub use json::{status_name, JsonLines, MAX_JSON_OUTPUT};
pub use lines::LinePrinter;
pub use notices::Notices;
pub use play_json::PlayJson;
pub use play_text::PlayText;
pub use progress::{hidden_while, wanted as progress_wanted, Progress};
pub use slurp::SlurpFiles;
pub use status::{Inline, StatusPrinter};
pub use summary::{FailedHostsFile, Summary};

use crate::engine::{self, HostResult, Stream};
use crate::model::Host;
use crate::playbook::{PlayEvent, PlayReport, PlaySink};

/// Everything a run tells its printers, in order.
#[derive(Debug)]
pub enum Event {
    /// A host's part of a pssh-style run.
    Host(engine::Event),
    /// A playbook run's progress.
    Play(PlayEvent),
    /// A playbook run's report, after its last event: the summary.
    Report(Arc<PlayReport>),
    /// A line for the operator (a signal heard, `-p` lowered), printed on
    /// stderr above the progress line, never through it.
    Notice(String),
}

impl From<engine::Event> for Event {
    fn from(event: engine::Event) -> Self {
        Event::Host(event)
    }
}

/// Where the playbook's events go: the output thread's channel. Playbook
/// events are few (a handful per task), so this channel is unbounded and
/// sending never waits.
impl PlaySink for mpsc::UnboundedSender<Event> {
    fn emit(&self, event: PlayEvent) {
        let _ = self.send(Event::Play(event));
    }
}

/// A host as printers see it: its position in the run and its entry.
#[derive(Debug, Clone, Copy)]
pub struct HostRef<'a> {
    pub index: usize,
    pub host: &'a Host,
}

/// Two hosts as printers see them, for the printers' unit tests.
#[cfg(test)]
pub(crate) fn host_refs(hosts: &[Host; 2]) -> [HostRef<'_>; 2] {
    [0, 1].map(|index| HostRef {
        index,
        host: &hosts[index],
    })
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
    fn finished(&mut self, _host: HostRef<'_>, _result: &HostResult) -> io::Result<()> {
        Ok(())
    }

    /// Something happened in a playbook run.
    fn play(&mut self, _event: &PlayEvent) -> io::Result<()> {
        Ok(())
    }

    /// A playbook run ended so.
    fn report(&mut self, _report: &PlayReport) -> io::Result<()> {
        Ok(())
    }

    /// A line for the operator.
    fn notice(&mut self, _text: &str) -> io::Result<()> {
        Ok(())
    }

    /// Every host is done.
    fn run_finished(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A boxed reporter is a reporter.
impl<R: Reporter + ?Sized> Reporter for Box<R> {
    fn started(&mut self, host: HostRef<'_>) -> io::Result<()> {
        (**self).started(host)
    }

    fn output(&mut self, host: HostRef<'_>, stream: Stream, data: &[u8]) -> io::Result<()> {
        (**self).output(host, stream, data)
    }

    fn finished(&mut self, host: HostRef<'_>, result: &HostResult) -> io::Result<()> {
        (**self).finished(host, result)
    }

    fn play(&mut self, event: &PlayEvent) -> io::Result<()> {
        (**self).play(event)
    }

    fn report(&mut self, report: &PlayReport) -> io::Result<()> {
        (**self).report(report)
    }

    fn notice(&mut self, text: &str) -> io::Result<()> {
        (**self).notice(text)
    }

    fn run_finished(&mut self) -> io::Result<()> {
        (**self).run_finished()
    }
}

/// Several reporters fed in order, e.g. status lines plus files plus summary.
/// One that fails (a full disk under `-o`) does not silence the others: each
/// is fed every event, and the first error is returned.
impl<R: Reporter> Reporter for Vec<R> {
    fn started(&mut self, host: HostRef<'_>) -> io::Result<()> {
        each(self, |r| r.started(host))
    }

    fn output(&mut self, host: HostRef<'_>, stream: Stream, data: &[u8]) -> io::Result<()> {
        each(self, |r| r.output(host, stream, data))
    }

    fn finished(&mut self, host: HostRef<'_>, result: &HostResult) -> io::Result<()> {
        each(self, |r| r.finished(host, result))
    }

    fn play(&mut self, event: &PlayEvent) -> io::Result<()> {
        each(self, |r| r.play(event))
    }

    fn report(&mut self, report: &PlayReport) -> io::Result<()> {
        each(self, |r| r.report(report))
    }

    fn notice(&mut self, text: &str) -> io::Result<()> {
        each(self, |r| r.notice(text))
    }

    fn run_finished(&mut self) -> io::Result<()> {
        each(self, |r| r.run_finished())
    }
}

/// Calls `deliver` on every reporter; the first error is the result.
fn each<R>(
    reporters: &mut [R],
    mut deliver: impl FnMut(&mut R) -> io::Result<()>,
) -> io::Result<()> {
    let mut first = Ok(());
    for reporter in reporters {
        let result = deliver(reporter);
        if first.is_ok() {
            first = result;
        }
    }
    first
}

/// Where the output thread reads events: the bounded channel of a pssh-style
/// run (a slow terminal slows the hosts instead of filling memory), or the
/// unbounded one of a playbook run.
pub trait EventSource: Send + 'static {
    fn next(&mut self) -> Option<Event>;
}

impl EventSource for mpsc::Receiver<Event> {
    fn next(&mut self) -> Option<Event> {
        self.blocking_recv()
    }
}

impl EventSource for mpsc::UnboundedReceiver<Event> {
    fn next(&mut self) -> Option<Event> {
        self.blocking_recv()
    }
}

/// Starts the output thread: the only writer of stdout for the whole run.
/// It feeds every event to `reporter` until every sender is dropped, then
/// calls `run_finished`. After a write error every event is still
/// delivered (a full disk under `-o` must not hide the status lines and the
/// summary, and no host may block on a printer that gave up); the first
/// error is returned. A closed stdout (`prun ... | head`) also fires `output_gone`:
/// nobody reads any more, so the run stops, as pssh dies of SIGPIPE.
pub fn spawn(
    hosts: Arc<[Host]>,
    mut source: impl EventSource,
    mut reporter: impl Reporter + Send + 'static,
    output_gone: CancellationToken,
) -> JoinHandle<io::Result<()>> {
    std::thread::spawn(move || {
        let mut failure = None;
        while let Some(event) = source.next() {
            if let Err(error) = deliver(&hosts, event, &mut reporter) {
                if error.kind() == io::ErrorKind::BrokenPipe {
                    output_gone.cancel();
                }
                failure.get_or_insert(error);
            }
        }
        let finished = reporter.run_finished();
        match failure {
            Some(error) => Err(error),
            None => finished,
        }
    })
}

fn deliver(hosts: &[Host], event: Event, reporter: &mut impl Reporter) -> io::Result<()> {
    let at = |index: usize| HostRef {
        index,
        host: &hosts[index],
    };
    match event {
        Event::Host(engine::Event::Started { host }) => reporter.started(at(host)),
        Event::Host(engine::Event::Output { host, stream, data }) => {
            reporter.output(at(host), stream, &data)
        }
        Event::Host(engine::Event::Finished { host, result }) => {
            reporter.finished(at(host), &result)
        }
        Event::Play(event) => reporter.play(&event),
        Event::Report(report) => reporter.report(&report),
        Event::Notice(text) => reporter.notice(&text),
    }
}
