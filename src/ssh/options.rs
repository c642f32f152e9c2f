//! SSH settings as the operator gives them: pssh's `-O key=value`, the ssh
//! arguments of `-x`/`-X`, and `-l`. OpenSSH's rule applies: the first value
//! given for a keyword wins, except IdentityFile, which accumulates.

use super::algorithms::{resolve, Family};
use super::auth::AuthMethod;
use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

use crate::duration::parse_seconds;

/// Keywords accepted by `-O`, in the spelling shown to users.
pub const SUPPORTED_KEYWORDS: &[&str] = &[
    "BatchMode",
    "CertificateFile",
    "ChallengeResponseAuthentication",
    "Ciphers",
    "ConnectTimeout",
    "ConnectionAttempts",
    "GlobalKnownHostsFile",
    "HashKnownHosts",
    "HostKeyAlgorithms",
    "HostName",
    "IdentityAgent",
    "IdentitiesOnly",
    "IdentityFile",
    "KbdInteractiveAuthentication",
    "KexAlgorithms",
    "MACs",
    "PasswordAuthentication",
    "Port",
    "PreferredAuthentications",
    "ProxyCommand",
    "ProxyJump",
    "PubkeyAcceptedAlgorithms",
    "PubkeyAcceptedKeyTypes",
    "PubkeyAuthentication",
    "RequestTTY",
    "ServerAliveCountMax",
    "ServerAliveInterval",
    "StrictHostKeyChecking",
    "User",
    "UserKnownHostsFile",
];

/// ssh_config keywords fleet accepts and does not act on, as harmless for
/// a run: logging, connection sharing, forwarding, terminal niceties.
/// pssh users' scripts pass them (`-O LogLevel=ERROR`); refusing the run
/// over them would help no one. Each is ignored with a debug line.
pub const IGNORED_KEYWORDS: &[&str] = &[
    "AddKeysToAgent",
    "CASignatureAlgorithms",
    "CheckHostIP",
    "ClearAllForwardings",
    "Compression",
    "ControlMaster",
    "ControlPath",
    "ControlPersist",
    "EscapeChar",
    "ExitOnForwardFailure",
    "ForwardAgent",
    "ForwardX11",
    "ForwardX11Timeout",
    "ForwardX11Trusted",
    "GSSAPIAuthentication",
    "GSSAPIDelegateCredentials",
    "IPQoS",
    "LogLevel",
    "NumberOfPasswordPrompts",
    "Protocol",
    "SendEnv",
    "StdinNull",
    "StreamLocalBindMask",
    "StreamLocalBindUnlink",
    "TCPKeepAlive",
    "UpdateHostKeys",
    "UseRoaming",
    "VerifyHostKeyDNS",
    "VisualHostKey",
];

/// ssh_config keywords asking for what fleet does not do, and why: on the
/// command line (`-O`, `-x -o`) each refuses the run, since ignoring it
/// would do something else than asked. In ssh_config, written for
/// interactive ssh, they are ignored with a debug line, except the
/// security ones (`RevokedHostKeys`), which refuse the run there too.
pub const REFUSED_KEYWORDS: &[(&str, &str)] = &[
    (
        "AddressFamily",
        "fleet connects to the addresses the name resolves to, in order",
    ),
    (
        "BindAddress",
        "fleet connects from the system's default address",
    ),
    (
        "BindInterface",
        "fleet connects from the system's default address",
    ),
    (
        "CanonicalizeHostname",
        "fleet does not canonicalize host names; give full names",
    ),
    ("DynamicForward", "fleet forwards no ports"),
    ("ForkAfterAuthentication", "it is for interactive ssh"),
    (
        "HostbasedAuthentication",
        "fleet does no host-based authentication",
    ),
    ("KnownHostsCommand", "fleet reads known_hosts files only"),
    (
        "LocalCommand",
        "fleet runs no local command after connecting",
    ),
    ("LocalForward", "fleet forwards no ports"),
    (
        "PKCS11Provider",
        "fleet uses key files and ssh-agent; add the token's keys to the agent",
    ),
    (
        "PermitLocalCommand",
        "fleet runs no local command after connecting",
    ),
    (
        "ProxyUseFdpass",
        "fleet speaks SSH over ProxyCommand's stdin and stdout",
    ),
    ("RemoteCommand", "the command is the tool's argument"),
    ("RemoteForward", "fleet forwards no ports"),
    (
        "RevokedHostKeys",
        "fleet would accept the keys it revokes; put @revoked lines in known_hosts",
    ),
    (
        "SecurityKeyProvider",
        "fleet uses key files and ssh-agent; add the key to the agent",
    ),
    ("SessionType", "fleet runs a command in every session"),
    ("SetEnv", "export the variables in the command instead"),
    ("Tunnel", "fleet opens no tunnels"),
];

