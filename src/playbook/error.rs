//! Why a task did not succeed, typed: a refused host key, a command that
//! exited 3, a timeout and an assertion that did not hold are different
//! things to an operator (and to `on_failure`, max_fail and the summary),
//! so they stay different up to the message.

use std::time::Duration;

use thiserror::Error;

use super::vars::TemplateError;
use crate::ssh::{Kill, RemoteExit, SshError};
use crate::text::printable;

/// Why a task did not succeed.
#[derive(Debug, Error)]
pub enum TaskError {
    /// The host could not be reached, or SSH failed there.
    #[error("{0}")]
    Ssh(#[from] SshError),
    /// A command ended in a way the task does not accept.
    #[error("{}", exit_words(exit, stderr))]
    Exit { exit: RemoteExit, stderr: String },
    /// A command outlived its time and was stopped.
    #[error("timed out after {after:?}; {}", kill_words(kill))]
    Timeout { after: Duration, kill: Kill },
    /// An assertion did not hold: the operator's words when given (so hosts
    /// failing alike group together), else what was wanted.
    #[error("{}", assert_words(got, wanted, message.as_deref()))]
    Assert {
        got: String,
        wanted: String,
        message: Option<String>,
    },
    /// A rebooted host that answered, but not as itself (a changed host
    /// key) or not to us: waiting longer would not help.
    #[error("came back, but {0}")]
    CameBackRefused(SshError),
    /// A host that did not get where it had to, in time: gone down, back
    /// up, passing its test, staying up (reboot), or a command's success
    /// (`wait_for`).
    #[error("{0}")]
    NotReturned(String),
    /// A field's variables could not be filled in.
    #[error("{0}")]
    Template(#[from] TemplateError),
    /// Something on this machine failed: a file to write, a task's setup.
    #[error("{0}")]
    Local(String),
    /// The operator said no, or there was no terminal to ask on.
    #[error("{0}")]
    Declined(&'static str),
    /// Ctrl-C twice: the command was killed; the task runs again on --resume.
    #[error("aborted")]
    Aborted,
}

impl TaskError {
    /// The failure without what differs from host to host, for the
    /// summary (see [`SshError::summary_reason`]).
    pub fn summary_reason(&self) -> String {
        match self {
            TaskError::Ssh(error) => error.summary_reason(),
            TaskError::CameBackRefused(error) => {
                format!("came back, but {}", error.summary_reason())
            }
            other => other.to_string(),
        }
    }

    /// The same failure, said to have happened in `phase` of a reboot.
    pub fn in_phase(self, phase: &str) -> TaskError {
        match self {
            TaskError::Aborted => TaskError::Aborted,
            other => TaskError::NotReturned(format!("{phase}: {other}")),
        }
    }
}

/// "exit 3: <last line of stderr>" and the like.
fn exit_words(exit: &RemoteExit, stderr: &str) -> String {
    let status = match exit {
        RemoteExit::Code(code) => format!("exit {code}"),
        RemoteExit::Signal(signal) => format!("killed by signal {signal}"),
        RemoteExit::Lost => "connection lost".to_string(),
    };
    match stderr.lines().rev().find(|l| !l.trim().is_empty()) {
        Some(line) => format!("{status}: {}", printable(line.trim())),
        None => status,
    }
}

fn kill_words(kill: &Kill) -> String {
    match kill {
        Kill::Confirmed => "the command was killed".into(),
        Kill::NotConfirmed(why) => {
            format!("the command may still run on the host (KILL not confirmed: {why})")
        }
    }
}

fn assert_words(got: &str, wanted: &str, message: Option<&str>) -> String {
    match message {
        Some(message) => message.to_string(),
        None => format!("assertion failed: got `{got}`, wanted {wanted}"),
    }
}
