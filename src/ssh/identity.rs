//! Private keys for public-key authentication, loaded once per run and shared
//! by every host: decoding a key costs far more than one host's handshake.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use russh::keys::PrivateKey;

use super::SetupError;

/// The files OpenSSH tries when none is named, in OpenSSH's order.
const DEFAULT_KEY_FILES: &[&str] = &["id_rsa", "id_ecdsa", "id_ed25519"];

/// A decoded private key and the file it came from (for messages).
#[derive(Debug, Clone)]
pub struct Identity {
    pub path: PathBuf,
    pub key: Arc<PrivateKey>,
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
        match load_identity(&path) {
            Ok(identity) => identities.push(identity),
            Err(error) => tracing::debug!("skipping default key: {error}"),
        }
    }
    identities
}

/// Loads one key file; the error says why it cannot be used.
pub fn load_identity(path: &Path) -> Result<Identity, SetupError> {
    let key_error = |reason: String| SetupError::Key {
        path: path.to_path_buf(),
        reason,
    };
    if !path.is_file() {
        return Err(key_error("no such file".into()));
    }
    match russh::keys::load_secret_key(path, None) {
        Ok(key) => Ok(Identity {
            path: path.to_path_buf(),
            key: Arc::new(key),
        }),
        Err(russh::keys::Error::KeyIsEncrypted) => Err(key_error(
            "the key is protected by a passphrase, which this version cannot ask for".into(),
        )),
        Err(error) => Err(key_error(format!("not a usable private key ({error})"))),
    }
}
