//! Authentication, in OpenSSH's order: ssh-agent's keys, key files, then
//! keyboard-interactive and password when `-A` gave one (the operator
//! answering, on the terminal, prompts that are not for the password).

use std::sync::Arc;

use russh::client::{Handle, KeyboardInteractiveAuthResponse};
use russh::keys::agent::client::AgentClient;
use russh::keys::agent::AgentIdentity;
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKey};

use super::algorithms;
use super::connect::HostKeyVerifier;
use super::identity::AGENT_TIMEOUT;
use super::operator::{Operator, OperatorClock};
use super::resolve::Target;
use super::SshError;
use crate::text::printable;

/// What a host may be authenticated with, beside its own key files.
pub(super) struct Credentials<'a> {
    /// What the host's ssh-agent holds.
    pub agent_keys: &'a [AgentIdentity],
    /// `-A`'s.
    pub password: Option<&'a str>,
    /// Asked what the password cannot answer.
    pub operator: &'a Operator,
    /// The attempt's time spent asking the operator.
    pub clock: &'a OperatorClock,
}

/// A way to log in, as `PreferredAuthentications` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// ssh-agent's keys and certificates, then key files.
    Publickey,
    /// PAM's prompts (the password's answered with `-A`'s).
    KeyboardInteractive,
    Password,
}

impl AuthMethod {
    /// OpenSSH's order.
    pub const DEFAULT: [AuthMethod; 3] = [
        AuthMethod::Publickey,
        AuthMethod::KeyboardInteractive,
        AuthMethod::Password,
    ];

    /// The method OpenSSH calls `name`; `None` for those fleet lacks
    /// (gssapi-with-mic, hostbased).
    pub fn named(name: &str) -> Option<AuthMethod> {
        match name.trim().to_ascii_lowercase().as_str() {
            "publickey" => Some(AuthMethod::Publickey),
            "keyboard-interactive" => Some(AuthMethod::KeyboardInteractive),
            "password" => Some(AuthMethod::Password),
            _ => None,
        }
    }
}

/// Authenticates with each of the host's methods in order (OpenSSH's:
/// ssh-agent's keys, then key files the agent did not already offer, then
/// keyboard-interactive and password when `-A` gave one). The error names
/// everything tried.
pub(super) async fn authenticate(
    handle: &mut Handle<HostKeyVerifier>,
    target: &Target,
    credentials: Credentials<'_>,
) -> Result<(), SshError> {
    let mut tried = Vec::new();
    for method in &target.auth_methods {
        let accepted = match (method, credentials.password) {
            (AuthMethod::Publickey, _) => {
                publickey(handle, target, credentials.agent_keys, &mut tried).await?
            }
            (AuthMethod::KeyboardInteractive, Some(password)) => {
                let accepted = keyboard_interactive(handle, target, password, &credentials).await?;
                tried.push("keyboard-interactive".into());
                accepted
            }
            (AuthMethod::Password, Some(password)) => {
                let accepted = handle
                    .authenticate_password(target.user.as_str(), password)
                    .await?
                    .success();
                tried.push("password".into());
                accepted
            }
            (_, None) => false,
        };
        if accepted {
            return Ok(());
        }
    }
    if tried.is_empty() {
        tried.push(nothing_tried(target, credentials.password.is_some()));
    }
    Err(SshError::Auth {
        user: target.user.clone(),
        tried: tried.join(", "),
    })
}

/// Why no method was tried, for the error; `password`: -A gave one.
fn nothing_tried(target: &Target, password: bool) -> String {
    let methods: Vec<&str> = target
        .auth_methods
        .iter()
        .map(|method| match method {
            AuthMethod::Publickey => "publickey",
            AuthMethod::KeyboardInteractive => "keyboard-interactive",
            AuthMethod::Password => "password",
        })
        .collect();
    if methods.is_empty() {
        "nothing: PreferredAuthentications and the *Authentication options leave no method".into()
    } else if methods.contains(&"publickey") {
        let and = match password {
            true => "and the password methods are not allowed",
            false => "and no -A",
        };
        format!(
            "nothing: no agent, no key in ~/.ssh or given with --identity, -O IdentityFile or \
             ssh_config, {and}"
        )
    } else {
        format!(
            "nothing: only {} allowed, and no -A password for them",
            methods.join(", ")
        )
    }
}

