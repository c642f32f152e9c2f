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
//! - `commands`: the command-line tools of the `fleet` binary, kept out of
//!   it so that it stays small; public for that binary only, and not part of
//!   the API (hidden from these docs).
//! - Leaves, private to the crate: `yaml` (FILE:LINE:COLUMN errors), `text`
//!   (operator files, bounded and strictly UTF-8), `duration` (bounded
//!   durations), `partial_file` (local files that appear only whole),
//!   `pattern` (shell-style wildcards), `clock` (local times for messages).
//!
//! # Using fleet as a library
//!
//! As pssh ships psshlib, fleet's engine serves programs of your own. The
//! path is the tools': hosts from the [`inventory`], a [`ssh::Connector`]
//! that knows how to reach them (options, keys, known_hosts), a
//! [`engine::Run`] of an [`engine::Job`] on all of them, and its
//! [`engine::Event`]s (output as it comes, each host's end) and
//! [`engine::HostResult`]s. Cancel it with the token given to
//! [`engine::Run::execute`]: remote commands are then killed on their hosts.
//! A transfer is a job too: its [`engine::Job::stdin`] carries the files
//! and its command the script that installs them (`ssh::transfer`).
//!
//! ```no_run
//! use std::sync::Arc;
//! use fleet::engine::{Event, Job, Run};
//! use fleet::ssh::{Connector, Secrets, SshOptions};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let hosts: Arc<[_]> = fleet::inventory::parse_hosts_text("web1\nweb2:2222\n", "inline")?.into();
//!     let options = SshOptions { user: Some("ops".into()), ..SshOptions::default() };
//!     let connector = Connector::new(&hosts, &options, None, Secrets::default())?;
//!     let mut run = Run::new(Arc::new(connector), Arc::clone(&hosts), Job::new("uptime"));
//!     run.parallelism = 100;
//!     let (events, mut received) = tokio::sync::mpsc::channel::<Event>(256);
//!     let running = tokio::spawn(run.execute(events, Default::default()));
//!     while let Some(event) = received.recv().await {
//!         if let Event::Output { host, data, .. } = event {
//!             print!("{}: {}", hosts[host].name, String::from_utf8_lossy(&data));
//!         }
//!     }
//!     for (host, result) in hosts.iter().zip(running.await?) {
//!         println!("{} took {:?}: {:?}", host.name, result.duration, result.outcome.category());
//!     }
//!     Ok(())
//! }
//! ```
//!
//! `examples/slowest.rs` is a whole program of this kind (CI runs it).

/// The version `--version` prints: the crate's, and the git commit it was
/// built from (`unknown` when built outside a git checkout).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("FLEET_COMMIT"),
    ")"
);

pub(crate) mod clock;
#[doc(hidden)]
pub mod commands;
pub(crate) mod duration;
pub mod engine;
pub mod inventory;
pub mod model;
pub mod output;
pub(crate) mod partial_file;
pub(crate) mod pattern;
pub mod playbook;
pub mod ssh;
pub(crate) mod text;
pub(crate) mod yaml;
