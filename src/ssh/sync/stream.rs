//! A plan made into what travels: one stream per host (the lists of what to
//! remove and where files land, then a tar archive of the new entries) and
//! the script that receives it. The stream is written to a file on the host
//! and its length and SHA-256 checked before anything is touched; then new
//! files are unpacked into a temporary directory beside where each goes,
//! flushed to disk, and renamed into place, so each file is old or new,
//! never half; deletions come last. A cut or failure removes every
//! temporary file.

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Bytes, BytesMut};
use sha2::{Digest, Sha256};

use super::local::{LocalEntry, LocalKind};
use super::plan::{Action, Needs};
use super::SyncOptions;
use crate::engine::Planned;
use crate::ssh::exec::spool_path;
use crate::ssh::transfer::hex;
use crate::ssh::{shell_quote, StdinPiece};

/// Files up to this size travel from memory; larger ones are read from disk
/// as they are sent.
const HELD_FILE: u64 = 1024 * 1024;
/// Most file content all plans of a run hold in memory together.
const HELD_TOTAL: u64 = 256 * 1024 * 1024;
const BLOCK: usize = 512;
/// Directories where this many entries land are installed with one `mv`
/// for all; fewer, with one `mv` each (no listing of the directory).
const BATCH: usize = 3;

/// Builds the stream and script for `needs`. `token` names the temporary
/// files (the same for every host of a run); `held` counts the file
/// content all plans keep in memory, against [`HELD_TOTAL`].
pub fn build(
    needs: &Needs,
    entries: &BTreeMap<Vec<u8>, LocalEntry>,
    dest: &str,
    options: &SyncOptions,
    token: &str,
    held: &AtomicU64,
) -> Result<Planned, String> {
    let work = format!(".prsync-{token}");
    let layout = Layout::new(needs, entries);
    let mut stream = Stream {
        held: Some(held),
        ..Stream::default()
    };
    let stale = stream.list(needs.stale.iter().map(Vec::as_slice));
    let replaced = needs
        .sends
        .iter()
        .filter(|(_, action)| *action == Action::Replace)
        .map(|(path, _)| path.as_slice());
    let replace = stream.list(replaced);
    let dirs = stream.list(layout.landing.keys().map(Vec::as_slice));
    let (few, many): (Vec<_>, Vec<_>) = layout
        .landing
        .iter()
        .partition(|(_, paths)| paths.len() < BATCH);
    let batch = stream.list(many.iter().map(|(dir, _)| dir.as_slice()));
    let pairs = stream.list(
        few.iter()
            .flat_map(|(_, paths)| paths.iter().map(Vec::as_slice)),
    );
    let pair_dirs = stream.list(few.iter().map(|(dir, _)| dir.as_slice()));
    let deletes = stream.list(needs.deletes.iter().map(Vec::as_slice));
    let attributes = stream.attribute_lists(needs, entries);
    let tar_start = stream.len;
    for (path, action) in &needs.sends {
        if *action == Action::Attributes {
            continue;
        }
        if let Some(entry) = entries.get(path) {
            stream.entry(&layout.tar_name(path, entry, &work), entry, options.archive)?;
        }
    }
    if stream.len > tar_start {
        stream.push(vec![0u8; 2 * BLOCK]);
    }
    let tar = (tar_start, stream.len - tar_start);
    let changes = needs.changes(entries);
    let (pieces, sent, sha256, total) = stream.finish(options.compress)?;
    let base = needs.base.as_deref().unwrap_or(dest);
    let script = format!(
        "set -u\nbase={base}\nnamed={work}\nread -r me < /proc/sys/kernel/hostname || me=host\ncase $me in ''|*[!A-Za-z0-9.-]*) me=host;; esac\nwork={work}-$me-$$\n\
         backup={backup}\nmake_base={make_base}\nsize={total}\nsent={sent}\nsha256={sha256}\ncompressed={compressed}\n\
         dirs_at={dirs_at}\ndirs_len={dirs_len}\n{PREAMBLE}\
         put {stale_at} {stale_len} sh -c \"$stale\" \"$me\"\n\
         unpack {tar_at} {tar_len} {owners}\n\
         aside {replace_at} {replace_len}\n\
         put {batch_at} {batch_len} sh -c \"$install\" \"$work\" \"$backup\" \"$merge\" || fail \"cannot put the files in place\"\n\
         if put {pairs_at} {pairs_len} sh -c \"$pairs\" \"$work\" \"$backup\" 2>/dev/null; \
         then put {pair_dirs_at} {pair_dirs_len} sh -c \"$rmdirs\" \"$work\"; \
         else put \"$dirs_at\" \"$dirs_len\" sh -c \"$install\" \"$work\" \"$backup\" \"$merge\"; fi || fail \"cannot put the files in place\"\n\
         {attributes}\
         aside {deletes_at} {deletes_len}\n\
         sync -f . 2>/dev/null || sync\n\
         echo {counts}\n",
        base = shell_quote(base),
        backup = shell_quote(options.backup.as_deref().unwrap_or("")),
        make_base = u8::from(needs.make_base),
        compressed = u8::from(options.compress),
        stale_at = stale.0,
        stale_len = stale.1,
        replace_at = replace.0,
        replace_len = replace.1,
        tar_at = tar.0,
        tar_len = tar.1,
        owners = if options.archive { "" } else { "--no-same-owner" },
        dirs_at = dirs.0,
        dirs_len = dirs.1,
        batch_at = batch.0,
        batch_len = batch.1,
        pairs_at = pairs.0,
        pairs_len = pairs.1,
        pair_dirs_at = pair_dirs.0,
        pair_dirs_len = pair_dirs.1,
        deletes_at = deletes.0,
        deletes_len = deletes.1,
        counts = shell_quote(&changes.to_string()),
    );
    // The script travels at the head of the input, not as the command:
    // Dropbear refuses commands over 9,000 bytes, and the wrapper that
    // makes a command killable carries it twice.
    let command = format!(
        "prsync_script=$(head -c {}) && eval \"$prsync_script\"",
        script.len()
    );
    let mut stdin = vec![StdinPiece::Bytes(Bytes::from(script))];
    stdin.extend(pieces);
    Ok(Planned {
        command,
        stdin,
        changes,
    })
}

