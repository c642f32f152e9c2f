//! ssh_config's `%` tokens, expanded as OpenSSH does in the commands it
//! runs through a shell (ProxyCommand, `Match exec`): values substituted as
//! they are, so `"%h"` works, and a value a shell would act on (`$`,
//! quotes, `;`...) refused instead, as OpenSSH refuses it since
//! CVE-2023-51385.

use std::sync::OnceLock;

/// What the tokens stand for, for one host.
pub(super) struct Tokens<'a> {
    /// `%h`: the host to reach (HostName).
    pub host: &'a str,
    /// `%n`: the name as given.
    pub name: &'a str,
    /// `%p`
    pub port: u16,
    /// `%r`: the remote user.
    pub user: &'a str,
}

/// `text` with its tokens expanded; `keyword` names it in errors, and
/// `allowed` lists the tokens it may hold (besides `%%`).
pub(super) fn expand(
    keyword: &str,
    text: &str,
    tokens: &Tokens,
    allowed: &str,
) -> Result<String, String> {
    let inert = |what: &str, value: &str| {
        let ok = |c: char| c.is_ascii_alphanumeric() || "._-:/".contains(c);
        match !value.is_empty() && value.chars().all(ok) {
            true => Ok(value.to_string()),
            false => Err(format!(
                "{keyword}: the {what} `{}` has characters a shell would act on",
                value.escape_debug()
            )),
        }
    };
    let mut expanded = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            expanded.push(c);
            continue;
        }
        let token = match chars.next() {
            Some('%') => {
                expanded.push('%');
                continue;
            }
            Some(token) if allowed.contains(token) => token,
            Some(other) => return Err(format!("{keyword}: unknown token `%{other}`")),
            None => return Err(format!("{keyword}: a lone `%` at the end")),
        };
        let value = match token {
            'h' => inert("host name", tokens.host)?,
            'n' => inert("host name", tokens.name)?,
            'p' => tokens.port.to_string(),
            'r' => inert("user", tokens.user)?,
            'u' => inert("local user", &local_user_name())?,
            'l' => inert("local host name", &local_host_name())?,
            'L' => {
                let full = local_host_name();
                inert(
                    "local host name",
                    full.split('.').next().unwrap_or_default(),
                )?
            }
            'd' => inert("home directory", &std::env::var("HOME").unwrap_or_default())?,
            other => return Err(format!("{keyword}: unknown token `%{other}`")),
        };
        expanded.push_str(&value);
    }
    Ok(expanded)
}

/// The local login name, the default remote user as for ssh: the
/// account's, as OpenSSH takes it (not `$USER`, which anyone can set);
/// `$USER` only for a uid with no account. Looked up once: every host
/// asks, and each lookup reads /etc/passwd.
pub(super) fn local_user_name() -> String {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(look_up_local_user).clone()
}

fn look_up_local_user() -> String {
    // SAFETY: getpwuid returns a pointer into static storage or null; we copy
    // the name out immediately and never keep the pointer.
    let account = unsafe {
        let entry = libc::getpwuid(libc::getuid());
        (!entry.is_null()).then(|| {
            std::ffi::CStr::from_ptr((*entry).pw_name)
                .to_string_lossy()
                .into_owned()
        })
    };
    account
        .or_else(|| std::env::var("USER").ok())
        // SAFETY: getuid cannot fail and touches no memory.
        .unwrap_or_else(|| unsafe { libc::getuid() }.to_string())
}

/// This machine's host name (`%l`).
fn local_host_name() -> String {
    let mut buffer = [0u8; 256];
    // SAFETY: gethostname writes at most `buffer.len()` bytes into it.
    let written = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
    if written != 0 {
        return String::new();
    }
    let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
    String::from_utf8_lossy(&buffer[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEB: Tokens = Tokens {
        host: "10.0.0.5",
        name: "web1",
        port: 2222,
        user: "ops",
    };

    #[test]
    fn tokens_expand_and_hostile_values_are_refused() {
        assert_eq!(
            expand("ProxyCommand", "nc %h %p # %n %r 100%%", &WEB, "hnpr").unwrap(),
            "nc 10.0.0.5 2222 # web1 ops 100%"
        );
        let error = expand("ProxyCommand", "nc %u", &WEB, "hnpr").unwrap_err();
        assert!(error.contains("unknown token `%u`"), "{error}");
        let hostile = Tokens {
            name: "x;reboot",
            ..WEB
        };
        let error = expand("Match exec", "test %n", &hostile, "hnpr").unwrap_err();
        assert!(error.contains("a shell would act on"), "{error}");
        assert!(expand("Match exec", "echo %", &WEB, "h").is_err());
    }
}
