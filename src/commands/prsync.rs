//! `prsync`: pssh's `parallel-rsync`, on the one engine: each host lists
//! what it has in one round trip and gets only what differs, in one
//! verified stream; see [`crate::ssh::sync`].

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;

use super::args::CommonArgs;
use super::{parse_flags, run_tool, Tool, ToolJob, UsageError};
use crate::engine::{Job, Stop};
use crate::output::Inline;
use crate::ssh::sync::{Excludes, SyncOptions, Syncer};
use crate::ssh::transfer::parse_suffix;

/// The usage line, after the name the tool was called by (`prsync`,
/// `fleet-prsync`, `fleet sync`).
pub(super) const USAGE: &[&str] = &["[OPTIONS] LOCAL... REMOTE"];

/// Keep a tree in step on many hosts, sending only what changed (pssh's parallel-rsync).
#[derive(Debug, Parser)]
#[command(
    name = "prsync",
    version = crate::VERSION,
    after_help = super::EXIT_STATUS,
    disable_help_flag = true,
)]
pub(super) struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    /// Enter directories: `dir` syncs the directory, `dir/` what it holds
    #[arg(short = 'r', long = "recursive")]
    recursive: bool,
    /// Archive: -r, symbolic links as links, owners and groups (as root)
    #[arg(short = 'a', long = "archive")]
    archive: bool,
    /// Compress what is sent
    #[arg(short = 'z', long = "compress")]
    compress: bool,
    /// Remove what the sources lack from the synced directories on the hosts
    #[arg(long)]
    delete: bool,
    /// Leave out paths matching PATTERN (rsync's: *, **, ?, a leading / anchors, a trailing / means directories)
    #[arg(long, value_name = "PATTERN")]
    exclude: Vec<String>,
    /// Leave out the patterns in FILE, one per line
    #[arg(long, value_name = "FILE")]
    exclude_from: Vec<PathBuf>,
    /// Show what each host would get, and change nothing
    #[arg(short = 'n', long = "dry-run")]
    dry_run: bool,
    /// Compare content (SHA-256) instead of size and modification time
    #[arg(short = 'c', long = "checksum")]
    checksum: bool,
    /// Keep replaced and deleted files on the hosts as NAME+SUFFIX
    #[arg(long, value_name = "SUFFIX", num_args = 0..=1, require_equals = true, default_missing_value = "~", value_parser = parse_suffix)]
    backup: Option<String>,
    /// Local files or directories, then the remote destination
    #[arg(required = true, num_args = 2.., value_name = "PATH")]
    paths: Vec<PathBuf>,
}

pub async fn main(args: impl IntoIterator<Item = OsString>, stop: Stop) -> u8 {
    let cli: Cli = match parse_flags(Tool::Sync, args) {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    run_tool("prsync", &cli.common, stop, |_| {
        let syncer = Arc::new(cli.syncer()?);
        if let Some(skipped) = syncer.skipped() {
            super::process::notice("prsync", &skipped);
        }
        Ok(ToolJob {
            job: Job {
                // Every host gets a plan of its own making; nothing else runs.
                command: String::new(),
                stdin: Vec::new(),
                timeout: cli.common.connect.command_timeout(),
                probe: Some(syncer.probe()),
                tty: false,
                sudo: None,
            },
            parallelism: cli.common.connect.parallelism as usize,
            inline: match cli.dry_run {
                true => Inline::Stdout,
                false => Inline::Note,
            },
            reporters: Vec::new(),
            files_per_host: 0,
        })
    })
    .await
}

impl Cli {
    /// The sources scanned with the options asked for.
    fn syncer(&self) -> Result<Syncer, UsageError> {
        let mut excludes = Excludes::default();
        for pattern in &self.exclude {
            excludes
                .add(pattern)
                .map_err(|why| UsageError::Invalid(format!("--exclude: {why}")))?;
        }
        for file in &self.exclude_from {
            excludes.add_file(file).map_err(UsageError::Invalid)?;
        }
        let options = SyncOptions {
            recursive: self.recursive || self.archive,
            archive: self.archive,
            compress: self.compress,
            delete: self.delete,
            checksum: self.checksum,
            dry_run: self.dry_run,
            backup: self.backup.clone(),
            excludes,
        };
        let (dest, sources) = self
            .paths
            .split_last()
            .ok_or_else(|| UsageError::Invalid("expected LOCAL... REMOTE".into()))?;
        let dest = dest.to_str().ok_or_else(|| {
            UsageError::Invalid(format!("{}: REMOTE must be UTF-8", dest.display()))
        })?;
        Syncer::new(sources, dest, options).map_err(UsageError::Invalid)
    }
}
