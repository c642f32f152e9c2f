//! `pslurp`: pssh's `parallel-slurp`. Pulls a file (or, with -r, a
//! directory) from every host into `LOCALDIR/<host>/LOCALNAME`, streamed to
//! disk with bounded memory; a failed pull leaves no partial file.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Parser;

use super::args::CommonArgs;
use super::{parse_flags, run_tool, Tool, ToolJob, UsageError};
use crate::engine::{Job, Stop};
use crate::output::{Inline, SlurpFiles};
use crate::ssh::shell_quote;

/// The usage line, after the name the tool was called by (`pslurp`,
/// `fleet-pslurp`, `fleet slurp`).
pub(super) const USAGE: &[&str] = &["[OPTIONS] [-L LOCALDIR] REMOTE LOCALNAME"];

/// Copy a file from many hosts into one directory per host (pssh's parallel-slurp).
#[derive(Debug, Parser)]
#[command(
    name = "pslurp",
    version = crate::VERSION,
    after_help = super::EXIT_STATUS,
    disable_help_flag = true,
)]
pub(super) struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    /// Copy directories
    #[arg(short = 'r', long = "recursive")]
    recursive: bool,
    /// Directory that receives one subdirectory per host
    #[arg(
        short = 'L',
        long = "localdir",
        env = "PSSH_LOCALDIR",
        default_value = ".",
        value_name = "LOCALDIR"
    )]
    local_dir: PathBuf,
    /// The file (or directory) on the hosts
    #[arg(value_name = "REMOTE")]
    remote: String,
    /// The name it gets under LOCALDIR/<host>/
    #[arg(value_name = "LOCALNAME", value_parser = parse_local_name)]
    local_name: String,
}

fn parse_local_name(text: &str) -> Result<String, String> {
    match !text.is_empty() && text != "." && text != ".." && !text.contains('/') {
        true => Ok(text.to_string()),
        false => Err(format!("expected a plain file name, found `{text}`")),
    }
}

pub async fn main(args: impl IntoIterator<Item = OsString>, stop: Stop) -> u8 {
    let cli: Cli = match parse_flags(Tool::Slurp, args) {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    run_tool("pslurp", &cli.common, stop, |hosts| {
        let files = SlurpFiles::new(
            hosts,
            cli.local_dir.clone(),
            cli.local_name.clone(),
            cli.recursive,
        )
        .map_err(|e| UsageError::Invalid(format!("-L {}: {e}", cli.local_dir.display())))?;
        Ok(ToolJob {
            job: Job {
                command: pull_command(&cli),
                stdin: Vec::new(),
                timeout: cli.common.connect.command_timeout(),
                probe: None,
                tty: false,
                sudo: None,
            },
            parallelism: cli.common.connect.parallelism as usize,
            inline: Inline::Off,
            reporters: vec![Box::new(files)],
            files_per_host: 1,
        })
    })
    .await
}

/// `cat` (or `tar` with -r) on the host, with a clear error when the path is missing.
fn pull_command(cli: &Cli) -> String {
    let remote = shell_quote(&cli.remote);
    match cli.recursive {
        true => format!("[ -d {remote} ] || {{ echo \"pslurp: not a directory: \"{remote} >&2; exit 1; }}; cd -- \"$(dirname -- {remote})\" && tar -cf - -- \"$(basename -- {remote})\""),
        false => format!("[ -e {remote} ] || {{ echo \"pslurp: no such file: \"{remote} >&2; exit 1; }}; cat -- {remote}"),
    }
}
