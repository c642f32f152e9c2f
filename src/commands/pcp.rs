//! `pcp`: pssh's `parallel-scp`, made safe. Each local file is read and
//! hashed once; on every host it lands in a temporary file in the
//! destination directory, hashed as it is written (so checking costs no
//! second pass), size- and SHA-256-checked, fsynced, given its mode, and
//! only then renamed over the destination. A failed, cut or
//! killed transfer leaves the destination as it was and no temporary file.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use clap::Parser;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::args::CommonArgs;
use super::{parse_flags, run_tool, ToolJob, UsageError};
use crate::engine::{Job, Probe};
use crate::output::Inline;
use crate::ssh::shell_quote;

/// Copy files to many hosts at once, atomically and checksum-verified (pssh's parallel-scp).
#[derive(Debug, Parser)]
#[command(
    name = "pcp",
    version,
    disable_help_flag = true,
    override_usage = "pcp [OPTIONS] LOCAL... REMOTE"
)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    /// Copy directories, keeping modes and symlinks
    #[arg(short = 'r', long = "recursive")]
    recursive: bool,
    /// Mode of installed files, in octal (default: the local file's)
    #[arg(long, value_name = "OCTAL", value_parser = parse_mode)]
    mode: Option<u32>,
    /// Keep the previous destination beside it as DEST+SUFFIX
    #[arg(long, value_name = "SUFFIX", num_args = 0..=1, require_equals = true, default_missing_value = ".bak", value_parser = parse_suffix)]
    backup: Option<String>,
    /// Compare SHA-256 first and send nothing to hosts that already have the files
    #[arg(long)]
    skip_unchanged: bool,
    /// Owner of installed files (needs root on the host)
    #[arg(long, value_name = "USER", value_parser = parse_account)]
    owner: Option<String>,
    /// Group of installed files (needs root on the host)
    #[arg(long, value_name = "GROUP", value_parser = parse_account)]
    group: Option<String>,
    /// Most transfers in flight at once, whatever -p says
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    max_transfers: u32,
    /// Local files (or directories with -r), then the remote destination
    #[arg(required = true, num_args = 2.., value_name = "PATH")]
    paths: Vec<PathBuf>,
}

fn parse_mode(text: &str) -> Result<u32, String> {
    u32::from_str_radix(text, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| format!("expected an octal mode like 0644, found `{text}`"))
}

fn parse_suffix(text: &str) -> Result<String, String> {
    match !text.is_empty() && !text.contains('/') && !text.contains('\0') {
        true => Ok(text.to_string()),
        false => Err(format!(
            "expected a file name suffix like .bak, found `{text}`"
        )),
    }
}

fn parse_account(text: &str) -> Result<String, String> {
    match !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        true => Ok(text.to_string()),
        false => Err(format!("expected a user or group name, found `{text}`")),
    }
}

/// One thing to install: a file, or a directory sent as a tar archive.
struct Item {
    /// Name under the destination directory.
    name: String,
    bytes: Bytes,
    sha256: String,
    /// Octal mode for a file; `None` for a directory (tar keeps its modes).
    mode: Option<u32>,
}

