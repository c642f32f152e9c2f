//! fleet: parallel SSH for Linux fleets.
//!
//! The crate is layered so that each part knows only the ones above it,
//! and every tool, pplay included, runs on the same parts: one remote
//! command ([`ssh::Session::run`]), one fan-out ([`engine::FanOut`]), one
//! event stream into reporters ([`output::Event`], [`output::Reporter`]),
//! one map from outcomes to exit codes ([`commands::exit_code`]).
//!
//! - [`model`]: a host as named, its entry's grammar, its file names, its
//!   variables; shared by every layer, knowing none.
//! - [`inventory`]: which hosts (pssh hosts files, `-H`, ranges, `-g`, and
//!   YAML inventories with groups and variables); knows nothing of SSH.
//! - [`ssh`]: options, ssh_config, known_hosts, keys, connecting, killable
//!   remote commands, pnuke's and pcp's remote scripts.
//! - [`engine`]: fan-out with a concurrency limit, timeouts and the
//!   operator's stop; emits per-host events, never prints, never exits.
//! - [`output`]: reporters that consume events (pssh status lines, inline,
//!   streaming, gathered, JSON, per-host files, summary, pplay's text and
//!   JSON, progress); one thread owns stdout.
//! - [`playbook`]: pplay's rolling rollouts (tasks, verified reboots,
//!   max_fail, journal and resume) on the same connection, fan-out and
//!   events; returns a typed report, never prints.
//! - [`commands`]: the command-line tools, kept out of the binaries so the
//!   binaries stay a few lines each.
//! - Leaves: [`yaml`] (FILE:LINE:COLUMN errors), [`text`] (operator files,
//!   bounded and strictly UTF-8), [`duration`] (bounded durations),
//!   [`partial_file`] (local files that appear only whole), [`pattern`]
//!   (shell-style wildcards), [`clock`] (local times for messages).

/// The version `--version` prints: the crate's, and the git commit it was
/// built from (`unknown` when built outside a git checkout).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("FLEET_COMMIT"),
    ")"
);

pub mod clock;
pub mod commands;
pub mod duration;
pub mod engine;
pub mod inventory;
pub mod model;
pub mod output;
pub mod partial_file;
pub mod pattern;
pub mod playbook;
pub mod ssh;
pub mod text;
pub mod yaml;
