//! `prun`: pssh's `parallel-ssh`. Runs one command on every host and reports
//! each host as it finishes, with pssh's flags, output and exit codes.

use std::ffi::OsString;

use bytes::Bytes;
use clap::Parser;
use tokio::io::AsyncReadExt;

use super::args::CommonArgs;
use super::{exit, parse_flags, run_tool, Tool, ToolJob, UsageError};
use crate::engine::{Job, Stop};
use crate::output::Inline;
use crate::ssh::StdinPiece;

/// Run a command on many hosts at once over SSH (pssh-compatible).
#[derive(Debug, Parser)]
#[command(
    name = "prun",
    version = crate::VERSION,
    after_help = super::EXIT_STATUS,
    disable_help_flag = true
)]
pub(super) struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    /// Read standard input once and send it to every host's command
    #[arg(short = 'I', long = "send-input")]
    send_input: bool,
    /// Run the command on a terminal (as ssh -t; also -x -t or -O RequestTTY=yes): for sudo's requiretty and commands that want one; its stderr comes with its stdout
    #[arg(long)]
    tty: bool,
    /// The command to run, through each host's login shell
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    command: Vec<String>,
}

/// Runs prun with `args` (including the program name); returns the exit code.
/// `stop` requested means Ctrl-C (or TERM, HUP): running commands are killed on their hosts.
pub async fn main(args: impl IntoIterator<Item = OsString>, stop: Stop) -> u8 {
    let cli: Cli = match parse_flags(Tool::Run, args) {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let stdin = match cli.send_input {
        true => match read_stdin().await {
            Ok(input) => vec![StdinPiece::Bytes(input)],
            Err(error) => {
                super::process::notice("prun", &format!("cannot read standard input: {error}"));
                return exit::OTHER;
            }
        },
        false => Vec::new(),
    };
    run_tool("prun", &cli.common, stop, |_| {
        let asked = cli.common.connect.ssh_options(None)?.request_tty;
        let tty = cli.tty || asked.unwrap_or(false);
        if tty && cli.send_input {
            return Err(UsageError::Invalid(
                "-I with a terminal (--tty, -x -t, RequestTTY): a terminal never ends its input, \
                 so the command would wait for ever; use one or the other"
                    .into(),
            ));
        }
        Ok(ToolJob {
            job: Job {
                command: cli.command.join(" "),
                stdin,
                timeout: cli.common.connect.command_timeout(),
                probe: None,
                tty,
                sudo: None,
            },
            parallelism: cli.common.connect.parallelism as usize,
            inline: Inline::Off,
            reporters: Vec::new(),
            files_per_host: 0,
        })
    })
    .await
}

async fn read_stdin() -> std::io::Result<Bytes> {
    let mut input = Vec::new();
    tokio::io::stdin().read_to_end(&mut input).await?;
    Ok(Bytes::from(input))
}
