//! Reading the files operators give (hosts files, inventories, playbooks,
//! ssh_config, secrets): regular files only, of a sane size, so that
//! `-F /dev/zero` or a FIFO is an error and not a hang or an exhausted
//! machine; and text strictly as UTF-8, so that a stray Latin-1 byte is an
//! error that names its line and column, never a U+FFFD sent to a host.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use thiserror::Error;

/// The most a text file given by the operator may hold: far above any real
/// hosts file (a million hosts is about 20 MB), inventory or playbook.
pub const MAX_TEXT_FILE: u64 = 256 * 1024 * 1024;

/// Why a file could not be read.
#[derive(Debug, Error)]
pub enum TextError {
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
    #[error("is not a regular file (a directory, device or FIFO)")]
    NotAFile,
    #[error("is larger than {} MiB", .0 >> 20)]
    TooLarge(u64),
    /// 1-based position of the first byte that is not UTF-8.
    #[error("not UTF-8")]
    NotUtf8 { line: usize, column: usize },
}

impl TextError {
    /// The error as an operator reads it: `FILE: why`, or `FILE:LINE:COLUMN:`
    /// for a byte that is not UTF-8.
    pub fn at(&self, path: &Path) -> String {
        match self {
            TextError::NotUtf8 { line, column } => {
                format!("{}:{line}:{column}: not UTF-8", path.display())
            }
            other => format!("{}: {other}", path.display()),
        }
    }
}

/// The whole file as text.
pub fn read_utf8(path: &Path) -> Result<String, TextError> {
    decode(read_bounded(path, MAX_TEXT_FILE)?)
}

/// The bytes of a regular file of at most `limit` bytes. The file is
/// opened without blocking (a FIFO would wait for a writer for ever) and
/// checked once open, so it cannot be swapped for a device in between.
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, TextError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(TextError::NotAFile);
    }
    if metadata.len() > limit {
        return Err(TextError::TooLarge(limit));
    }
    let mut bytes = Vec::with_capacity(metadata.len() as usize);
    file.take(limit + 1).read_to_end(&mut bytes)?;
    match bytes.len() as u64 > limit {
        true => Err(TextError::TooLarge(limit)),
        false => Ok(bytes),
    }
}

/// `bytes` as text, or where the first invalid byte is.
pub fn decode(bytes: Vec<u8>) -> Result<String, TextError> {
    String::from_utf8(bytes).map_err(|error| {
        let bytes = error.as_bytes();
        let valid = &bytes[..error.utf8_error().valid_up_to()];
        let line_start = valid
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |newline| newline + 1);
        // Columns count characters, as editors do; the valid prefix is UTF-8.
        let column = String::from_utf8_lossy(&valid[line_start..])
            .chars()
            .count()
            + 1;
        TextError::NotUtf8 {
            line: valid.iter().filter(|&&b| b == b'\n').count() + 1,
            column,
        }
    })
}

/// `text` with control characters shown as `\xNN` escapes, and Unicode's
/// direction overrides as `\u{NNNN}`: what a host wrote must not move this
/// terminal's cursor, change its colours or reorder the line when fleet
/// quotes it in a message.
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            c if c.is_control() => format!("\\x{:02x}", c as u32),
            '\u{061c}'
            | '\u{200e}'
            | '\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}' => {
                format!("\\u{{{:04x}}}", c as u32)
            }
            c => c.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_control_characters() {
        assert_eq!(printable("red \u{1b}[31m\ttab"), "red \\x1b[31m\\x09tab");
        assert_eq!(printable("web\u{202e}1"), "web\\u{202e}1");
    }

    #[test]
    fn names_the_first_bad_byte() {
        assert_eq!(decode(b"ok\n".to_vec()).unwrap(), "ok\n");
        match decode(b"a: 1\nrun: caf\xe9\n".to_vec()) {
            Err(TextError::NotUtf8 { line, column }) => assert_eq!((line, column), (2, 9)),
            other => panic!("{other:?}"),
        }
        match decode(b"\xc3\xa9\n\xc3\xa9x\xff".to_vec()) {
            Err(TextError::NotUtf8 { line, column }) => assert_eq!((line, column), (2, 3)),
            other => panic!("{other:?}"),
        }
    }
}