pub async fn main(args: impl IntoIterator<Item = OsString>, interrupt: CancellationToken) -> u8 {
    let cli: Cli = match parse_flags(args) {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    run_tool("pcp", &cli.common, interrupt, |_| {
        let items = load_items(&cli)?;
        let remote = cli.paths[cli.paths.len() - 1]
            .to_string_lossy()
            .into_owned();
        let only_files = items.iter().all(|i| i.mode.is_some());
        Ok(ToolJob {
            job: Job {
                command: install_script(&cli, &remote, &items),
                stdin: Some(concatenate(&items)),
                timeout: cli.common.connect.command_timeout(),
                probe: (cli.skip_unchanged && only_files).then(|| probe(&remote, &items)),
            },
            parallelism: cli.common.connect.parallelism.min(cli.max_transfers) as usize,
            inline: Inline::Note,
            reporters: Vec::new(),
        })
    })
    .await
}

/// Reads and hashes every local source once, before any host is contacted.
fn load_items(cli: &Cli) -> Result<Vec<Item>, UsageError> {
    let sources = &cli.paths[..cli.paths.len() - 1];
    sources.iter().map(|path| load_item(path, cli)).collect()
}

fn load_item(path: &Path, cli: &Cli) -> Result<Item, UsageError> {
    let invalid = |why: String| UsageError::Invalid(format!("{}: {why}", path.display()));
    let metadata = std::fs::metadata(path).map_err(|e| invalid(e.to_string()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| invalid("has no file name".into()))?;
    let (bytes, mode) = match (metadata.is_dir(), cli.recursive) {
        (true, false) => return Err(invalid("is a directory; use -r".into())),
        (true, true) => (tar(path).map_err(invalid)?, None),
        (false, _) => {
            let bytes = std::fs::read(path).map_err(|e| invalid(e.to_string()))?;
            (
                bytes,
                Some(cli.mode.unwrap_or(metadata.permissions().mode() & 0o7777)),
            )
        }
    };
    let sha256 = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(Item {
        name,
        bytes: Bytes::from(bytes),
        sha256,
        mode,
    })
}

/// The directory as a tar archive whose top entry is the directory's name.
fn tar(path: &Path) -> Result<Vec<u8>, String> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().ok_or("has no name")?;
    let output = std::process::Command::new("tar")
        .arg("-C")
        .arg(parent)
        .arg("-cf")
        .arg("-")
        .arg(name)
        .output()
        .map_err(|e| format!("cannot run tar: {e}"))?;
    match output.status.success() {
        true => Ok(output.stdout),
        false => Err(format!(
            "tar failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )),
    }
}

fn concatenate(items: &[Item]) -> Bytes {
    match items {
        [one] => one.bytes.clone(),
        many => Bytes::from(
            many.iter()
                .flat_map(|i| i.bytes.iter().copied())
                .collect::<Vec<u8>>(),
        ),
    }
}

/// Prints the SHA-256 of every destination, for --skip-unchanged.
fn probe(remote: &str, items: &[Item]) -> Probe {
    let mut command = format!("remote={}; ", shell_quote(remote));
    for item in items {
        command.push_str(&format!(
            "if [ -d \"$remote\" ]; then f=\"$remote\"/{name}; else f=\"$remote\"; fi; {{ sha256sum < \"$f\"; }} 2>/dev/null | cut -c1-64; ",
            name = shell_quote(&item.name)
        ));
    }
    let unchanged_when = items
        .iter()
        .map(|i| i.sha256.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    Probe {
        command,
        unchanged_when,
    }
}

/// The script run on each host; the items arrive one after the other on stdin.
fn install_script(cli: &Cli, remote: &str, items: &[Item]) -> String {
    let token: String = Sha256::digest(format!(
        "{:?}{}",
        std::time::SystemTime::now(),
        std::process::id()
    ))
    .iter()
    .take(6)
    .map(|b| format!("{b:02x}"))
    .collect();
    let mut script = format!(
        "set -u\nremote={remote}\ntoken={token}-$(hostname 2>/dev/null)-$$\ncount={count}\n{PREAMBLE}",
        remote = shell_quote(remote),
        count = items.len()
    );
    for (index, item) in items.iter().enumerate() {
        script.push_str(&format!(
            "receive {index} {} {}\n",
            item.bytes.len(),
            item.sha256
        ));
        match item.mode {
            Some(mode) => script.push_str(&format!(
                "chmod {mode:o} \"$dir/.pcp-$token-{index}\" || fail \"cannot set the mode\"\n"
            )),
            None => script.push_str(&format!("unpack {index}\n")),
        }
        if cli.owner.is_some() || cli.group.is_some() {
            let owner = format!(
                "{}:{}",
                cli.owner.as_deref().unwrap_or(""),
                cli.group.as_deref().unwrap_or("")
            );
            let recursive = if item.mode.is_none() { "-R " } else { "" };
            script.push_str(&format!("chown {recursive}{owner} \"$dir/.pcp-$token-{index}\" || fail \"cannot set the owner\"\n"));
        }
    }
    let backup = cli
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
    let kept = match &cli.backup {
        Some(suffix) => format!(", previous kept as *{suffix}"),
        None => String::new(),
    };
    script.push_str(&format!(
        "echo \"installed {} {noun}{kept}\"\n",
        items.len()
    ));
    script
}

/// Shell functions of the install script. Temporary files are
/// `$dir/.pcp-TOKEN-*`, removed on any exit, signal or cut connection; the
/// token holds the host's name and the shell's pid, so hosts sharing a
/// filesystem (NFS homes) never touch each other's.
const PREAMBLE: &str = r#"fail() { echo "pcp: $*" >&2; exit 1; }
if [ -d "$remote" ]; then dir=$remote; into=1; else dir=$(dirname -- "$remote"); into=0; fi
[ -d "$dir" ] || fail "no such directory: $dir"
[ "$into" = 1 ] || [ "$count" = 1 ] || fail "$remote is not a directory"
command -v sha256sum >/dev/null || fail "sha256sum is missing on the host"
trap 'rm -rf -- "$dir/.pcp-$token-"*' EXIT
trap 'exit 129' HUP; trap 'exit 130' INT; trap 'exit 143' TERM
dest() { if [ "$into" = 1 ]; then printf '%s/%s' "$dir" "$1"; else printf '%s' "$remote"; fi; }
receive() {
  t="$dir/.pcp-$token-$1"
  : > "$t" || fail "cannot write in $dir"
  sum=$(head -c "$2" | tee -- "$t" | sha256sum | cut -c1-64)
  got=$(wc -c < "$t")
  [ "$got" -eq "$2" ] || fail "transfer cut short ($got of $2 bytes)"
  [ "$sum" = "$3" ] || fail "checksum mismatch after transfer"
  dd if=/dev/null of="$t" conv=notrunc,fsync status=none || fail "cannot flush $t to disk"
}
unpack() {
  mkdir "$dir/.pcp-$token-x$1" && tar -xf "$dir/.pcp-$token-$1" -C "$dir/.pcp-$token-x$1" || fail "cannot unpack in $dir"
}
install_file() {
  d=$(dest "$2")
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