/// ssh-agent's keys and certificates, then the key files the agent did
/// not already offer, each with its certificate first; true once one is
/// accepted.
async fn publickey(
    handle: &mut Handle<HostKeyVerifier>,
    target: &Target,
    agent_keys: &[AgentIdentity],
    tried: &mut Vec<String>,
) -> Result<bool, SshError> {
    let user = target.user.as_str();
    let agent = target.agent.as_deref().filter(|_| !target.identities_only);
    let use_agent = !agent_keys.is_empty() && agent.is_some();
    // Keys the server refused from the agent: not offered again from files.
    let mut refused = Vec::new();
    if let (true, Some(socket)) = (use_agent, agent) {
        let agent = Agent {
            socket,
            identities: agent_keys,
        };
        if authenticate_with_agent(handle, target, agent, &mut refused, tried).await? {
            return Ok(true);
        }
    }
    for identity in &target.identities {
        let public = identity.key.public_key();
        if refused
            .iter()
            .any(|k: &PublicKey| k.key_data() == public.key_data())
        {
            continue;
        }
        let path = identity.path.display();
        if let Some(certificate) = &identity.certificate {
            match signing(handle, target, public, true).await? {
                Some(_) => {
                    let key = Arc::clone(&identity.key);
                    let result = handle.authenticate_openssh_cert(user, key, certificate.clone());
                    if result.await?.success() {
                        return Ok(true);
                    }
                    tried.push(format!("certificate of {path}"));
                }
                None => tried.push(format!("not the certificate of {path} ({NOT_ACCEPTED})")),
            }
        }
        let Some(hash) = signing(handle, target, public, false).await? else {
            tried.push(format!("not publickey {path} ({NOT_ACCEPTED})"));
            continue;
        };
        let key = PrivateKeyWithHashAlg::new(Arc::clone(&identity.key), hash);
        if handle.authenticate_publickey(user, key).await?.success() {
            return Ok(true);
        }
        tried.push(format!("publickey {path}"));
    }
    Ok(false)
}

/// Why a key was not offered.
const NOT_ACCEPTED: &str = "its type is not in PubkeyAcceptedAlgorithms";

/// How to sign with `key` (its certificate's, when `certified`) as
/// PubkeyAcceptedAlgorithms allows, RSA with the hash the server prefers
/// (OpenSSH 8.8+ refuses SHA-1); `None`: not offered at all.
async fn signing(
    handle: &Handle<HostKeyVerifier>,
    target: &Target,
    key: &PublicKey,
    certified: bool,
) -> Result<Option<Option<HashAlg>>, SshError> {
    let algorithm = key.algorithm();
    let server_rsa = match algorithm.is_rsa() {
        true => handle.best_supported_rsa_hash().await?.flatten(),
        false => None,
    };
    let accepted = target.pubkey_algorithms.as_deref();
    Ok(algorithms::signature(
        accepted,
        &key.algorithm(),
        certified,
        server_rsa,
    ))
}

/// Offers each key and certificate the agent holds, in its order; true
/// once one is accepted. Keys the server refused go in `refused`; a key
/// the agent would not sign with is not one of them (its file may do). An
/// agent that stops answering fails the host (the connection is
/// mid-request and cannot go on to other methods).
async fn authenticate_with_agent(
    handle: &mut Handle<HostKeyVerifier>,
    target: &Target,
    Agent { socket, identities }: Agent<'_>,
    refused: &mut Vec<PublicKey>,
    tried: &mut Vec<String>,
) -> Result<bool, SshError> {
    let mut agent = match AgentClient::connect_uds(socket).await {
        Ok(agent) => agent,
        Err(error) => {
            tracing::debug!("ssh-agent unreachable: {error}");
            return Ok(false);
        }
    };
    let user = target.user.as_str();
    for identity in identities {
        let key = identity.public_key();
        let fingerprint = key.fingerprint(HashAlg::Sha256);
        let (certified, what) = match identity {
            AgentIdentity::Certificate { .. } => (true, "certificate"),
            AgentIdentity::PublicKey { .. } => (false, "publickey"),
        };
        let Some(hash) = signing(handle, target, &key, certified).await? else {
            tried.push(format!(
                "not {what} {fingerprint} from ssh-agent ({NOT_ACCEPTED})"
            ));
            continue;
        };
        let attempt = async {
            match identity {
                AgentIdentity::Certificate { certificate, .. } => {
                    let certificate = certificate.clone();
                    handle
                        .authenticate_certificate_with(user, certificate, hash, &mut agent)
                        .await
                }
                AgentIdentity::PublicKey { key, .. } => {
                    handle
                        .authenticate_publickey_with(user, key.clone(), hash, &mut agent)
                        .await
                }
            }
        };
        let Ok(answer) = tokio::time::timeout(AGENT_TIMEOUT, attempt).await else {
            return Err(SshError::Agent {
                socket: socket.to_path_buf(),
                message: format!(
                    "no signature within {}s (is it waiting for a confirmation?)",
                    AGENT_TIMEOUT.as_secs()
                ),
            });
        };
        match answer {
            Ok(result) if result.success() => return Ok(true),
            Ok(_) => {
                refused.push(key.into_owned());
                tried.push(format!("{what} {fingerprint} from ssh-agent"));
            }
            Err(error) => tried.push(format!(
                "{what} {fingerprint} from ssh-agent at {} (it did not sign: {error:?})",
                socket.display()
            )),
        }
    }
    Ok(false)
}