/// Where each new entry is unpacked. A directory the host lacks (or has
/// something else in place of) is unpacked whole, with all it holds, into
/// the temporary directory beside its place, and appears with one rename;
/// a file or link into the temporary directory beside its place; a
/// directory the host has (its mode changes) at its place.
struct Layout {
    /// Directories unpacked whole: no other such directory above them.
    new_roots: HashSet<Vec<u8>>,
    /// Where a temporary directory is made (`.` for the top), and the
    /// paths that land there.
    landing: BTreeMap<Vec<u8>, Vec<Vec<u8>>>,
}

impl Layout {
    fn new(needs: &Needs, entries: &BTreeMap<Vec<u8>, LocalEntry>) -> Layout {
        let mut layout = Layout {
            new_roots: HashSet::new(),
            landing: BTreeMap::new(),
        };
        // Parents sort before what they hold.
        for (path, action) in &needs.sends {
            let is_dir = matches!(entries.get(path).map(|e| &e.kind), Some(LocalKind::Dir));
            let in_place = *action == Action::Attributes || (is_dir && *action == Action::Update);
            if layout.root_above(path).is_some() || in_place {
                continue;
            }
            if is_dir {
                layout.new_roots.insert(path.clone());
            }
            let landing = layout.landing.entry(parent(path).to_vec());
            landing.or_default().push(path.clone());
        }
        layout
    }

    /// The new directory unpacked whole that `path` is inside, if any.
    fn root_above<'a>(&self, path: &'a [u8]) -> Option<&'a [u8]> {
        path.iter()
            .enumerate()
            .filter(|(_, &b)| b == b'/')
            .map(|(at, _)| &path[..at])
            .find(|prefix| self.new_roots.contains(*prefix))
    }

    fn tar_name(&self, path: &[u8], entry: &LocalEntry, work: &str) -> Vec<u8> {
        let slash: &[u8] = match entry.kind {
            LocalKind::Dir => b"/",
            _ => b"",
        };
        if let Some(root) = self.root_above(path) {
            return [&temporary_name(root, work)[..], &path[root.len()..], slash].concat();
        }
        match matches!(entry.kind, LocalKind::Dir) && !self.new_roots.contains(path) {
            true => [path, slash].concat(),
            false => [&temporary_name(path, work)[..], slash].concat(),
        }
    }
}

