//! The end-of-run report on stderr (counts per category, then the hosts
//! that did not succeed grouped by why, folded into ranges; `--summary`
//! adds a table of every host, slowest first) and `--failed-hosts FILE`, a hosts file of
//! those hosts for a re-run.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Instant;

use super::fold::fold;
use super::{HostRef, Reporter};
use crate::engine::{Category, Changes, HostResult, Outcome, Stream};
use crate::partial_file::PartialFile;
use crate::text::printable;

/// The tail of a host's stderr kept for the summary.
const STDERR_TAIL: usize = 1024;

/// Collects results and prints the summary when the run ends.
pub struct Summary<W> {
    out: W,
    started: Instant,
    counts: BTreeMap<Category, usize>,
    /// What planned jobs changed, over all hosts (prsync).
    changes: Option<Changes>,
    /// `(host label, reason)` of each host that did not succeed, in completion order.
    failures: Vec<(String, String)>,
    /// `--summary`: every host's row, for the table.
    table: Option<Vec<Row>>,
    /// The end of each running host's stderr: its last line explains a failure.
    stderr_tails: HashMap<usize, Vec<u8>>,
}

/// One line of the `--summary` table.
struct Row {
    host: String,
    status: &'static str,
    exit: String,
    seconds: f64,
}

impl<W: Write> Summary<W> {
    /// `table`: also print every host's status, exit code and duration,
    /// slowest first.
    pub fn new(out: W, table: bool) -> Self {
        Summary {
            out,
            started: Instant::now(),
            counts: BTreeMap::new(),
            changes: None,
            failures: Vec::new(),
            table: table.then(Vec::new),
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
        let category = result.outcome.category();
        *self.counts.entry(category).or_default() += 1;
        if let Some(changes) = &result.changes {
            self.changes.get_or_insert_default().add(changes);
        }
        if let Some(table) = &mut self.table {
            table.push(Row {
                host: host.host.label(),
                status: category_name(category),
                exit: match &result.outcome {
                    Outcome::Exited(code) => code.to_string(),
                    Outcome::Signaled(signal) => format!("SIG{signal}"),
                    _ => "-".into(),
                },
                seconds: result.duration.as_secs_f64(),
            });
        }
        let tail = self.stderr_tails.remove(&host.index).unwrap_or_default();
        if let Some(mut reason) = result.outcome.summary_reason() {
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
            .map(|(category, count)| format!("{count} {}", counted_name(*category, *count)))
            .collect();
        let seconds = self.started.elapsed().as_secs_f64();
        writeln!(
            self.out,
            "{total} hosts in {seconds:.1}s: {}",
            parts.join(", ")
        )?;
        if let Some(changes) = &self.changes {
            writeln!(self.out, "  changed: {changes}")?;
        }
        for (reason, hosts) in group_by_reason(&self.failures) {
            writeln!(self.out, "  FAILED {}: {reason}", fold(&hosts))?;
        }
        if let Some(table) = &mut self.table {
            table.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
            let width = table.iter().map(|r| r.host.len()).max().unwrap_or(4).max(4);
            writeln!(
                self.out,
                "{:width$}  {:<11}  {:>4}  {:>8}",
                "HOST", "STATUS", "EXIT", "SECONDS"
            )?;
            for row in table.iter() {
                writeln!(
                    self.out,
                    "{:width$}  {:<11}  {:>4}  {:>8.2}",
                    row.host, row.status, row.exit, row.seconds
                )?;
            }
        }
        self.out.flush()
    }
}

/// Hosts grouped by identical reason, the largest group first (ties in
/// order of first failure).
pub fn group_by_reason(failures: &[(String, String)]) -> Vec<(&str, Vec<&str>)> {
    let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (host, reason) in failures {
        let at = *index.entry(reason).or_insert_with(|| {
            groups.push((reason, Vec::new()));
            groups.len() - 1
        });
        groups[at].1.push(host);
    }
    groups.sort_by_key(|(_, hosts)| std::cmp::Reverse(hosts.len()));
    groups
}

/// The last non-empty line of `bytes`, trimmed, if any, made printable:
/// a host's stderr must not move this terminal's cursor or change its
/// colours.
fn last_line(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    text.lines()
        .map(str::trim)
        .rfind(|line| !line.is_empty())
        .map(printable)
}

/// A category's name for a count of hosts (`1 SSH error`, `2 SSH errors`).
fn counted_name(category: Category, count: usize) -> &'static str {
    match (category, count) {
        (Category::SshError, 1) => "SSH error",
        (Category::Internal, 1) => "internal error",
        (category, _) => category_name(category),
    }
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
    file: Option<PartialFile>,
    path: PathBuf,
    lines: Vec<String>,
}

impl FailedHostsFile {
    /// Starts the file now, so that a path that cannot be written fails
    /// before any host is contacted, not after the run.
    pub fn new(path: PathBuf) -> io::Result<Self> {
        let file = PartialFile::create(&path).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot write {}: {e}", path.display()))
        })?;
        Ok(FailedHostsFile {
            file: Some(file),
            path,
            lines: Vec::new(),
        })
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
        let Some(mut file) = self.file.take() else {
            return Ok(());
        };
        let mut text = self.lines.join("\n");
        if !text.is_empty() {
            text.push('\n');
        }
        file.write_all(text.as_bytes())
            .and_then(|()| file.commit())
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot write {}: {e}", self.path.display()),
                )
            })
    }
}