/// An ssh-agent's socket and what it holds.
struct Agent<'a> {
    socket: &'a std::path::Path,
    identities: &'a [AgentIdentity],
}

/// Rounds of keyboard-interactive prompts answered before giving up.
const MAX_PROMPT_ROUNDS: usize = 8;

/// Answers PAM's prompts: the password's with the password, any other (a
/// one-time code) by asking the operator for this host on the terminal.
async fn keyboard_interactive(
    handle: &mut Handle<HostKeyVerifier>,
    target: &Target,
    password: &str,
    credentials: &Credentials<'_>,
) -> Result<bool, SshError> {
    let mut response = handle
        .authenticate_keyboard_interactive_start(target.user.as_str(), None::<String>)
        .await?;
    for _ in 0..MAX_PROMPT_ROUNDS {
        response = match response {
            KeyboardInteractiveAuthResponse::Success => return Ok(true),
            KeyboardInteractiveAuthResponse::Failure { .. } => return Ok(false),
            KeyboardInteractiveAuthResponse::InfoRequest { prompts, .. } => {
                let mut answers = Vec::with_capacity(prompts.len());
                for prompt in &prompts {
                    // The host's words, shown on our terminal: nothing in
                    // them may act on it (clear it, pose as another host).
                    let question: Vec<String> =
                        prompt.prompt.trim_end().lines().map(printable).collect();
                    let question = question.join("\n");
                    let answer = match asks_for_password(&prompt.prompt) {
                        true => Some(password.to_string()),
                        // BatchMode: nobody is there to ask.
                        false if target.batch_mode => None,
                        false => {
                            let (operator, clock) = (credentials.operator, credentials.clock);
                            operator.ask(&target.label, &question, clock).await
                        }
                    };
                    // An empty answer would be a failed login on the host
                    // (lockouts count them): give up without one.
                    let Some(answer) = answer else {
                        return Err(unanswered(target, &question));
                    };
                    answers.push(answer);
                }
                handle
                    .authenticate_keyboard_interactive_respond(answers)
                    .await?
            }
        };
    }
    Ok(false)
}

/// The error for a prompt nobody can answer.
fn unanswered(target: &Target, question: &str) -> SshError {
    let why = match target.batch_mode {
        true => "BatchMode is on",
        false => "there is no terminal to ask it on",
    };
    SshError::Auth {
        user: target.user.clone(),
        tried: format!("keyboard-interactive, which asks `{question}`, and {why}"),
    }
}

/// Whether a keyboard-interactive prompt asks for the account's password
/// ("Password:", "alice@web1's password:") rather than for what only the
/// operator has ("One-time password (OATH)", "Verification code"). Only
/// its last line counts (PAM may put a banner before it), word by word.
fn asks_for_password(prompt: &str) -> bool {
    let last = prompt.trim_end().lines().next_back().unwrap_or_default();
    let text = last
        .trim()
        .trim_end_matches(':')
        .trim_end()
        .to_ascii_lowercase();
    let words: Vec<&str> = text
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|word| !word.is_empty())
        .collect();
    let something_else = [
        "one",
        "otp",
        "oath",
        "code",
        "token",
        "verification",
        "pin",
        "passcode",
        "new",
        "again",
        "retype",
    ];
    words.last() == Some(&"password") && !words.iter().any(|word| something_else.contains(word))
}

#[cfg(test)]
mod tests {
    use super::asks_for_password;

    #[test]
    fn password_prompts_are_told_from_one_time_codes() {
        for prompt in [
            "Password: ",
            "alice@web1's password:",
            "(current) UNIX password:",
            "pinto@web1's password:",
            "Welcome! Read the code of conduct.\nPassword: ",
        ] {
            assert!(asks_for_password(prompt), "{prompt}");
        }
        for prompt in [
            "One-time password (OATH) for `alice': ",
            "Verification code: ",
            "New password: ",
            "Enter PASSCODE:",
            "Retype new password:",
        ] {
            assert!(!asks_for_password(prompt), "{prompt}");
        }
    }
}
