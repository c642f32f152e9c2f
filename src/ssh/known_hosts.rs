//! OpenSSH known_hosts checking: hashed (`|1|`) entries, `[host]:port` names,
//! wildcard and negated patterns, several keys per host, `@revoked`, and safe
//! appends for `StrictHostKeyChecking=accept-new` when many hosts are new at once.
//!
//! Written here rather than taken from russh, whose helper mishandles several
//! of these forms; a wrong answer here is a security hole.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use russh::keys::ssh_key::certificate::CertType;
use russh::keys::{Algorithm, Certificate, PublicKey};
use sha1::Sha1;

use super::SetupError;
use crate::pattern::{has_wildcard, wildcard_match};
use crate::text::{read_utf8, TextError, MAX_TEXT_FILE};

/// What known_hosts says of the key a server presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKeyStatus {
    /// A line for this host lists this key.
    Trusted,
    /// No line names this host with a key of this type.
    Unknown,
    /// Lines name this host, but none with this key: possibly an attack.
    Changed { file: PathBuf, line: usize },
    /// The key is marked `@revoked`: refused whatever else the files say.
    Revoked { file: PathBuf, line: usize },
}

/// How a line names its hosts.
#[derive(Debug)]
enum Names {
    /// `|1|salt|hash`: HMAC-SHA1 of the name, keyed by the salt.
    Hashed { salt: Vec<u8>, hash: Vec<u8> },
    /// Comma-separated patterns, each maybe negated with `!`.
    Patterns(Vec<(bool, String)>),
}

#[derive(Debug, PartialEq, Eq)]
enum Marker {
    None,
    Revoked,
    /// The key is a CA whose host certificates are trusted for the names.
    CertAuthority,
}

/// One usable known_hosts line.
#[derive(Debug)]
struct Entry {
    marker: Marker,
    names: Names,
    key: PublicKey,
    file: PathBuf,
    line: usize,
}

/// All known_hosts lines of a run, loaded once and shared by every host.
/// Lines that name hosts plainly are indexed by name, so a host is matched
/// against its own lines and the hashed and wildcard ones, not against
/// every line: 10,000 hosts in a 10,000-line file cost 10,000 lookups.
#[derive(Debug)]
pub struct KnownHosts {
    entries: Vec<Entry>,
    /// The lines (indices into `entries`, ascending) each plain name is on.
    by_name: HashMap<String, Vec<usize>>,
    /// Lines every host is matched against: hashed, or with a wildcard.
    scanned: Vec<usize>,
    /// Where accept-new records new keys (the first user file).
    append_to: Option<PathBuf>,
    /// Serializes appends and remembers what this run already added.
    appended: Mutex<HashSet<String>>,
}

impl KnownHosts {
    /// Loads `files` in order; missing files and /dev/null are skipped, and
    /// a malformed line is warned about once (with its number) without
    /// stopping the rest. A file that cannot be a known_hosts file (a
    /// directory, a device, a FIFO, hundreds of MiB) is refused rather than
    /// read forever.
    pub fn load(files: &[PathBuf], append_to: Option<PathBuf>) -> Result<Self, SetupError> {
        let mut entries = Vec::new();
        for file in files {
            let Some(text) = read_known_hosts(file)? else {
                continue;
            };
            for (index, line) in text.lines().enumerate() {
                match parse_line(line) {
                    Ok(Some((marker, names, key))) => entries.push(Entry {
                        marker,
                        names,
                        key,
                        file: file.clone(),
                        line: index + 1,
                    }),
                    Ok(None) => {}
                    Err(why) => tracing::warn!(
                        "{}:{}: ignoring known_hosts line: {why}",
                        file.display(),
                        index + 1
                    ),
                }
            }
        }
        let (by_name, scanned) = index(&entries);
        Ok(KnownHosts {
            entries,
            by_name,
            scanned,
            append_to,
            appended: Mutex::new(HashSet::new()),
        })
    }

