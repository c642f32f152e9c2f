//! Shell-style wildcard matching (`*` and `?`), shared by `-g` host filters and
//! known_hosts host patterns, so both agree on what a pattern means.

/// Returns true when `text` matches `pattern`, where `*` matches any run of
/// characters (including none) and `?` matches exactly one.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    // Position of the last `*` seen and the text position it was tried at:
    // on a mismatch we backtrack there and let the star swallow one more char.
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                backtrack = Some((p, t));
                p += 1;
            }
            Some(&c) if c == '?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match backtrack {
                Some((star, star_t)) => {
                    p = star + 1;
                    t = star_t + 1;
                    backtrack = Some((star, star_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
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