/// The directory `path` is in (`.` for the top).
fn parent(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|&b| b == b'/') {
        Some(at) => &path[..at],
        None => b".",
    }
}

/// The stream as it is built: pieces, their hash, and where each part is.
#[derive(Default)]
struct Stream<'a> {
    pieces: Vec<StdinPiece>,
    buffer: BytesMut,
    hasher: Sha256,
    len: u64,
    /// File content held in memory by every plan (none kept: `None`).
    held: Option<&'a AtomicU64>,
}

impl Stream<'_> {
    fn push(&mut self, bytes: impl AsRef<[u8]>) {
        let bytes = bytes.as_ref();
        self.hasher.update(bytes);
        self.buffer.extend_from_slice(bytes);
        self.len += bytes.len() as u64;
    }

    /// Files whose content the host has, with another mode or time: a
    /// list per mode for chmod and per time for touch; the script's lines
    /// that apply them.
    fn attribute_lists(
        &mut self,
        needs: &Needs,
        entries: &BTreeMap<Vec<u8>, LocalEntry>,
    ) -> String {
        let mut modes: BTreeMap<u32, Vec<&[u8]>> = BTreeMap::new();
        let mut times: BTreeMap<(i64, u32), Vec<&[u8]>> = BTreeMap::new();
        for (path, action) in &needs.sends {
            if let (Action::Attributes, Some(entry)) = (action, entries.get(path)) {
                modes.entry(entry.mode).or_default().push(path);
                let time = (entry.mtime, entry.mtime_nsec);
                times.entry(time).or_default().push(path);
            }
        }
        let mut lines = String::new();
        for (mode, paths) in modes {
            let (at, len) = self.list(paths.into_iter());
            lines.push_str(&format!(
                "put {at} {len} chmod {mode:o} -- || fail \"cannot set modes\"\n"
            ));
        }
        for ((seconds, nanoseconds), paths) in times {
            let (at, len) = self.list(paths.into_iter());
            let time = format!("{seconds}.{nanoseconds:09}");
            lines.push_str(&format!(
                "put {at} {len} touch -m -d @{time} -- || fail \"cannot set times\"\n"
            ));
        }
        lines
    }

    /// NUL-terminated paths; returns where they start and their length.
    fn list<'a>(&mut self, paths: impl Iterator<Item = &'a [u8]>) -> (u64, u64) {
        let start = self.len;
        for path in paths {
            self.push(path);
            self.push([0]);
        }
        (start, self.len - start)
    }

    /// One tar entry, named `name` in the archive (see [`Layout`]).
    fn entry(&mut self, name: &[u8], entry: &LocalEntry, archive: bool) -> Result<(), String> {
        let (typeflag, size, link): (u8, u64, &[u8]) = match &entry.kind {
            LocalKind::Dir => (b'5', 0, b""),
            LocalKind::File { len, .. } => (b'0', *len, b""),
            LocalKind::Symlink(target) => (b'2', 0, target),
        };
        let header = Header {
            name,
            link,
            typeflag,
            size,
            entry,
            archive,
        };
        header.write(self);
        if let LocalKind::File { source, len, .. } = &entry.kind {
            self.content(source, *len)?;
            let padding = (BLOCK - (*len as usize % BLOCK)) % BLOCK;
            self.push(vec![0u8; padding]);
        }
        Ok(())
    }

    /// A file's bytes: held when small, else read from disk as sent (and
    /// once now, for the stream's hash). A file that changed since it was
    /// scanned stops the plan.
    fn content(&mut self, source: &std::path::Path, len: u64) -> Result<(), String> {
        let changed = || format!("{}: changed while being synced", source.display());
        let unreadable = |e: std::io::Error| format!("{}: {e}", source.display());
        if len <= HELD_FILE && self.hold(len) {
            let bytes = std::fs::read(source).map_err(unreadable)?;
            if bytes.len() as u64 != len {
                return Err(changed());
            }
            self.push(&bytes);
            return Ok(());
        }
        self.flush();
        let mut file = std::fs::File::open(source).map_err(unreadable)?;
        let mut buffer = vec![0u8; 1024 * 1024];
        let mut read_total = 0u64;
        loop {
            let read = file.read(&mut buffer).map_err(unreadable)?;
            if read == 0 {
                break;
            }
            self.hasher.update(&buffer[..read]);
            read_total += read as u64;
        }
        if read_total != len {
            return Err(changed());
        }
        self.pieces.push(StdinPiece::File {
            path: source.to_path_buf(),
            len,
        });
        self.len += len;
        Ok(())
    }

    /// Whether `len` more bytes may be held, counting them if so.
    fn hold(&self, len: u64) -> bool {
        self.held.is_some_and(|held| {
            held.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |now| {
                (now + len <= HELD_TOTAL).then_some(now + len)
            })
            .is_ok()
        })
    }

    fn flush(&mut self) {
        if !self.buffer.is_empty() {
            let bytes: Bytes = std::mem::take(&mut self.buffer).freeze();
            self.pieces.push(StdinPiece::Bytes(bytes));
        }
    }

    /// The pieces to send, how many bytes that is, the SHA-256 and length
    /// of the stream as the host must end up with it.
    fn finish(mut self, compress: bool) -> Result<(Vec<StdinPiece>, u64, String, u64), String> {
        self.flush();
        let sha256 = hex(&self.hasher.clone().finalize());
        if !compress {
            return Ok((self.pieces, self.len, sha256, self.len));
        }
        let spool = compressed(&self.pieces)?;
        let sent = spool.metadata().map_err(|e| e.to_string())?.len();
        let piece = StdinPiece::Spool {
            file: std::sync::Arc::new(spool),
            len: sent,
        };
        Ok((vec![piece], sent, sha256, self.len))
    }
}

