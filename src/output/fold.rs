//! Host names folded into ranges (`lab-[001-007,009]`), the inverse of the
//! ranges hosts files accept: so a thousand names fit on one line and can
//! be pasted back into `-H`.

use std::collections::BTreeMap;

/// A name cut into text and digit runs: `lab-007:22` → `lab-`, `007`, `:`, `22`.
fn tokens(name: &str) -> Vec<&str> {
    let mut tokens = Vec::new();
    let mut start = 0;
    let bytes = name.as_bytes();
    for index in 1..=bytes.len() {
        let boundary = index == bytes.len()
            || bytes[index].is_ascii_digit() != bytes[index - 1].is_ascii_digit();
        if boundary {
            tokens.push(&name[start..index]);
            start = index;
        }
    }
    tokens
}

fn is_number(token: &str) -> bool {
    token.bytes().all(|b| b.is_ascii_digit()) && !token.is_empty()
}

/// Folds `names` into as few range expressions as it can, comma separated,
/// in a stable order. Names that share everything but one number fold
/// together; the others are listed as they are.
pub fn fold(names: &[&str]) -> String {
    let mut skeletons: BTreeMap<Vec<&str>, Vec<Vec<&str>>> = BTreeMap::new();
    for name in names {
        let tokens = tokens(name);
        let skeleton = tokens
            .iter()
            .map(|t| if is_number(t) { "#" } else { t })
            .collect();
        skeletons.entry(skeleton).or_default().push(tokens);
    }
    let mut parts = Vec::new();
    for members in skeletons.into_values() {
        parts.extend(fold_same_shape(members));
    }
    parts.join(",")
}

/// Names of one shape: fold on the last number that differs between them.
fn fold_same_shape(mut members: Vec<Vec<&str>>) -> Vec<String> {
    members.dedup();
    let Some(first) = members.first() else {
        return Vec::new();
    };
    let varying = (0..first.len())
        .rev()
        .find(|&i| members.iter().any(|m| m[i] != first[i]));
    let Some(axis) = varying else {
        return vec![first.concat()];
    };
    // Hosts that agree on everything but the axis fold together.
    let mut groups: BTreeMap<Vec<&str>, Vec<&str>> = BTreeMap::new();
    for member in &members {
        let mut key = member.clone();
        key[axis] = "";
        groups.entry(key).or_default().push(member[axis]);
    }
    groups
        .into_iter()
        .map(|(key, values)| {
            let prefix = key[..axis].concat();
            let suffix = key[axis + 1..].concat();
            match values.as_slice() {
                [one] => format!("{prefix}{one}{suffix}"),
                _ => format!("{prefix}[{}]{suffix}", ranges(values)),
            }
        })
        .collect()
}

/// `001,002,003,009` → `001-003,009`; zero-padded numbers of different
/// widths never share a range, so padding survives the round trip.
fn ranges(mut values: Vec<&str>) -> String {
    values.sort_by_key(|v| (v.len(), v.parse::<u128>().unwrap_or(0)));
    values.dedup();
    let mut out: Vec<String> = Vec::new();
    let mut index = 0;
    while index < values.len() {
        let start = values[index];
        let mut end = index;
        while end + 1 < values.len() && follows(values[end], values[end + 1]) {
            end += 1;
        }
        out.push(match end == index {
            true => start.to_string(),
            false => format!("{start}-{}", values[end]),
        });
        index = end + 1;
    }
    out.join(",")
}

/// Whether `b` comes right after `a` in one range: the next number, and
/// either the same width or no zero padding on either (`9` → `10`).
fn follows(a: &str, b: &str) -> bool {
    let padded = |v: &str| v.len() > 1 && v.starts_with('0');
    (a.len() == b.len() || !(padded(a) || padded(b)))
        && matches!((a.parse::<u128>(), b.parse::<u128>()), (Ok(x), Ok(y)) if x.checked_add(1) == Some(y))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::parse_host_spec;

    #[test]
    fn folds_one_varying_number() {
        let names = [
            "lab-001", "lab-002", "lab-003", "lab-009", "lab-007", "lab-004", "lab-005", "lab-006",
        ];
        assert_eq!(fold(&names), "lab-[001-007,009]");
        assert_eq!(fold(&["lab-003"]), "lab-003");
        assert_eq!(
            fold(&["127.1.0.1:2222", "127.1.0.2:2222", "127.1.0.3:2222"]),
            "127.1.0.[1-3]:2222"
        );
        assert_eq!(fold(&["db", "web1", "web2"]), "db,web[1-2]");
        let across: Vec<String> = (1..=50).map(|n| format!("127.0.0.{n}")).collect();
        let across: Vec<&str> = across.iter().map(String::as_str).collect();
        assert_eq!(fold(&across), "127.0.0.[1-50]");
        assert_eq!(
            fold(&["n95", "n99", "n96", "n97", "n98", "n100", "n101"]),
            "n[95-101]"
        );
        assert_eq!(fold(&["n098", "n099", "n100", "n0100"]), "n[098-100,0100]");
    }

    #[test]
    fn expands_back_to_the_same_hosts() {
        let names: Vec<String> = (1..=300)
            .filter(|n| n % 7 != 0)
            .map(|n| format!("127.{}.0.{}:22", n / 100, n % 100))
            .collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let folded = fold(&refs);
        let mut back: Vec<String> = folded
            .split(",127")
            .enumerate()
            .flat_map(|(i, part)| {
                let part = if i == 0 {
                    part.to_string()
                } else {
                    format!("127{part}")
                };
                parse_host_spec(&part).unwrap()
            })
            .map(|h| h.label())
            .collect();
        back.sort();
        let mut expected = names.clone();
        expected.sort();
        assert_eq!(back, expected, "{folded}");
    }
}
