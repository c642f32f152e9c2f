//! prun against sshd hardened the way FIPS- or CIS-minded fleets are: each
//! key exchange, cipher and MAC family fleet offers, on a server that
//! allows only it, and OpenSSH's `+`, `-` and `^` from -O and ssh_config.

mod support;

use support::{run, TestFleet};

/// A one-host fleet whose sshd allows only what `lines` say.
fn hardened(lines: &[&str]) -> TestFleet {
    let mut args = Vec::new();
    for line in lines {
        args.extend(["--sshd-option", line]);
    }
    TestFleet::start_with(1, &args)
}

/// `prun -F CONFIG true` on the fleet, as root, with no agent.
fn prun_with_config(fleet: &TestFleet, config: &std::path::Path) -> std::process::Command {
    let mut prun = std::process::Command::new(support::tool_path("prun"));
    prun.arg("-F")
        .arg(config)
        .arg("-h")
        .arg(fleet.hosts_file())
        .args(["-l", "root", "true"])
        .env_remove("SSH_AUTH_SOCK")
        .stdin(std::process::Stdio::null());
    prun
}

#[test]
fn each_family_reaches_a_server_that_allows_only_it() {
    let cases: &[&[&str]] = &[
        &["KexAlgorithms ecdh-sha2-nistp256"],
        &["KexAlgorithms ecdh-sha2-nistp384"],
        &["KexAlgorithms diffie-hellman-group14-sha256"],
        &["KexAlgorithms diffie-hellman-group16-sha512"],
        &["Ciphers aes128-gcm@openssh.com"],
        &["Ciphers aes256-ctr", "MACs hmac-sha2-256"],
        &["Ciphers aes128-ctr", "MACs hmac-sha2-512-etm@openssh.com"],
    ];
    for lines in cases {
        let fleet = hardened(lines);
        let mut prun = fleet.prun_all();
        prun.arg("true");
        let result = run(prun);
        assert_eq!(result.code(), 0, "{lines:?}: {}", result.stdout_text());
    }
}

#[test]
fn openssh_modifiers_from_the_command_line_and_ssh_config() {
    let fleet = hardened(&["KexAlgorithms ecdh-sha2-nistp384"]);
    // Removing what the server insists on: no common key exchange.
    let mut without = fleet.prun_all();
    without.args(["-O", "KexAlgorithms=-ecdh-sha2-*", "true"]);
    let refused = run(without);
    assert_ne!(refused.code(), 0, "{}", refused.stdout_text());
    // One line naming both sides' lists.
    let stdout = refused.stdout_text();
    assert!(
        stdout.contains("No common Kex algorithm - ours: [\"mlkem768x25519-sha256\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("theirs: [\"ecdh-sha2-nistp384\""),
        "{stdout}"
    );
    // The same from ssh_config, put first with `^`.
    let config = fleet.dir().join("ssh_config");
    let text = format!(
        "Host *\n  KexAlgorithms ^ecdh-sha2-nistp384\n  IdentityFile {}\n  UserKnownHostsFile {}\n",
        fleet.key().display(),
        fleet.known_hosts().display()
    );
    std::fs::write(&config, &text).unwrap();
    run(prun_with_config(&fleet, &config)).expect_code(0);
    // `-` takes wildcards in ssh_config too.
    std::fs::write(&config, text.replace("^ecdh-sha2-nistp384", "-ecdh-*")).unwrap();
    assert_ne!(run(prun_with_config(&fleet, &config)).code(), 0);
    // Keywords pssh users pass that fleet does not act on are ignored.
    let mut harmless = fleet.prun_all();
    harmless.args([
        "-O",
        "LogLevel=ERROR",
        "-x",
        "-o Compression=yes -o ControlMaster=auto",
    ]);
    harmless.arg("true");
    run(harmless).expect_code(0);
    // A list of nothing fleet implements is a usage error, before any host.
    let mut nothing = fleet.prun_all();
    nothing.args(["-O", "KexAlgorithms=sntrup761x25519-sha512", "true"]);
    let result = run(nothing);
    result.expect_code(2);
    assert!(
        result.stderr.contains("leaves nothing fleet implements"),
        "{}",
        result.stderr
    );
}

#[test]
fn host_key_algorithms_choose_which_server_keys_are_accepted() {
    // The test hosts have ed25519 host keys only.
    let fleet = TestFleet::start(1);
    for (spec, works) in [
        ("ssh-ed25519", true),
        ("^rsa-sha2-512", true),
        ("rsa-sha2-512,ecdsa-sha2-nistp256", false),
        ("-ssh-ed25519", false),
    ] {
        let mut prun = fleet.prun_all();
        prun.args(["-O", &format!("HostKeyAlgorithms={spec}"), "true"]);
        let result = run(prun);
        assert_eq!(
            result.code() == 0,
            works,
            "{spec}: {}",
            result.stdout_text()
        );
    }
}

#[test]
fn pubkey_accepted_algorithms_choose_which_signatures_are_offered() {
    let fleet = hardened(&["PubkeyAcceptedAlgorithms rsa-sha2-512"]);
    let rsa = fleet.dir().join("id_rsa");
    let made = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "rsa", "-b", "3072", "-N", "", "-f"])
        .arg(&rsa)
        .status()
        .unwrap();
    assert!(made.success());
    let public = std::fs::read_to_string(rsa.with_extension("pub")).unwrap();
    let authorized = fleet.dir().join("authorized_keys");
    let mut keys = std::fs::read_to_string(&authorized).unwrap();
    keys.push_str(&public);
    std::fs::write(&authorized, keys).unwrap();
    let with = |options: &[&str]| {
        let mut prun = fleet.prun();
        prun.arg("--identity")
            .arg(&rsa)
            .args(["-h"])
            .arg(fleet.hosts_file());
        for option in options {
            prun.args(["-O", option]);
        }
        prun.arg("true");
        run(prun)
    };
    // The server takes only SHA-512 RSA signatures and says so: reached.
    with(&[]).expect_code(0);
    // Allowed only SHA-256 ones, fleet offers nothing the server takes.
    let result = with(&["PubkeyAcceptedAlgorithms=rsa-sha2-256"]);
    result.expect_code(4);
    // Without ed25519, the fleet's ed25519 key is not even offered.
    let result = with(&["PubkeyAcceptedAlgorithms=-ssh-ed25519*,rsa*"]);
    result.expect_code(4);
    assert!(
        result.stdout_text().contains("not publickey")
            && result.stdout_text().contains("PubkeyAcceptedAlgorithms"),
        "{}",
        result.stdout_text()
    );
}
