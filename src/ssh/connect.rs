//! Connecting one host, with the settings `resolve.rs` found for it before
//! the run. A connection goes over TCP or through a bastion's direct-tcpip
//! channel (ProxyJump; one shared connection per bastion chain), then key
//! exchange with host-key verification and authentication, all under the
//! connect timeout.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use russh::client::{self, Handle};
use russh::keys::agent::AgentIdentity;
use russh::keys::{HashAlg, PublicKey, PublicKeyOrCertificate};
use tokio::net::TcpStream;
use tokio::sync::{Mutex, OnceCell, Semaphore};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::auth::{authenticate, Credentials};
use super::config::ConfigFile;
use super::identity::agent_identities;
use super::known_hosts::{HostKeyStatus, KnownHosts};
use super::operator::{within, Operator, OperatorClock};
use super::options::{SshOptions, StrictHostKeyChecking};
use super::resolve::{Resolver, Target};
use super::sudo::Sudo;
use super::{Secrets, SetupError, SshError};
use crate::model::Host;

/// Most SSH handshakes (TCP, key exchange, auth) in flight at once, whatever
/// `-p` says. Sessions past their handshake are not limited, so `-p 1000`
/// still runs 1000 commands at once; but 1000 simultaneous handshakes only
/// queue on the servers' and our CPU, hold russh's per-connection buffers
/// (about 100 KB each, locked in memory) meanwhile, and risk spurious
/// connect timeouts. 96 keep 1,000 hosts near 33 MB; on a link with 100 ms
/// of round trip (a handshake is about four) they still start some 240
/// hosts a second.
pub const MAX_HANDSHAKES: usize = 96;

/// A shared bastion connection, or why it could not be made.
type BastionCell = Arc<OnceCell<Result<Arc<Session>, String>>>;

/// What every connection of a run shares: each host's resolved settings,
/// the secrets, and the bastion connections made so far.
pub struct Connector {
    targets: HashMap<Host, Arc<Target>>,
    /// For password and keyboard-interactive authentication (`-A`).
    password: Option<String>,
    /// Answers keyboard-interactive prompts the password cannot (a one-time code).
    operator: Operator,
    /// The first host where sudo refused the password: hosts that have
    /// not asked yet are not made to (a mistyped password would otherwise
    /// be one failed sudo, counted against the account, per host).
    sudo_refused: std::sync::OnceLock<String>,
    /// The keys ssh-agent holds, listed once, at the first connection.
    /// The keys of each agent socket a host uses, listed once per run.
    agent_keys: Mutex<HashMap<PathBuf, Arc<OnceCell<Vec<AgentIdentity>>>>>,
    bastions: Mutex<HashMap<String, BastionCell>>,
    handshakes: Semaphore,
}

impl Connector {
    /// Runs commands as `user` (a checked user name) through sudo,
    /// answering its prompt with the run's password (`-A`), if any.
    pub fn sudo_as(&self, user: &str) -> Sudo {
        Sudo::new(user, self.password.as_deref())
    }

    /// Notes that sudo refused the run's password on `host`.
    pub fn sudo_password_refused_on(&self, host: &str) {
        let _ = self.sudo_refused.set(host.to_string());
    }

    /// The host where sudo refused the run's password, if it did anywhere.
    pub fn sudo_password_refused(&self) -> Option<&str> {
        self.sudo_refused.get().map(String::as_str)
    }

    /// Resolves the settings of every host. A key named on the command line
    /// that cannot be loaded (or decrypted), or a bad ssh_config value,
    /// fails here, before any host is contacted.
    pub fn new(
        hosts: &[Host],
        options: &SshOptions,
        config: Option<&ConfigFile>,
        secrets: Secrets,
    ) -> Result<Self, SetupError> {
        let unset = SshOptions::default();
        let hosts: Vec<_> = hosts.iter().map(|host| (host, &unset)).collect();
        Self::with_host_options(&hosts, options, config, secrets)
    }

