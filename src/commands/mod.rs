//! The command-line tools. Each parses its flags into validated settings,
//! calls the library, and maps the outcome to pssh's exit codes in one
//! place ([`exit_code`]). Signal handling and `process::exit` stay in the
//! binaries, which hand in a [`Stop`](crate::engine::Stop) per escalation.

mod args;
pub mod pcp;
pub mod pnuke;
pub mod pplay;
mod process;
pub mod prompt;
pub mod prsync;
pub mod prun;
pub mod pslurp;
mod run;

use std::ffi::OsString;

use clap::Parser;
use thiserror::Error;

use crate::engine::Category;
use crate::inventory::InventoryError;
use crate::ssh::{OptionError, SetupError};
pub use process::{init_logging, raise_open_file_limit};
pub(crate) use run::{run_tool, ToolJob};

/// pssh's exit codes.
pub mod exit {
    pub const OK: u8 = 0;
    /// Any other error (a local failure, a bug).
    pub const OTHER: u8 = 1;
    /// Bad flags, hosts file, option or key.
    pub const USAGE: u8 = 2;
    /// A host timed out or its command was killed (also Ctrl-C).
    pub const KILLED: u8 = 3;
    /// A host could not be connected to or SSH failed there.
    pub const SSH_ERROR: u8 = 4;
    /// A remote command exited non-zero.
    pub const REMOTE_FAILED: u8 = 5;
}

/// Input the operator has to fix before anything can run (exit code 2).
#[derive(Debug, Error)]
pub enum UsageError {
    #[error(transparent)]
    Inventory(#[from] InventoryError),
    #[error(transparent)]
    Option(#[from] OptionError),
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error("{0}")]
    Invalid(String),
}

/// The exit code of a finished run of any tool, from every host's outcome
/// class: killed (timed out, interrupted) beats SSH errors beats remote
/// failures beats a local error, as in pssh.
pub fn exit_code(categories: impl IntoIterator<Item = Category>) -> u8 {
    let worst = |category: Category| match category {
        Category::Ok | Category::Unchanged => exit::OK,
        Category::Internal => exit::OTHER,
        Category::TimedOut | Category::Interrupted => exit::KILLED,
        Category::Unreachable | Category::SshError => exit::SSH_ERROR,
        Category::Failed => exit::REMOTE_FAILED,
    };
    let rank = |code: u8| match code {
        exit::KILLED => 4,
        exit::SSH_ERROR => 3,
        exit::REMOTE_FAILED => 2,
        exit::OTHER => 1,
        _ => 0,
    };
    categories
        .into_iter()
        .map(worst)
        .max_by_key(|&code| rank(code))
        .unwrap_or(exit::OK)
}

/// Every tool's command line, for man pages and shell completions
/// (`fleet-docs`, which adds fleet-lab's), generated from the same clap
/// definitions the tools parse.
pub fn tool_commands() -> Vec<clap::Command> {
    use clap::CommandFactory;
    vec![
        prun::Cli::command(),
        pcp::Cli::command(),
        pslurp::Cli::command(),
        pnuke::Cli::command(),
        prsync::Cli::command(),
        pplay::Cli::command(),
    ]
}

/// Parses a tool's flags; `Err` carries the exit code after clap has
/// printed help, the version, or the usage error.
pub fn parse_flags<C: Parser>(args: impl IntoIterator<Item = OsString>) -> Result<C, u8> {
    C::try_parse_from(args).map_err(|error| {
        let _ = error.print();
        if error.use_stderr() {
            exit::USAGE
        } else {
            exit::OK
        }
    })
}
