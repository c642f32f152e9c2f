//! Resolving each host's settings before the run, in OpenSSH's order: the
//! hosts entry, then `-l`/`-J`/`-O`/`-x`, then ssh_config, then defaults.
//! Every key file, known_hosts set and russh configuration is loaded once,
//! however many hosts share it.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use russh::client;
use russh::keys::Algorithm;
use russh::Preferred;

use super::algorithms;
use super::auth::AuthMethod;

use super::config::ConfigFile;
use super::identity::{
    certifies, load_certificate, load_default_identities, load_identity, Identity,
};
use super::known_hosts::KnownHosts;
use super::options::{expand_tilde, SshOptions, StrictHostKeyChecking};
use super::tokens::{self, local_user_name, Tokens};
use super::{
    Secrets, SetupError, DEFAULT_ALIVE_COUNT_MAX, DEFAULT_ALIVE_INTERVAL, DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_PORT,
};
use crate::model::{Endpoint, Host};

/// Output packets (up to 32 KiB each) a channel holds that its reader has
/// not taken yet; past them the connection stops reading its socket, and
/// the kernel's flow control slows the host. russh opens the window as
/// packets arrive, not as they are read, so this, not the window, bounds
/// the memory a host with a lot of output costs: 512 KiB here instead of
/// russh's default 3 MiB, the same throughput (the reader keeps up).
const CHANNEL_BUFFER_PACKETS: usize = 16;

/// Everything needed to reach one host, resolved before the run.
#[derive(Debug)]
pub(super) struct Target {
    /// How the operator named the host (for messages).
    pub(super) label: String,
    /// What to connect to: HostName, or the name itself.
    pub(super) address: String,
    pub(super) port: u16,
    pub(super) user: String,
    pub(super) identities: Vec<Identity>,
    /// Offer only `identities`, not every key of the agent.
    pub(super) identities_only: bool,
    pub(super) known_hosts: Arc<KnownHosts>,
    pub(super) strict: StrictHostKeyChecking,
    pub(super) connect_timeout: Duration,
    pub(super) config: Arc<client::Config>,
    /// Bastions, first to last.
    pub(super) jumps: Vec<Arc<Target>>,
    /// ProxyCommand, its `%` tokens expanded: run through `sh -c`, its
    /// stdin and stdout carry the connection (when there are no jumps).
    pub(super) proxy_command: Option<String>,
    /// accept-new writes the host's name hashed (`HashKnownHosts yes`).
    pub(super) hash_known_hosts: bool,
    /// The ssh-agent socket to ask for keys; `None`: no agent.
    pub(super) agent: Option<PathBuf>,
    /// Tries at connecting, a second apart (`ConnectionAttempts`).
    pub(super) connection_attempts: u32,
    /// Signatures to authenticate with (`PubkeyAcceptedAlgorithms`);
    /// `None`: OpenSSH's.
    pub(super) pubkey_algorithms: Option<Vec<&'static str>>,
    /// The ways of logging in to try, in order.
    pub(super) auth_methods: Vec<AuthMethod>,
    /// Never ask the operator (`BatchMode yes`).
    pub(super) batch_mode: bool,
}

