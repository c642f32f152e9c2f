//! `prun`: pssh's `parallel-ssh`. Runs one command on every host and reports
//! each host as it finishes, with pssh's flags, output and exit codes.

use std::ffi::OsString;

use bytes::Bytes;
use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
    /// Read standard input once and send it to every host's command (at most 1 GiB; past 64 KiB it waits in an unnamed temporary file)
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
            Ok(input) => vec![input],
            Err(InputError::TooLarge) => {
                let why = format!(
                    "-I: standard input is larger than {} MiB; push large files with pcp",
                    MAX_INPUT >> 20
                );
                super::process::notice("prun", &why);
                return exit::USAGE;
            }
            Err(InputError::Unreadable(error)) => {
                super::process::notice("prun", &format!("cannot read standard input: {error}"));
                return exit::OTHER;
            }
            Err(InputError::Unspooled(error)) => {
                let dir = std::env::temp_dir();
                let why = format!(
                    "-I: cannot keep standard input in {} (set by TMPDIR): {error}",
                    dir.display()
                );
                super::process::notice("prun", &why);
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

/// Copies the rest of the input to its temporary file, telling a read
/// error from a write error (tokio's copy fails alike on either side).
async fn copy_input(
    input: &mut (impl tokio::io::AsyncRead + Unpin),
    spool: &mut tokio::fs::File,
) -> Result<u64, InputError> {
    let mut buffer = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let read = input
            .read(&mut buffer)
            .await
            .map_err(InputError::Unreadable)?;
        if read == 0 {
            return Ok(total);
        }
        spool
            .write_all(&buffer[..read])
            .await
            .map_err(InputError::Unspooled)?;
        total += read as u64;
    }
}

/// The most `-I` reads: it goes whole to every host; files are pcp's job.
const MAX_INPUT: u64 = 1024 * 1024 * 1024;

/// How much of the input is kept in memory; the rest waits on disk.
const INPUT_IN_MEMORY: u64 = 64 * 1024;

/// Why `-I`'s input cannot be sent.
enum InputError {
    TooLarge,
    Unreadable(std::io::Error),
    /// The temporary file it waits in could not be made or written.
    Unspooled(std::io::Error),
}

/// Standard input, read once before any host starts: in memory when small,
/// else spooled to an unnamed temporary file (gone with the process, even
/// after a kill -9) and sent to each host from there, so that neither a
/// large input nor an endless one (`< /dev/zero`) exhausts memory.
async fn read_stdin() -> Result<StdinPiece, InputError> {
    let mut stdin = tokio::io::stdin().take(MAX_INPUT + 1);
    let mut head = Vec::new();
    (&mut stdin)
        .take(INPUT_IN_MEMORY)
        .read_to_end(&mut head)
        .await
        .map_err(InputError::Unreadable)?;
    if (head.len() as u64) < INPUT_IN_MEMORY {
        return Ok(StdinPiece::Bytes(Bytes::from(head)));
    }
    let spool = tempfile::tempfile().map_err(InputError::Unspooled)?;
    let copy = spool.try_clone().map_err(InputError::Unspooled)?;
    let mut writer = tokio::fs::File::from_std(copy);
    writer
        .write_all(&head)
        .await
        .map_err(InputError::Unspooled)?;
    let rest = copy_input(&mut stdin, &mut writer).await?;
    writer.flush().await.map_err(InputError::Unspooled)?;
    let len = head.len() as u64 + rest;
    match len > MAX_INPUT {
        true => Err(InputError::TooLarge),
        false => Ok(StdinPiece::Spool {
            file: std::sync::Arc::new(spool),
            len,
        }),
    }
}
