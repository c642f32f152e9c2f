//! fleet: parallel SSH for Linux fleets.
//!
//! The crate is layered so that each part knows only the ones above it:
//!
//! - [`model`]: a host as named, its entry's grammar, its file names, its
//!   variables; shared by every layer, knowing none.
//! - [`inventory`]: which hosts (pssh hosts files, `-H`, ranges, `-g`, and
//!   YAML inventories with groups and variables).
//! - [`ssh`]: options, known_hosts, keys, connecting, killable remote commands.
//! - [`engine`]: fan-out with a concurrency limit, timeouts and cancellation;
//!   emits per-host [`engine::Event`]s, never prints, never exits.
//! - [`output`]: printers that consume events (pssh status lines, inline,
//!   streaming, per-host files, summary); one thread owns stdout.
//! - [`playbook`]: pplay's rolling rollouts (tasks, verified reboots,
//!   max_fail, journal and resume); emits its own events, never prints.
//! - [`yaml`]: reading YAML with FILE:LINE:COLUMN errors.
//! - [`clock`]: local wall-clock times for status lines and messages.
//! - [`partial_file`]: local files that appear only whole (pulls, fetches).
//! - [`text`]: reading operator-written files strictly as UTF-8.
//! - [`duration`]: the durations operators write, bounded so that no
//!   deadline arithmetic can overflow.
//! - [`commands`]: the command-line tools, kept out of the binaries so the
//!   binaries stay a few lines each.

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
