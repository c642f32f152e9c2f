//! The end-of-run report on stderr (counts per category, then each host
//! that did not succeed and why) and `--failed-hosts FILE`, a hosts file of
//! those hosts for a re-run.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Instant;

use super::{HostRef, Reporter};
use crate::engine::{Category, HostResult, Stream};

/// The tail of a host's stderr kept for the summary.
const STDERR_TAIL: usize = 1024;

/// Collects results and prints the summary when the run ends.
pub struct Summary<W> {
    out: W,
    started: Instant,
    counts: BTreeMap<Category, usize>,
    /// `(host label, reason)` of each host that did not succeed, in completion order.
    failures: Vec<(String, String)>,
    /// The end of each running host's stderr: its last line explains a failure.
    stderr_tails: HashMap<usize, Vec<u8>>,
}

impl<W: Write> Summary<W> {
    pub fn new(out: W) -> Self {
        Summary {
            out,
            started: Instant::now(),
            counts: BTreeMap::new(),
            failures: Vec::new(),
            stderr_tails: HashMap::new(),
        }
    }
}

impl<W: Write> Reporter for Summary<W> {
    fn output(&mut self, host: HostRef<'_>, stream: Stream, data: &[u8]) -> io::Result<()> {
        if stream == Stream::Stderr {
            let tail = self.stderr_tails.entry(host.index).or_default();
            tail.extend_from_slice(data);
            let excess = tail.len().saturating_sub(STDERR_TAIL);
            tail.drain(..excess);
        }
        Ok(())
    }

    fn finished(&mut self, host: HostRef<'_>, result: &HostResult) -> io::Result<()> {
        *self.counts.entry(result.outcome.category()).or_default() += 1;
        let tail = self.stderr_tails.remove(&host.index).unwrap_or_default();
        if let Some(mut reason) = result.outcome.failure_reason() {
            if let Some(line) = last_line(&tail) {
                reason = format!("{reason}: {line}");
            }
            self.failures.push((host.host.label(), reason));
        }
        Ok(())
    }

    fn run_finished(&mut self) -> io::Result<()> {
        let total: usize = self.counts.values().sum();
        let parts: Vec<String> = self
            .counts
            .iter()
            .map(|(category, count)| format!("{count} {}", category_name(*category)))
            .collect();
        let seconds = self.started.elapsed().as_secs_f64();
        writeln!(
            self.out,
            "{total} hosts in {seconds:.1}s: {}",
            parts.join(", ")
        )?;
        for (host, reason) in &self.failures {
            writeln!(self.out, "  FAILED {host}: {reason}")?;
        }
        self.out.flush()
    }
}

/// The last non-empty line of `bytes`, trimmed, if any.
fn last_line(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    text.lines()
        .map(str::trim)
        .rfind(|line| !line.is_empty())
        .map(String::from)
}

fn category_name(category: Category) -> &'static str {
    match category {
        Category::Ok => "ok",
        Category::Unchanged => "unchanged",
        Category::Failed => "failed",
        Category::TimedOut => "timed out",
        Category::Unreachable => "unreachable",
        Category::SshError => "SSH errors",
        Category::Interrupted => "interrupted",
        Category::Internal => "internal errors",
    }
}

/// `--failed-hosts FILE`: every host that did not succeed, as hosts-file
/// lines, written atomically when the run ends (empty when all succeeded).
pub struct FailedHostsFile {
    path: PathBuf,
    lines: Vec<String>,
}

impl FailedHostsFile {
    pub fn new(path: PathBuf) -> Self {
        FailedHostsFile {
            path,
            lines: Vec::new(),
        }
    }
}

impl Reporter for FailedHostsFile {
    fn finished(&mut self, host: HostRef<'_>, result: &HostResult) -> io::Result<()> {
        if !result.outcome.category().is_success() {
            self.lines.push(host.host.to_hosts_line());
        }
        Ok(())
    }

    fn run_finished(&mut self) -> io::Result<()> {
        let mut text = self.lines.join("\n");
        if !text.is_empty() {
            text.push('\n');
        }
        write_atomically(&self.path, text.as_bytes()).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot write {}: {e}", self.path.display()),
            )
        })
    }
}

/// Writes through a temporary file in the same directory and renames it
/// into place, so the file is either the old one or the whole new one.
pub fn write_atomically(path: &std::path::Path, data: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let mut temp = tempfile::NamedTempFile::new_in(dir)?;
    temp.write_all(data)?;
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
