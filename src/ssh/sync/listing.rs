//! The host's side of a sync, read in one round trip: whether the
//! destination is a directory, then every entry under the names being
//! synced (GNU find's `-printf`, NUL-separated so any file name survives),
//! then, with `--checksum`, each file's SHA-256 (`sha256sum -z`).

use std::collections::BTreeMap;

use crate::ssh::shell_quote;

/// What the destination path is on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    Directory,
    /// Something that is not a directory (a file, a link).
    Other,
    Missing,
}

/// One entry found on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteEntry {
    pub kind: RemoteKind,
    pub mode: u32,
    pub len: u64,
    pub mtime: i64,
    /// Nanoseconds within the second (0 on filesystems that keep none).
    pub mtime_nsec: u32,
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteKind {
    File,
    Dir,
    Symlink(Vec<u8>),
    /// A device, FIFO or socket: never what a source is.
    Other,
}

/// The host's answer: the destination and its entries, keyed by path under it
/// (`b""` for the destination itself when it is not a directory).
#[derive(Debug, Clone)]
pub struct Listing {
    pub destination: Destination,
    pub entries: BTreeMap<Vec<u8>, RemoteEntry>,
}

/// The first line when the host's tools cannot list as needed.
const NOT_GNU: &[u8] = b"X";
/// Marks the end of the entries and the start of the checksums.
const SUMS: &[u8] = b"SUMS";
const FORMAT: &str = r"%y %m %s %T@ %p\0%l\0";

/// The listing command for `dest`: under `tops` only, or all of it (`None`).
pub fn command(dest: &str, tops: Option<&[Vec<u8>]>, checksum: bool) -> String {
    // A name the command line cannot carry (not UTF-8): list everything.
    let tops = tops.filter(|tops| tops.iter().all(|top| std::str::from_utf8(top).is_ok()));
    let names = match tops {
        None => "set -- .".to_string(),
        Some(tops) => {
            let quoted: Vec<String> = tops
                .iter()
                .map(|top| shell_quote(&format!("./{}", String::from_utf8_lossy(top))))
                .collect();
            format!(
                "set --; for n in {}; do if [ -e \"$n\" ] || [ -L \"$n\" ]; then set -- \"$@\" \"$n\"; fi; done",
                quoted.join(" ")
            )
        }
    };
    let sums = |paths: &str| match checksum {
        true => format!(
            "printf '{}\\0'; find {paths} -type f -exec sha256sum -z -- {{}} + || true; ",
            "SUMS"
        ),
        false => String::new(),
    };
    let tools = match checksum {
        true => "find / -maxdepth 0 -printf '' && sha256sum -z < /dev/null",
        false => "find / -maxdepth 0 -printf ''",
    };
    format!(
        "dest={dest}; \
         if ! {{ {tools}; }} > /dev/null 2>&1; then echo X; \
         elif [ -d \"$dest\" ]; then echo D; cd -- \"$dest\" || exit 1; {names}; \
         if [ $# -gt 0 ]; then find \"$@\" -printf '{FORMAT}' || true; {sums_many}fi; \
         elif [ -e \"$dest\" ] || [ -L \"$dest\" ]; then echo F; \
         find \"$dest\" -maxdepth 0 -printf '{FORMAT}'; {sums_one}\
         else echo N; fi",
        dest = shell_quote(dest),
        sums_many = sums("\"$@\""),
        sums_one = sums("\"$dest\""),
    )
}

/// Reads what [`command`] printed; the error says what was unexpected.
pub fn parse(output: &[u8]) -> Result<Listing, String> {
    let (head, body) = match output.iter().position(|&b| b == b'\n') {
        Some(at) => (&output[..at], &output[at + 1..]),
        None => (output, &b""[..]),
    };
    let destination =
        match head {
            b"D" => Destination::Directory,
            b"F" => Destination::Other,
            b"N" => Destination::Missing,
            NOT_GNU => return Err(
                "the host's find or sha256sum is not GNU's (find -printf, sha256sum -z are needed)"
                    .into(),
            ),
            _ => return Err(unexpected(output)),
        };
    let mut entries = BTreeMap::new();
    let mut fields = body.split(|&b| b == 0);
    while let Some(meta) = fields.next() {
        if meta.is_empty() || meta == SUMS {
            if meta == SUMS {
                read_sums(&mut fields, destination, &mut entries)?;
            }
            break;
        }
        let link = fields.next().ok_or_else(|| unexpected(meta))?;
        let (path, entry) = parse_entry(meta, link).ok_or_else(|| unexpected(meta))?;
        entries.insert(key(path, destination), entry);
    }
    Ok(Listing {
        destination,
        entries,
    })
}

