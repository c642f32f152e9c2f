//! fleet-lab's command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use super::Fault;

/// A local fleet of real OpenSSH hosts that have their own files and really reboot (needs root).
#[derive(Debug, Parser)]
#[command(name = "fleet-lab", version)]
pub struct Cli {
    /// The lab's directory
    #[arg(
        long,
        global = true,
        env = "FLEET_LAB_DIR",
        default_value = "/var/tmp/fleet-lab"
    )]
    pub dir: PathBuf,
    #[command(subcommand)]
    pub command: Action,
}

#[derive(Debug, Subcommand)]
pub enum Action {
    /// Start N hosts (a lab already running in the directory is stopped first)
    Up {
        /// How many hosts
        count: usize,
        /// Hosts get addresses 127.NET.x.y
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u8).range(1..))]
        net: u8,
        /// Port every host's sshd listens on
        #[arg(long, default_value_t = 2222)]
        port: u16,
        /// Seconds a rebooting host stays unreachable
        #[arg(long, default_value_t = 3.0)]
        downtime: f64,
        /// Seconds a host with the slow-boot fault stays unreachable
        #[arg(long, default_value_t = 30.0)]
        slow_boot: f64,
        /// Share of hosts (0 to 1) whose /var/log/messages holds the evtchn crash
        #[arg(long, default_value_t = 0.1)]
        crash_share: f64,
        /// Kernel releases the hosts report, given round-robin (K1,K2,...), each host with its own /lib/modules/K; default: the machine's
        #[arg(long, value_name = "K1,K2,...")]
        kernels: Option<String>,
        /// Start a host with a fault, as HOST=KIND (repeatable)
        #[arg(long = "fault", value_name = "HOST=KIND", value_parser = parse_host_fault)]
        faults: Vec<(String, Fault)>,
    },
    /// Stop every host of the lab; nothing is left running
    Down,
    /// Show every host's state
    Status,
    /// Give a running host a fault (down, refuse, blackhole, slow-boot, never-returns, bad-module, hostkey-changed) or clear it
    Fault {
        /// lab-007, or its address
        host: String,
        /// The fault, or `clear`
        kind: String,
    },
    /// Run the supervisor (started by `up`)
    #[command(hide = true)]
    Supervise,
}

fn parse_host_fault(text: &str) -> Result<(String, Fault), String> {
    let (host, kind) = text
        .split_once('=')
        .ok_or_else(|| format!("expected HOST=KIND, found `{text}`"))?;
    Ok((host.to_string(), kind.parse()?))
}

/// fleet-lab's command line, for its man page and completions.
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}
