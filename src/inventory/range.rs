//! Expansion of ClusterShell/pdsh host ranges such as `web[01-20]` or
//! `n[1-3,7]-ib[0-1]`, so a hosts file line can name a whole rack.
//!
//! The `nodeset` crate does this too, but it pulls in serde_yaml (archived),
//! env_logger, eyre and an INI parser as hard dependencies; the grammar we need
//! is small enough to own.

use thiserror::Error;

/// Upper bound on hosts one pattern may expand to: a typo such as
/// `n[1-10000000]` must fail fast instead of eating memory.
pub const MAX_EXPANSION: usize = 100_000;

/// Why a range pattern could not be expanded.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RangeError {
    #[error("unbalanced '[' or ']' in `{0}`")]
    Unbalanced(String),
    #[error("bad range `{item}` in `{pattern}`: expected N or N-M with N <= M, e.g. web[01-20]")]
    BadItem { pattern: String, item: String },
    #[error("`{pattern}` expands to more than {MAX_EXPANSION} hosts")]
    TooLarge { pattern: String },
}

/// One piece of a pattern: literal text or the ranges of a bracket.
enum Piece<'a> {
    Literal(&'a str),
    Ranges(Vec<Span>),
}

/// `low-high` of a bracket; `width` is the zero padding of its lower bound.
struct Span {
    low: u64,
    high: u64,
    width: usize,
}

impl Span {
    fn len(&self) -> u64 {
        (self.high - self.low).saturating_add(1)
    }
}

/// How many names `pattern` expands to, without making them: the budget
/// of a whole hosts file is checked with this before anything is built.
pub fn count(pattern: &str) -> Result<usize, RangeError> {
    let pieces = split_pieces(pattern)?;
    checked_total(pattern, &pieces)
}

fn checked_total(pattern: &str, pieces: &[Piece]) -> Result<usize, RangeError> {
    let too_large = || RangeError::TooLarge {
        pattern: pattern.to_string(),
    };
    let mut total: u64 = 1;
    for piece in pieces {
        if let Piece::Ranges(spans) = piece {
            let choices = spans
                .iter()
                .try_fold(0u64, |sum, span| sum.checked_add(span.len()))
                .ok_or_else(too_large)?;
            total = total.saturating_mul(choices);
            if total > MAX_EXPANSION as u64 {
                return Err(too_large());
            }
        }
    }
    Ok(total as usize)
}

/// Expands every bracket group of `pattern` (cartesian product, left to right).
/// A pattern without brackets expands to itself.
pub fn expand(pattern: &str) -> Result<Vec<String>, RangeError> {
    let pieces = split_pieces(pattern)?;
    let mut names = Vec::with_capacity(checked_total(pattern, &pieces)?);
    names.push(String::new());
    for piece in pieces {
        names = match piece {
            Piece::Literal(text) => names.into_iter().map(|n| n + text).collect(),
            Piece::Ranges(spans) => names
                .iter()
                .flat_map(|n| {
                    spans.iter().flat_map(move |span| {
                        (span.low..=span.high).map(move |v| format!("{n}{v:0w$}", w = span.width))
                    })
                })
                .collect(),
        };
    }
    Ok(names)
}

fn split_pieces(pattern: &str) -> Result<Vec<Piece<'_>>, RangeError> {
    let unbalanced = || RangeError::Unbalanced(pattern.to_string());
    let mut pieces = Vec::new();
    let mut rest = pattern;
    while let Some(open) = rest.find(['[', ']']) {
        if rest.as_bytes()[open] == b']' {
            return Err(unbalanced());
        }
        let close = rest[open..].find(']').ok_or_else(unbalanced)? + open;
        let body = &rest[open + 1..close];
        if body.contains('[') {
            return Err(unbalanced());
        }
        pieces.push(Piece::Literal(&rest[..open]));
        pieces.push(Piece::Ranges(parse_body(pattern, body)?));
        rest = &rest[close + 1..];
    }
    pieces.push(Piece::Literal(rest));
    Ok(pieces)
}

/// Reads `01-03,7` as the spans 01..03 (width 2) and 7..7; the width of a
/// range's lower bound sets its zero padding, as in ClusterShell.
fn parse_body(pattern: &str, body: &str) -> Result<Vec<Span>, RangeError> {
    body.split(',')
        .map(|item| {
            let bad = || RangeError::BadItem {
                pattern: pattern.to_string(),
                item: item.to_string(),
            };
            let (low, high) = item.split_once('-').unwrap_or((item, item));
            let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
            if !all_digits(low) || !all_digits(high) {
                return Err(bad());
            }
            let span = Span {
                low: low.parse().map_err(|_| bad())?,
                high: high.parse().map_err(|_| bad())?,
                width: low.len(),
            };
            match span.low <= span.high {
                true => Ok(span),
                false => Err(bad()),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_name_is_itself() {
        assert_eq!(expand("db1").unwrap(), vec!["db1"]);
    }

    #[test]
    fn padded_range_and_list() {
        assert_eq!(
            expand("web[08-10]").unwrap(),
            vec!["web08", "web09", "web10"]
        );
        assert_eq!(expand("n[1-3,7]").unwrap(), vec!["n1", "n2", "n3", "n7"]);
    }

    #[test]
    fn cartesian_product_keeps_suffix() {
        assert_eq!(
            expand("r[1-2]s[1-2].dc").unwrap(),
            vec!["r1s1.dc", "r1s2.dc", "r2s1.dc", "r2s2.dc"]
        );
    }

    #[test]
    fn counts_without_expanding() {
        assert_eq!(count("db1").unwrap(), 1);
        assert_eq!(count("r[1-2,5]s[01-10]").unwrap(), 30);
        assert!(matches!(
            count("n[0-18446744073709551615]"),
            Err(RangeError::TooLarge { .. })
        ));
    }

    #[test]
    fn rejects_nonsense() {
        assert!(matches!(
            expand("web[3-1]"),
            Err(RangeError::BadItem { .. })
        ));
        assert!(matches!(
            expand("web[a-b]"),
            Err(RangeError::BadItem { .. })
        ));
        assert!(matches!(expand("web[1-2"), Err(RangeError::Unbalanced(_))));
        assert!(matches!(expand("web1-2]"), Err(RangeError::Unbalanced(_))));
        assert!(matches!(
            expand("n[1-9999999]"),
            Err(RangeError::TooLarge { .. })
        ));
        assert!(matches!(
            expand("a[1-1000]b[1-1000]"),
            Err(RangeError::TooLarge { .. })
        ));
    }
}