/// `-z`: the stream through `gzip`, once for every host with this plan.
fn compressed(pieces: &[StdinPiece]) -> Result<std::fs::File, String> {
    let failed = |e: std::io::Error| format!("cannot compress: {e}");
    let spool = tempfile::tempfile().map_err(failed)?;
    let mut gzip = std::process::Command::new("gzip")
        .arg("-c")
        .stdin(std::process::Stdio::piped())
        .stdout(spool.try_clone().map_err(failed)?)
        .spawn()
        .map_err(failed)?;
    let mut input = gzip
        .stdin
        .take()
        .ok_or("cannot compress: no pipe to gzip")?;
    for piece in pieces {
        match piece {
            StdinPiece::Bytes(bytes) => input.write_all(bytes).map_err(failed)?,
            StdinPiece::File { path, .. } => {
                let mut file = std::fs::File::open(path).map_err(failed)?;
                std::io::copy(&mut file, &mut input).map_err(failed)?;
            }
            StdinPiece::Spool { file, .. } => {
                let mut file = std::fs::File::open(spool_path(file)).map_err(failed)?;
                std::io::copy(&mut file, &mut input).map_err(failed)?;
            }
        }
    }
    drop(input);
    match gzip.wait().map_err(failed)?.success() {
        true => Ok(spool),
        false => Err("cannot compress: gzip failed".into()),
    }
}

/// `a/b/name` as `a/b/WORK/name`: the temporary directory beside its place.
fn temporary_name(path: &[u8], work: &str) -> Vec<u8> {
    match path.iter().rposition(|&b| b == b'/') {
        Some(at) => [&path[..=at], work.as_bytes(), b"/", &path[at + 1..]].concat(),
        None => [work.as_bytes(), b"/", path].concat(),
    }
}

/// One GNU tar header (with a long-name entry before it when needed).
struct Header<'a> {
    name: &'a [u8],
    link: &'a [u8],
    typeflag: u8,
    size: u64,
    entry: &'a LocalEntry,
    archive: bool,
}

