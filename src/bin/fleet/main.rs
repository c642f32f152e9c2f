//! `fleet`: the one binary of every tool. Called as `prun`, `pcp`,
//! `pslurp`, `pnuke`, `prsync` or `pplay` (links to it, or `fleet-prun`...
//! where those names are taken) it is that tool; called as `fleet` it takes
//! the tool as a subcommand (`fleet run`, `fleet cp`, ..., `fleet docs`).

mod signals;

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

use fleet::commands::{docs, Tool};
use fleet::engine::Stop;

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let program = args
        .first()
        .and_then(|arg| Path::new(arg).file_name())
        .and_then(|name| name.to_str())
        .unwrap_or("fleet");
    if let Some(tool) = Tool::from_program_name(program) {
        return run(tool, args);
    }
    let subcommand = args.get(1).and_then(|arg| arg.to_str()).unwrap_or("");
    if subcommand == "docs" {
        return ExitCode::from(docs::main(named_args("fleet docs", &args)));
    }
    match Tool::from_subcommand(subcommand) {
        Some(tool) => {
            let name = format!("fleet {subcommand}");
            run(tool, named_args(&name, &args))
        }
        None => ExitCode::from(fleet::commands::fleet_usage(args)),
    }
}

/// A subcommand's arguments as its tool parses them: the program name
/// (which help and errors show) first.
fn named_args(name: &str, args: &[OsString]) -> Vec<OsString> {
    let mut named = vec![OsString::from(name)];
    named.extend(args.iter().skip(2).cloned());
    named
}

/// Runs one tool under the stop signals it listens to.
fn run(tool: Tool, args: Vec<OsString>) -> ExitCode {
    use fleet::commands::{pcp, pnuke, prsync, prun, pslurp};
    signals::run(tool.link_name(), || async move {
        match tool {
            Tool::Run => prun::main(args, signals::stop_on_signals()).await,
            Tool::Cp => pcp::main(args, signals::stop_on_signals()).await,
            Tool::Slurp => pslurp::main(args, signals::stop_on_signals()).await,
            Tool::Nuke => pnuke::main(args, signals::stop_on_signals()).await,
            Tool::Sync => prsync::main(args, signals::stop_on_signals()).await,
            Tool::Play => play(args).await,
        }
    })
}

/// A stop signal before the play begins ends pplay at once. Once it runs,
/// the first stop signal (Ctrl-C, SIGTERM or SIGHUP) starts no new host and
/// lets running tasks finish (the closing summary gives the resume
/// command); the second kills the running commands (they run again on
/// --resume); the third exits now.
async fn play(args: Vec<OsString>) -> u8 {
    let (stop, abort) = (Stop::new(), Stop::new());
    signals::escalate(vec![
        (
            stop.clone(),
            "running tasks finish, no new host starts (once more to kill them)",
        ),
        (
            abort.clone(),
            "killing the running tasks (once more to quit at once)",
        ),
    ]);
    fleet::commands::pplay::main(args, stop, abort).await
}