    /// Like [`Connector::new`], with settings of each host's own (from a
    /// YAML inventory) that rank like its hosts entry: above the command
    /// line. Key files named there must load, like the command line's.
    pub fn with_host_options(
        hosts: &[(&Host, &SshOptions)],
        options: &SshOptions,
        config: Option<&ConfigFile>,
        secrets: Secrets,
    ) -> Result<Self, SetupError> {
        let mut resolver = Resolver::new(options, config, &secrets)?;
        let mut targets = HashMap::with_capacity(hosts.len());
        for (host, own) in hosts {
            if !targets.contains_key(*host) {
                let target = resolver.resolve(host, own)?;
                targets.insert((*host).clone(), Arc::new(target));
            }
        }
        Ok(Connector {
            targets,
            password: secrets.password,
            operator: Operator::new(secrets.ask),
            sudo_refused: std::sync::OnceLock::new(),
            agent_keys: Mutex::new(HashMap::new()),
            bastions: Mutex::new(HashMap::new()),
            handshakes: Semaphore::new(MAX_HANDSHAKES),
        })
    }

    /// Connects, verifies the host key and authenticates, all within the
    /// connect timeout (a host that accepts TCP and never speaks hits it too).
    pub async fn connect(&self, host: &Host) -> Result<Session, SshError> {
        let Some(target) = self.targets.get(host) else {
            return Err(SshError::Connect(std::io::Error::other(
                "host was not part of the run",
            )));
        };
        let via = match target.jumps.is_empty() {
            true => None,
            false => Some(self.bastion(&target.jumps).await?),
        };
        // The connect timeout starts once a handshake slot is ours. The
        // handshake's future (its largest state) is made only then: hosts
        // waiting for a slot stay small.
        let _slot = self.handshakes.acquire().await;
        Box::pin(self.handshake(target, via.as_deref())).await
    }