impl Header<'_> {
    fn write(&self, stream: &mut Stream) {
        // Times to the nanosecond, as a POSIX extended header: a file
        // changed within the second of a sync is still told apart.
        if self.entry.mtime >= 0 && self.entry.mtime_nsec > 0 {
            let mut record = pax_record(
                "mtime",
                &format!("{}.{:09}", self.entry.mtime, self.entry.mtime_nsec),
            );
            let len = record.len() as u64;
            stream.push(block(b"././@PaxHeader", b"", b'x', len, 0o644, 0, None));
            record.extend(std::iter::repeat_n(
                b'\0',
                (BLOCK - record.len() % BLOCK) % BLOCK,
            ));
            stream.push(record);
        }
        for (long, flag) in [(self.name, b'L'), (self.link, b'K')] {
            if long.len() >= 100 {
                let mut data = long.to_vec();
                data.push(0);
                stream.push(block(
                    b"././@LongLink",
                    b"",
                    flag,
                    data.len() as u64,
                    0o644,
                    0,
                    None,
                ));
                let padding = (BLOCK - data.len() % BLOCK) % BLOCK;
                data.extend(std::iter::repeat_n(0, padding));
                stream.push(data);
            }
        }
        let owner = self.archive.then_some((self.entry.uid, self.entry.gid));
        stream.push(block(
            &self.name[..self.name.len().min(99)],
            &self.link[..self.link.len().min(99)],
            self.typeflag,
            self.size,
            self.entry.mode,
            self.entry.mtime,
            owner,
        ));
    }
}

/// A 512-byte GNU tar header block.
fn block(
    name: &[u8],
    link: &[u8],
    typeflag: u8,
    size: u64,
    mode: u32,
    mtime: i64,
    owner: Option<(u32, u32)>,
) -> [u8; BLOCK] {
    let mut block = [0u8; BLOCK];
    block[..name.len()].copy_from_slice(name);
    octal(&mut block[100..108], u64::from(mode));
    let (uid, gid) = owner.unwrap_or((0, 0));
    octal(&mut block[108..116], u64::from(uid));
    octal(&mut block[116..124], u64::from(gid));
    number(&mut block[124..136], size);
    signed(&mut block[136..148], mtime);
    block[156] = typeflag;
    block[157..157 + link.len()].copy_from_slice(link);
    block[257..265].copy_from_slice(b"ustar  \0");
    if let Some((uid, gid)) = owner {
        let (user, group) = (account_name(uid, false), account_name(gid, true));
        for (field, name) in [(265..297, user), (297..329, group)] {
            let name = name.unwrap_or_default();
            let bytes = &name.as_bytes()[..name.len().min(31)];
            block[field.start..field.start + bytes.len()].copy_from_slice(bytes);
        }
    }
    block[148..156].copy_from_slice(b"        ");
    let sum: u32 = block.iter().map(|&b| u32::from(b)).sum();
    let checksum = format!("{sum:06o}\0 ");
    block[148..156].copy_from_slice(checksum.as_bytes());
    block
}

/// One pax record, `LEN key=value\n`, whose length counts its own digits.
fn pax_record(key: &str, value: &str) -> Vec<u8> {
    let body = format!(" {key}={value}\n");
    let mut len = body.len() + 1;
    while len.to_string().len() + body.len() != len {
        len = len.to_string().len() + body.len();
    }
    format!("{len}{body}").into_bytes()
}

/// Zero-padded octal, NUL-terminated, filling `field`.
fn octal(field: &mut [u8], value: u64) {
    let text = format!("{value:0width$o}", width = field.len() - 1);
    let text = &text.as_bytes()[text.len() - (field.len() - 1)..];
    field[..text.len()].copy_from_slice(text);
    field[field.len() - 1] = 0;
}

/// Octal when it fits, else GNU's base-256 (sizes of 8 GiB and more).
fn number(field: &mut [u8], value: u64) {
    if value < 1 << (3 * (field.len() - 1)) {
        return octal(field, value);
    }
    field.fill(0);
    field[0] = 0x80;
    let bytes = value.to_be_bytes();
    let at = field.len() - bytes.len();
    field[at..].copy_from_slice(&bytes);
}

/// A time as GNU tar writes it: octal when it fits, else base-256 (two's
/// complement: before 1970 or after 2242).
fn signed(field: &mut [u8], value: i64) {
    if let Ok(positive) = u64::try_from(value) {
        return number(field, positive);
    }
    field.fill(0xff);
    let bytes = value.to_be_bytes();
    let at = field.len() - bytes.len();
    field[at..].copy_from_slice(&bytes);
}