    /// The lines that name `name`, in file order (which decides between a
    /// changed key and a revoked one).
    fn lines_for<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        let named = self.by_name.get(name).map_or(&[][..], Vec::as_slice);
        let (mut named, mut scanned) = (named.iter().peekable(), self.scanned.iter().peekable());
        // Both lists ascend: merged, each line comes once, in order.
        std::iter::from_fn(move || match (named.peek(), scanned.peek()) {
            (Some(&&a), Some(&&b)) if a == b => {
                named.next();
                scanned.next()
            }
            (Some(&&a), Some(&&b)) => match a < b {
                true => named.next(),
                false => scanned.next(),
            },
            (Some(_), None) => named.next(),
            (None, _) => scanned.next(),
        })
        .map(|&at| &self.entries[at])
        .filter(move |entry| entry.names.matches(name))
    }

    /// Judges `key` for `host` reached on `port`.
    pub fn check(&self, host: &str, port: u16, key: &PublicKey) -> HostKeyStatus {
        let name = lookup_name(host, port);
        let mut changed = None;
        let mut trusted = false;
        for entry in self.lines_for(&name) {
            let same_key = entry.key.key_data() == key.key_data();
            match entry.marker {
                Marker::Revoked if same_key => {
                    return HostKeyStatus::Revoked {
                        file: entry.file.clone(),
                        line: entry.line,
                    }
                }
                Marker::Revoked | Marker::CertAuthority => {}
                Marker::None if same_key => trusted = true,
                Marker::None if entry.key.algorithm() == key.algorithm() && changed.is_none() => {
                    changed = Some((entry.file.clone(), entry.line))
                }
                Marker::None => {}
            }
        }
        match (trusted, changed) {
            (true, _) => HostKeyStatus::Trusted,
            (false, Some((file, line))) => HostKeyStatus::Changed { file, line },
            (false, None) => HostKeyStatus::Unknown,
        }
    }

    /// Whether a `@cert-authority` line names the host: its certificates
    /// are then asked for, and judged by [`KnownHosts::check_certificate`].
    pub fn has_cert_authority(&self, host: &str, port: u16) -> bool {
        let name = lookup_name(host, port);
        let found = self
            .lines_for(&name)
            .any(|e| e.marker == Marker::CertAuthority);
        found
    }

    /// Judges a host certificate as OpenSSH does: `@revoked` (of the key
    /// or the CA) wins; then it must be a host certificate, signed by a CA
    /// a `@cert-authority` line trusts for this host, its signature good,
    /// `now` (seconds since the epoch) within its validity, and `host`
    /// among its principals (when it names any).
    pub fn check_certificate(
        &self,
        host: &str,
        port: u16,
        certificate: &Certificate,
        now: u64,
    ) -> Result<(), String> {
        let name = lookup_name(host, port);
        let lines = || self.lines_for(&name);
        let ca = certificate.signature_key();
        if let Some(revoked) = lines().find(|e| {
            e.marker == Marker::Revoked
                && (e.key.key_data() == certificate.public_key() || e.key.key_data() == ca)
        }) {
            return Err(format!(
                "revoked in {}:{}",
                revoked.file.display(),
                revoked.line
            ));
        }
        if certificate.cert_type() != CertType::Host {
            return Err("it is a user certificate, not a host certificate".into());
        }
        if !lines().any(|e| e.marker == Marker::CertAuthority && e.key.key_data() == ca) {
            return Err(format!(
                "signed by a CA no @cert-authority line trusts for {name}"
            ));
        }
        certificate
            .verify_signature()
            .map_err(|_| "its signature does not verify".to_string())?;
        let (after, before) = (certificate.valid_after(), certificate.valid_before());
        if now < after {
            return Err(format!(
                "not valid before {after} (seconds since 1970); now is {now}"
            ));
        }
        if now >= before {
            return Err(format!(
                "expired at {before} (seconds since 1970); now is {now}"
            ));
        }
        let principals = certificate.valid_principals();
        if !principals.is_empty() && !principals.iter().any(|p| p == host) {
            return Err(format!("valid for {}, not {host}", principals.join(", ")));
        }
        Ok(())
    }

    /// Key algorithms known for the host, so the connection can ask the server
    /// for one of them first, as OpenSSH does.
    pub fn known_algorithms(&self, host: &str, port: u16) -> Vec<Algorithm> {
        let name = lookup_name(host, port);
        let mut algorithms = Vec::new();
        for entry in self.lines_for(&name) {
            if entry.marker == Marker::None {
                let algorithm = entry.key.algorithm();
                if !algorithms.contains(&algorithm) {
                    algorithms.push(algorithm);
                }
            }
        }
        algorithms
    }

    /// Records a new key for accept-new. Appends one whole line under a lock,
    /// so concurrent hosts (and concurrent runs) never tear or lose lines;
    /// with `hash` (ssh_config's `HashKnownHosts yes`, Debian's default) the
    /// host's name is written hashed, as ssh does, so the file does not
    /// list the hosts this machine reaches.
    pub fn append(
        &self,
        host: &str,
        port: u16,
        key: &PublicKey,
        hash: bool,
    ) -> std::io::Result<()> {
        let Some(path) = &self.append_to else {
            return Ok(());
        };
        let openssh = key.to_openssh().map_err(std::io::Error::other)?;
        let key_text = openssh.trim_end();
        let name = lookup_name(host, port);
        let plain = format!("{name} {key_text}\n");
        let mut appended = self
            .appended
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if appended.contains(&plain) {
            return Ok(());
        }
        // Another run may have added the same key since this one loaded
        // the file: looked for under the lock, hashed or not.
        let recorded = |known: &[u8]| {
            let Ok(known) = std::str::from_utf8(known) else {
                return false;
            };
            let Some((names, rest)) = known.split_once(' ') else {
                return false;
            };
            rest.trim_end() == key_text
                && parse_names(names).is_ok_and(|names| names.matches(&name))
        };
        let line = match hash {
            true => format!("{} {key_text}\n", hashed_name(&name)?),
            false => plain.clone(),
        };
        append_line(path, &line, recorded)?;
        appended.insert(plain);
        Ok(())
    }
}

