//! `-P/--print`: each host's output as `host: line` the moment a line is
//! complete. Only whole lines are written, so two hosts never share a line;
//! a last partial line is flushed when its host finishes. Stdout lines go to
//! stdout as in pssh; stderr lines go to our stderr rather than being lost.

use std::collections::HashMap;
use std::io::{self, Write};

use super::{HostRef, Reporter};
use crate::engine::{HostResult, Stream};

/// A line longer than this is written in pieces rather than held forever.
const MAX_HELD_LINE: usize = 64 * 1024;

/// Prints prefixed lines as they arrive.
pub struct LinePrinter<O, E> {
    out: O,
    err: E,
    /// Incomplete last line per host and stream.
    partial: HashMap<(usize, bool), Vec<u8>>,
}

impl<O: Write, E: Write> LinePrinter<O, E> {
    pub fn new(out: O, err: E) -> Self {
        LinePrinter {
            out,
            err,
            partial: HashMap::new(),
        }
    }

    fn write_line(&mut self, host: HostRef<'_>, is_stderr: bool, line: &[u8]) -> io::Result<()> {
        let mut text = format!("{}: ", host.host).into_bytes();
        text.extend_from_slice(line);
        text.push(b'\n');
        let writer: &mut dyn Write = if is_stderr {
            &mut self.err
        } else {
            &mut self.out
        };
        writer.write_all(&text)?;
        writer.flush()
    }
}

impl<O: Write, E: Write> Reporter for LinePrinter<O, E> {
    fn output(&mut self, host: HostRef<'_>, stream: Stream, data: &[u8]) -> io::Result<()> {
        let key = (host.index, stream == Stream::Stderr);
        let mut pending = self.partial.remove(&key).unwrap_or_default();
        pending.extend_from_slice(data);
        let mut start = 0;
        while let Some(newline) = pending[start..].iter().position(|&b| b == b'\n') {
            self.write_line(host, key.1, &pending[start..start + newline])?;
            start += newline + 1;
        }
        if pending.len() - start > MAX_HELD_LINE {
            self.write_line(host, key.1, &pending[start..])?;
            start = pending.len();
        }
        if start < pending.len() {
            pending.drain(..start);
            self.partial.insert(key, pending);
        }
        Ok(())
    }

    fn finished(&mut self, host: HostRef<'_>, _result: &HostResult) -> io::Result<()> {
        for is_stderr in [false, true] {
            if let Some(rest) = self.partial.remove(&(host.index, is_stderr)) {
                self.write_line(host, is_stderr, &rest)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::engine::Outcome;
    use crate::model::fixtures::host;
    use crate::output::host_refs;

    #[test]
    fn whole_lines_only_and_partial_flushed_at_end() {
        let hosts = [host("a", None, None), host("b", None, None)];
        let [a, b] = host_refs(&hosts);
        let mut printer = LinePrinter::new(Vec::new(), Vec::new());
        printer.output(a, Stream::Stdout, b"one\ntw").unwrap();
        printer.output(b, Stream::Stdout, b"x\xff\n").unwrap();
        printer.output(a, Stream::Stdout, b"o\nthree").unwrap();
        printer.output(b, Stream::Stderr, b"oops\n").unwrap();
        let done = HostResult {
            outcome: Outcome::Exited(0),
            changes: None,
            started_at: None,
            duration: Duration::ZERO,
        };
        printer.finished(a, &done).unwrap();
        assert_eq!(printer.out, b"a: one\nb: x\xff\na: two\na: three\n");
        assert_eq!(printer.err, b"b: oops\n");
    }
}
