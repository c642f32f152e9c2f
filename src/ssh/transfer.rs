//! Pushing files to a host safely over an exec channel, for pcp and
//! pplay's `copy`. Each local file is read and hashed once; on every host it
//! lands in a temporary file in the destination directory, is size- and
//! SHA-256-checked from the file itself (what is checked is what was
//! written, not what went past), fsynced, given its mode, and only then
//! renamed over the destination. A
//! failed, cut or killed transfer leaves the destination as it was and no
//! temporary file.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use std::io::Read;

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::exec::spool_path;
use super::{shell_quote, StdinPiece};

/// One thing to install: a file, or a directory sent as a tar archive.
#[derive(Debug)]
pub struct Item {
    /// Name under the destination directory.
    pub name: String,
    /// The bytes to send: held when small, read from disk as sent when large.
    pub content: StdinPiece,
    pub len: u64,
    pub sha256: String,
    /// Octal mode for a file; `None` for a directory (tar keeps its modes).
    pub mode: Option<u32>,
}

/// Files up to this size are read once and held; larger ones are streamed
/// from disk to each host, so memory stays flat whatever the file size.
pub const HOLD_LIMIT: u64 = 8 * 1024 * 1024;

/// A file mode in octal (`0644`), for `pcp --mode` and `copy: {mode}`.
pub fn parse_mode(text: &str) -> Result<u32, String> {
    u32::from_str_radix(text, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| format!("expected an octal mode like 0644, found `{text}`"))
}

/// A user or group name for `--owner`/`--group` and `copy: {owner, group}`:
/// letters, digits, `.`, `_` and `-` only, never shell text.
pub fn parse_account(text: &str) -> Result<String, String> {
    let valid = |c: char| c.is_ascii_alphanumeric() || "._-".contains(c);
    match !text.is_empty() && !text.starts_with('-') && text.chars().all(valid) {
        true => Ok(text.to_string()),
        false => Err(format!("expected a user or group name, found `{text}`")),
    }
}

/// What to do around the install, beyond the file contents.
#[derive(Debug, Clone, Default)]
pub struct InstallOptions {
    /// Keep the previous destination as DEST+SUFFIX.
    pub backup: Option<String>,
    /// Owner and group of installed files (root on the host only).
    pub owner: Option<String>,
    pub group: Option<String>,
}

impl Item {
    /// Reads and hashes a local file, or a directory as a tar archive when
    /// `recursive`. Only regular files and directories are taken (a device
    /// or FIFO would be read for ever). A file's mode is `mode` or the
    /// local file's. Errors say what is wrong with the path, without naming it.
    pub fn load(path: &Path, recursive: bool, mode: Option<u32>) -> Result<Item, String> {
        let metadata = std::fs::metadata(path).map_err(|e| e.to_string())?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or("has no file name")?;
        match (metadata.is_dir(), metadata.is_file(), recursive) {
            (true, _, false) => Err("is a directory; use -r".into()),
            (true, _, true) => Self::tree(path, name),
            (false, true, _) => {
                let mode = mode.unwrap_or(metadata.permissions().mode() & 0o7777);
                Self::file(path, name, metadata.len(), mode)
            }
            (false, false, _) => Err("is not a regular file (a device, FIFO or socket)".into()),
        }
    }

    fn file(path: &Path, name: String, len: u64, mode: u32) -> Result<Item, String> {
        let (content, sha256, len) = match len <= HOLD_LIMIT {
            true => {
                let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
                let sha256 = hex(&Sha256::digest(&bytes));
                let len = bytes.len() as u64;
                (StdinPiece::Bytes(Bytes::from(bytes)), sha256, len)
            }
            false => {
                let (sha256, len) = hash_file(path).map_err(|e| e.to_string())?;
                let piece = StdinPiece::File {
                    path: path.to_path_buf(),
                    len,
                };
                (piece, sha256, len)
            }
        };
        Ok(Item {
            name,
            content,
            len,
            sha256,
            mode: Some(mode),
        })
    }

    /// The directory as a tar archive spooled to an unnamed temporary file
    /// (gone when the last host has been sent it, or with the process).
    fn tree(path: &Path, name: String) -> Result<Item, String> {
        let spool = tar(path)?;
        let (sha256, len) = hash_file(&spool_path(&spool)).map_err(|e| e.to_string())?;
        Ok(Item {
            name,
            content: StdinPiece::Spool {
                file: Arc::new(spool),
                len,
            },
            len,
            sha256,
            mode: None,
        })
    }
}

