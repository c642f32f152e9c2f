//! A host's output held until it can be printed (`-i`, `-b`): the first
//! [`HELD_IN_MEMORY`] bytes in memory, the rest in an unnamed temporary file
//! (gone when dropped, even after a crash), up to `--output-limit`; what is
//! past the limit is counted, not kept, and a marker says so where it would
//! be. So 500 hosts in flight printing 64 MB each hold 32 MB of memory, not
//! 32 GB.

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};

/// What `-i` and `-b` keep of one host's stream by default (`--output-limit`).
pub const DEFAULT_OUTPUT_LIMIT: usize = 64 * 1024 * 1024;
/// What each host's stream keeps in memory before it spills to disk.
pub const HELD_IN_MEMORY: usize = 64 * 1024;

/// One host's stream, held.
#[derive(Debug, Default)]
pub struct Held {
    memory: Vec<u8>,
    spill: Option<File>,
    len: usize,
    dropped: u64,
    /// Why the spill file could not be written (a full disk): the rest is
    /// dropped, and the marker says why and where.
    spill_error: Option<String>,
}

impl Held {
    /// Keeps `data`, up to `limit` bytes in all.
    pub fn push(&mut self, data: &[u8], limit: usize) {
        let kept = data.len().min(limit.saturating_sub(self.len));
        self.dropped += (data.len() - kept) as u64;
        let data = &data[..kept];
        let in_memory = data
            .len()
            .min(HELD_IN_MEMORY.saturating_sub(self.memory.len()));
        self.memory.extend_from_slice(&data[..in_memory]);
        self.len += in_memory;
        let rest = &data[in_memory..];
        if rest.is_empty() {
            return;
        }
        if self.spill_error.is_some() {
            self.dropped += rest.len() as u64;
            return;
        }
        let spilled_before = self.len - self.memory.len();
        if let Err(error) = self.spill_file().and_then(|file| file.write_all(rest)) {
            self.spill_error = Some(spill_failure(&error));
            // What a write cut short did put on disk is shown, and so is
            // not counted as dropped.
            let on_disk = self.spill.as_ref().and_then(|f| f.metadata().ok());
            let written = on_disk.map_or(0, |m| m.len() as usize);
            let written = written.saturating_sub(spilled_before).min(rest.len());
            self.len += written;
            self.dropped += (rest.len() - written) as u64;
            return;
        }
        self.len += rest.len();
    }

    fn spill_file(&mut self) -> io::Result<&mut File> {
        if self.spill.is_none() {
            self.spill = Some(tempfile::tempfile()?);
        }
        self.spill
            .as_mut()
            .ok_or_else(|| io::Error::other("no spill file"))
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The first bytes held (a note, the start of a JSON field).
    pub fn head(&self) -> &[u8] {
        &self.memory
    }

    /// The last byte held.
    fn last(&mut self) -> io::Result<Option<u8>> {
        let file = match &mut self.spill {
            // A spill file the disk had no room for may be empty.
            Some(file) if file.metadata()?.len() > 0 => file,
            _ => return Ok(self.memory.last().copied()),
        };
        file.seek(SeekFrom::End(-1))?;
        let mut byte = [0u8; 1];
        io::Read::read_exact(file, &mut byte)?;
        Ok(Some(byte[0]))
    }

    /// Writes everything held, then the marker when something was cut.
    pub fn write_to(&mut self, out: &mut impl Write, limit: usize) -> io::Result<()> {
        out.write_all(&self.memory)?;
        if let Some(file) = &mut self.spill {
            file.seek(SeekFrom::Start(0))?;
            io::copy(file, out)?;
        }
        if self.dropped > 0 {
            let newline = match self.last()? {
                Some(b'\n') | None => "",
                Some(_) => "\n",
            };
            let why = match &self.spill_error {
                Some(error) => error.clone(),
                None => format!("after {}", human_size(limit)),
            };
            writeln!(
                out,
                "{newline}[output truncated {why}: {} more bytes not shown; -o DIR keeps all of it]",
                self.dropped
            )?;
        }
        Ok(())
    }

    /// Everything held, read back, and whether some was cut.
    pub fn into_bytes(mut self) -> io::Result<(Vec<u8>, bool)> {
        let mut bytes = std::mem::take(&mut self.memory);
        if let Some(file) = &mut self.spill {
            file.seek(SeekFrom::Start(0))?;
            io::Read::read_to_end(file, &mut bytes)?;
        }
        Ok((bytes, self.dropped > 0))
    }

    /// Whether what was written ends with a newline (or nothing was).
    pub fn ends_with_newline(&mut self) -> io::Result<bool> {
        Ok(self.dropped > 0 || matches!(self.last()?, Some(b'\n') | None))
    }
}

/// Why a spill file failed, and where it was: `TMPDIR` decides.
fn spill_failure(error: &io::Error) -> String {
    let dir = std::env::temp_dir();
    format!(
        "where its temporary file could not be written ({error}; in {}, set by TMPDIR)",
        dir.display()
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spills_past_memory_and_cuts_at_the_limit() {
        let mut held = Held::default();
        let chunk = vec![b'x'; 40 * 1024];
        for _ in 0..4 {
            held.push(&chunk, 100 * 1024);
        }
        assert_eq!(held.head().len(), HELD_IN_MEMORY);
        let mut out = Vec::new();
        held.write_to(&mut out, 100 * 1024).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with(&"x".repeat(100 * 1024)));
        assert!(text.ends_with(
            "\n[output truncated after 100 KiB: 61440 more bytes not shown; -o DIR keeps all of it]\n"
        ));
    }

    #[test]
    fn a_spill_the_disk_had_no_room_for_is_said_so() {
        let mut held = Held::default();
        held.push(b"first line\nno end", 1024);
        // What a full disk leaves: a spill file with nothing in it.
        held.spill = Some(tempfile::tempfile().unwrap());
        let full = io::Error::from_raw_os_error(libc::ENOSPC);
        held.spill_error = Some(spill_failure(&full));
        held.dropped = 10;
        assert!(held.ends_with_newline().unwrap());
        let mut out = Vec::new();
        held.write_to(&mut out, 1024).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("first line\nno end\n[output truncated where its temporary file could not be written (No space left on device"), "{text}");
        assert!(
            text.contains("set by TMPDIR): 10 more bytes not shown"),
            "{text}"
        );
    }
}
