//! Lines for the operator that are not the run's output: a signal heard,
//! `-p` lowered to the open-files limit. They go to stderr, through the
//! output thread, so that they never cut through the progress line.

use std::io::{self, Write};

use super::Reporter;

/// Writes each notice as `TOOL: text` on `out` (stderr).
pub struct Notices<W: Write> {
    out: W,
    tool: &'static str,
}

impl<W: Write> Notices<W> {
    pub fn new(out: W, tool: &'static str) -> Self {
        Notices { out, tool }
    }
}

impl<W: Write> Reporter for Notices<W> {
    fn notice(&mut self, text: &str) -> io::Result<()> {
        writeln!(self.out, "{}: {text}", self.tool)?;
        self.out.flush()
    }
}