/// `%y %m %s %T@ %p` and `%l`: type, octal mode, size, mtime, path, link target.
fn parse_entry<'a>(meta: &'a [u8], link: &[u8]) -> Option<(&'a [u8], RemoteEntry)> {
    let mut parts = meta.splitn(5, |&b| b == b' ');
    let kind = match parts.next()? {
        b"f" => RemoteKind::File,
        b"d" => RemoteKind::Dir,
        b"l" => RemoteKind::Symlink(link.to_vec()),
        _ => RemoteKind::Other,
    };
    let number = |field: &[u8]| std::str::from_utf8(field).ok().map(str::to_string);
    let mode = u32::from_str_radix(&number(parts.next()?)?, 8).ok()?;
    let len = number(parts.next()?)?.parse().ok()?;
    let time = number(parts.next()?)?;
    let (seconds, fraction) = time.split_once('.').unwrap_or((&time, ""));
    let mtime = seconds.parse().ok()?;
    let digits: String = fraction
        .chars()
        .chain(std::iter::repeat('0'))
        .take(9)
        .collect();
    let mtime_nsec = digits.parse().ok()?;
    let path = parts.next()?;
    let entry = RemoteEntry {
        kind,
        mode,
        len,
        mtime,
        mtime_nsec,
        sha256: None,
    };
    Some((path, entry))
}

/// `sha256sum -z` lines, `HASH  PATH`, into the entries they belong to.
fn read_sums<'a>(
    fields: &mut impl Iterator<Item = &'a [u8]>,
    destination: Destination,
    entries: &mut BTreeMap<Vec<u8>, RemoteEntry>,
) -> Result<(), String> {
    for line in fields.filter(|line| !line.is_empty()) {
        let (hash, path) = match (line.get(..64), line.get(64..66), line.get(66..)) {
            (Some(hash), Some(b"  "), Some(path)) => (hash, path),
            _ => return Err(unexpected(line)),
        };
        if let Some(entry) = entries.get_mut(&key(path, destination)) {
            entry.sha256 = Some(String::from_utf8_lossy(hash).into_owned());
        }
    }
    Ok(())
}

/// The path under the destination: find's `./a/b` is `a/b`, `.` is the
/// destination itself (`b""`), and so is the one path listed when the
/// destination is not a directory.
fn key(path: &[u8], destination: Destination) -> Vec<u8> {
    if destination != Destination::Directory || path == b"." {
        return Vec::new();
    }
    path.strip_prefix(b"./").unwrap_or(path).to_vec()
}

fn unexpected(text: &[u8]) -> String {
    let shown = String::from_utf8_lossy(&text[..text.len().min(80)]).into_owned();
    format!(
        "unexpected listing from the host (GNU find and coreutils are needed): `{}`",
        crate::text::printable(&shown)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_any_name_and_checksums_are_read() {
        let hash = "a".repeat(64);
        let output = format!(
            "D\nd 755 4096 1700000000.5 .\0\0f 644 3 1700000001.0 ./a b\nc\0\0l 777 4 1700000002.0 ./link\0a b\nc\0SUMS\0{hash}  ./a b\nc\0"
        );
        let listing = parse(output.as_bytes()).unwrap();
        assert_eq!(listing.destination, Destination::Directory);
        let file = &listing.entries[&b"a b\nc".to_vec()];
        assert_eq!(
            (file.kind.clone(), file.mode, file.len),
            (RemoteKind::File, 0o644, 3)
        );
        assert_eq!(file.sha256.as_deref(), Some(hash.as_str()));
        assert_eq!(listing.entries[&b"".to_vec()].mtime, 1_700_000_000);
        assert_eq!(listing.entries[&b"".to_vec()].mtime_nsec, 500_000_000);
        assert_eq!(
            listing.entries[&b"link".to_vec()].kind,
            RemoteKind::Symlink(b"a b\nc".to_vec())
        );
    }

    #[test]
    fn a_missing_destination_and_garbage_are_told_apart() {
        assert_eq!(parse(b"N\n").unwrap().destination, Destination::Missing);
        let error = parse(b"D\nfind: -printf: unknown\0").unwrap_err();
        assert!(error.contains("GNU find"), "{error}");
        assert!(parse(b"bash: find: not found").is_err());
        let busybox = parse(b"X\n").unwrap_err();
        assert!(busybox.contains("not GNU's"), "{busybox}");
    }
}
