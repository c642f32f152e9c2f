//! The command-line tools. Each parses its flags into validated settings,
//! calls the library, and maps the outcome to pssh's exit codes in one
//! place ([`exit_code`]). Signal handling and `process::exit` stay in the
//! binaries, which hand in a [`Stop`](crate::engine::Stop) per escalation.

mod args;
pub mod docs;
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

/// What the pssh-style tools' `--help` and man pages say of their exit status.
pub const EXIT_STATUS: &str = "\
Exit status (the worst host wins: 3, then 4, then 5, then 1):
  0  every host succeeded (or was unchanged)
  1  a local error: a file that cannot be written, a machine out of resources
  2  bad flags, hosts file, option or key: nothing ran
  3  a command outlived -t, or the run was stopped (Ctrl-C, SIGTERM, SIGHUP)
  4  a host could not be connected to (refused, timed out), or SSH failed there
  5  a command failed on a host: it exited non-zero or was killed
  128+N  a stop signal before the run began, or a second one (130 INT, 143 TERM, 129 HUP)";

/// pplay's exit status, which counts a host that could not be reached as
/// failed, and takes three stop signals to quit at once.
pub const PPLAY_EXIT_STATUS: &str = "\
Exit status:
  0  every host is done (in this run or the one resumed)
  1  a local error: the journal cannot be written, a machine out of resources
  2  bad flags, inventory, playbook, journal, option or key: nothing ran
  3  the run was stopped (Ctrl-C, SIGTERM, SIGHUP); --resume continues it
  4  --check could not check a host
  5  a host failed: a task, its reboot, or its connection
  128+N  a stop signal before the run began, or a third one (130 INT, 143 TERM, 129 HUP)";

/// The tools of the one `fleet` binary: each is a subcommand (`fleet run`)
/// and a pssh-style name the binary answers to when called by it (`prun`,
/// a link to `fleet`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tool {
    Run,
    Cp,
    Slurp,
    Nuke,
    Sync,
    Play,
}

impl Tool {
    pub const ALL: [Tool; 6] = [
        Tool::Run,
        Tool::Cp,
        Tool::Slurp,
        Tool::Nuke,
        Tool::Sync,
        Tool::Play,
    ];

    /// `fleet`'s subcommand for the tool.
    pub fn subcommand(self) -> &'static str {
        match self {
            Tool::Run => "run",
            Tool::Cp => "cp",
            Tool::Slurp => "slurp",
            Tool::Nuke => "nuke",
            Tool::Sync => "sync",
            Tool::Play => "play",
        }
    }

    /// The pssh-style name the tool keeps as a link to `fleet`.
    pub fn link_name(self) -> &'static str {
        match self {
            Tool::Run => "prun",
            Tool::Cp => "pcp",
            Tool::Slurp => "pslurp",
            Tool::Nuke => "pnuke",
            Tool::Sync => "prsync",
            Tool::Play => "pplay",
        }
    }

    /// The tool's command line under its link name, for man pages and
    /// completions.
    pub fn command(self) -> clap::Command {
        self.command_named(self.link_name())
    }

    /// The tool's command line when called by `name` (`pcp`, `fleet-pcp`,
    /// `fleet cp`): its usage says that name.
    pub fn command_named(self, name: &str) -> clap::Command {
        let command = self.derived_command();
        match self.usage() {
            [] => command,
            forms => {
                let lines: Vec<String> =
                    forms.iter().map(|form| format!("{name} {form}")).collect();
                command.override_usage(lines.join("\n       "))
            }
        }
    }

    /// What follows the name in the tool's usage lines; empty where clap's
    /// own usage says it.
    fn usage(self) -> &'static [&'static str] {
        match self {
            Tool::Run => &[],
            Tool::Cp => pcp::USAGE,
            Tool::Slurp => pslurp::USAGE,
            Tool::Nuke => pnuke::USAGE,
            Tool::Sync => prsync::USAGE,
            Tool::Play => pplay::USAGE,
        }
    }

    fn derived_command(self) -> clap::Command {
        use clap::CommandFactory;
        match self {
            Tool::Run => prun::Cli::command(),
            Tool::Cp => pcp::Cli::command(),
            Tool::Slurp => pslurp::Cli::command(),
            Tool::Nuke => pnuke::Cli::command(),
            Tool::Sync => prsync::Cli::command(),
            Tool::Play => pplay::Cli::command(),
        }
    }

    /// The tool a program is when called by `name`: its link name, or the
    /// link name with a `fleet-` prefix (where Performance Co-Pilot's `pcp`
    /// or Open MPI's `prun` already own the plain name).
    pub fn from_program_name(name: &str) -> Option<Tool> {
        let name = name.strip_prefix("fleet-").unwrap_or(name);
        Tool::ALL.into_iter().find(|tool| tool.link_name() == name)
    }

    /// The tool `fleet SUBCOMMAND` names.
    pub fn from_subcommand(name: &str) -> Option<Tool> {
        Tool::ALL.into_iter().find(|tool| tool.subcommand() == name)
    }
}

/// `fleet`'s own command line: the tools as subcommands, and `docs`.
pub fn fleet_command() -> clap::Command {
    let tools = Tool::ALL.map(|tool| {
        let command = tool.command_named(&format!("fleet {}", tool.subcommand()));
        let about = command.get_about().cloned().unwrap_or_default();
        command
            .name(tool.subcommand())
            .about(format!("{about} (also `{}`)", tool.link_name()))
    });
    clap::Command::new("fleet")
        .version(crate::VERSION)
        .about("Parallel SSH for Linux fleets: one binary for every tool")
        .subcommand_required(true)
        .arg_required_else_help(true)
        .subcommands(tools)
        .subcommand(docs::command().name("docs"))
        .after_help(format!(
            "Called by a tool's name (a link to fleet: prun, pcp, pslurp, pnuke, prsync, pplay, \
             or the same with a fleet- prefix), fleet is that tool.\n\n{EXIT_STATUS}"
        ))
}

/// `fleet` called with no tool it knows: clap prints the help, the
/// version or the error; returns the exit code.
pub fn fleet_usage(args: Vec<OsString>) -> u8 {
    match fleet_command().try_get_matches_from(args) {
        Ok(_) => exit::USAGE,
        Err(error) => {
            let _ = error.print();
            match error.use_stderr() {
                true => exit::USAGE,
                false => exit::OK,
            }
        }
    }
}

/// Parses `tool`'s flags (`args[0]` is the name it was called by, which
/// its usage says); `Err` carries the exit code after clap has printed
/// help, the version, or the usage error.
pub fn parse_flags<C: Parser>(
    tool: Tool,
    args: impl IntoIterator<Item = OsString>,
) -> Result<C, u8> {
    let args: Vec<OsString> = args.into_iter().collect();
    let name = args
        .first()
        .and_then(|arg| std::path::Path::new(arg).file_name())
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| tool.link_name().to_string());
    let parsed = tool
        .command_named(&name)
        .try_get_matches_from(args)
        .and_then(|matches| <C as clap::FromArgMatches>::from_arg_matches(&matches));
    parsed.map_err(|error| {
        let _ = error.print();
        if error.use_stderr() {
            exit::USAGE
        } else {
            exit::OK
        }
    })
}