impl Names {
    fn matches(&self, name: &str) -> bool {
        match self {
            Names::Hashed { salt, hash } => {
                let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(salt) else {
                    return false;
                };
                mac.update(name.as_bytes());
                mac.verify_slice(hash).is_ok()
            }
            Names::Patterns(patterns) => {
                let mut matched = false;
                for (negated, pattern) in patterns {
                    if wildcard_match(pattern, name) {
                        if *negated {
                            return false;
                        }
                        matched = true;
                    }
                }
                matched
            }
        }
    }
}

/// Indexes `entries`: each line whose names are all plain goes under each
/// of them; hashed lines and lines with a wildcard are matched for every
/// host. A line of negations only matches no host and is left out.
fn index(entries: &[Entry]) -> (HashMap<String, Vec<usize>>, Vec<usize>) {
    let mut by_name: HashMap<String, Vec<usize>> = HashMap::new();
    let mut scanned = Vec::new();
    for (at, entry) in entries.iter().enumerate() {
        let Names::Patterns(patterns) = &entry.names else {
            scanned.push(at);
            continue;
        };
        let mut positive = patterns.iter().filter(|(negated, _)| !negated);
        if positive.clone().any(|(_, pattern)| has_wildcard(pattern)) {
            scanned.push(at);
            continue;
        }
        for (_, name) in &mut positive {
            let lines = by_name.entry(name.clone()).or_default();
            // A name listed twice on one line indexes that line once.
            if lines.last() != Some(&at) {
                lines.push(at);
            }
        }
    }
    (by_name, scanned)
}

/// The name OpenSSH files a host under: `host` on port 22, `[host]:port` elsewhere.
pub fn lookup_name(host: &str, port: u16) -> String {
    let host = host.to_ascii_lowercase();
    match port {
        22 => host,
        _ => format!("[{host}]:{port}"),
    }
}

type ParsedLine = (Marker, Names, PublicKey);

