//! What tasks do, one file per action. Each is a function of the host's
//! connection, the task's spec and the host's variables (a [`Step`]) to a
//! typed result: a [`TaskStatus`] that says truthfully whether the host
//! changed, or a [`TaskError`]. Journaling, events, guards and `on_failure`
//! are the task runner's ([`super::host`]), not theirs.

pub mod assert;
pub mod copy;
pub mod fetch;
pub mod kill;
pub mod pause;
pub mod reboot;
pub mod run;
pub mod sync;
pub mod wait_for;

use std::time::Duration;

use super::error::TaskError;
use super::event::TaskStatus;
use super::remote::Remote;
use super::vars::{expand, Vars};

/// What an action works with on its host.
pub struct Step<'a> {
    pub remote: &'a mut Remote,
    /// The host's variables, to fill in the action's fields.
    pub vars: &'a Vars,
    /// The task's limit on each of its commands (its own, else `-t`).
    pub timeout: Option<Duration>,
}

impl Step<'_> {
    /// `text` with the host's variables filled in.
    pub fn expand(&self, text: &str) -> Result<String, TaskError> {
        Ok(expand(text, self.vars)?)
    }
}

/// An action's result.
pub type Done = Result<TaskStatus, TaskError>;
