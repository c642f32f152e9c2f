//! `--exclude` and `--exclude-from`: rsync's patterns for the common cases.
//! A pattern without a `/` matches a name at any depth; one with a `/`
//! inside matches the end of the path, a leading `/` anchors it at the top
//! of the transfer, and a trailing `/` matches directories only. `*` and
//! `?` stay within a name, `**` crosses directories. An excluded directory
//! is not entered, and `--delete` leaves what is excluded on the host.

use std::path::Path;

use glob::{MatchOptions, Pattern};

/// The exclusions of one run, checked against paths relative to the top
/// of the transfer.
#[derive(Debug, Clone, Default)]
pub struct Excludes {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
struct Rule {
    pattern: Pattern,
    anchored: bool,
    /// Matched against the whole path's end, not only the last name.
    has_slash: bool,
    directories_only: bool,
}

const OPTIONS: MatchOptions = MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

impl Excludes {
    /// Adds one pattern; the error says what is wrong with it.
    pub fn add(&mut self, text: &str) -> Result<(), String> {
        let directories_only = text.len() > 1 && text.ends_with('/');
        let text = text
            .strip_suffix('/')
            .filter(|_| directories_only)
            .unwrap_or(text);
        let anchored = text.starts_with('/');
        let body = text.trim_start_matches('/');
        if body.is_empty() {
            return Err(format!("expected a pattern, found `{text}`"));
        }
        let pattern = Pattern::new(body).map_err(|e| format!("bad pattern `{text}`: {}", e.msg))?;
        self.rules.push(Rule {
            pattern,
            anchored,
            has_slash: body.contains('/') || body.contains("**"),
            directories_only,
        });
        Ok(())
    }

    /// Adds the patterns of an rsync exclude file: one per line, blank
    /// lines and `#` or `;` comments skipped, an optional `- ` before each.
    pub fn add_file(&mut self, path: &Path) -> Result<(), String> {
        let text = crate::text::read_utf8(path).map_err(|e| e.at(path))?;
        for (number, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            let at = |why: String| format!("{}:{}: {why}", path.display(), number + 1);
            if line.starts_with("+ ") {
                return Err(at("include rules (`+ `) are not supported".into()));
            }
            self.add(line.strip_prefix("- ").unwrap_or(line))
                .map_err(at)?;
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether `path` (relative to the top of the transfer, `/`-separated)
    /// is excluded by itself; see [`Excludes::covers`] for its parents.
    pub fn excludes(&self, path: &[u8], is_dir: bool) -> bool {
        let path = String::from_utf8_lossy(path);
        self.rules.iter().any(|rule| rule.matches(&path, is_dir))
    }

    /// Whether `path` or a directory above it is excluded.
    pub fn covers(&self, path: &[u8], is_dir: bool) -> bool {
        if self.rules.is_empty() {
            return false;
        }
        let parents = path
            .iter()
            .enumerate()
            .filter(|(_, &b)| b == b'/')
            .map(|(at, _)| &path[..at]);
        parents
            .into_iter()
            .any(|parent| self.excludes(parent, true))
            || self.excludes(path, is_dir)
    }
}

impl Rule {
    fn matches(&self, path: &str, is_dir: bool) -> bool {
        if self.directories_only && !is_dir {
            return false;
        }
        if self.anchored {
            return self.pattern.matches_with(path, OPTIONS);
        }
        if !self.has_slash {
            let name = path.rsplit('/').next().unwrap_or(path);
            return self.pattern.matches_with(name, OPTIONS);
        }
        // The end of the path: the whole of it, or from any name on.
        std::iter::once(path)
            .chain(path.match_indices('/').map(|(at, _)| &path[at + 1..]))
            .any(|tail| self.pattern.matches_with(tail, OPTIONS))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn excludes(patterns: &[&str]) -> Excludes {
        let mut excludes = Excludes::default();
        for pattern in patterns {
            excludes.add(pattern).unwrap();
        }
        excludes
    }

    #[test]
    fn names_match_at_any_depth_and_slashes_anchor() {
        let rules = excludes(&["*.o", "/top.txt", "cache/", "a/b"]);
        assert!(rules.excludes(b"x.o", false));
        assert!(rules.excludes(b"deep/in/x.o", false));
        assert!(rules.excludes(b"top.txt", false));
        assert!(!rules.excludes(b"sub/top.txt", false));
        assert!(rules.excludes(b"sub/cache", true));
        assert!(!rules.excludes(b"sub/cache", false));
        assert!(rules.excludes(b"a/b", false));
        assert!(rules.excludes(b"x/a/b", false));
        assert!(!rules.excludes(b"xa/b", false));
        assert!(rules.covers(b"sub/cache/file", false));
        assert!(!rules.covers(b"sub/file", false));
    }

    #[test]
    fn stars_stay_within_a_name_unless_doubled() {
        let rules = excludes(&["/logs/*.log", "build/**"]);
        assert!(rules.excludes(b"logs/a.log", false));
        assert!(!rules.excludes(b"logs/old/a.log", false));
        assert!(rules.excludes(b"x/build/deep/file", false));
    }

    #[test]
    fn exclude_files_name_the_bad_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("excludes");
        std::fs::write(&file, "# comment\n\n- *.tmp\n+ keep\n").unwrap();
        let error = Excludes::default().add_file(&file).unwrap_err();
        assert!(error.ends_with("excludes:4: include rules (`+ `) are not supported"));
    }

    #[test]
    fn an_exclude_file_that_never_ends_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.unwrap().success());
        for endless in [Path::new("/dev/zero"), &fifo] {
            let error = Excludes::default().add_file(endless).unwrap_err();
            assert!(error.ends_with("is not a regular file (a directory, device or FIFO)"));
        }
    }
}
