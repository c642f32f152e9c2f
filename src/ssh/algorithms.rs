//! The key exchanges, ciphers and MACs fleet offers a server. By default
//! OpenSSH's client lists, in OpenSSH's order, less what russh does not
//! implement (sntrup761, UMAC), so a server hardened the way FIPS or CIS
//! fleets are (`KexAlgorithms ecdh-sha2-nistp256`, `Ciphers
//! aes128-gcm@openssh.com`) is reached as `ssh` reaches it. `KexAlgorithms`,
//! `Ciphers` and `MACs` (ssh_config or -O) change a list as OpenSSH does: a
//! list replaces it, `+LIST` appends, `-LIST` removes (`*` and `?`
//! allowed), `^LIST` puts first. Kept here rather than taken from
//! ssh2-config's rules, whose `-` takes no wildcards and whose `^` repeats
//! names already in the list.

use russh::keys::{Algorithm, HashAlg};
use russh::{kex, Preferred};
use std::borrow::Cow;

use crate::pattern::wildcard_match;

/// Which list a keyword sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Kex,
    Cipher,
    Mac,
    /// The server's host key types (`HostKeyAlgorithms`).
    HostKey,
    /// The signatures fleet authenticates with (`PubkeyAcceptedAlgorithms`).
    Pubkey,
}

impl Family {
    /// OpenSSH's defaults that fleet implements, in OpenSSH's order.
    fn defaults(self) -> &'static [&'static str] {
        match self {
            Family::Kex => &[
                "mlkem768x25519-sha256",
                "curve25519-sha256",
                "curve25519-sha256@libssh.org",
                "ecdh-sha2-nistp256",
                "ecdh-sha2-nistp384",
                "ecdh-sha2-nistp521",
                "diffie-hellman-group-exchange-sha256",
                "diffie-hellman-group16-sha512",
                "diffie-hellman-group18-sha512",
                "diffie-hellman-group14-sha256",
            ],
            Family::Cipher => &[
                "chacha20-poly1305@openssh.com",
                "aes128-ctr",
                "aes192-ctr",
                "aes256-ctr",
                "aes128-gcm@openssh.com",
                "aes256-gcm@openssh.com",
            ],
            Family::HostKey => &[
                "ssh-ed25519",
                "ecdsa-sha2-nistp256",
                "ecdsa-sha2-nistp384",
                "ecdsa-sha2-nistp521",
                "rsa-sha2-512",
                "rsa-sha2-256",
            ],
            Family::Pubkey => &[
                "ssh-ed25519-cert-v01@openssh.com",
                "ecdsa-sha2-nistp256-cert-v01@openssh.com",
                "ecdsa-sha2-nistp384-cert-v01@openssh.com",
                "ecdsa-sha2-nistp521-cert-v01@openssh.com",
                "rsa-sha2-512-cert-v01@openssh.com",
                "rsa-sha2-256-cert-v01@openssh.com",
                "ssh-ed25519",
                "ecdsa-sha2-nistp256",
                "ecdsa-sha2-nistp384",
                "ecdsa-sha2-nistp521",
                "rsa-sha2-512",
                "rsa-sha2-256",
            ],
            Family::Mac => &[
                "hmac-sha2-256-etm@openssh.com",
                "hmac-sha2-512-etm@openssh.com",
                "hmac-sha1-etm@openssh.com",
                "hmac-sha2-256",
                "hmac-sha2-512",
                "hmac-sha1",
            ],
        }
    }

    /// Everything fleet can offer when asked: the defaults and the legacy
    /// ones OpenSSH also leaves out by default.
    fn known(self) -> Vec<&'static str> {
        let legacy: &[&str] = match self {
            Family::Kex => &[
                "diffie-hellman-group15-sha512",
                "diffie-hellman-group17-sha512",
                "diffie-hellman-group14-sha1",
                "diffie-hellman-group-exchange-sha1",
                "diffie-hellman-group1-sha1",
            ],
            Family::Cipher => &["aes128-cbc", "aes192-cbc", "aes256-cbc"],
            Family::Mac => &[],
            Family::HostKey => &[
                "ssh-rsa",
                "ssh-ed25519-cert-v01@openssh.com",
                "ecdsa-sha2-nistp256-cert-v01@openssh.com",
                "ecdsa-sha2-nistp384-cert-v01@openssh.com",
                "ecdsa-sha2-nistp521-cert-v01@openssh.com",
                "rsa-sha2-512-cert-v01@openssh.com",
                "rsa-sha2-256-cert-v01@openssh.com",
            ],
            Family::Pubkey => &["ssh-rsa", "ssh-rsa-cert-v01@openssh.com"],
        };
        self.defaults().iter().chain(legacy).copied().collect()
    }
}

