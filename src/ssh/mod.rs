//! Everything SSH: options, host-key checking, keys, connecting and
//! authenticating, and running a remote command that can be killed. One
//! [`Connector`] per run holds what all hosts share; it knows nothing of
//! output or of how many hosts run at once.

mod config;
mod connect;
mod exec;
mod identity;
mod known_hosts;
mod options;

use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

pub use config::ConfigFile;
pub use connect::{Connector, Session, MAX_HANDSHAKES};
pub use exec::{ProcessEvent, RemoteExit, RemoteProcess};
pub use identity::{load_default_identities, load_identity, Identity};
pub use known_hosts::{lookup_name, HostKeyStatus, KnownHosts};
pub use options::{
    expand_tilde, OptionError, SshOptions, StrictHostKeyChecking, SUPPORTED_KEYWORDS,
};

/// A problem with the run's own SSH setup, found before any host is contacted.
#[derive(Debug, Error)]
pub enum SetupError {
    #[error("identity file {}: {reason}", path.display())]
    Key { path: PathBuf, reason: String },
    #[error("{}: {message}", path.display())]
    Config { path: PathBuf, message: String },
    #[error("bad ProxyJump `{jump}`: {message}")]
    Jump { jump: String, message: String },
}

/// Why one host could not be reached or could not run the command. Carries
/// enough to tell a timeout from a refused key from a wrong password.
#[derive(Debug, Error)]
pub enum SshError {
    #[error("connection timed out after {}s", .0.as_secs())]
    ConnectTimeout(Duration),
    #[error("cannot connect: {0}")]
    Connect(#[source] std::io::Error),
    #[error("host key verification failed: {host} is not in known_hosts (server key {fingerprint}); add it, or use -O StrictHostKeyChecking=accept-new")]
    HostKeyUnknown { host: String, fingerprint: String },
    #[error("HOST KEY CHANGED for {host}: server key {fingerprint} does not match {}:{line}; refusing to connect", file.display())]
    HostKeyChanged {
        host: String,
        fingerprint: String,
        file: PathBuf,
        line: usize,
    },
    #[error("host key of {host} is revoked in {}:{line}; refusing to connect", file.display())]
    HostKeyRevoked {
        host: String,
        file: PathBuf,
        line: usize,
    },
    #[error("cannot record the host key of {host}: {source}")]
    KnownHostsWrite {
        host: String,
        source: std::io::Error,
    },
    #[error("permission denied for user {user} (tried: {tried})")]
    Auth { user: String, tried: String },
    #[error("through bastion {bastion}: {message}")]
    Bastion { bastion: String, message: String },
    #[error("connection lost before the command finished")]
    ConnectionLost,
    #[error("SSH protocol error: {0}")]
    Protocol(#[from] russh::Error),
}

impl SshError {
    /// True when the host could not be reached at all (as opposed to being
    /// reached and refusing us), for the run summary.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, SshError::ConnectTimeout(_) | SshError::Connect(_))
    }
}

/// Defaults that apply when neither the hosts entry nor an option says otherwise.
pub const DEFAULT_PORT: u16 = 22;
/// OpenSSH's ConnectTimeout is unlimited; a fleet tool cannot wait forever.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Keepalives are on by default so a dead host is noticed mid-command.
pub const DEFAULT_ALIVE_INTERVAL: Duration = Duration::from_secs(15);
/// Missed keepalives before the connection is declared dead (OpenSSH's default).
pub const DEFAULT_ALIVE_COUNT_MAX: usize = 3;