    /// The shared connection to the last bastion of `chain`, made at most once
    /// per run; hosts behind it each get their own direct-tcpip channel.
    /// Bastions take no handshake slot: hosts holding every slot while they
    /// wait for their bastion would otherwise never let it connect.
    fn bastion<'a>(
        &'a self,
        chain: &'a [Arc<Target>],
    ) -> Pin<Box<dyn Future<Output = Result<Arc<Session>, SshError>> + Send + 'a>> {
        Box::pin(async move {
            let name = chain
                .iter()
                .map(|t| t.label.as_str())
                .collect::<Vec<_>>()
                .join(" > ");
            let cell = Arc::clone(self.bastions.lock().await.entry(name.clone()).or_default());
            let connected = cell
                .get_or_init(|| async {
                    let Some((last, before)) = chain.split_last() else {
                        return Err("empty ProxyJump chain".to_string());
                    };
                    let via = match before.is_empty() {
                        true => None,
                        false => Some(self.bastion(before).await.map_err(|e| e.to_string())?),
                    };
                    tracing::debug!(bastion = %name, "connecting to bastion");
                    self.handshake(last, via.as_deref())
                        .await
                        .map(Arc::new)
                        .map_err(|e| e.to_string())
                })
                .await;
            connected.clone().map_err(|message| SshError::Bastion {
                bastion: name,
                message,
            })
        })
    }

    /// The keys and certificates the host's agent holds, asked once per
    /// agent per run.
    async fn agent_keys_of(&self, target: &Target) -> Vec<AgentIdentity> {
        let Some(socket) = &target.agent else {
            return Vec::new();
        };
        let cell = {
            let mut agents = self.agent_keys.lock().await;
            Arc::clone(agents.entry(socket.clone()).or_default())
        };
        cell.get_or_init(|| agent_identities(socket)).await.clone()
    }

    /// Connects `target` directly or through `via`, under its connect timeout.
    /// Connects `target`, trying `ConnectionAttempts` times a second apart
    /// while the connection itself fails (never after a host key or
    /// authentication refusal).
    async fn handshake(&self, target: &Target, via: Option<&Session>) -> Result<Session, SshError> {
        let mut attempt = 1;
        loop {
            match self.attempt(target, via).await {
                Err(SshError::Connect(_) | SshError::ConnectTimeout(_))
                    if attempt < target.connection_attempts =>
                {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
                result => return result,
            }
        }
    }

    /// One attempt at connecting `target` directly or through `via`, under
    /// its connect timeout.
    async fn attempt(&self, target: &Target, via: Option<&Session>) -> Result<Session, SshError> {
        let clock = OperatorClock::default();
        let attempt = async {
            let closed = CancellationToken::new();
            let verifier = HostKeyVerifier {
                known_hosts: Arc::clone(&target.known_hosts),
                host: target.address.clone(),
                port: target.port,
                strict: target.strict,
                hash: target.hash_known_hosts,
                _on_close: closed.clone().drop_guard(),
            };
            let config = Arc::clone(&target.config);
            let mut proxy = None;
            let mut handle = match via {
                None if target.proxy_command.is_some() => {
                    let command = target.proxy_command.as_deref().unwrap_or_default();
                    let (child, stream) = proxy_command(command)?;
                    let stderr = Arc::clone(&child.stderr);
                    proxy = Some(child);
                    client::connect_stream(config, stream, verifier)
                        .await
                        .map_err(|e| proxy_failed(command, e, &stderr))?
                }
                None => {
                    let stream = TcpStream::connect((target.address.as_str(), target.port))
                        .await
                        .map_err(SshError::Connect)?;
                    // russh sets this only in its own connect(); SSH's small
                    // request/response packets stall behind Nagle without it.
                    stream.set_nodelay(true).map_err(SshError::Connect)?;
                    client::connect_stream(config, read_buffered(stream), verifier).await?
                }
                Some(bastion) => {
                    let channel = bastion
                        .handle
                        .channel_open_direct_tcpip(
                            target.address.clone(),
                            u32::from(target.port),
                            "127.0.0.1",
                            0,
                        )
                        .await
                        .map_err(|e| {
                            SshError::Connect(std::io::Error::other(format!(
                                "bastion refused to forward: {e}"
                            )))
                        })?;
                    client::connect_stream(config, channel.into_stream(), verifier).await?
                }
            };
            let credentials = Credentials {
                agent_keys: &self.agent_keys_of(target).await,
                password: self.password.as_deref(),
                operator: &self.operator,
                clock: &clock,
            };
            authenticate(&mut handle, target, credentials).await?;
            Ok(Session {
                handle,
                closed,
                _proxy: proxy,
            })
        };
        within(target.connect_timeout, &clock, attempt).await
    }
}

/// One authenticated connection to a host, reused for everything done there.
pub struct Session {
    pub(super) handle: Handle<HostKeyVerifier>,
    /// Fires when the connection ends: russh drops its handler then.
    closed: CancellationToken,
    /// The ProxyCommand carrying the connection, killed with it.
    _proxy: Option<Proxy>,
}

/// A running ProxyCommand: its process, and the start of what it said on
/// stderr (for the message when the connection fails).
pub(super) struct Proxy {
    _child: tokio::process::Child,
    stderr: Arc<std::sync::Mutex<Vec<u8>>>,
}

/// Most of a ProxyCommand's stderr kept for a message.
const PROXY_STDERR: usize = 2048;

/// Starts `command` through `sh -c`, as OpenSSH does; its stdout and stdin
/// are the connection.
fn proxy_command(
    command: &str,
) -> Result<
    (
        Proxy,
        impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
    ),
    SshError,
> {
    use std::process::Stdio;
    let mut child = tokio::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            SshError::Connect(std::io::Error::other(format!(
                "ProxyCommand `{command}`: {e}"
            )))
        })?;
    let (Some(stdin), Some(stdout), Some(mut err)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(SshError::Connect(std::io::Error::other(
            "ProxyCommand: no pipes",
        )));
    };
    let stderr = Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = Arc::clone(&stderr);
    tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let mut buffer = [0u8; 1024];
        while let Ok(read @ 1..) = err.read(&mut buffer).await {
            let mut kept = kept.lock().unwrap_or_else(|e| e.into_inner());
            let room = PROXY_STDERR.saturating_sub(kept.len());
            kept.extend_from_slice(&buffer[..read.min(room)]);
        }
    });
    let proxy = Proxy {
        _child: child,
        stderr,
    };
    Ok((proxy, read_buffered(tokio::io::join(stdout, stdin))))
}