fn parse_line(line: &str) -> Result<Option<ParsedLine>, String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let mut fields = line.split_whitespace();
    let mut first = fields.next().unwrap_or_default();
    let marker = match first {
        "@revoked" => Marker::Revoked,
        "@cert-authority" => Marker::CertAuthority,
        other if other.starts_with('@') => return Err(format!("unknown marker {other}")),
        _ => Marker::None,
    };
    if marker != Marker::None {
        first = fields.next().ok_or("missing host names")?;
    }
    let names = parse_names(first)?;
    let key_type = fields.next().ok_or("missing key type")?;
    let key_base64 = fields.next().ok_or("missing key")?;
    let key = PublicKey::from_openssh(&format!("{key_type} {key_base64}"))
        .map_err(|e| format!("bad key: {e}"))?;
    Ok(Some((marker, names, key)))
}

fn parse_names(field: &str) -> Result<Names, String> {
    if let Some(hashed) = field.strip_prefix("|1|") {
        let (salt, hash) = hashed.split_once('|').ok_or("malformed hashed host name")?;
        let decode = |s: &str| {
            BASE64
                .decode(s)
                .map_err(|_| "malformed hashed host name".to_string())
        };
        return Ok(Names::Hashed {
            salt: decode(salt)?,
            hash: decode(hash)?,
        });
    }
    let patterns = field
        .split(',')
        .map(|p| match p.strip_prefix('!') {
            Some(negated) => (true, negated.to_ascii_lowercase()),
            None => (false, p.to_ascii_lowercase()),
        })
        .collect();
    Ok(Names::Patterns(patterns))
}

/// A known_hosts file's text; `None` for a missing file or /dev/null.
fn read_known_hosts(path: &Path) -> Result<Option<String>, SetupError> {
    if path == Path::new("/dev/null") {
        return Ok(None);
    }
    match read_utf8(path) {
        Ok(text) => Ok(Some(text)),
        Err(TextError::Io(error)) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(reason) => Err(SetupError::KnownHosts {
            path: path.to_path_buf(),
            reason,
        }),
    }
}

/// `|1|SALT|HMAC-SHA1(SALT, NAME)`, as `ssh-keygen -H` writes a name.
fn hashed_name(name: &str) -> std::io::Result<String> {
    let mut salt = [0u8; 20];
    File::open("/dev/urandom")?.read_exact(&mut salt)?;
    let mut mac = Hmac::<Sha1>::new_from_slice(&salt).map_err(std::io::Error::other)?;
    mac.update(name.as_bytes());
    let hash = mac.finalize().into_bytes();
    Ok(format!(
        "|1|{}|{}",
        BASE64.encode(salt),
        BASE64.encode(hash)
    ))
}

fn append_line(path: &Path, line: &str, recorded: impl Fn(&[u8]) -> bool) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)?;
    let _lock = FileLock::exclusive(&file)?;
    // Another run may have added the same key since this one loaded the
    // file: under the lock, look before appending.
    let mut existing = Vec::new();
    (&file).take(MAX_TEXT_FILE).read_to_end(&mut existing)?;
    if existing.split(|&b| b == b'\n').any(recorded) {
        return Ok(());
    }
    let text = match existing.last() {
        Some(last) if *last != b'\n' => format!("\n{line}"),
        _ => line.to_string(),
    };
    (&file).write_all(text.as_bytes())?;
    file.sync_data()
}

/// An advisory `flock` held while appending, released on drop, so two fleet
/// runs adding keys at once do not interleave.
struct FileLock<'a>(&'a File);

impl<'a> FileLock<'a> {
    fn exclusive(file: &'a File) -> std::io::Result<Self> {
        // SAFETY: flock on a valid, open descriptor has no memory effects.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(FileLock(file))
    }
}

