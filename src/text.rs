//! Reading the text files operators write (hosts files, inventories,
//! playbooks) strictly as UTF-8: a stray Latin-1 byte is an error that
//! names its line and column, never a U+FFFD silently sent to a host.

use std::path::Path;

use thiserror::Error;

/// Why a text file could not be read.
#[derive(Debug, Error)]
pub enum TextError {
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
    /// 1-based position of the first byte that is not UTF-8.
    #[error("not UTF-8")]
    NotUtf8 { line: usize, column: usize },
}

/// The whole file as text.
pub fn read_utf8(path: &Path) -> Result<String, TextError> {
    decode(std::fs::read(path)?)
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

#[cfg(test)]
mod tests {
    use super::*;

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