/// Builds targets, loading each key file, known_hosts set and russh
/// configuration once, however many hosts share it.
pub(super) struct Resolver<'a> {
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
    pub(super) fn new(
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

    pub(super) fn resolve(&mut self, host: &Host, own: &SshOptions) -> Result<Target, SetupError> {
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
            let from_config = config.options_for(&host.name, &options)?;
            options.fill_from(from_config);
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
                let from_config = config.options_for(&host.name, &options)?;
                options.fill_from(from_config);
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
        let user = options.user.clone().unwrap_or_else(local_user_name);
        let proxy_command = options
            .proxy_command
            .as_deref()
            .filter(|command| !command.trim().eq_ignore_ascii_case("none"))
            .map(|command| proxy_command(command, &address, port, &user, name))
            .transpose()
            .map_err(|message| SetupError::Config {
                path: PathBuf::from("ProxyCommand"),
                message: format!("for host {label}: {message}"),
            })?;
        let known_hosts = self.known_hosts_for(&options)?;
        let known = known_hosts.known_algorithms(&address, port);
        let certificates = known_hosts.has_cert_authority(&address, port);
        let config = self.russh_config(&options, &known, certificates);
        Ok(Target {
            label,
            port,
            user,
            proxy_command,
            hash_known_hosts: options.hash_known_hosts.unwrap_or(false),
            agent: agent_socket(options.identity_agent.as_deref()),
            connection_attempts: options.connection_attempts.unwrap_or(1),
            pubkey_algorithms: options.pubkey_accepted_algorithms.clone(),
            auth_methods: options.auth_methods(),
            batch_mode: options.batch_mode.unwrap_or(false),
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
        let mut identities = self.keys_for(options)?;
        for path in &options.certificate_files {
            let certificate = load_certificate(path).map_err(|reason| SetupError::Key {
                path: path.clone(),
                reason,
            })?;
            match identities
                .iter_mut()
                .find(|i| certifies(&certificate, &i.key))
            {
                Some(identity) => identity.certificate = Some(certificate),
                None => tracing::warn!(
                    "CertificateFile {}: no identity of this host has its key",
                    path.display()
                ),
            }
        }
        Ok(identities)
    }

    fn keys_for(&mut self, options: &SshOptions) -> Result<Vec<Identity>, SetupError> {
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

    fn known_hosts_for(&mut self, options: &SshOptions) -> Result<Arc<KnownHosts>, SetupError> {
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
        if let Some(loaded) = self.known_hosts.get(&key) {
            return Ok(Arc::clone(loaded));
        }
        let all: Vec<PathBuf> = key.0.iter().chain(&key.1).cloned().collect();
        let loaded = Arc::new(KnownHosts::load(&all, key.0.first().cloned())?);
        self.known_hosts.insert(key, Arc::clone(&loaded));
        Ok(loaded)
    }

    /// Keepalives as configured, and the server asked first for a host-key
    /// type known_hosts already has for it, as OpenSSH does; otherwise a host
    /// with only an ECDSA entry would offer ed25519 and be refused as unknown.
    fn russh_config(
        &mut self,
        options: &SshOptions,
        known: &[Algorithm],
        certificates: bool,
    ) -> Arc<client::Config> {
        let interval = options
            .server_alive_interval
            .unwrap_or(DEFAULT_ALIVE_INTERVAL);
        let keepalive_interval = (!interval.is_zero()).then_some(interval);
        let keepalive_max = options
            .server_alive_count_max
            .unwrap_or(DEFAULT_ALIVE_COUNT_MAX);
        let asked = algorithms::host_key_algorithms(options.host_key_algorithms.as_deref());
        // Given HostKeyAlgorithms is taken as it is, as OpenSSH does,
        // certificates included only as it names them.
        let certified = asked.as_ref().map(|(_, certified)| certified.clone());
        let preferred = asked.map(|(plain, _)| plain).unwrap_or_else(|| {
            let default = Preferred::DEFAULT.key;
            let (mut preferred, rest): (Vec<Algorithm>, Vec<Algorithm>) = default
                .iter()
                .cloned()
                .partition(|a| known.iter().any(|k| same_family(a, k)));
            preferred.extend(rest);
            preferred
        });
        let key = format!(
            "{keepalive_interval:?} {keepalive_max} {preferred:?} {:?} {:?} {:?} {certificates}",
            options.kex_algorithms, options.ciphers, options.macs
        );
        let config = self.russh_configs.entry(key).or_insert_with(|| {
            Arc::new(client::Config {
                channel_buffer_size: CHANNEL_BUFFER_PACKETS,
                keepalive_interval,
                keepalive_max,
                preferred: Preferred {
                    // Certificates are asked for where a CA is trusted.
                    host_key_certificates: match (certified, certificates) {
                        (Some(certified), _) => Cow::Owned(certified),
                        (None, true) => Cow::Owned(preferred.clone()),
                        (None, false) => Cow::Borrowed(&[]),
                    },
                    key: Cow::Owned(preferred),
                    ..algorithms::preferred(
                        options.kex_algorithms.as_deref(),
                        options.ciphers.as_deref(),
                        options.macs.as_deref(),
                    )
                },
                ..Default::default()
            })
        });
        Arc::clone(config)
    }
}

/// Where the agent is, as `IdentityAgent` says: `none`, `SSH_AUTH_SOCK`
/// (the default: the environment's), `$VAR` or `${VAR}` (that variable),
/// or a socket path (`~` expanded). A path that is not there is said once.
fn agent_socket(setting: Option<&str>) -> Option<PathBuf> {
    let from_env = |name: &str| {
        std::env::var_os(name)
            .filter(|socket| !socket.is_empty())
            .map(PathBuf::from)
    };
    let socket = match setting.map(str::trim) {
        Some(none) if none.eq_ignore_ascii_case("none") => return None,
        None | Some("SSH_AUTH_SOCK") => return from_env("SSH_AUTH_SOCK"),
        Some(variable) if variable.starts_with('$') => {
            let name = variable.trim_start_matches('$');
            from_env(name.trim_start_matches('{').trim_end_matches('}'))?
        }
        Some(path) => expand_tilde(path),
    };
    if !socket.exists() {
        tracing::warn!(
            "IdentityAgent {}: no such socket; no agent keys",
            socket.display()
        );
    }
    Some(socket)
}

/// ProxyCommand with its tokens expanded (`%h %p %r %n`), `exec` first so
/// the shell becomes the command (no shell is left behind it to orphan).
fn proxy_command(
    command: &str,
    host: &str,
    port: u16,
    user: &str,
    name: &str,
) -> Result<String, String> {
    let tokens = Tokens {
        host,
        name,
        port,
        user,
    };
    Ok(format!(
        "exec {}",
        tokens::expand("ProxyCommand", command, &tokens, "hnpr")?
    ))
}

fn same_family(a: &Algorithm, b: &Algorithm) -> bool {
    matches!((a, b), (Algorithm::Rsa { .. }, Algorithm::Rsa { .. })) || a == b
}