/// Why fleet refuses `keyword`, if it does.
pub fn refusal(keyword: &str) -> Option<&'static str> {
    REFUSED_KEYWORDS
        .iter()
        .find(|(known, _)| known.eq_ignore_ascii_case(keyword))
        .map(|(_, why)| *why)
}

/// What to do with a host key that known_hosts does not vouch for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrictHostKeyChecking {
    /// Refuse unknown and changed keys (OpenSSH `yes`, and `ask`: we never prompt).
    Yes,
    /// Record unknown keys in known_hosts; refuse changed ones.
    AcceptNew,
    /// Accept any key without recording it.
    No,
}

/// A bad `-O` option or `-x` argument; the message names it and what was expected.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum OptionError {
    #[error(
        "unknown SSH option `{0}`; supported: {list} (accepted and ignored: {ignored})",
        list = SUPPORTED_KEYWORDS.join(", "),
        ignored = IGNORED_KEYWORDS.join(", ")
    )]
    UnknownKeyword(String),
    #[error("{keyword} is not supported: {why}")]
    Refused { keyword: String, why: &'static str },
    #[error("bad value `{value}` for {keyword}: expected {expected}")]
    BadValue {
        keyword: String,
        value: String,
        expected: &'static str,
    },
    #[error("{keyword}: {message}")]
    Algorithms { keyword: String, message: String },
    #[error("expected an SSH option as `Keyword=value`, found `{0}`")]
    Syntax(String),
    #[error("unsupported ssh argument `{0}` in -x/-X; supported: -o OPTION, -i KEY, -p PORT, -l USER, -J JUMPS, and the no-ops -T -q -x -a")]
    UnsupportedArgument(String),
    #[error("ssh argument `{0}` needs a value")]
    MissingValue(String),
    #[error("cannot split -x arguments `{0}`: unbalanced quotes")]
    Quoting(String),
}

/// SSH settings before defaults are applied; `None` means "not given yet".
#[derive(Debug, Default, Clone)]
pub struct SshOptions {
    /// The real name or address to connect to (ssh_config's HostName).
    pub host_name: Option<String>,
    pub user: Option<String>,
    pub port: Option<u16>,
    pub identity_files: Vec<PathBuf>,
    pub user_known_hosts_files: Option<Vec<PathBuf>>,
    pub global_known_hosts_files: Option<Vec<PathBuf>>,
    pub strict_host_key_checking: Option<StrictHostKeyChecking>,
    pub connect_timeout: Option<Duration>,
    pub server_alive_interval: Option<Duration>,
    pub server_alive_count_max: Option<usize>,
    /// Bastions to go through, first to last; `Some(empty)` is ProxyJump none.
    pub proxy_jump: Option<Vec<String>>,
    /// Offer only the identity files named, not every key of the agent.
    pub identities_only: Option<bool>,
    /// Key exchanges, ciphers and MACs to offer, in order (see
    /// [`super::algorithms`]); `None`: OpenSSH's defaults.
    pub kex_algorithms: Option<Vec<&'static str>>,
    pub ciphers: Option<Vec<&'static str>>,
    pub macs: Option<Vec<&'static str>>,
    /// Host key types to accept, in order; `None`: OpenSSH's, the types
    /// known_hosts has for the host first.
    pub host_key_algorithms: Option<Vec<&'static str>>,
    /// Signatures to authenticate with, in order; `None`: OpenSSH's.
    pub pubkey_accepted_algorithms: Option<Vec<&'static str>>,
    /// A command whose stdin and stdout carry the connection (`%h %p %r
    /// %n` expanded at connect time); `Some("none")` disables one of lower
    /// precedence.
    pub proxy_command: Option<String>,
    /// A terminal for the command (`-x -t`, `RequestTTY`): prun's own
    /// command only, never a transfer's.
    pub request_tty: Option<bool>,
    /// `PreferredAuthentications`: the methods to try, in order (those
    /// fleet lacks left out).
    pub auth_methods: Option<Vec<AuthMethod>>,
    /// `PubkeyAuthentication`, `KbdInteractiveAuthentication` and
    /// `PasswordAuthentication`: `no` leaves the method out.
    pub pubkey_authentication: Option<bool>,
    pub kbd_interactive_authentication: Option<bool>,
    pub password_authentication: Option<bool>,
    /// `BatchMode yes`: never ask the operator (a one-time code goes unanswered).
    pub batch_mode: Option<bool>,
    /// Write hosts' names hashed when accept-new records a key.
    pub hash_known_hosts: Option<bool>,
    /// The ssh-agent socket: a path, `SSH_AUTH_SOCK` (the default) or `none`.
    pub identity_agent: Option<String>,
    /// OpenSSH certificates for identities (accumulate, as IdentityFile).
    pub certificate_files: Vec<PathBuf>,
    /// Tries at connecting, a second apart (1 to 100).
    pub connection_attempts: Option<u32>,
}

