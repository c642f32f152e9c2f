//! Private keys for public-key authentication, loaded once per run and shared
//! by every host: decoding a key costs far more than one host's handshake.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use russh::keys::agent::client::AgentClient;
use russh::keys::agent::AgentIdentity;
use russh::keys::Certificate;
use russh::keys::PrivateKey;

use super::{Secrets, SetupError};

/// The files OpenSSH tries when none is named, in OpenSSH's order.
const DEFAULT_KEY_FILES: &[&str] = &["id_rsa", "id_ecdsa", "id_ed25519"];

/// A decoded private key and the file it came from (for messages).
#[derive(Debug, Clone)]
pub struct Identity {
    pub path: PathBuf,
    pub key: Arc<PrivateKey>,
    /// Its OpenSSH certificate, offered before the bare key: KEY-cert.pub
    /// beside it, or a `CertificateFile` for the same key.
    pub certificate: Option<Certificate>,
}

/// OpenSSH's default key files in ~/.ssh that exist and load; the others
/// are skipped with a debug trace, as ssh does.
pub fn load_default_identities() -> Vec<Identity> {
    let Some(home) = std::env::var_os("HOME") else {
        return Vec::new();
    };
    let ssh_dir = PathBuf::from(home).join(".ssh");
    let mut identities = Vec::new();
    for name in DEFAULT_KEY_FILES {
        let path = ssh_dir.join(name);
        if !path.exists() {
            continue;
        }
        match load_identity(&path, &Secrets::default()) {
            Ok(identity) => identities.push(identity),
            // As ssh does: loud about a key others can read, quiet otherwise.
            Err(error) if error.to_string().contains("UNPROTECTED") => {
                tracing::warn!("ignoring default key: {error}")
            }
            Err(error) => tracing::debug!("skipping default key: {error}"),
        }
    }
    identities
}

/// Loads one key file; the error says why it cannot be used. An encrypted
/// key is decrypted with the run's passphrase, or one asked for it.
pub fn load_identity(path: &Path, secrets: &Secrets) -> Result<Identity, SetupError> {
    let key_error = |reason: String| SetupError::Key {
        path: path.to_path_buf(),
        reason,
    };
    check_key_file(path).map_err(key_error)?;
    let key = match russh::keys::load_secret_key(path, None) {
        Ok(key) => key,
        Err(russh::keys::Error::KeyIsEncrypted) => {
            let passphrase = secrets.passphrase_for(path).ok_or_else(|| {
                key_error("the key has a passphrase: give --passphrase-file FILE, or run from a terminal to be asked".into())
            })?;
            russh::keys::load_secret_key(path, Some(&passphrase))
                .map_err(|_| SetupError::WrongPassphrase(path.to_path_buf()))?
        }
        Err(error) => return Err(key_error(format!("not a usable private key ({error})"))),
    };
    let certificate = beside_certificate(path, &key);
    Ok(Identity {
        path: path.to_path_buf(),
        key: Arc::new(key),
        certificate,
    })
}

/// KEY-cert.pub, as ssh finds it, when it certifies this key.
fn beside_certificate(path: &Path, key: &PrivateKey) -> Option<Certificate> {
    let mut name = path.as_os_str().to_owned();
    name.push("-cert.pub");
    let certificate = load_certificate(Path::new(&name)).ok()?;
    certifies(&certificate, key).then_some(certificate)
}

/// An OpenSSH certificate file (`ssh-keygen -s` writes them).
pub fn load_certificate(path: &Path) -> Result<Certificate, String> {
    let text = crate::text::read_bounded(path, 1024 * 1024)
        .and_then(crate::text::decode)
        .map_err(|e| e.to_string())?;
    Certificate::from_openssh(text.trim()).map_err(|e| format!("not an OpenSSH certificate ({e})"))
}

/// Whether `certificate` is for `key`.
pub fn certifies(certificate: &Certificate, key: &PrivateKey) -> bool {
    certificate.public_key() == key.public_key().key_data()
}

/// A private key must be a file, and, like OpenSSH, fleet refuses one of
/// the operator's own that group or others can read: it may already be
/// someone else's.
fn check_key_file(path: &Path) -> Result<(), String> {
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err("no such file".into())
        }
        Err(error) => return Err(error.to_string()),
    };
    if metadata.is_dir() {
        return Err("is a directory".into());
    }
    if !metadata.is_file() {
        return Err("is not a regular file".into());
    }
    // The largest keys (RSA 16384, with a certificate) are a few KB.
    if metadata.len() > 1024 * 1024 {
        return Err("is larger than 1 MiB: not a private key".into());
    }
    // SAFETY: getuid cannot fail and touches no memory.
    let own = metadata.uid() == unsafe { libc::getuid() };
    let mode = metadata.mode() & 0o777;
    if own && mode & 0o077 != 0 {
        return Err(format!(
            "UNPROTECTED PRIVATE KEY FILE: permissions {mode:04o} are too open; \
             it must not be readable by others (chmod 600)"
        ));
    }
    Ok(())
}

/// How long an ssh-agent may take to list its keys or to sign: a hung
/// agent must not look like every host timing out.
pub(super) const AGENT_TIMEOUT: Duration = Duration::from_secs(5);

/// The keys and certificates the ssh-agent listening at `socket` holds;
/// none when it cannot be reached or does not answer in time (said once).
pub(super) async fn agent_identities(socket: &Path) -> Vec<AgentIdentity> {
    let listed = async {
        let mut agent = AgentClient::connect_uds(socket)
            .await
            .map_err(|error| format!("cannot reach ssh-agent at {}: {error}", socket.display()))?;
        agent
            .request_identities()
            .await
            .map_err(|error| format!("ssh-agent did not list its keys: {error}"))
    };
    let listed = tokio::time::timeout(AGENT_TIMEOUT, listed)
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "ssh-agent at {} did not answer within {}s; not using it",
                socket.display(),
                AGENT_TIMEOUT.as_secs()
            ))
        });
    listed.unwrap_or_else(|why| {
        tracing::warn!("{why}");
        Vec::new()
    })
}
