//! Connecting one host. Settings are resolved per host before the run (the
//! hosts entry, then `-l`/`-J`/`-O`/`-x`, then ssh_config, then defaults),
//! with every key file and known_hosts set loaded once. A connection goes
//! over TCP or through a bastion's direct-tcpip channel (ProxyJump; one
//! shared connection per bastion chain), then key exchange with host-key
//! verification and authentication, all under the connect timeout.

use std::borrow::Cow;
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use russh::client::{self, Handle, KeyboardInteractiveAuthResponse};
use russh::keys::agent::client::AgentClient;
use russh::keys::{Algorithm, HashAlg, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use russh::Preferred;
use tokio::net::TcpStream;
use tokio::sync::{Mutex, OnceCell, Semaphore};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::config::ConfigFile;
use super::identity::{agent_keys, load_default_identities, load_identity, Identity};
use super::known_hosts::{HostKeyStatus, KnownHosts};
use super::options::{expand_tilde, SshOptions, StrictHostKeyChecking};
use super::{
    Secrets, SetupError, SshError, DEFAULT_ALIVE_COUNT_MAX, DEFAULT_ALIVE_INTERVAL,
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_PORT,
};
use crate::model::{Endpoint, Host};

/// Most SSH handshakes (TCP, key exchange, auth) in flight at once, whatever
/// `-p` says. Sessions past their handshake are not limited, so `-p 1000`
/// still runs 1000 commands at once; but 1000 simultaneous handshakes only
/// queue on the servers' and our CPU, hold russh's per-connection buffers
/// (about 100 KB each) meanwhile, and risk spurious connect timeouts.
pub const MAX_HANDSHAKES: usize = 256;

/// Output packets (up to 32 KiB each) a channel holds that its reader has
/// not taken yet; past them the connection stops reading its socket, and
/// the kernel's flow control slows the host. russh opens the window as
/// packets arrive, not as they are read, so this, not the window, bounds
/// the memory a host with a lot of output costs: 512 KiB here instead of
/// russh's default 3 MiB, the same throughput (the reader keeps up).
const CHANNEL_BUFFER_PACKETS: usize = 16;

/// A shared bastion connection, or why it could not be made.
type BastionCell = Arc<OnceCell<Result<Arc<Session>, String>>>;

/// What every connection of a run shares: each host's resolved settings,
/// the secrets, and the bastion connections made so far.
pub struct Connector {
    targets: HashMap<Host, Arc<Target>>,
    /// For password and keyboard-interactive authentication (`-A`).
    password: Option<String>,
    /// The keys ssh-agent holds, listed once, at the first connection.
    agent_keys: OnceCell<Vec<PublicKey>>,
    bastions: Mutex<HashMap<String, BastionCell>>,
    handshakes: Semaphore,
}

/// Everything needed to reach one host, resolved before the run.
#[derive(Debug)]
struct Target {
    /// How the operator named the host (for messages).
    label: String,
    /// What to connect to: HostName, or the name itself.
    address: String,
    port: u16,
    user: String,
    identities: Vec<Identity>,
    /// Offer only `identities`, not every key of the agent.
    identities_only: bool,
    known_hosts: Arc<KnownHosts>,
    strict: StrictHostKeyChecking,
    connect_timeout: Duration,
    config: Arc<client::Config>,
    /// Bastions, first to last.
    jumps: Vec<Arc<Target>>,
}

impl Connector {
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
            agent_keys: OnceCell::new(),
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
        // The connect timeout starts once a handshake slot is ours.
        let _slot = self.handshakes.acquire().await;
        self.handshake(target, via.as_deref()).await
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

    /// Connects `target` directly or through `via`, under its connect timeout.
    async fn handshake(&self, target: &Target, via: Option<&Session>) -> Result<Session, SshError> {
        let attempt = async {
            let closed = CancellationToken::new();
            let verifier = HostKeyVerifier {
                known_hosts: Arc::clone(&target.known_hosts),
                host: target.address.clone(),
                port: target.port,
                strict: target.strict,
                _on_close: closed.clone().drop_guard(),
            };
            let config = Arc::clone(&target.config);
            let mut handle = match via {
                None => {
                    let stream = TcpStream::connect((target.address.as_str(), target.port))
                        .await
                        .map_err(SshError::Connect)?;
                    // russh sets this only in its own connect(); SSH's small
                    // request/response packets stall behind Nagle without it.
                    stream.set_nodelay(true).map_err(SshError::Connect)?;
                    client::connect_stream(config, stream, verifier).await?
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
            let agent_keys = self.agent_keys.get_or_init(agent_keys).await;
            authenticate(&mut handle, target, agent_keys, self.password.as_deref()).await?;
            Ok(Session { handle, closed })
        };
        tokio::time::timeout(target.connect_timeout, attempt)
            .await
            .map_err(|_| SshError::ConnectTimeout(target.connect_timeout))?
    }
}

/// Builds targets, loading each key file, known_hosts set and russh
/// configuration once, however many hosts share it.
struct Resolver<'a> {
    command_line: &'a SshOptions,
    config: Option<&'a ConfigFile>,
    secrets: &'a Secrets,
    /// Every key file tried so far; `None` for one that could not be used.
    identities: HashMap<PathBuf, Option<Identity>>,
    defaults: Option<Vec<Identity>>,
    known_hosts: HashMap<(Vec<PathBuf>, Vec<PathBuf>), Arc<KnownHosts>>,
    russh_configs: HashMap<String, Arc<client::Config>>,
}

impl<'a> Resolver<'a> {
    fn new(
        command_line: &'a SshOptions,
        config: Option<&'a ConfigFile>,
        secrets: &'a Secrets,
    ) -> Result<Self, SetupError> {
        let mut resolver = Resolver {
            command_line,
            config,
            secrets,
            identities: HashMap::new(),
            defaults: None,
            known_hosts: HashMap::new(),
            russh_configs: HashMap::new(),
        };
        // Keys named on the command line must load; ssh_config's may be absent.
        for path in &command_line.identity_files {
            let identity = load_identity(path, secrets)?;
            resolver.identities.insert(path.clone(), Some(identity));
        }
        Ok(resolver)
    }

    fn resolve(&mut self, host: &Host, own: &SshOptions) -> Result<Target, SetupError> {
        for path in &own.identity_files {
            if !matches!(self.identities.get(path), Some(Some(_))) {
                let identity = load_identity(path, self.secrets)?;
                self.identities.insert(path.clone(), Some(identity));
            }
        }
        let mut options = SshOptions {
            user: host.user.clone(),
            port: host.port,
            ..SshOptions::default()
        };
        options.fill_from(own.clone());
        options.fill_from(self.command_line.clone());
        if let Some(config) = self.config {
            options.fill_from(config.options_for(&host.name)?);
        }
        let jumps = self.jumps(options.proxy_jump.as_deref().unwrap_or_default())?;
        self.target(host.label(), &host.name, options, jumps)
    }

    /// Resolves each bastion of a ProxyJump list like a host (ssh_config
    /// applies to it too), except that its own ProxyJump is not followed:
    /// the list already names the whole chain.
    fn jumps(&mut self, specs: &[String]) -> Result<Vec<Arc<Target>>, SetupError> {
        let mut jumps = Vec::with_capacity(specs.len());
        for spec in specs {
            let bad = |message: String| SetupError::Jump {
                jump: spec.clone(),
                message,
            };
            let host = Endpoint::parse(spec)
                .and_then(|endpoint| endpoint.host())
                .map_err(bad)?;
            let mut options = SshOptions {
                user: host.user.clone(),
                port: host.port,
                ..SshOptions::default()
            };
            let mut inherited = self.command_line.clone();
            inherited.host_name = None;
            options.fill_from(inherited);
            if let Some(config) = self.config {
                options.fill_from(config.options_for(&host.name)?);
            }
            jumps.push(Arc::new(self.target(
                host.label(),
                &host.name,
                options,
                Vec::new(),
            )?));
        }
        Ok(jumps)
    }

    fn target(
        &mut self,
        label: String,
        name: &str,
        options: SshOptions,
        jumps: Vec<Arc<Target>>,
    ) -> Result<Target, SetupError> {
        let address = options
            .host_name
            .clone()
            .unwrap_or_else(|| name.to_string());
        let port = options.port.unwrap_or(DEFAULT_PORT);
        let known_hosts = self.known_hosts_for(&options);
        let config = self.russh_config(&options, &known_hosts.known_algorithms(&address, port));
        Ok(Target {
            label,
            port,
            user: options.user.clone().unwrap_or_else(local_user_name),
            identities: self.identities_for(&options)?,
            identities_only: options.identities_only.unwrap_or(false),
            known_hosts,
            strict: options
                .strict_host_key_checking
                .unwrap_or(StrictHostKeyChecking::Yes),
            connect_timeout: options.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT),
            config,
            jumps,
            address,
        })
    }

    /// The named key files that can be used, or OpenSSH's default ones when
    /// none is named. A broken file from ssh_config is warned about once.
    fn identities_for(&mut self, options: &SshOptions) -> Result<Vec<Identity>, SetupError> {
        if options.identity_files.is_empty() {
            if self.defaults.is_none() {
                self.defaults = Some(load_default_identities());
            }
            return Ok(self.defaults.clone().unwrap_or_default());
        }
        let mut identities = Vec::new();
        for path in &options.identity_files {
            let loaded =
                self.identities.entry(path.clone()).or_insert_with(|| {
                    match load_identity(path, self.secrets) {
                        Ok(identity) => Some(identity),
                        Err(error) => {
                            tracing::warn!("skipping a key named in ssh_config: {error}");
                            None
                        }
                    }
                });
            identities.extend(loaded.clone());
        }
        Ok(identities)
    }

    fn known_hosts_for(&mut self, options: &SshOptions) -> Arc<KnownHosts> {
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
        let key = (user_files, global_files);
        let loaded =
            self.known_hosts
                .entry(key)
                .or_insert_with_key(|(user_files, global_files)| {
                    let all: Vec<PathBuf> =
                        user_files.iter().chain(global_files).cloned().collect();
                    Arc::new(KnownHosts::load(&all, user_files.first().cloned()))
                });
        Arc::clone(loaded)
    }

    /// Keepalives as configured, and the server asked first for a host-key
    /// type known_hosts already has for it, as OpenSSH does; otherwise a host
    /// with only an ECDSA entry would offer ed25519 and be refused as unknown.
    fn russh_config(&mut self, options: &SshOptions, known: &[Algorithm]) -> Arc<client::Config> {
        let interval = options
            .server_alive_interval
            .unwrap_or(DEFAULT_ALIVE_INTERVAL);
        let keepalive_interval = (!interval.is_zero()).then_some(interval);
        let keepalive_max = options
            .server_alive_count_max
            .unwrap_or(DEFAULT_ALIVE_COUNT_MAX);
        let default = Preferred::DEFAULT.key;
        let (mut preferred, rest): (Vec<Algorithm>, Vec<Algorithm>) = default
            .iter()
            .cloned()
            .partition(|a| known.iter().any(|k| same_family(a, k)));
        preferred.extend(rest);
        let key = format!("{keepalive_interval:?} {keepalive_max} {preferred:?}");
        let config = self.russh_configs.entry(key).or_insert_with(|| {
            Arc::new(client::Config {
                channel_buffer_size: CHANNEL_BUFFER_PACKETS,
                keepalive_interval,
                keepalive_max,
                preferred: Preferred {
                    key: Cow::Owned(preferred),
                    ..Preferred::DEFAULT
                },
                ..Default::default()
            })
        });
        Arc::clone(config)
    }
}

fn same_family(a: &Algorithm, b: &Algorithm) -> bool {
    matches!((a, b), (Algorithm::Rsa { .. }, Algorithm::Rsa { .. })) || a == b
}

/// One authenticated connection to a host, reused for everything done there.
pub struct Session {
    pub(super) handle: Handle<HostKeyVerifier>,
    /// Fires when the connection ends: russh drops its handler then.
    closed: CancellationToken,
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
    _on_close: DropGuard,
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

/// Authenticates in OpenSSH's order: ssh-agent's keys, then key files (those
/// the agent did not already offer), then keyboard-interactive and password
/// when `-A` gave one. The error names every method tried.
async fn authenticate(
    handle: &mut Handle<HostKeyVerifier>,
    target: &Target,
    agent_keys: &[PublicKey],
    password: Option<&str>,
) -> Result<(), SshError> {
    let user = target.user.as_str();
    let mut tried = Vec::new();
    let use_agent = !agent_keys.is_empty() && !target.identities_only;
    if use_agent && authenticate_with_agent(handle, user, agent_keys, &mut tried).await? {
        return Ok(());
    }
    for identity in &target.identities {
        let public = identity.key.public_key();
        if use_agent && agent_keys.iter().any(|k| k.key_data() == public.key_data()) {
            continue;
        }
        let hash = rsa_hash(handle, public).await?;
        let key = PrivateKeyWithHashAlg::new(Arc::clone(&identity.key), hash);
        if handle.authenticate_publickey(user, key).await?.success() {
            return Ok(());
        }
        tried.push(format!("publickey {}", identity.path.display()));
    }
    if let Some(password) = password {
        if keyboard_interactive(handle, user, password).await? {
            return Ok(());
        }
        tried.push("keyboard-interactive".into());
        if handle
            .authenticate_password(user, password)
            .await?
            .success()
        {
            return Ok(());
        }
        tried.push("password".into());
    }
    if tried.is_empty() {
        tried.push("nothing: no agent, no key in ~/.ssh or given with --identity, -O IdentityFile or ssh_config, and no -A".into());
    }
    Err(SshError::Auth {
        user: user.to_string(),
        tried: tried.join(", "),
    })
}

/// OpenSSH 8.8+ refuses SHA-1 RSA signatures; ask the server what it takes.
async fn rsa_hash(
    handle: &Handle<HostKeyVerifier>,
    key: &PublicKey,
) -> Result<Option<HashAlg>, SshError> {
    match key.algorithm().is_rsa() {
        true => Ok(handle
            .best_supported_rsa_hash()
            .await?
            .flatten()
            .or(Some(HashAlg::Sha256))),
        false => Ok(None),
    }
}

/// Offers each agent key; true once one is accepted.
async fn authenticate_with_agent(
    handle: &mut Handle<HostKeyVerifier>,
    user: &str,
    keys: &[PublicKey],
    tried: &mut Vec<String>,
) -> Result<bool, SshError> {
    let mut agent = match AgentClient::connect_env().await {
        Ok(agent) => agent,
        Err(error) => {
            tracing::debug!("ssh-agent unreachable: {error}");
            return Ok(false);
        }
    };
    for key in keys {
        let hash = rsa_hash(handle, key).await?;
        match handle
            .authenticate_publickey_with(user, key.clone(), hash, &mut agent)
            .await
        {
            Ok(result) if result.success() => return Ok(true),
            Ok(_) => {}
            Err(error) => tracing::debug!("ssh-agent could not sign: {error:?}"),
        }
        tried.push(format!(
            "publickey {} from ssh-agent",
            key.fingerprint(HashAlg::Sha256)
        ));
    }
    Ok(false)
}

/// Rounds of keyboard-interactive prompts answered before giving up.
const MAX_PROMPT_ROUNDS: usize = 8;

/// Answers every hidden prompt PAM sends with the password; visible prompts
/// (a one-time code, say) cannot be answered unattended and get nothing.
async fn keyboard_interactive(
    handle: &mut Handle<HostKeyVerifier>,
    user: &str,
    password: &str,
) -> Result<bool, SshError> {
    let mut response = handle
        .authenticate_keyboard_interactive_start(user, None::<String>)
        .await?;
    for _ in 0..MAX_PROMPT_ROUNDS {
        response = match response {
            KeyboardInteractiveAuthResponse::Success => return Ok(true),
            KeyboardInteractiveAuthResponse::Failure { .. } => return Ok(false),
            KeyboardInteractiveAuthResponse::InfoRequest { prompts, .. } => {
                let answers = prompts
                    .iter()
                    .map(|p| {
                        if p.echo {
                            String::new()
                        } else {
                            password.to_string()
                        }
                    })
                    .collect();
                handle
                    .authenticate_keyboard_interactive_respond(answers)
                    .await?
            }
        };
    }
    Ok(false)
}

/// The local login name, the default remote user as for ssh.
fn local_user_name() -> String {
    if let Some(name) = std::env::var_os("USER").or_else(|| std::env::var_os("LOGNAME")) {
        return name.to_string_lossy().into_owned();
    }
    // SAFETY: getpwuid returns a pointer into static storage or null; we copy
    // the name out immediately and never keep the pointer.
    unsafe {
        let uid = libc::getuid();
        let entry = libc::getpwuid(uid);
        if entry.is_null() {
            return uid.to_string();
        }
        std::ffi::CStr::from_ptr((*entry).pw_name)
            .to_string_lossy()
            .into_owned()
    }
}