/// Room for a whole flight of handshake packets.
const READ_BUFFER: usize = 4096;

/// `stream` with its reads buffered and its writes direct. russh reads
/// each packet with two exact reads (length, then the rest): unbuffered,
/// that is two or three system calls per packet, some 30 per host for a
/// short command. Writes stay unbuffered because russh does not flush.
fn read_buffered<S>(stream: S) -> tokio::io::BufReader<S>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite,
{
    tokio::io::BufReader::with_capacity(READ_BUFFER, stream)
}

/// A connection through a ProxyCommand that failed, with what the command
/// said on stderr: "connection closed" alone would not say why.
fn proxy_failed(command: &str, error: SshError, stderr: &std::sync::Mutex<Vec<u8>>) -> SshError {
    let said = stderr
        .lock()
        .map(|s| String::from_utf8_lossy(&s).trim().to_string());
    let said = said.unwrap_or_default();
    let detail = match said.is_empty() {
        true => String::new(),
        false => format!(" (it said: {})", crate::text::printable(&said)),
    };
    SshError::Connect(std::io::Error::other(format!(
        "through ProxyCommand `{command}`: {error}{detail}"
    )))
}

impl Session {
    /// Whether the connection has ended (the host went away or rebooted).
    pub fn is_closed(&self) -> bool {
        self.handle.is_closed() || self.closed.is_cancelled()
    }

    /// Waits for the connection to end: the host closed it, it rebooted,
    /// or keepalives found it gone. No polling: russh's connection task
    /// drops our handler when it ends.
    pub async fn closed(&self) {
        self.closed.cancelled().await
    }

    /// Says goodbye to the server; errors are moot at this point.
    pub async fn close(self) {
        let _ = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
    }
}

/// russh's callback object: checks the server's key against known_hosts,
/// and says when the connection ends (russh drops it then).
pub(super) struct HostKeyVerifier {
    known_hosts: Arc<KnownHosts>,
    host: String,
    port: u16,
    strict: StrictHostKeyChecking,
    /// Record new keys with the host name hashed.
    hash: bool,
    _on_close: DropGuard,
}

impl client::Handler for HostKeyVerifier {
    type Error = SshError;

    async fn check_server_key(
        &mut self,
        offered: &PublicKeyOrCertificate,
    ) -> Result<bool, SshError> {
        let name = super::lookup_name(&self.host, self.port);
        let key = match offered {
            PublicKeyOrCertificate::PublicKey { key, .. } => key,
            // Asked for only when a @cert-authority line names the host.
            PublicKeyOrCertificate::Certificate(certificate) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let judged =
                    self.known_hosts
                        .check_certificate(&self.host, self.port, certificate, now);
                // A certificate no CA vouches for still carries the host's
                // key: a plain known_hosts line for it is trusted, as ssh
                // trusts it when it falls back to the plain key.
                let key = PublicKey::from(certificate.public_key().clone());
                let plain = self.known_hosts.check(&self.host, self.port, &key);
                return match (judged, plain) {
                    (Ok(()), _) | (Err(_), HostKeyStatus::Trusted) => Ok(true),
                    (Err(reason), _) => Err(SshError::HostCertificate { host: name, reason }),
                };
            }
        };
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
        let (known_hosts, host, port, hash) = (
            Arc::clone(&self.known_hosts),
            self.host.clone(),
            self.port,
            self.hash,
        );
        let write_error = |source| SshError::KnownHostsWrite {
            host: self.host.clone(),
            source,
        };
        tokio::task::spawn_blocking(move || known_hosts.append(&host, port, &key, hash))
            .await
            .map_err(|join| write_error(std::io::Error::other(join)))?
            .map_err(write_error)
    }
}

fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}