/// The local name of a user or group id, for `-a` (the host maps it back).
fn account_name(id: u32, group: bool) -> Option<String> {
    let mut buffer = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: the *_r calls write only into `entry` and `buffer`, whose sizes
    // they are given; the name is copied out before either goes.
    unsafe {
        let mut found: *mut libc::c_void = std::ptr::null_mut();
        let name = if group {
            let mut entry: libc::group = std::mem::zeroed();
            let result = (&mut found as *mut *mut libc::c_void).cast::<*mut libc::group>();
            libc::getgrgid_r(id, &mut entry, buffer.as_mut_ptr(), buffer.len(), result);
            (!found.is_null()).then(|| std::ffi::CStr::from_ptr(entry.gr_name))?
        } else {
            let mut entry: libc::passwd = std::mem::zeroed();
            let result = (&mut found as *mut *mut libc::c_void).cast::<*mut libc::passwd>();
            libc::getpwuid_r(id, &mut entry, buffer.as_mut_ptr(), buffer.len(), result);
            (!found.is_null()).then(|| std::ffi::CStr::from_ptr(entry.pw_name))?
        };
        Some(
            std::ffi::OsStr::from_bytes(name.to_bytes())
                .to_string_lossy()
                .into_owned(),
        )
    }
}

/// The receiving script's functions. The stream lands in `$work.in` and is
/// checked whole before any of it is used; then it is kept open on fd 3
/// and its name removed, so that nothing of it outlives the script, even a
/// KILL. `put` hands a NUL-separated list from it to a command (xargs),
/// `unpack` the archive to tar. What is in the way of a new entry, and what
/// is deleted, goes only once every new entry has been unpacked and
/// flushed (`aside`: removed, or kept as NAME+SUFFIX with --backup).
/// Temporary directories are removed on any exit, signal or cut
/// connection (see pcp's script for why SIGPIPE must exit through the trap
/// too); those of runs killed outright (`.prsync-TOKEN-HOST-PID` of this
/// host whose pid is gone) are removed by the next run (`$stale`).
const PREAMBLE: &str = r#"fail() { echo "prsync: $*" >&2; exit 1; }
if [ "$make_base" = 1 ] && [ ! -d "$base" ]; then mkdir -- "$base" 2>/dev/null || [ -d "$base" ] || fail "cannot create $base"; fi
cd -- "$base" 2>/dev/null || fail "no such directory: $base"
# Either prints the digest first.
if command -v openssl >/dev/null; then hash() { openssl dgst -sha256 -r; }
elif command -v sha256sum >/dev/null; then hash() { sha256sum; }
else fail "neither openssl nor sha256sum is on the host"; fi
stream=$work.in
part() { tail -c +"$(( $1 + 1 ))" -- "$stream" | head -c "$2"; }
put() { at=$1; len=$2; shift 2; [ "$len" = 0 ] || part "$at" "$len" | xargs -0 "$@"; }
cleanup() {
  # A second stop signal (the kill sweeps the session twice) must not
  # end the shell halfway through its cleaning.
  trap '' HUP INT TERM PIPE
  rm -f -- "$work.in"
  if [ -r "$stream" ]; then
    put "$dirs_at" "$dirs_len" sh -c 'for d; do rm -rf -- "./$d/$0"; done' "$work" 2>/dev/null
  fi
}
trap cleanup EXIT
trap 'exit 129' HUP; trap 'exit 130' INT; trap 'exit 143' TERM; trap 'exit 141' PIPE
: > "$work.in" || fail "cannot write in $base"
if [ "$compressed" = 1 ]; then head -c "$sent" | gzip -dc > "$work.in"; else head -c "$sent" > "$work.in"; fi || fail "cannot write $base/$work.in"
got=$(wc -c < "$work.in") || fail "$base/$work.in went away"
[ "$got" -eq "$size" ] || fail "transfer cut short ($got of $size bytes)"
case $(hash < "$work.in") in "$sha256"*) ;; *) fail "checksum mismatch after transfer";; esac
exec 3< "$work.in" && [ -r "/proc/$$/fd/3" ] && stream=/proc/$$/fd/3 && rm -f -- "$work.in"
unpack() {
  [ "$2" = 0 ] && return
  # The archive names the run's temporary directories; each host's own
  # name for them (host and pid) keeps hosts sharing a filesystem apart.
  part "$1" "$2" | tar -x -p ${3:-} --transform "s|^\(.*/\)\{0,1\}$named/|\1$work/|S" -f - ||
    fail "cannot unpack in $base (full? the stream and the new files need room together)"
  sync -f . 2>/dev/null || sync
}
aside() {
  if [ -n "$backup" ]; then
    put "$1" "$2" sh -c 'for p; do rm -rf -- "./$p$0" && mv -f -- "./$p" "./$p$0" || exit 1; done' "$backup"
  else
    put "$1" "$2" rm -rf --
  fi || fail "cannot remove what is replaced or deleted"
}
install='w=$0; b=$1; m=$2; shift 2
for d; do
  d=./$d; t="$d/$w"
  [ -d "$t" ] || continue
  if [ -n "$b" ]; then
    for n in "$t"/* "$t"/.[!.]* "$t"/..?*; do
      [ -e "$n" ] || [ -L "$n" ] || continue
      f="$d/${n##*/}"
      if [ -f "$f" ] && [ ! -L "$f" ]; then ln -f -- "$f" "$f$b" || exit 1; fi
    done
  fi
  find "$t" -mindepth 1 -maxdepth 1 -exec mv -f -t "$d" -- {} + 2>/dev/null ||
    find "$t" -mindepth 1 -maxdepth 1 -exec sh -c "$m" "$d" {} + || exit 1
  rmdir -- "$t" || exit 1