impl Drop for FileLock<'_> {
    fn drop(&mut self) {
        // SAFETY: as above; unlocking cannot fail in a way we could act on.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICIQhnt3q17Cr3QQrNIV7Pczzz/wG8Ufshl1j7V5JQvA";
    const KEY_B: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPw4KnMmYSp3NgkxDV+kn/WTaz56fBDh+Dw4zaYK/lv4";

    fn key(text: &str) -> PublicKey {
        PublicKey::from_openssh(text).unwrap()
    }

    fn load(text: &str) -> (tempfile::TempDir, KnownHosts) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        std::fs::write(&path, text).unwrap();
        let known = KnownHosts::load(std::slice::from_ref(&path), Some(path.clone())).unwrap();
        (dir, known)
    }

    fn hashed(name: &str) -> String {
        let salt = b"0123456789abcdefghij";
        let mut mac = Hmac::<Sha1>::new_from_slice(salt).unwrap();
        mac.update(name.as_bytes());
        format!(
            "|1|{}|{}",
            BASE64.encode(salt),
            BASE64.encode(mac.finalize().into_bytes())
        )
    }

    #[test]
    fn plain_port_and_tab_separated_entries() {
        let (_d, known) = load(&format!("web1 {KEY_A}\n[web2]:2222\t{KEY_A}\n"));
        assert_eq!(known.check("web1", 22, &key(KEY_A)), HostKeyStatus::Trusted);
        assert_eq!(known.check("WEB1", 22, &key(KEY_A)), HostKeyStatus::Trusted);
        assert_eq!(
            known.check("web2", 2222, &key(KEY_A)),
            HostKeyStatus::Trusted
        );
        assert_eq!(known.check("web2", 22, &key(KEY_A)), HostKeyStatus::Unknown);
        assert_eq!(
            known.check("web1", 2222, &key(KEY_A)),
            HostKeyStatus::Unknown
        );
    }

    #[test]
    fn hashed_entries_match_only_their_host() {
        let (_d, known) = load(&format!("{} {KEY_A}\n", hashed("[10.0.0.1]:2200")));
        assert_eq!(
            known.check("10.0.0.1", 2200, &key(KEY_A)),
            HostKeyStatus::Trusted
        );
        assert_eq!(
            known.check("10.0.0.2", 2200, &key(KEY_A)),
            HostKeyStatus::Unknown
        );
    }

    /// 10,000 plain and 10,000 hashed lines, in the order a fleet's file
    /// grows: each host finds its own line whichever form it is in, a line
    /// for another host never answers for it, and the first changed line
    /// is the one reported, across the index and the scanned lines.
    #[test]
    fn ten_thousand_plain_and_hashed_entries_answer_for_their_own_host() {
        let mut text = String::new();
        for host in 0..10_000 {
            text.push_str(&format!(
                "[10.1.{}.{}]:2222 {KEY_A}
",
                host / 250,
                host % 250
            ));
            let name = format!("[10.2.{}.{}]:2222", host / 250, host % 250);
            text.push_str(&format!(
                "{} {KEY_A}
",
                hashed(&name)
            ));
        }
        text.push_str(&format!(
            "*.late,[10.1.0.7]:2222 {KEY_B}
"
        ));
        let (_d, known) = load(&text);
        assert_eq!(
            known.scanned.len(),
            10_001,
            "hashed and wildcard lines are scanned"
        );
        for host in [0, 4_999, 9_999] {
            let (plain, hashed) = (
                format!("10.1.{}.{}", host / 250, host % 250),
                format!("10.2.{}.{}", host / 250, host % 250),
            );
            assert_eq!(
                known.check(&plain, 2222, &key(KEY_A)),
                HostKeyStatus::Trusted
            );
            assert_eq!(
                known.check(&hashed, 2222, &key(KEY_A)),
                HostKeyStatus::Trusted
            );
            assert_eq!(
                known.known_algorithms(&hashed, 2222),
                vec![Algorithm::Ed25519]
            );
            assert_eq!(known.check(&plain, 22, &key(KEY_A)), HostKeyStatus::Unknown);
        }
        assert_eq!(
            known.check("10.3.0.1", 2222, &key(KEY_A)),
            HostKeyStatus::Unknown
        );
        // 10.1.0.7 is on line 15 (its own) and on the last line (KEY_B):
        // either key is trusted; a third is judged against line 15 first.
        assert_eq!(
            known.check("10.1.0.7", 2222, &key(KEY_B)),
            HostKeyStatus::Trusted
        );
        let (_d, one) = load(&format!(
            "web1 {KEY_A}
*.late,web1 {KEY_A}
"
        ));
        assert!(matches!(
            one.check("web1", 22, &key(KEY_B)),
            HostKeyStatus::Changed { line: 1, .. }
        ));
    }

    #[test]
    fn changed_key_and_rotation() {
        let (_d, known) = load(&format!("web1 {KEY_A}\n"));
        assert!(matches!(
            known.check("web1", 22, &key(KEY_B)),
            HostKeyStatus::Changed { line: 1, .. }
        ));
        let (_d, rotated) = load(&format!("web1 {KEY_A}\nweb1,web3 {KEY_B}\n"));
        assert_eq!(
            rotated.check("web1", 22, &key(KEY_B)),
            HostKeyStatus::Trusted
        );
    }

    #[test]
    fn wildcards_negation_and_revocation() {
        let text = format!(
            "*.dc1,!bad.dc1 {KEY_A}\n@revoked * {KEY_B}\nok.dc1 {KEY_B}\nnot a valid line\n"
        );
        let (_d, known) = load(&text);
        assert_eq!(
            known.check("web.dc1", 22, &key(KEY_A)),
            HostKeyStatus::Trusted
        );
        assert_eq!(
            known.check("bad.dc1", 22, &key(KEY_A)),
            HostKeyStatus::Unknown
        );
        assert!(matches!(
            known.check("ok.dc1", 22, &key(KEY_B)),
            HostKeyStatus::Revoked { line: 2, .. }
        ));
    }

    #[test]
    fn files_that_cannot_be_known_hosts_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for path in ["/dev/zero", "/proc"] {
            let error = KnownHosts::load(&[PathBuf::from(path)], None).unwrap_err();
            assert!(error.to_string().contains("not a regular file"), "{error}");
        }
        let missing = dir.path().join("missing");
        let null = PathBuf::from("/dev/null");
        assert!(KnownHosts::load(&[missing, null.clone()], Some(null)).is_ok());
    }

    #[test]
    fn append_adds_whole_lines_once() {
        let (dir, known) = load(&format!("web1 {KEY_A}"));
        let path = dir.path().join("known_hosts");
        // A second run that loaded the file before the first appended.
        let other = KnownHosts::load(std::slice::from_ref(&path), Some(path.clone())).unwrap();
        known.append("new", 2222, &key(KEY_B), false).unwrap();
        known.append("new", 2222, &key(KEY_B), false).unwrap();
        other.append("new", 2222, &key(KEY_B), false).unwrap();
        let text = std::fs::read_to_string(dir.path().join("known_hosts")).unwrap();
        assert_eq!(text, format!("web1 {KEY_A}\n[new]:2222 {KEY_B}\n"));
        let reloaded = KnownHosts::load(&[dir.path().join("known_hosts")], None).unwrap();
        assert_eq!(
            reloaded.check("new", 2222, &key(KEY_B)),
            HostKeyStatus::Trusted
        );
    }

    #[test]
    fn hashed_names_are_written_once_and_read_back() {
        let (dir, known) = load(&format!("web1 {KEY_A}"));
        let path = dir.path().join("known_hosts");
        let other = KnownHosts::load(std::slice::from_ref(&path), Some(path.clone())).unwrap();
        known.append("10.0.0.7", 22, &key(KEY_B), true).unwrap();
        other.append("10.0.0.7", 22, &key(KEY_B), true).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[1].starts_with("|1|") && !text.contains("10.0.0.7"),
            "{text}"
        );
        let reloaded = KnownHosts::load(&[path], None).unwrap();
        assert_eq!(
            reloaded.check("10.0.0.7", 22, &key(KEY_B)),
            HostKeyStatus::Trusted
        );
    }
}