/// A list as `spec` changes the defaults. Names fleet does not implement
/// are left out; a list left empty is an error naming what fleet has.
pub fn resolve(family: Family, spec: &str) -> Result<Vec<&'static str>, String> {
    let known = family.known();
    let mut list: Vec<&'static str> = family.defaults().to_vec();
    let (rule, names) = match spec.trim().chars().next() {
        Some(c @ ('+' | '-' | '^')) => (Some(c), &spec.trim()[1..]),
        _ => (None, spec.trim()),
    };
    let named: Vec<&str> = names
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    let implemented = || {
        named
            .iter()
            .filter_map(|name| known.iter().find(|k| *k == name).copied())
    };
    match rule {
        Some('+') => list.extend(implemented().filter(|n| !family.defaults().contains(n))),
        Some('-') => list.retain(|algo| !named.iter().any(|p| wildcard_match(p, algo))),
        Some('^') => {
            let first: Vec<&'static str> = implemented().collect();
            list.retain(|algo| !first.contains(algo));
            list.splice(0..0, first);
        }
        _ => list = implemented().collect(),
    }
    match list.is_empty() {
        true => Err(format!(
            "`{spec}` leaves nothing fleet implements; it implements: {}",
            known.join(",")
        )),
        false => Ok(list),
    }
}

