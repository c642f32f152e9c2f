//! Shell-style wildcard matching (`*` and `?`), shared by `-g` host filters and
//! known_hosts host patterns, so both agree on what a pattern means.

/// Returns true when `text` matches `pattern`, where `*` matches any run of
/// characters (including none) and `?` matches exactly one.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    // Host names and algorithm names are ASCII: matched as bytes, with no
    // allocation (known_hosts is matched for every host of a run).
    if pattern.is_ascii() && text.is_ascii() {
        return match_slices(pattern.as_bytes(), text.as_bytes(), b'*', b'?');
    }
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    match_slices(&pattern, &text, '*', '?')
}

/// `*` and `?` matching over any symbols, in linear space and no allocation.
fn match_slices<T: Copy + PartialEq>(pattern: &[T], text: &[T], star: T, any: T) -> bool {
    let (mut p, mut t) = (0, 0);
    // Position of the last `*` seen and the text position it was tried at:
    // on a mismatch we backtrack there and let the star swallow one more char.
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(&c) if c == star => {
                backtrack = Some((p, t));
                p += 1;
            }
            Some(&c) if c == any || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match backtrack {
                Some((at, at_t)) => {
                    p = at + 1;
                    t = at_t + 1;
                    backtrack = Some((at, at_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == star)
}

/// Whether `pattern` holds a wildcard, i.e. may match more than itself.
pub fn has_wildcard(pattern: &str) -> bool {
    pattern.contains(['*', '?'])
}

#[cfg(test)]
mod tests {
    use super::wildcard_match;

    #[test]
    fn stars_and_questions() {
        assert!(wildcard_match("web*", "web01"));
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("w?b*1", "web0001"));
        assert!(wildcard_match("*.example.com", "a.b.example.com"));
        assert!(!wildcard_match("*.example.com", "example.com"));
        assert!(!wildcard_match("db?", "db10"));
        assert!(wildcard_match("a*b*c", "axxbyyc"));
        assert!(!wildcard_match("a*b*c", "axxbyy"));
    }
}
