//! Everything SSH: options, host-key checking, keys, connecting and
//! authenticating, and running a remote command that can be killed. One
//! [`Connector`] per run holds what all hosts share; it knows nothing of
//! output or of how many hosts run at once.

mod algorithms;
mod auth;
mod config;
mod connect;
mod exec;
mod identity;
mod known_hosts;
mod matching;
mod nuke;
mod operator;
mod options;
mod resolve;
mod sudo;
pub mod sync;
mod tokens;
pub mod transfer;

use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;

use crate::text::TextError;

pub use config::ConfigFile;
pub use connect::{Connector, Session, MAX_HANDSHAKES};
pub use exec::{
    check_length, shell_quote, Command, Kill, OutputSink, RemoteExit, RunEnd, StdinPiece, Stream,
    KILL_CONFIRM_LIMIT,
};
pub use identity::{load_default_identities, load_identity, Identity};
pub use known_hosts::{lookup_name, HostKeyStatus, KnownHosts};
pub use nuke::{parse_pattern, parse_signal, Nuke};
pub use options::{
    expand_tilde, OptionError, SshOptions, StrictHostKeyChecking, SUPPORTED_KEYWORDS,
};
pub use sudo::Sudo;

/// A problem with the run's own SSH setup, found before any host is contacted.
#[derive(Debug, Error)]
pub enum SetupError {
    #[error("identity file {}: {reason}", path.display())]
    Key { path: PathBuf, reason: String },
    #[error("wrong passphrase for {}", .0.display())]
    WrongPassphrase(PathBuf),
    #[error("{}: {message}", path.display())]
    Config { path: PathBuf, message: String },
    #[error("{}:{line}: {message}", path.display())]
    ConfigLine {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("bad ProxyJump `{jump}`: {message}")]
    Jump { jump: String, message: String },
    /// A known_hosts file that cannot be one: a directory, a device (other
    /// than /dev/null), a FIFO, something huge or unreadable.
    #[error("known_hosts file {}: {reason}", path.display())]
    KnownHosts { path: PathBuf, reason: TextError },
}

/// How the operator is asked for a secret on the terminal; `None` when
/// there is no terminal or the operator gave nothing.
pub type Ask = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Secrets for authentication, gathered at the binary's edge and never
/// logged, printed, or put in argv or the environment.
#[derive(Default)]
pub struct Secrets {
    /// For password and keyboard-interactive authentication (`-A`).
    pub password: Option<String>,
    /// For every encrypted key (`--passphrase-file`).
    pub passphrase: Option<String>,
    /// Asks for an encrypted key's passphrase when none was given.
    pub ask: Option<Ask>,
}

impl Secrets {
    /// The passphrase for the key at `path`: the one given, or asked for.
    pub fn passphrase_for(&self, path: &Path) -> Option<String> {
        if let Some(passphrase) = &self.passphrase {
            return Some(passphrase.clone());
        }
        let ask = self.ask.as_ref()?;
        ask(&format!("Enter passphrase for key '{}': ", path.display()))
    }
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field(
                "passphrase",
                &self.passphrase.as_ref().map(|_| "<redacted>"),
            )
            .finish_non_exhaustive()
    }
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
    #[error("host certificate of {host} refused: {reason}")]
    HostCertificate { host: String, reason: String },
    #[error("cannot record the host key of {host}: {source}")]
    KnownHostsWrite {
        host: String,
        source: std::io::Error,
    },
    #[error("permission denied for user {user} (tried: {tried})")]
    Auth { user: String, tried: String },
    #[error("through bastion {bastion}: {message}")]
    Bastion { bastion: String, message: String },
    /// sudo would not run the command: a wrong or missing password.
    #[error("sudo: {0}")]
    Sudo(String),
    #[error("ssh-agent at {}: {message}", socket.display())]
    Agent { socket: PathBuf, message: String },
    #[error("connection lost before the command finished")]
    ConnectionLost,
    /// Over [`exec::MAX_EXEC_LINE`]: the host's shell could not be started with it.
    #[error("the command is too long: {bytes} bytes as sent (fleet's wrapper holds it twice), over the {} bytes a Linux host's shell takes as one command; copy it to the hosts as a script with pcp and run that", exec::MAX_EXEC_LINE)]
    CommandTooLong { bytes: usize },
    #[error("SSH protocol error: {0}")]
    Protocol(#[from] russh::Error),
}

impl SshError {
    /// The error without what differs from host to host (its name, its
    /// key's fingerprint), so that a summary shows 1,000 hosts refused for
    /// the same reason as one line; the per-host lines keep the details.
    pub fn summary_reason(&self) -> String {
        match self {
            SshError::HostKeyUnknown { .. } => "host key verification failed: not in known_hosts; \
                 add them, or use -O StrictHostKeyChecking=accept-new"
                .into(),
            SshError::HostKeyChanged { file, .. } => format!(
                "HOST KEY CHANGED: server key does not match {}; refusing to connect",
                file.display()
            ),
            SshError::HostKeyRevoked { file, .. } => format!(
                "host key revoked in {}; refusing to connect",
                file.display()
            ),
            SshError::HostCertificate { reason, .. } => {
                format!("host certificate refused: {reason}")
            }
            SshError::KnownHostsWrite { source, .. } => {
                format!("cannot record the host key: {source}")
            }
            other => other.to_string(),
        }
    }

    /// True when the host could not be reached at all (as opposed to being
    /// reached and refusing us), for the run summary.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, SshError::ConnectTimeout(_) | SshError::Connect(_))
    }

    /// True when sudo refused the password: the same password will be
    /// refused on every host that asks for it.
    pub fn is_wrong_sudo_password(&self) -> bool {
        matches!(self, SshError::Sudo(reason) if reason == WRONG_SUDO_PASSWORD)
    }

    /// True when the host was reached and the command refused on it (sudo
    /// said no): a failure of the command, not of the connection.
    pub fn is_command_refused(&self) -> bool {
        matches!(self, SshError::Sudo(_) | SshError::CommandTooLong { .. })
    }

    /// True when trying again cannot help until someone changes something:
    /// a host key known_hosts does not vouch for, or credentials refused.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            SshError::HostKeyUnknown { .. }
                | SshError::HostKeyChanged { .. }
                | SshError::HostKeyRevoked { .. }
                | SshError::HostCertificate { .. }
                | SshError::Auth { .. }
        )
    }
}

/// What sudo's refusal of the password is reported as.
pub const WRONG_SUDO_PASSWORD: &str = "incorrect password";

/// Defaults that apply when neither the hosts entry nor an option says otherwise.
pub const DEFAULT_PORT: u16 = 22;
/// OpenSSH's ConnectTimeout is unlimited; a fleet tool cannot wait forever.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Keepalives are on by default so a dead host is noticed mid-command.
pub const DEFAULT_ALIVE_INTERVAL: Duration = Duration::from_secs(15);
/// Missed keepalives before the connection is declared dead (OpenSSH's default).
pub const DEFAULT_ALIVE_COUNT_MAX: usize = 3;