done'
# One rename per path, in directories where few land (the path's directory
# and name tell the temporary path); none is listed.
pairs='w=$0; b=$1; shift
for p; do
  case $p in */*) d=${p%/*};; *) d=.;; esac
  f=./$p
  if [ -n "$b" ] && [ -f "$f" ] && [ ! -L "$f" ]; then ln -f -- "$f" "$f$b" || exit 1; fi
  mv -f -T -- "./$d/$w/${p##*/}" "$f" || exit 1
done'
rmdirs='w=$0; n=$#
for d; do set -- "$@" "./$d/$w"; done
shift "$n"; rmdir -- "$@"'
# What one rename could not put in place: a new directory that appeared
# meanwhile (another host on a shared filesystem) gets what this one holds
# linked in, file by file.
merge='d=$0
for c; do
  n=${c##*/}
  if [ -d "$c" ] && [ ! -L "$c" ] && [ -d "$d/$n" ] && [ ! -L "$d/$n" ]; then
    cp -alf -- "$c/." "$d/$n/" && rm -rf -- "$c"
  else
    mv -f -T -- "$c" "$d/$n"
  fi || exit 1
done'
stale='me=$0
for p; do
  n=${p##*/}; n=${n%.in}; pid=${n##*-}; rest=${n%-*}; host=${rest#.prsync-????????????-}
  if [ "$host" = "$me" ] && [ ! -d "/proc/$pid" ]; then rm -rf -- "./$p"; fi
done'
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_what_gnu_tar_reads() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "hello").unwrap();
        let entry = LocalEntry {
            kind: LocalKind::File {
                source: file,
                len: 5,
                sha256: None,
            },
            mode: 0o640,
            mtime: 1_700_000_000,
            mtime_nsec: 123_456_789,
            uid: 0,
            gid: 0,
        };
        let held = AtomicU64::new(0);
        let mut stream = Stream {
            held: Some(&held),
            ..Stream::default()
        };
        let long = format!("{}/.prsync-t/name with space", "d".repeat(120));
        stream.entry(long.as_bytes(), &entry, false).unwrap();
        stream.push(vec![0u8; 2 * BLOCK]);
        stream.flush();
        let StdinPiece::Bytes(bytes) = &stream.pieces[0] else {
            panic!("held")
        };
        let archive = dir.path().join("a.tar");
        std::fs::write(&archive, bytes).unwrap();
        let listing = std::process::Command::new("tar")
            .args(["--full-time", "-tvf"])
            .arg(&archive)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&listing.stdout);
        assert!(text.starts_with("-rw-r----- "), "{text}");
        let mut old = [0u8; 12];
        signed(&mut old, -315_619_200);
        assert_eq!(old[0], 0xff, "before 1970: base-256, negative");
        assert!(text.contains(" 5 2023-11-1"), "{text}");
        assert!(
            text.contains(":20.123456789 "),
            "the time to the nanosecond: {text}"
        );
        let wanted = format!("{}/.prsync-t/name with space", "d".repeat(120));
        assert!(text.trim_end().ends_with(&wanted), "{text}");
    }
}