impl SshOptions {
    /// Applies one `Keyword=value` or `Keyword value` option.
    pub fn apply_option(&mut self, text: &str) -> Result<(), OptionError> {
        let text = text.trim();
        let split = text
            .split_once('=')
            .or_else(|| text.split_once(char::is_whitespace))
            .ok_or_else(|| OptionError::Syntax(text.to_string()))?;
        let (keyword, value) = (split.0.trim(), split.1.trim());
        if keyword.is_empty() || value.is_empty() {
            return Err(OptionError::Syntax(text.to_string()));
        }
        self.set(keyword, value)
    }

    /// Sets `keyword` (case-insensitive, as in ssh_config) unless already set.
    pub fn set(&mut self, keyword: &str, value: &str) -> Result<(), OptionError> {
        if self.set_connection(keyword, value)? || self.set_session(keyword, value)? {
            return Ok(());
        }
        match IGNORED_KEYWORDS
            .iter()
            .any(|ignored| ignored.eq_ignore_ascii_case(keyword))
        {
            true => {
                tracing::debug!("{keyword}={value}: fleet does not act on it; ignored");
                Ok(())
            }
            false => match refusal(keyword) {
                // Turned off (`RemoteCommand none`, `Tunnel no`...): nothing to do.
                Some(_) if ["none", "no", "any"].contains(&value.to_ascii_lowercase().as_str()) => {
                    Ok(())
                }
                Some(why) => Err(OptionError::Refused {
                    keyword: keyword.to_string(),
                    why,
                }),
                None => Err(OptionError::UnknownKeyword(keyword.to_string())),
            },
        }
    }

