//! pssh's default output: one status line per host in completion order,
//! `[N] HH:MM:SS [SUCCESS|FAILURE] host reason`, optionally followed by the
//! host's output (`-i`, `--inline-stdout`).

use std::collections::HashMap;
use std::io::{self, Write};
use std::time::SystemTime;

use console::Style;

use super::{Held, HostRef, Reporter};
use crate::clock::time_of_day;
use crate::engine::{Category, HostResult, Stream};

/// Which output `-i`/`--inline-stdout` print after the status line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inline {
    Off,
    Stdout,
    StdoutAndStderr,
    /// The first line of stdout, on the status line itself: how pcp and
    /// pnuke say what they did on each host.
    Note,
}

/// Most of a host's stdout held for its note.
const MAX_NOTE: usize = 1024;

/// Prints pssh status lines; buffers output per host only when inlining.
pub struct StatusPrinter<W> {
    out: W,
    color: bool,
    inline: Inline,
    completed: usize,
    /// Output held until the host finishes (inline modes only).
    held: HashMap<usize, (Held, Held)>,
    /// Most bytes of each stream held per host.
    limit: usize,
}

impl<W: Write> StatusPrinter<W> {
    pub fn new(out: W, color: bool, inline: Inline, limit: usize) -> Self {
        StatusPrinter {
            out,
            color,
            inline,
            completed: 0,
            held: HashMap::new(),
            limit,
        }
    }

    fn write_held(&mut self, held: &mut Held) -> io::Result<()> {
        held.write_to(&mut self.out, self.limit)
    }

    fn paint(&self, style: Style, text: &str) -> String {
        match self.color {
            true => style.force_styling(true).apply_to(text).to_string(),
            false => text.to_string(),
        }
    }
}

impl<W: Write> Reporter for StatusPrinter<W> {
    fn output(&mut self, host: HostRef<'_>, stream: Stream, data: &[u8]) -> io::Result<()> {
        let keep_stdout = match (self.inline, stream) {
            (Inline::Off, _) | (Inline::Stdout | Inline::Note, Stream::Stderr) => return Ok(()),
            (_, Stream::Stdout) => true,
            (Inline::StdoutAndStderr, Stream::Stderr) => false,
        };
        let (stdout, stderr) = self.held.entry(host.index).or_default();
        match keep_stdout {
            // A note is one short line; never hold more than its start.
            true if self.inline == Inline::Note => stdout.push(data, MAX_NOTE),
            true => stdout.push(data, self.limit),
            false => stderr.push(data, self.limit),
        }
        Ok(())
    }

    fn finished(&mut self, host: HostRef<'_>, result: &HostResult) -> io::Result<()> {
        self.completed += 1;
        let (mut stdout, mut stderr) = self.held.remove(&host.index).unwrap_or_default();
        let number = self.paint(Style::new().bold(), &self.completed.to_string());
        let time = time_of_day(SystemTime::now());
        let mut line = match result.outcome.failure_reason() {
            None => format!(
                "[{number}] {time} {} {}",
                self.paint(Style::new().green().bold(), "[SUCCESS]"),
                host.host
            ),
            Some(reason) => format!(
                "[{number}] {time} {} {} {}",
                self.paint(Style::new().red().bold(), "[FAILURE]"),
                host.host,
                self.paint(Style::new().red().bold(), &reason)
            ),
        };
        if result.outcome.category() == Category::Unchanged {
            line.push_str(" unchanged");
        }
        if self.inline == Inline::Note {
            if let Some(note) = String::from_utf8_lossy(stdout.head())
                .lines()
                .next()
                .filter(|l| !l.is_empty())
            {
                line = format!("{line} {note}");
            }
        }
        line.push('\n');
        self.out.write_all(line.as_bytes())?;
        if matches!(self.inline, Inline::Stdout | Inline::StdoutAndStderr) {
            self.write_held(&mut stdout)?;
            if !stderr.is_empty() {
                self.out
                    .write_all(self.paint(Style::new().red(), "Stderr: ").as_bytes())?;
                self.write_held(&mut stderr)?;
            }
        }
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::engine::Outcome;
    use crate::model::fixtures::host;
    use crate::output::host_refs;

    fn result(outcome: Outcome) -> HostResult {
        HostResult {
            outcome,
            changes: None,
            started_at: None,
            duration: Duration::ZERO,
        }
    }

    fn mask_time(text: &str) -> String {
        text.lines()
            .map(|line| match line.find(':') {
                Some(i) if i >= 2 && (line.starts_with("[1]") || line.starts_with("[2]")) => {
                    format!("{}HH:MM:SS{}", &line[..i - 2], &line[i + 6..])
                }
                _ => line.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn pssh_lines_with_inline_output() {
        let hosts = [host("web1", None, None), host("web2", Some(2222), None)];
        let mut printer = StatusPrinter::new(Vec::new(), false, Inline::StdoutAndStderr, 6);
        let [a, b] = host_refs(&hosts);
        printer.output(b, Stream::Stdout, b"out\nmore\n").unwrap();
        printer.output(b, Stream::Stderr, b"err\n").unwrap();
        printer.finished(b, &result(Outcome::Exited(3))).unwrap();
        printer.finished(a, &result(Outcome::Exited(0))).unwrap();
        let text = String::from_utf8(printer.out).unwrap();
        assert_eq!(
            mask_time(&text),
            "[1] HH:MM:SS [FAILURE] web2:2222 Exited with error code 3\nout\nmo\n\
             [output truncated after 6 bytes: 3 more bytes not shown; -o DIR keeps all of it]\n\
             Stderr: err\n[2] HH:MM:SS [SUCCESS] web1"
        );
    }
}
