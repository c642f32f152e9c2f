//! Connecting one host: TCP, key exchange with host-key verification, and
//! public-key authentication, all under the connect timeout.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use russh::client::{self, Handle};
use russh::keys::{Algorithm, HashAlg, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use russh::Preferred;
use tokio::net::TcpStream;

use super::identity::{load_identities, Identity};
use super::known_hosts::{HostKeyStatus, KnownHosts};
use super::options::{expand_tilde, SshOptions, StrictHostKeyChecking};
use super::{
    SetupError, SshError, DEFAULT_ALIVE_COUNT_MAX, DEFAULT_ALIVE_INTERVAL, DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_PORT,
};
use crate::inventory::Host;

/// What every connection of a run shares, resolved once: settings, keys,
/// known hosts and the russh configuration.
#[derive(Debug)]
pub struct Connector {
    /// The russh configuration most hosts share.
    config: Arc<client::Config>,
    keepalive: Keepalive,
    default_user: String,
    default_port: u16,
    strict: StrictHostKeyChecking,
    connect_timeout: Duration,
    identities: Vec<Identity>,
    known_hosts: Arc<KnownHosts>,
    /// Bounds handshakes in flight; see [`MAX_HANDSHAKES`].
    handshakes: tokio::sync::Semaphore,
}

/// Most SSH handshakes (TCP, key exchange, auth) in flight at once, whatever
/// `-p` says. Sessions past their handshake are not limited, so `-p 1000`
/// still runs 1000 commands at once; but 1000 simultaneous handshakes only
/// queue on the servers' and our CPU, hold russh's per-connection buffers
/// (about 100 KB each) meanwhile, and risk spurious connect timeouts.
pub const MAX_HANDSHAKES: usize = 256;

impl Connector {
    /// Resolves `options` against OpenSSH's defaults and loads keys and known_hosts.
    pub fn new(options: &SshOptions) -> Result<Self, SetupError> {
        let alive_interval = options
            .server_alive_interval
            .unwrap_or(DEFAULT_ALIVE_INTERVAL);
        let keepalive = Keepalive {
            interval: (!alive_interval.is_zero()).then_some(alive_interval),
            max_missed: options
                .server_alive_count_max
                .unwrap_or(DEFAULT_ALIVE_COUNT_MAX),
        };
        let user_files = options.user_known_hosts_files.clone().unwrap_or_else(|| {
            vec![
                expand_tilde("~/.ssh/known_hosts"),
                expand_tilde("~/.ssh/known_hosts2"),
            ]
        });
        let global_files = options.global_known_hosts_files.clone().unwrap_or_else(|| {
            vec![
                "/etc/ssh/ssh_known_hosts".into(),
                "/etc/ssh/ssh_known_hosts2".into(),
            ]
        });
        let all_files: Vec<_> = user_files.iter().chain(&global_files).cloned().collect();
        Ok(Connector {
            config: Arc::new(keepalive.russh_config(Preferred::DEFAULT.key)),
            keepalive,
            default_user: options.user.clone().unwrap_or_else(local_user_name),
            default_port: options.port.unwrap_or(DEFAULT_PORT),
            strict: options
                .strict_host_key_checking
                .unwrap_or(StrictHostKeyChecking::Yes),
            connect_timeout: options.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT),
            identities: load_identities(&options.identity_files)?,
            known_hosts: Arc::new(KnownHosts::load(&all_files, user_files.first().cloned())),
            handshakes: tokio::sync::Semaphore::new(MAX_HANDSHAKES),
        })
    }

    /// The user a host is logged into: its entry's, else the run's.
    pub fn user_for<'a>(&'a self, host: &'a Host) -> &'a str {
        host.user.as_deref().unwrap_or(&self.default_user)
    }

    /// The port a host is reached on: its entry's, else the run's.
    pub fn port_for(&self, host: &Host) -> u16 {
        host.port.unwrap_or(self.default_port)
    }

    /// Connects, verifies the host key and authenticates, all within the
    /// connect timeout (a host that accepts TCP and never speaks hits it too).
    pub async fn connect(&self, host: &Host) -> Result<Session, SshError> {
        // The connect timeout starts once a handshake slot is ours.
        let _slot = self.handshakes.acquire().await;
        let attempt = async {
            let port = self.port_for(host);
            let stream = TcpStream::connect((host.name.as_str(), port))
                .await
                .map_err(SshError::Connect)?;
            let verifier = HostKeyVerifier {
                known_hosts: Arc::clone(&self.known_hosts),
                host: host.name.clone(),
                port,
                strict: self.strict,
            };
            let mut handle =
                client::connect_stream(self.config_for(&host.name, port), stream, verifier).await?;
            authenticate(&mut handle, self.user_for(host), &self.identities).await?;
            Ok(Session { handle })
        };
        tokio::time::timeout(self.connect_timeout, attempt)
            .await
            .map_err(|_| SshError::ConnectTimeout(self.connect_timeout))?
    }

    /// Asks the server first for a host-key type known_hosts already has for
    /// it, as OpenSSH does; otherwise a host with only, say, an ECDSA entry
    /// would offer ed25519 and be refused as unknown.
    fn config_for(&self, host: &str, port: u16) -> Arc<client::Config> {
        let known = self.known_hosts.known_algorithms(host, port);
        let default = &self.config.preferred.key;
        let (mut preferred, rest): (Vec<Algorithm>, Vec<Algorithm>) = default
            .iter()
            .cloned()
            .partition(|a| known.iter().any(|k| same_family(a, k)));
        if preferred.is_empty() || default.starts_with(&preferred) {
            return Arc::clone(&self.config);
        }
        preferred.extend(rest);
        Arc::new(self.keepalive.russh_config(preferred.into()))
    }
}

