//! `pcp`: pssh's `parallel-scp`, made safe: see [`crate::ssh::transfer`]
//! for how each file is installed atomically and checksum-verified.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Parser;

use super::args::CommonArgs;
use super::{parse_flags, run_tool, Tool, ToolJob, UsageError};
use crate::engine::{Job, Probe, Stop, UnchangedWhen};
use crate::output::Inline;
use crate::ssh::transfer::{
    checksum_probe, install_script, parse_account, parse_mode, parse_suffix, stdin_of,
    InstallOptions, Item,
};

/// The usage line, after the name the tool was called by (`pcp`,
/// `fleet-pcp`, `fleet cp`).
pub(super) const USAGE: &[&str] = &["[OPTIONS] LOCAL... REMOTE"];

/// Copy files to many hosts at once, atomically and checksum-verified (pssh's parallel-scp).
#[derive(Debug, Parser)]
#[command(
    name = "pcp",
    version = crate::VERSION,
    after_help = super::EXIT_STATUS,
    disable_help_flag = true,
)]
pub(super) struct Cli {
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

pub async fn main(args: impl IntoIterator<Item = OsString>, stop: Stop) -> u8 {
    let cli: Cli = match parse_flags(Tool::Cp, args) {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    run_tool("pcp", &cli.common, stop, |_| {
        let items = load_items(&cli)?;
        let remote = cli.paths[cli.paths.len() - 1]
            .to_string_lossy()
            .into_owned();
        if cli.skip_unchanged && items.iter().any(|i| i.mode.is_none()) {
            return Err(UsageError::Invalid(
                "--skip-unchanged compares files; a directory (-r) is always sent".into(),
            ));
        }
        Ok(ToolJob {
            job: Job {
                command: install_script(&cli.install_options(), &remote, &items),
                stdin: stdin_of(&items),
                timeout: cli.common.connect.command_timeout(),
                probe: cli
                    .skip_unchanged
                    .then(|| probe(&remote, &items, &cli.install_options())),
                tty: false,
                sudo: None,
            },
            parallelism: cli.common.connect.parallelism.min(cli.max_transfers) as usize,
            inline: Inline::Note,
            reporters: Vec::new(),
            files_per_host: 0,
        })
    })
    .await
}

/// Reads and hashes every local source once, before any host is contacted.
fn load_items(cli: &Cli) -> Result<Vec<Item>, UsageError> {
    let sources = &cli.paths[..cli.paths.len() - 1];
    sources
        .iter()
        .map(|path| {
            Item::load(path, cli.recursive, cli.mode)
                .map_err(|why| UsageError::Invalid(format!("{}: {why}", path.display())))
        })
        .collect()
}

impl Cli {
    fn install_options(&self) -> InstallOptions {
        InstallOptions {
            backup: self.backup.clone(),
            owner: self.owner.clone(),
            group: self.group.clone(),
        }
    }
}

/// --skip-unchanged: settle hosts whose destinations already match, in
/// content and in the mode, owner and group they are to have.
fn probe(remote: &str, items: &[Item], options: &InstallOptions) -> Probe {
    let (command, unchanged_when) = checksum_probe(remote, items, Some(options));
    Probe {
        command,
        max_output: 64 * 1024,
        planner: std::sync::Arc::new(UnchangedWhen(unchanged_when)),
    }
}