    /// Where and how to connect: the host, the way there, timeouts, host
    /// keys. False when `keyword` is none of these.
    fn set_connection(&mut self, keyword: &str, value: &str) -> Result<bool, OptionError> {
        let bad = bad_value(keyword, value);
        match keyword.to_ascii_lowercase().as_str() {
            "hostname" => set_once(&mut self.host_name, || Ok(value.to_string()))?,
            "port" => set_once(&mut self.port, || {
                value
                    .parse()
                    .ok()
                    .filter(|&p| p > 0)
                    .ok_or_else(|| bad("a port from 1 to 65535"))
            })?,
            "proxyjump" => set_once(&mut self.proxy_jump, || Ok(parse_jumps(value)))?,
            "proxycommand" => set_once(&mut self.proxy_command, || Ok(value.to_string()))?,
            "connectionattempts" => set_once(&mut self.connection_attempts, || {
                value
                    .parse()
                    .ok()
                    .filter(|n| (1..=100).contains(n))
                    .ok_or_else(|| bad("a number of tries from 1 to 100"))
            })?,
            "connecttimeout" => set_once(&mut self.connect_timeout, || {
                parse_seconds(value)
                    .ok()
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| bad("whole seconds from 1 to 2592000 (30 days)"))
            })?,
            "serveraliveinterval" => set_once(&mut self.server_alive_interval, || {
                parse_seconds(value).map_err(|_| {
                    bad("whole seconds up to 2592000 (30 days); 0 turns keepalives off")
                })
            })?,
            "serveralivecountmax" => set_once(&mut self.server_alive_count_max, || {
                value
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| bad("a count above 0"))
            })?,
            "userknownhostsfile" => {
                set_once(&mut self.user_known_hosts_files, || Ok(path_list(value)))?
            }
            "globalknownhostsfile" => {
                set_once(&mut self.global_known_hosts_files, || Ok(path_list(value)))?
            }
            "stricthostkeychecking" => set_once(&mut self.strict_host_key_checking, || {
                parse_strictness(value).ok_or_else(|| bad("yes, no, accept-new or ask"))
            })?,
            "hashknownhosts" => set_once(&mut self.hash_known_hosts, || {
                parse_yes_no(value).ok_or_else(|| bad("yes or no"))
            })?,
            _ => return self.set_algorithms(keyword, value),
        }
        Ok(true)
    }

    /// Algorithm lists. False when `keyword` is not one.
    fn set_algorithms(&mut self, keyword: &str, value: &str) -> Result<bool, OptionError> {
        let algorithms = |family| {
            resolve(family, value).map_err(|message| OptionError::Algorithms {
                keyword: keyword.to_string(),
                message,
            })
        };
        match keyword.to_ascii_lowercase().as_str() {
            "kexalgorithms" => set_once(&mut self.kex_algorithms, || algorithms(Family::Kex))?,
            "ciphers" => set_once(&mut self.ciphers, || algorithms(Family::Cipher))?,
            "macs" => set_once(&mut self.macs, || algorithms(Family::Mac))?,
            "hostkeyalgorithms" => set_once(&mut self.host_key_algorithms, || {
                algorithms(Family::HostKey)
            })?,
            "pubkeyacceptedalgorithms" | "pubkeyacceptedkeytypes" => {
                set_once(&mut self.pubkey_accepted_algorithms, || {
                    algorithms(Family::Pubkey)
                })?
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Which ways of logging in to try. False when `keyword` is none of these.
    fn set_authentication(&mut self, keyword: &str, value: &str) -> Result<bool, OptionError> {
        let bad = bad_value(keyword, value);
        let yes_no = || parse_yes_no(value).ok_or_else(|| bad("yes or no"));
        match keyword.to_ascii_lowercase().as_str() {
            "preferredauthentications" => set_once(&mut self.auth_methods, || {
                let methods: Vec<AuthMethod> =
                    value.split(',').filter_map(AuthMethod::named).collect();
                match methods.is_empty() {
                    true => Err(bad(
                        "publickey, keyboard-interactive or password (comma separated)",
                    )),
                    false => Ok(methods),
                }
            })?,
            // OpenSSH 8.9's `unbound` and `host-bound` are kinds of yes.
            "pubkeyauthentication" => set_once(&mut self.pubkey_authentication, || {
                match value.to_ascii_lowercase().as_str() {
                    "unbound" | "host-bound" => Ok(true),
                    _ => yes_no(),
                }
            })?,
            "kbdinteractiveauthentication" | "challengeresponseauthentication" => {
                set_once(&mut self.kbd_interactive_authentication, yes_no)?
            }
            "passwordauthentication" => set_once(&mut self.password_authentication, yes_no)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The ways of logging in to try, in order: PreferredAuthentications'
    /// (OpenSSH's by default), less those set to `no`.
    pub fn auth_methods(&self) -> Vec<AuthMethod> {
        let listed = self.auth_methods.as_deref().unwrap_or(&AuthMethod::DEFAULT);
        let allowed = |method: &&AuthMethod| {
            let flag = match method {
                AuthMethod::Publickey => self.pubkey_authentication,
                AuthMethod::KeyboardInteractive => self.kbd_interactive_authentication,
                AuthMethod::Password => self.password_authentication,
            };
            flag.unwrap_or(true)
        };
        listed.iter().filter(allowed).copied().collect()
    }

    /// Who logs in and how, and what the session gets. False when
    /// `keyword` is none of these.
    fn set_session(&mut self, keyword: &str, value: &str) -> Result<bool, OptionError> {
        let bad = bad_value(keyword, value);
        match keyword.to_ascii_lowercase().as_str() {
            "user" => set_once(&mut self.user, || {
                crate::model::check_user(value)
                    .map(|()| value.to_string())
                    .map_err(|_| bad("a user name: letters, digits, `.`, `_`, `-` and `$`"))
            })?,
            "identityfile" => self.identity_files.push(expand_tilde(value)),
            "certificatefile" => self.certificate_files.push(expand_tilde(value)),
            "identitiesonly" => set_once(&mut self.identities_only, || {
                parse_yes_no(value).ok_or_else(|| bad("yes or no"))
            })?,
            "identityagent" => set_once(&mut self.identity_agent, || Ok(value.to_string()))?,
            "requesttty" => set_once(&mut self.request_tty, || {
                match value.to_ascii_lowercase().as_str() {
                    "yes" | "force" => Ok(true),
                    "no" | "auto" => Ok(false),
                    _ => Err(bad("yes, force, no or auto")),
                }
            })?,
            "batchmode" => set_once(&mut self.batch_mode, || {
                parse_yes_no(value).ok_or_else(|| bad("yes or no"))
            })?,
            _ => return self.set_authentication(keyword, value),
        }
        Ok(true)
    }

    /// Fills every setting still unset from `lower`, a source of lower
    /// precedence; identity files accumulate after ours, as in OpenSSH.
    pub fn fill_from(&mut self, lower: SshOptions) {
        fn fill<T>(slot: &mut Option<T>, value: Option<T>) {
            if slot.is_none() {
                *slot = value;
            }
        }
        fill(&mut self.host_name, lower.host_name);
        fill(&mut self.user, lower.user);
        fill(&mut self.port, lower.port);
        self.identity_files.extend(lower.identity_files);
        self.certificate_files.extend(lower.certificate_files);
        fill(&mut self.connection_attempts, lower.connection_attempts);
        fill(
            &mut self.user_known_hosts_files,
            lower.user_known_hosts_files,
        );
        fill(
            &mut self.global_known_hosts_files,
            lower.global_known_hosts_files,
        );
        fill(
            &mut self.strict_host_key_checking,
            lower.strict_host_key_checking,
        );
        fill(&mut self.connect_timeout, lower.connect_timeout);
        fill(&mut self.server_alive_interval, lower.server_alive_interval);
        fill(
            &mut self.server_alive_count_max,
            lower.server_alive_count_max,
        );
        fill(&mut self.proxy_jump, lower.proxy_jump);
        fill(&mut self.identities_only, lower.identities_only);
        fill(&mut self.kex_algorithms, lower.kex_algorithms);
        fill(&mut self.ciphers, lower.ciphers);
        fill(&mut self.macs, lower.macs);
        fill(&mut self.host_key_algorithms, lower.host_key_algorithms);
        fill(
            &mut self.pubkey_accepted_algorithms,
            lower.pubkey_accepted_algorithms,
        );
        fill(&mut self.proxy_command, lower.proxy_command);
        fill(&mut self.request_tty, lower.request_tty);
        fill(&mut self.auth_methods, lower.auth_methods);
        fill(&mut self.pubkey_authentication, lower.pubkey_authentication);
        fill(
            &mut self.kbd_interactive_authentication,
            lower.kbd_interactive_authentication,
        );
        fill(
            &mut self.password_authentication,
            lower.password_authentication,
        );
        fill(&mut self.batch_mode, lower.batch_mode);
        fill(&mut self.hash_known_hosts, lower.hash_known_hosts);
        fill(&mut self.identity_agent, lower.identity_agent);
    }

    /// Applies pssh's `-x "ARGS"`: a string of ssh arguments split as a shell would.
    pub fn apply_ssh_arg_string(&mut self, text: &str) -> Result<(), OptionError> {
        let args = shlex::split(text).ok_or_else(|| OptionError::Quoting(text.to_string()))?;
        self.apply_ssh_args(&args)
    }

    /// Maps ssh command-line arguments onto these options; anything ssh would
    /// do differently from us is refused rather than silently ignored.
    pub fn apply_ssh_args(&mut self, args: &[String]) -> Result<(), OptionError> {
        let mut iter = args.iter();
        while let Some(arg) = iter.next() {
            match arg.as_str() {
                "-T" | "-q" | "-x" | "-a" => continue,
                // ssh's -t (-tt forces one): a terminal for the command.
                "-t" | "-tt" => {
                    self.set("RequestTTY", "yes")?;
                    continue;
                }
                _ => {}
            }
            let (flag, attached) = split_flag(arg)?;
            let value = match attached {
                Some(value) => value.to_string(),
                None => iter
                    .next()
                    .cloned()
                    .ok_or_else(|| OptionError::MissingValue(arg.clone()))?,
            };
            match flag {
                'o' => self.apply_option(&value)?,
                'i' => self.set("IdentityFile", &value)?,
                'p' => self.set("Port", &value)?,
                'l' => self.set("User", &value)?,
                'J' => self.set("ProxyJump", &value)?,
                _ => return Err(OptionError::UnsupportedArgument(arg.clone())),
            }
        }
        Ok(())
    }
}

fn split_flag(arg: &str) -> Result<(char, Option<&str>), OptionError> {
    let unsupported = || OptionError::UnsupportedArgument(arg.to_string());
    let rest = arg.strip_prefix('-').ok_or_else(unsupported)?;
    let mut chars = rest.chars();
    let flag = chars
        .next()
        .filter(|c| "oiplJ".contains(*c))
        .ok_or_else(unsupported)?;
    let attached = chars.as_str();
    Ok((flag, (!attached.is_empty()).then_some(attached)))
}

/// The error for a value `keyword` does not take, saying what it takes.
fn bad_value<'a>(keyword: &'a str, value: &'a str) -> impl Fn(&'static str) -> OptionError + 'a {
    move |expected| OptionError::BadValue {
        keyword: keyword.to_string(),
        value: value.to_string(),
        expected,
    }
}

fn set_once<T>(
    slot: &mut Option<T>,
    parse: impl FnOnce() -> Result<T, OptionError>,
) -> Result<(), OptionError> {
    // The value is validated even when an earlier one wins, so typos still fail.
    let value = parse()?;
    if slot.is_none() {
        *slot = Some(value);
    }
    Ok(())
}

fn parse_jumps(value: &str) -> Vec<String> {
    match value.trim() {
        "none" => Vec::new(),
        list => list
            .split(',')
            .map(|jump| jump.trim().to_string())
            .collect(),
    }
}

fn parse_yes_no(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "yes" | "true" => Some(true),
        "no" | "false" => Some(false),
        _ => None,
    }
}

fn parse_strictness(value: &str) -> Option<StrictHostKeyChecking> {
    match value.to_ascii_lowercase().as_str() {
        "yes" | "ask" => Some(StrictHostKeyChecking::Yes),
        "accept-new" => Some(StrictHostKeyChecking::AcceptNew),
        "no" | "off" => Some(StrictHostKeyChecking::No),
        _ => None,
    }
}

fn path_list(value: &str) -> Vec<PathBuf> {
    value.split_whitespace().map(expand_tilde).collect()
}

/// Expands a leading `~/` to $HOME, as ssh does for file options.
pub fn expand_tilde(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_value_wins_and_identities_accumulate() {
        let mut o = SshOptions::default();
        o.apply_option("Port=2222").unwrap();
        o.apply_option("port 22").unwrap();
        o.apply_option("IdentityFile=/a").unwrap();
        o.apply_option("identityfile /b").unwrap();
        assert_eq!(o.port, Some(2222));
        assert_eq!(o.identity_files, [PathBuf::from("/a"), PathBuf::from("/b")]);
    }

    #[test]
    fn pssh_extra_args_map_to_options() {
        let mut o = SshOptions::default();
        o.apply_ssh_arg_string(
            "-q -i /k -o 'ConnectTimeout 5' -p2200 -lops -oStrictHostKeyChecking=no",
        )
        .unwrap();
        assert_eq!(o.identity_files, [PathBuf::from("/k")]);
        assert_eq!(o.connect_timeout, Some(Duration::from_secs(5)));
        assert_eq!(o.port, Some(2200));
        assert_eq!(o.user.as_deref(), Some("ops"));
        assert_eq!(o.strict_host_key_checking, Some(StrictHostKeyChecking::No));
    }

    #[test]
    fn bad_input_is_refused_with_reason() {
        let mut o = SshOptions::default();
        let err = o.apply_option("Frobnicate=yes").unwrap_err().to_string();
        assert!(err.contains("supported: BatchMode"), "{err}");
        // Harmless keywords pssh users pass are accepted and ignored.
        o.apply_option("LogLevel=ERROR").unwrap();
        o.apply_ssh_arg_string("-o ControlMaster=auto -o Compression=yes")
            .unwrap();
        // What fleet would not do as asked is refused, saying why.
        let err = o.apply_option("LocalForward=8080:db:5432").unwrap_err();
        assert_eq!(
            err.to_string(),
            "LocalForward is not supported: fleet forwards no ports"
        );
        assert!(o.apply_option("revokedhostkeys=/etc/ssh/revoked").is_err());
        o.apply_option("RemoteCommand=none").unwrap();
        o.apply_option("PubkeyAuthentication=host-bound").unwrap();
        assert_eq!(o.pubkey_authentication, Some(true));
        assert!(matches!(
            o.apply_option("Port=http"),
            Err(OptionError::BadValue { .. })
        ));
        assert!(matches!(
            o.apply_option("Port"),
            Err(OptionError::Syntax(_))
        ));
        assert!(matches!(
            o.apply_ssh_arg_string("-L 8080:x:80"),
            Err(OptionError::UnsupportedArgument(_))
        ));
        assert!(matches!(
            o.apply_ssh_arg_string("-i"),
            Err(OptionError::MissingValue(_))
        ));
        assert!(matches!(
            o.apply_ssh_arg_string("-o 'Port=1"),
            Err(OptionError::Quoting(_))
        ));
    }
}