/// ServerAliveInterval and ServerAliveCountMax, kept to build per-host configs.
#[derive(Debug, Clone, Copy)]
struct Keepalive {
    interval: Option<Duration>,
    max_missed: usize,
}

impl Keepalive {
    fn russh_config(self, host_key_algorithms: Cow<'static, [Algorithm]>) -> client::Config {
        client::Config {
            keepalive_interval: self.interval,
            keepalive_max: self.max_missed,
            nodelay: true,
            preferred: Preferred {
                key: host_key_algorithms,
                ..Preferred::DEFAULT
            },
            ..Default::default()
        }
    }
}

fn same_family(a: &Algorithm, b: &Algorithm) -> bool {
    matches!((a, b), (Algorithm::Rsa { .. }, Algorithm::Rsa { .. })) || a == b
}

/// One authenticated connection to a host, reused for everything done there.
pub struct Session {
    pub(super) handle: Handle<HostKeyVerifier>,
}

impl Session {
    /// Says goodbye to the server; errors are moot at this point.
    pub async fn close(self) {
        let _ = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
    }
}

/// russh's callback object: checks the server's key against known_hosts.
pub(super) struct HostKeyVerifier {
    known_hosts: Arc<KnownHosts>,
    host: String,
    port: u16,
    strict: StrictHostKeyChecking,
}

impl client::Handler for HostKeyVerifier {
    type Error = SshError;

    async fn check_server_key(
        &mut self,
        offered: &PublicKeyOrCertificate,
    ) -> Result<bool, SshError> {
        // Certificate algorithms are never advertised, so a server cannot send one.
        let PublicKeyOrCertificate::PublicKey { key, .. } = offered else {
            return Ok(false);
        };
        let name = super::lookup_name(&self.host, self.port);
        match self.known_hosts.check(&self.host, self.port, key) {
            HostKeyStatus::Trusted => Ok(true),
            HostKeyStatus::Revoked { file, line } => Err(SshError::HostKeyRevoked {
                host: name,
                file,
                line,
            }),
            HostKeyStatus::Changed { .. } if self.strict == StrictHostKeyChecking::No => {
                tracing::warn!(host = %name, "host key changed; accepted because StrictHostKeyChecking=no");
                Ok(true)
            }
            HostKeyStatus::Changed { file, line } => Err(SshError::HostKeyChanged {
                host: name,
                fingerprint: fingerprint(key),
                file,
                line,
            }),
            HostKeyStatus::Unknown => match self.strict {
                StrictHostKeyChecking::Yes => Err(SshError::HostKeyUnknown {
                    host: name,
                    fingerprint: fingerprint(key),
                }),
                StrictHostKeyChecking::No => Ok(true),
                StrictHostKeyChecking::AcceptNew => self.record(key.clone()).await.map(|()| true),
            },
        }
    }
}

impl HostKeyVerifier {
    async fn record(&self, key: PublicKey) -> Result<(), SshError> {
        let (known_hosts, host, port) =
            (Arc::clone(&self.known_hosts), self.host.clone(), self.port);
        let write_error = |source| SshError::KnownHostsWrite {
            host: self.host.clone(),
            source,
        };
        tokio::task::spawn_blocking(move || known_hosts.append(&host, port, &key))
            .await
            .map_err(|join| write_error(std::io::Error::other(join)))?
            .map_err(write_error)
    }
}

fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// Offers each identity in turn; the error names every method tried.
async fn authenticate(
    handle: &mut Handle<HostKeyVerifier>,
    user: &str,
    identities: &[Identity],
) -> Result<(), SshError> {
    if identities.is_empty() {
        return Err(SshError::Auth {
            user: user.to_string(),
            tried: "nothing: no key in ~/.ssh and none given with --identity or -O IdentityFile"
                .into(),
        });
    }
    // OpenSSH 8.8+ refuses SHA-1 RSA signatures; ask the server what it takes.
    let rsa_hash = match identities.iter().any(|i| i.key.algorithm().is_rsa()) {
        true => handle
            .best_supported_rsa_hash()
            .await?
            .flatten()
            .or(Some(HashAlg::Sha256)),
        false => None,
    };
    let mut tried = Vec::new();
    for identity in identities {
        let key = PrivateKeyWithHashAlg::new(Arc::clone(&identity.key), rsa_hash);
        if handle.authenticate_publickey(user, key).await?.success() {
            return Ok(());
        }
        tried.push(format!("publickey {}", identity.path.display()));
    }
    Err(SshError::Auth {
        user: user.to_string(),
        tried: tried.join(", "),
    })
}

/// The local login name, the default remote user as for ssh.
fn local_user_name() -> String {
    if let Some(name) = std::env::var_os("USER").or_else(|| std::env::var_os("LOGNAME")) {
        return name.to_string_lossy().into_owned();
    }
    // SAFETY: getpwuid returns a pointer into static storage or null; we copy
    // the name out immediately and never keep the pointer.
    unsafe {
        let entry = libc::getpwuid(libc::getuid());
        if entry.is_null() {
            return "root".into();
        }
        std::ffi::CStr::from_ptr((*entry).pw_name)
            .to_string_lossy()
            .into_owned()
    }
}
