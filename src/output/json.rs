//! `--json`: JSON Lines on stdout for scripts. One object per host as it
//! finishes, then one summary object; nothing else goes to stdout. The
//! schema is in the README and checked by a test.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use serde_json::{json, Value};

use super::{Held, HostRef, Reporter};
use crate::engine::{Category, Changes, HostResult, Outcome, Stream};
use crate::model::file_names;
use crate::model::Host;

/// Most bytes of each stream kept per host; past it `*_truncated` is true.
pub const MAX_JSON_OUTPUT: usize = 1024 * 1024;

/// Writes one JSON object per finished host, and the summary at the end.
pub struct JsonLines<W> {
    out: W,
    captured: HashMap<(usize, Stream), Held>,
    counts: BTreeMap<&'static str, usize>,
    /// What planned jobs changed, over all hosts (prsync).
    changes: Option<Changes>,
    started: SystemTime,
    /// `-o`/`-e`: where each host's streams were written, reported instead of the bytes.
    files: [Option<(PathBuf, Vec<String>)>; 2],
}

impl<W: Write> JsonLines<W> {
    pub fn new(out: W, hosts: &[Host], outdir: Option<PathBuf>, errdir: Option<PathBuf>) -> Self {
        let names = || file_names(hosts);
        JsonLines {
            out,
            captured: HashMap::new(),
            counts: BTreeMap::new(),
            changes: None,
            started: SystemTime::now(),
            files: [outdir.map(|d| (d, names())), errdir.map(|d| (d, names()))],
        }
    }

    fn stream_fields(&mut self, index: usize, stream: Stream, name: &str, object: &mut Value) {
        let slot = match stream {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        };
        if let Some((dir, names)) = &self.files[slot] {
            object[format!("{name}_file")] = json!(dir.join(&names[index]));
            return;
        }
        let held = self.captured.remove(&(index, stream)).unwrap_or_default();
        // A spill file that cannot be read back counts as cut output.
        let (mut bytes, truncated) = held.into_bytes().unwrap_or((Vec::new(), true));
        if truncated {
            cut_at_char_boundary(&mut bytes);
        }
        let (text, encoding) = match String::from_utf8(bytes) {
            Ok(text) => (text, "utf-8"),
            Err(error) => (
                base64::engine::general_purpose::STANDARD.encode(error.into_bytes()),
                "base64",
            ),
        };
        object[name] = json!(text);
        object[format!("{name}_encoding")] = json!(encoding);
        object[format!("{name}_truncated")] = json!(truncated);
    }
}

impl<W: Write> Reporter for JsonLines<W> {
    fn output(&mut self, host: HostRef<'_>, stream: Stream, data: &[u8]) -> io::Result<()> {
        self.captured
            .entry((host.index, stream))
            .or_default()
            .push(data, MAX_JSON_OUTPUT);
        Ok(())
    }

    fn finished(&mut self, host: HostRef<'_>, result: &HostResult) -> io::Result<()> {
        let category = result.outcome.category();
        *self.counts.entry(status_name(category)).or_default() += 1;
        let started = result.started_at.map(epoch);
        let mut object = json!({
            "type": "host",
            "host": host.host.label(),
            "name": host.host.name,
            "user": host.host.user,
            "port": host.host.port,
            "status": status_name(category),
            "exit_code": match result.outcome { Outcome::Exited(code) => Some(code), _ => None },
            "signal": match &result.outcome { Outcome::Signaled(signal) => Some(signal.clone()), _ => None },
            "error": result.outcome.failure_reason().filter(|_| !matches!(result.outcome, Outcome::Exited(_) | Outcome::Signaled(_)))
                .map(|message| json!({"kind": status_name(category), "message": message})),
            "started_at": started,
            "ended_at": started.map(|s| s + result.duration.as_secs_f64()),
            "duration_s": result.duration.as_secs_f64(),
        });
        if let Some(changes) = &result.changes {
            object["changes"] = changes_json(changes);
            self.changes.get_or_insert_default().add(changes);
        }
        self.stream_fields(host.index, Stream::Stdout, "stdout", &mut object);
        self.stream_fields(host.index, Stream::Stderr, "stderr", &mut object);
        writeln!(self.out, "{object}")
    }

    fn run_finished(&mut self) -> io::Result<()> {
        let hosts: usize = self.counts.values().sum();
        let failed = hosts
            - self.counts.get("ok").unwrap_or(&0)
            - self.counts.get("unchanged").unwrap_or(&0);
        let mut summary = json!({
            "type": "summary",
            "hosts": hosts,
            "failed": failed,
            "counts": self.counts,
            "started_at": epoch(self.started),
            "duration_s": self.started.elapsed().map_or(0.0, |d| d.as_secs_f64()),
        });
        if let Some(changes) = &self.changes {
            summary["changes"] = changes_json(changes);
        }
        writeln!(self.out, "{summary}")?;
        self.out.flush()
    }
}

fn changes_json(changes: &Changes) -> Value {
    json!({
        "created": changes.created,
        "updated": changes.updated,
        "deleted": changes.deleted,
        "bytes": changes.bytes,
    })
}

/// Drops a character the cap cut in two, so that text cut at the cap
/// stays text; bytes that were never UTF-8 are left alone.
fn cut_at_char_boundary(bytes: &mut Vec<u8>) {
    if let Err(error) = std::str::from_utf8(bytes) {
        if error.error_len().is_none() {
            bytes.truncate(error.valid_up_to());
        }
    }
}

fn epoch(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The `status` values of the schema.
pub fn status_name(category: Category) -> &'static str {
    match category {
        Category::Ok => "ok",
        Category::Unchanged => "unchanged",
        Category::Failed => "failed",
        Category::TimedOut => "timed_out",
        Category::Unreachable => "unreachable",
        Category::SshError => "ssh_error",
        Category::Interrupted => "interrupted",
        Category::Internal => "internal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cap_never_splits_a_character() {
        let mut cut = "aé".as_bytes()[..2].to_vec();
        cut_at_char_boundary(&mut cut);
        assert_eq!(cut, b"a");
        let mut binary = vec![0xff, b'x'];
        cut_at_char_boundary(&mut binary);
        assert_eq!(binary, [0xff, b'x']);
    }
}