/// SHA-256 (hex) and length of a file, read in chunks.
pub fn hash_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1024 * 1024];
    let mut len = 0u64;
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            return Ok((hex(&hasher.finalize()), len));
        }
        hasher.update(&buffer[..read]);
        len += read as u64;
    }
}

/// Lower-case hex of a digest.
pub(crate) fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The directory as a tar archive whose top entry is the directory's name.
fn tar(path: &Path) -> Result<std::fs::File, String> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().ok_or("has no name")?;
    let spool = tempfile::tempfile().map_err(|e| format!("cannot make a temporary file: {e}"))?;
    let output = std::process::Command::new("tar")
        .arg("-C")
        .arg(parent)
        .arg("-cf")
        .arg("-")
        .arg(name)
        .stdout(spool.try_clone().map_err(|e| e.to_string())?)
        .stderr(std::process::Stdio::piped())
        .output()
        .map_err(|e| format!("cannot run tar: {e}"))?;
    match output.status.success() {
        true => Ok(spool),
        false => Err(format!(
            "tar failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )),
    }
}

/// Every item's content, in order: the install script's stdin.
pub fn stdin_of(items: &[Item]) -> Vec<StdinPiece> {
    items.iter().map(|item| item.content.clone()).collect()
}

/// A command printing the SHA-256 of every destination, one per line
/// (with `attributes`, followed by its mode, and its owner and group where
/// they are asked for), and the output it gives when every destination
/// already matches.
pub fn checksum_probe(
    remote: &str,
    items: &[Item],
    attributes: Option<&InstallOptions>,
) -> (String, String) {
    let mut command = format!("remote={}; ", shell_quote(remote));
    let mut expected = Vec::with_capacity(items.len());
    for item in items {
        command.push_str(&format!(
            "if [ -d \"$remote\" ]; then f=\"$remote\"/{name}; else f=\"$remote\"; fi; {{ sha256sum < \"$f\"; }} 2>/dev/null | cut -c1-64; ",
            name = shell_quote(&item.name)
        ));
        let mut line = item.sha256.clone();
        if let Some(options) = attributes {
            let mut format = String::from("%a");
            line.push_str(&format!("\n{:o}", item.mode.unwrap_or_default()));
            for (asked, field) in [(&options.owner, "%U"), (&options.group, "%G")] {
                if let Some(name) = asked {
                    format.push(' ');
                    format.push_str(field);
                    line.push_str(&format!(" {name}"));
                }
            }
            command.push_str(&format!("stat -c '{format}' -- \"$f\" 2>/dev/null; "));
        }
        expected.push(line);
    }
    (command, expected.join("\n"))
}

/// Twelve hex digits naming one run's temporary files on the hosts (the
/// hosts add their own name and pid).
pub(crate) fn run_token() -> String {
    let seed = format!("{:?}{}", std::time::SystemTime::now(), std::process::id());
    hex(&Sha256::digest(seed)[..6])
}

/// A suffix for backups (`--backup=SUFFIX`, `backup:`): a file name's end,
/// never a path.
pub fn parse_suffix(text: &str) -> Result<String, String> {
    match !text.is_empty() && !text.contains('/') && !text.contains('\0') {
        true => Ok(text.to_string()),
        false => Err(format!(
            "expected a suffix like .bak or ~ (the end of a file name), found `{text}`"
        )),
    }
}

/// The script run on each host; the items arrive one after the other on stdin.
pub fn install_script(options: &InstallOptions, remote: &str, items: &[Item]) -> String {
    let token = run_token();
    let mut script = format!(
        "set -u\nremote={remote}\ntoken={token}-$(hostname 2>/dev/null)-$$\ncount={count}\n{PREAMBLE}",
        remote = shell_quote(remote),
        count = items.len()
    );
    for (index, item) in items.iter().enumerate() {
        script.push_str(&format!("receive {index} {} {}\n", item.len, item.sha256));
        match item.mode {
            Some(mode) => script.push_str(&format!(
                "chmod {mode:o} \"$dir/.pcp-$token-{index}\" || fail \"cannot set the mode\"\n"
            )),
            None => script.push_str(&format!("unpack {index}\n")),
        }
        if options.owner.is_some() || options.group.is_some() {
            // Checked names, quoted all the same: never shell text.
            let owner = shell_quote(&format!(
                "{}:{}",
                options.owner.as_deref().unwrap_or(""),
                options.group.as_deref().unwrap_or("")
            ));
            let recursive = if item.mode.is_none() { "-R " } else { "" };
            script.push_str(&format!("chown {recursive}{owner} \"$dir/.pcp-$token-{index}\" || fail \"cannot set the owner\"\n"));
        }
    }
    let backup = options
        .backup
        .as_deref()
        .map(shell_quote)
        .unwrap_or_else(|| "''".into());
    script.push_str(&format!("backup={backup}\n"));
    for (index, item) in items.iter().enumerate() {
        let kind = if item.mode.is_some() {
            "install_file"
        } else {
            "install_tree"
        };
        script.push_str(&format!("{kind} {index} {}\n", shell_quote(&item.name)));
    }
    script.push_str("sync -- \"$dir\" 2>/dev/null\n");
    let noun = if items.len() == 1 { "item" } else { "items" };
    let kept = match &options.backup {
        Some(suffix) => format!(", previous kept as *{suffix}"),
        None => String::new(),
    };
    script.push_str(&format!(
        "echo \"installed {} {noun}{kept}\"\n",
        items.len()
    ));
    script
}

/// Shell functions of the install script. `hash` prefers openssl, which
/// uses the CPU's SHA instructions (4x coreutils' sha256sum here). Temporary files are
/// `$dir/.pcp-TOKEN-*`, removed on any exit, signal or cut connection (a
/// cut connection closes stderr, so the error message raises SIGPIPE, which
/// must exit through the trap too, not kill the shell around it); the
/// token holds the host's name and the shell's pid, so hosts sharing a
/// filesystem (NFS homes) never touch each other's.
const PREAMBLE: &str = r#"fail() { echo "pcp: $*" >&2; exit 1; }
if [ -d "$remote" ]; then dir=$remote; into=1; else dir=$(dirname -- "$remote"); into=0; fi
[ -d "$dir" ] || fail "no such directory: $dir"
# A trailing slash names a directory, which must be there (as for scp).
case $remote in */) [ "$into" = 1 ] || fail "no such directory: $remote" ;; esac
[ "$into" = 1 ] || [ "$count" = 1 ] || fail "$remote is not a directory"
if command -v openssl >/dev/null; then hash() { openssl dgst -sha256 -r | cut -c1-64; }
elif command -v sha256sum >/dev/null; then hash() { sha256sum | cut -c1-64; }
else fail "neither openssl nor sha256sum is on the host"; fi
trap 'rm -rf -- "$dir/.pcp-$token-"*' EXIT
trap 'exit 129' HUP; trap 'exit 130' INT; trap 'exit 143' TERM; trap 'exit 141' PIPE
dest() { if [ "$into" = 1 ]; then printf '%s/%s' "$dir" "$1"; else printf '%s' "$remote"; fi; }
receive() {
  t="$dir/.pcp-$token-$1"
  : > "$t" || fail "cannot write in $dir"
  # One item is all of stdin: no need to count bytes through another pipe.
  if [ "$count" = 1 ]; then cat > "$t"; else head -c "$2" > "$t"; fi || fail "cannot write $t"
  got=$(wc -c < "$t")
  [ "$got" -eq "$2" ] || fail "transfer cut short ($got of $2 bytes)"
  # The file as written, not the stream that went by, must match.
  [ "$(hash < "$t")" = "$3" ] || fail "checksum mismatch after transfer"
  dd if=/dev/null of="$t" conv=notrunc,fsync status=none || fail "cannot flush $t to disk"
}
unpack() {
  mkdir "$dir/.pcp-$token-x$1" && tar -xf "$dir/.pcp-$token-$1" -C "$dir/.pcp-$token-x$1" || fail "cannot unpack in $dir"
}
install_file() {
  d=$(dest "$2")
  # mv would put the file inside a directory of that name and say nothing.
  [ ! -d "$d" ] || fail "$d is a directory"
  [ -z "$backup" ] || [ ! -d "$d$backup" ] || fail "$d$backup is a directory"
  if [ -n "$backup" ] && [ -e "$d" ]; then
    cp -pP -- "$d" "$dir/.pcp-$token-b$1" && mv -f -- "$dir/.pcp-$token-b$1" "$d$backup" || fail "cannot back up $d"
  fi
  mv -f -- "$dir/.pcp-$token-$1" "$d" || fail "cannot install $d"
}
install_tree() {
  d=$(dest "$2")
  if [ -e "$d" ] || [ -L "$d" ]; then
    if [ -n "$backup" ]; then rm -rf -- "$d$backup"; mv -- "$d" "$d$backup"; else mv -- "$d" "$dir/.pcp-$token-old$1"; fi || fail "cannot move $d aside"
  fi
  mv -- "$dir/.pcp-$token-x$1/$2" "$d" || fail "cannot install $d"
}
"#;
