//! fleet: parallel SSH for Linux fleets.
//!
//! The crate is layered so that each part knows only the ones above it:
//!
//! - [`inventory`]: which hosts (pssh hosts files, `-H`, ranges, `-g`).
//! - [`ssh`]: options, known_hosts, keys, connecting, killable remote commands.
//! - [`engine`]: fan-out with a concurrency limit, timeouts and cancellation;
//!   emits per-host [`engine::Event`]s, never prints, never exits.
//! - [`output`]: printers that consume events (pssh status lines, inline,
//!   streaming, per-host files, summary); one thread owns stdout.
//! - [`commands`]: the command-line tools, kept out of the binaries so the
//!   binaries stay a few lines each.

pub mod commands;
pub mod engine;
pub mod inventory;
pub mod lab;
pub mod output;
pub mod pattern;
pub mod ssh;
