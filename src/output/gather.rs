//! `-b/--gather`, as clush -b and dshbak -c: hosts whose output and exit
//! status are identical are printed once, under a header that folds their
//! names into ranges. Largest group first; equal sizes in order of their
//! first host. Memory stays bounded by the distinct outputs: each host's
//! output is hashed as it arrives and one copy is kept per distinct hash.

use std::collections::HashMap;
use std::io::{self, Write};

use sha2::{Digest, Sha256};

use super::fold::fold;
use super::{Held, HostRef, Reporter};
use crate::engine::{HostResult, Outcome, Stream};

/// What makes two hosts the same: the hashes of their stdout and stderr
/// (each hashed whole, so how the bytes were cut into chunks on the way
/// does not matter) and their status.
type Key = ([u8; 32], [u8; 32], String);

/// One distinct output and the hosts that produced it.
struct Group {
    first_host: usize,
    hosts: Vec<String>,
    stdout: Held,
    stderr: Held,
}

/// A running host's output so far: all of it hashed, the start of it held.
#[derive(Default)]
struct Pending {
    stdout_hash: Sha256,
    stderr_hash: Sha256,
    stdout: Held,
    stderr: Held,
}

/// Collects outputs and prints the groups when the run ends.
pub struct Gather<W> {
    out: W,
    /// `--gather-stderr`: stderr is compared (and printed) too.
    with_stderr: bool,
    running: HashMap<usize, Pending>,
    groups: HashMap<Key, Group>,
    /// Most bytes of each stream held per host (and so per group).
    limit: usize,
}

impl<W: Write> Gather<W> {
    pub fn new(out: W, with_stderr: bool, limit: usize) -> Self {
        Gather {
            out,
            with_stderr,
            running: HashMap::new(),
            groups: HashMap::new(),
            limit,
        }
    }
}

impl<W: Write> Reporter for Gather<W> {
    fn output(&mut self, host: HostRef<'_>, stream: Stream, data: &[u8]) -> io::Result<()> {
        if stream == Stream::Stderr && !self.with_stderr {
            return Ok(());
        }
        let pending = self.running.entry(host.index).or_default();
        // The stream tag keeps "a" on stdout apart from "a" on stderr.
        match stream {
            Stream::Stdout => pending.stdout_hash.update(data),
            Stream::Stderr => pending.stderr_hash.update(data),
        }
        match stream {
            Stream::Stdout => pending.stdout.push(data, self.limit),
            Stream::Stderr => pending.stderr.push(data, self.limit),
        }
        Ok(())
    }

    fn finished(&mut self, host: HostRef<'_>, result: &HostResult) -> io::Result<()> {
        let pending = self.running.remove(&host.index).unwrap_or_default();
        let key = (
            pending.stdout_hash.finalize().into(),
            pending.stderr_hash.finalize().into(),
            status(&result.outcome),
        );
        let group = self.groups.entry(key).or_insert_with(|| Group {
            first_host: host.index,
            hosts: Vec::new(),
            // The first host's copy is kept; later identical ones are dropped.
            stdout: pending.stdout,
            stderr: pending.stderr,
        });
        group.hosts.push(host.host.label());
        Ok(())
    }

    fn run_finished(&mut self) -> io::Result<()> {
        let mut groups: Vec<(Key, Group)> = std::mem::take(&mut self.groups).into_iter().collect();
        groups.sort_by_key(|(_, g)| (std::cmp::Reverse(g.hosts.len()), g.first_host));
        for ((_, _, status), mut group) in groups {
            let names: Vec<&str> = group.hosts.iter().map(String::as_str).collect();
            let mut header = format!("{} ({})", fold(&names), names.len());
            if !status.is_empty() {
                header.push_str(&format!(" [{status}]"));
            }
            let rule = "-".repeat(header.chars().count().min(78));
            writeln!(self.out, "{rule}\n{header}\n{rule}")?;
            group.stdout.write_to(&mut self.out, self.limit)?;
            group.stderr.write_to(&mut self.out, self.limit)?;
            let last = match group.stderr.is_empty() {
                true => &mut group.stdout,
                false => &mut group.stderr,
            };
            if !last.ends_with_newline()? {
                writeln!(self.out)?;
            }
        }
        self.out.flush()
    }
}

/// The status shown in a group's header; empty for success.
fn status(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Exited(0) | Outcome::Unchanged => String::new(),
        other => other.failure_reason().unwrap_or_default(),
    }
}
