//! Reading YAML files (inventories, playbooks) with serde-saphyr, so that
//! every mistake is reported as FILE:LINE:COLUMN: what was expected.
//! Duplicate keys are errors and aliases are budgeted (no alias bombs):
//! serde-saphyr's defaults, kept on purpose.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde::Deserialize;
use serde_saphyr::Location;
use thiserror::Error;

use crate::text::{read_utf8, TextError};

/// A YAML file that could not be read or does not say what it should.
#[derive(Debug, Error)]
#[error("{}{}: {message}", path.display(), position(*line, *column))]
pub struct YamlError {
    pub path: PathBuf,
    /// 1-based; 0 when the problem has no position (an unreadable file).
    pub line: u64,
    pub column: u64,
    pub message: String,
}

fn position(line: u64, column: u64) -> String {
    match line {
        0 => String::new(),
        _ => format!(":{line}:{column}"),
    }
}

impl YamlError {
    /// A file that could not be read, or is not UTF-8 (with where).
    pub fn reading(path: &Path, error: TextError) -> Self {
        let (line, column) = match error {
            TextError::NotUtf8 { line, column } => (line as u64, column as u64),
            _ => (0, 0),
        };
        YamlError {
            path: path.to_path_buf(),
            line,
            column,
            message: error.to_string(),
        }
    }

    /// An error about the value found at `location` in `path`.
    pub fn at(path: &Path, location: Location, message: impl Into<String>) -> Self {
        YamlError {
            path: path.to_path_buf(),
            line: location.line(),
            column: location.column(),
            message: message.into(),
        }
    }
}

/// Reads and deserializes the YAML file at `path`.
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<T, YamlError> {
    let text = read_utf8(path).map_err(|error| YamlError::reading(path, error))?;
    parse(&text, path)
}

/// Deserializes `text`, naming `path` in errors.
pub fn parse<T: DeserializeOwned>(text: &str, path: &Path) -> Result<T, YamlError> {
    let options = serde_saphyr::options! { with_snippet: false };
    serde_saphyr::from_str_with_options(text, options).map_err(|error| {
        let location = error.location();
        YamlError {
            path: path.to_path_buf(),
            line: location.map_or(0, |l| l.line()),
            column: location.map_or(0, |l| l.column()),
            message: bare_message(&error.to_string()),
        }
    })
}

/// serde-saphyr's message without the position it appends (we lead with
/// it) or advice meant for programmers.
fn bare_message(text: &str) -> String {
    let first = text.lines().next().unwrap_or(text);
    if first.contains("from_str_multiple") {
        return "expected one YAML document, found several (`---` between them): \
                put them in one (a playbook's plays go in one list)"
            .into();
    }
    if first.contains("budget breached") {
        return "the document is too large or too deeply nested for a playbook or inventory \
                (serde-saphyr's limits, which also stop alias bombs)"
            .into();
    }
    let first = match first.rfind(" at line ") {
        Some(index) => &first[..index],
        None => first,
    };
    match first.split_once(", set DuplicateKeyPolicy") {
        Some((message, _)) => match message.strip_prefix("duplicate mapping key: ") {
            Some(key) => format!("duplicate key `{key}`"),
            None => message.to_string(),
        },
        None => first.to_string(),
    }
}

/// Any YAML scalar (string, number, boolean) as text: variable values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scalar(pub String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;
        impl Visitor<'_> for ScalarVisitor {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
        }
        deserializer.deserialize_any(ScalarVisitor)
    }
}

/// A duration written as seconds (`30`) or with a unit (`500ms`, `30s`,
/// `5m`, `1h`), at most [`crate::duration::MAX_DURATION`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct YamlDuration(pub Duration);

impl<'de> Deserialize<'de> for YamlDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let Scalar(text) = Scalar::deserialize(deserializer)?;
        crate::duration::parse_duration(&text)
            .map(YamlDuration)
            .map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_alias_bombs() {
        // A billion-laughs document: 10^12 nodes if every alias were expanded.
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for level in 1..12 {
            let list = vec![format!("*a{}", level - 1); 10].join(", ");
            text.push_str(&format!("a{level}: &a{level} [{list}]\n"));
        }
        let error = parse::<serde::de::IgnoredAny>(&text, Path::new("bomb.yml")).unwrap_err();
        assert!(error.to_string().starts_with("bomb.yml:"), "{error}");
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let error = parse::<serde::de::IgnoredAny>("a: 1\na: 2\n", Path::new("d.yml")).unwrap_err();
        assert_eq!(error.to_string(), "d.yml:2:1: duplicate key `a`");
    }
}
