//! `pnuke`: pssh's `parallel-nuke`. Signals the processes whose name matches
//! PATTERN on every host (pgrep's matching), and says how many it hit; pid 1
//! and the host's sshd are protected unless `--force` (see [`Nuke`]).

use std::ffi::OsString;

use clap::Parser;

use super::args::CommonArgs;
use super::{parse_flags, run_tool, Tool, ToolJob};
use crate::engine::{Job, Stop};
use crate::output::Inline;
use crate::ssh::{parse_pattern, parse_signal, Nuke};

/// The usage line, after the name the tool was called by (`pnuke`,
/// `fleet-pnuke`, `fleet nuke`).
pub(super) const USAGE: &[&str] = &["[OPTIONS] PATTERN"];

/// Kill processes by name on many hosts at once (pssh's parallel-nuke).
#[derive(Debug, Parser)]
#[command(
    name = "pnuke",
    version = crate::VERSION,
    after_help = super::EXIT_STATUS,
    disable_help_flag = true,
)]
pub(super) struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    /// Signal to send, by name or number
    #[arg(short = 's', long = "signal", default_value = "KILL", value_parser = parse_signal)]
    signal: String,
    /// Only list the matching processes (pid and command line); signal nothing
    #[arg(long)]
    list: bool,
    /// Signal pid 1 and the host's ssh server too (protected otherwise)
    #[arg(long)]
    force: bool,
    /// Process name pattern (an extended regular expression, as for pgrep)
    #[arg(value_name = "PATTERN", allow_hyphen_values = true, value_parser = parse_pattern)]
    pattern: String,
}

pub async fn main(args: impl IntoIterator<Item = OsString>, stop: Stop) -> u8 {
    let cli: Cli = match parse_flags(Tool::Nuke, args) {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    run_tool("pnuke", &cli.common, stop, |_| {
        Ok(ToolJob {
            job: Job {
                command: Nuke {
                    pattern: cli.pattern.clone(),
                    signal: cli.signal.clone(),
                    list: cli.list,
                    force: cli.force,
                }
                .script(),
                stdin: Vec::new(),
                timeout: cli.common.connect.command_timeout(),
                probe: None,
                tty: false,
                sudo: None,
            },
            parallelism: cli.common.connect.parallelism as usize,
            // The count goes on the status line; --list also prints the processes.
            inline: if cli.list {
                Inline::Stdout
            } else {
                Inline::Note
            },
            reporters: Vec::new(),
            files_per_host: 0,
        })
    })
    .await
}