/// Host key types as russh names them, plain and certified (`None` when
/// not set): certificates are asked for only for the `-cert-v01` names
/// the list gives, as OpenSSH does.
pub fn host_key_algorithms(
    list: Option<&[&'static str]>,
) -> Option<(Vec<Algorithm>, Vec<Algorithm>)> {
    let names = list?;
    let parse = |name: &&str| Algorithm::new(name).ok();
    let plain = names
        .iter()
        .filter(|n| !n.contains("-cert-v01@"))
        .filter_map(parse);
    let certified = names
        .iter()
        .filter_map(|n| n.strip_suffix("-cert-v01@openssh.com"))
        .filter_map(|base| Algorithm::new(base).ok());
    Some((plain.collect(), certified.collect()))
}

/// How to sign with `key` (a certificate's when `certified`) as the
/// accepted list (`PubkeyAcceptedAlgorithms`, OpenSSH's by default)
/// allows: `None` when it leaves the key out; for RSA, the hash the
/// server prefers (`server_rsa`, from its server-sig-algs) when allowed,
/// else SHA-256 when allowed (servers that say nothing), else the list's
/// first RSA signature.
pub fn signature(
    accepted: Option<&[&'static str]>,
    key: &Algorithm,
    certified: bool,
    server_rsa: Option<HashAlg>,
) -> Option<Option<HashAlg>> {
    let accepted = accepted.unwrap_or(Family::Pubkey.defaults());
    let allows = |name: &str| {
        let name = match certified {
            true => format!("{name}-cert-v01@openssh.com"),
            false => name.to_string(),
        };
        accepted.contains(&name.as_str())
    };
    if !matches!(key, Algorithm::Rsa { .. }) {
        return allows(key.as_str()).then_some(None);
    }
    let rsa = [
        ("rsa-sha2-512", Some(HashAlg::Sha512)),
        ("rsa-sha2-256", Some(HashAlg::Sha256)),
        ("ssh-rsa", None),
    ];
    let allowed = |hash: Option<HashAlg>| rsa.iter().any(|(name, h)| *h == hash && allows(name));
    if let Some(hash) = server_rsa.filter(|&hash| allowed(Some(hash))) {
        return Some(Some(hash));
    }
    if allowed(Some(HashAlg::Sha256)) {
        return Some(Some(HashAlg::Sha256));
    }
    let mut first = accepted.iter().filter_map(|name| {
        let name = name.strip_suffix("-cert-v01@openssh.com").unwrap_or(name);
        rsa.iter()
            .find(|(rsa_name, _)| *rsa_name == name && allows(name))
    });
    first.next().map(|(_, hash)| *hash)
}

/// The lists to offer, as russh takes them: `None` keeps the defaults.
pub fn preferred(
    kex_algorithms: Option<&[&'static str]>,
    ciphers: Option<&[&'static str]>,
    macs: Option<&[&'static str]>,
) -> Preferred {
    let kex_list = kex_algorithms.unwrap_or(Family::Kex.defaults());
    let mut kex: Vec<kex::Name> = names(kex_list);
    // Not algorithms but signals every OpenSSH client sends.
    kex.extend([
        kex::EXTENSION_SUPPORT_AS_CLIENT,
        kex::EXTENSION_OPENSSH_STRICT_KEX_AS_CLIENT,
    ]);
    Preferred {
        kex: Cow::Owned(kex),
        cipher: Cow::Owned(names(ciphers.unwrap_or(Family::Cipher.defaults()))),
        mac: Cow::Owned(names(macs.unwrap_or(Family::Mac.defaults()))),
        ..Preferred::DEFAULT
    }
}

/// Each name as russh's type; `known` lists only names russh has.
fn names<N: for<'a> TryFrom<&'a str>>(list: &[&str]) -> Vec<N> {
    list.iter()
        .filter_map(|name| N::try_from(name).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openssh_modifiers_change_the_default_list() {
        let kex = |spec| resolve(Family::Kex, spec).unwrap();
        assert_eq!(
            kex("ecdh-sha2-nistp256,sntrup761x25519-sha512"),
            ["ecdh-sha2-nistp256"]
        );
        assert_eq!(
            kex("-ecdh-*,mlkem*,curve25519*,diffie-hellman-group-exchange-sha256"),
            [
                "diffie-hellman-group16-sha512",
                "diffie-hellman-group18-sha512",
                "diffie-hellman-group14-sha256",
            ]
        );
        let first = kex("^diffie-hellman-group14-sha256");
        assert_eq!(first[0], "diffie-hellman-group14-sha256");
        assert_eq!(first.len(), Family::Kex.defaults().len());
        let more = resolve(Family::Cipher, "+aes128-cbc").unwrap();
        assert_eq!(more.last(), Some(&"aes128-cbc"));
        let error = resolve(Family::Kex, "sntrup761x25519-sha512").unwrap_err();
        assert!(
            error.contains("leaves nothing fleet implements; it implements: mlkem768"),
            "{error}"
        );
        assert!(resolve(Family::Mac, "-*").is_err());
    }

    #[test]
    fn signatures_follow_pubkey_accepted_algorithms() {
        let ed25519 = Algorithm::Ed25519;
        let rsa = Algorithm::Rsa { hash: None };
        assert_eq!(signature(None, &ed25519, false, None), Some(None));
        let no_ed = resolve(Family::Pubkey, "-ssh-ed25519*").unwrap();
        assert_eq!(signature(Some(&no_ed), &ed25519, false, None), None);
        assert_eq!(signature(Some(&no_ed), &ed25519, true, None), None);
        assert_eq!(
            signature(None, &rsa, false, Some(HashAlg::Sha512)),
            Some(Some(HashAlg::Sha512))
        );
        assert_eq!(
            signature(None, &rsa, false, None),
            Some(Some(HashAlg::Sha256))
        );
        let only_512 = resolve(Family::Pubkey, "rsa-sha2-512").unwrap();
        assert_eq!(
            signature(Some(&only_512), &rsa, false, Some(HashAlg::Sha256)),
            Some(Some(HashAlg::Sha512))
        );
        let legacy = resolve(Family::Pubkey, "ssh-rsa").unwrap();
        assert_eq!(signature(Some(&legacy), &rsa, false, None), Some(None));
        assert_eq!(signature(Some(&legacy), &ed25519, false, None), None);
    }

    #[test]
    fn every_name_fleet_offers_is_one_russh_implements() {
        let preferred = preferred(
            Some(&Family::Kex.known()),
            Some(&Family::Cipher.known()),
            Some(&Family::Mac.known()),
        );
        assert_eq!(preferred.kex.len(), Family::Kex.known().len() + 2);
        assert_eq!(preferred.cipher.len(), Family::Cipher.known().len());
        assert_eq!(preferred.mac.len(), Family::Mac.known().len());
    }
}
