//! Authentication the way OpenSSH does it: ssh-agent keys, encrypted keys
//! with a passphrase, and passwords, against real sshd.

mod support;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use support::{run, tool, wait_until, TestFleet};

/// An ssh-agent for one test, killed when dropped.
struct Agent {
    process: Child,
    socket: std::path::PathBuf,
}

impl Agent {
    fn start(dir: &Path) -> Agent {
        let socket = dir.join("agent.sock");
        let process = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .spawn()
            .expect("ssh-agent (openssh-client)");
        wait_until(Duration::from_secs(5), "ssh-agent listens", || {
            socket.exists()
        });
        Agent { process, socket }
    }

    fn add(&self, key: &Path) {
        let status = Command::new("ssh-add")
            .arg(key)
            .env("SSH_AUTH_SOCK", &self.socket)
            .status()
            .unwrap();
        assert!(status.success(), "ssh-add failed");
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// A local user whose password is `Fleet-pw-42` (tests run as root).
fn password_user() -> &'static str {
    let user = "fleetpw";
    if Command::new("id")
        .arg(user)
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        let added = Command::new("useradd")
            .args(["--create-home", "--shell", "/bin/sh", user])
            .status()
            .unwrap();
        assert!(added.success(), "useradd");
    }
    let mut chpasswd = Command::new("chpasswd")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        chpasswd.stdin.as_mut().unwrap(),
        format!("{user}:Fleet-pw-42\n").as_bytes(),
    )
    .unwrap();
    assert!(chpasswd.wait().unwrap().success());
    user
}

/// prun with the fleet's known_hosts only: no key, and a HOME without ~/.ssh.
fn prun_without_keys(fleet: &TestFleet) -> Command {
    let mut prun = tool("prun");
    prun.arg("-O").arg(format!(
        "UserKnownHostsFile={}",
        fleet.known_hosts().display()
    ));
    prun.env("HOME", fleet.dir());
    prun
}

#[test]
fn agent_keys_authenticate_without_any_key_file() {
    let fleet = TestFleet::start(3);
    let agent = Agent::start(fleet.dir());
    agent.add(&fleet.key());
    let mut prun = prun_without_keys(&fleet);
    prun.env("SSH_AUTH_SOCK", &agent.socket)
        .arg("-h")
        .arg(fleet.hosts_file())
        .arg("true");
    run(prun).expect_code(0);
    // IdentityAgent names the socket instead of SSH_AUTH_SOCK...
    let mut named = prun_without_keys(&fleet);
    named
        .env_remove("SSH_AUTH_SOCK")
        .arg("-O")
        .arg(format!("IdentityAgent={}", agent.socket.display()))
        .args(["-H", &fleet.host(0), "true"]);
    run(named).expect_code(0);
    // ...or the variable it is in, as `$VAR` or `${VAR}`.
    for variable in ["$FLEET_TEST_AGENT", "${FLEET_TEST_AGENT}"] {
        let mut indirect = prun_without_keys(&fleet);
        indirect
            .env_remove("SSH_AUTH_SOCK")
            .env("FLEET_TEST_AGENT", &agent.socket)
            .args([
                "-O",
                &format!("IdentityAgent={variable}"),
                "-H",
                &fleet.host(0),
                "true",
            ]);
        run(indirect).expect_code(0);
    }
    // ...and `none` turns the agent off.
    let mut off = prun_without_keys(&fleet);
    off.env("SSH_AUTH_SOCK", &agent.socket).args([
        "-O",
        "IdentityAgent=none",
        "-H",
        &fleet.host(0),
        "true",
    ]);
    let result = run(off);
    result.expect_code(4);
    assert!(
        result.stdout_text().contains("tried: nothing"),
        "{}",
        result.stdout_text()
    );
    // And without the agent there is nothing to offer: the error says so.
    let mut bare = prun_without_keys(&fleet);
    bare.args(["-H", &fleet.host(0), "true"]);
    let result = run(bare);
    result.expect_code(4);
    assert!(
        result.stdout_text().contains("tried: nothing"),
        "{}",
        result.stdout_text()
    );
}

#[test]
fn encrypted_keys_take_a_passphrase_from_a_file_and_name_a_wrong_one() {
    let fleet = TestFleet::start(2);
    let key = fleet.dir().join("encrypted_key");
    std::fs::copy(fleet.key(), &key).unwrap();
    let status = Command::new("ssh-keygen")
        .args(["-q", "-p", "-P", "", "-N", "correct horse", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(status.success());
    let right = fleet.dir().join("right");
    let wrong = fleet.dir().join("wrong");
    std::fs::write(&right, "correct horse\n").unwrap();
    std::fs::write(&wrong, "battery staple\n").unwrap();

    let mut good = prun_without_keys(&fleet);
    good.arg("--identity")
        .arg(&key)
        .arg("--passphrase-file")
        .arg(&right);
    good.arg("-h").arg(fleet.hosts_file()).arg("true");
    run(good).expect_code(0);

    let mut bad = prun_without_keys(&fleet);
    bad.arg("--identity")
        .arg(&key)
        .arg("--passphrase-file")
        .arg(&wrong);
    bad.arg("-h").arg(fleet.hosts_file()).arg("true");
    let result = run(bad);
    result.expect_code(2);
    assert!(
        result
            .stderr
            .contains(&format!("wrong passphrase for {}", key.display())),
        "{}",
        result.stderr
    );

    // No passphrase and no terminal to ask on: a clear usage error.
    let mut unattended = prun_without_keys(&fleet);
    unattended
        .arg("--identity")
        .arg(&key)
        .arg("-h")
        .arg(fleet.hosts_file())
        .arg("true");
    // SAFETY: setsid in the child drops the controlling terminal, as under cron.
    unsafe {
        unattended.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let result = run(unattended);
    result.expect_code(2);
    assert!(
        result.stderr.contains("--passphrase-file"),
        "{}",
        result.stderr
    );
}

#[test]
fn password_authentication_for_a_real_user() {
    let user = password_user();

    let fleet = TestFleet::start_with(2, &["--password-auth"]);
    let password = fleet.dir().join("password");
    std::fs::write(&password, "Fleet-pw-42\n").unwrap();
    std::fs::set_permissions(
        &password,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let mut prun = prun_without_keys(&fleet);
    prun.args(["-l", user, "--password-file"])
        .arg(&password)
        .arg("-i")
        .arg("-h")
        .arg(fleet.hosts_file())
        .arg("id -un");
    let result = run(prun);
    result.expect_code(0);
    assert_eq!(result.stdout_text().matches("fleetpw\n").count(), 2);
    assert!(
        !result.stderr.contains("Fleet-pw-42") && !result.stdout_text().contains("Fleet-pw-42")
    );

    std::fs::write(&password, "not-it\n").unwrap();
    let mut wrong = prun_without_keys(&fleet);
    wrong
        .args(["-l", user, "--password-file"])
        .arg(&password)
        .args(["-H", &fleet.host(0), "true"]);
    let result = run(wrong);
    result.expect_code(4);
    assert!(
        result
            .stdout_text()
            .contains("tried: keyboard-interactive, password"),
        "{}",
        result.stdout_text()
    );
}

#[test]
fn askpass_asks_once_on_the_terminal_and_never_echoes() {
    let user = password_user();
    let fleet = TestFleet::start_with(3, &["--password-auth"]);
    let prun = format!(
        "{} -F none -A -l {user} -O UserKnownHostsFile={} -h {} -i 'id -un'",
        support::tool_path("prun").display(),
        fleet.known_hosts().display(),
        fleet.hosts_file().display()
    );
    // `script` gives prun a real terminal; the password is typed once the
    // prompt has had time to appear, as a person would.
    let session = format!("(sleep 2; printf 'Fleet-pw-42\\n') | script -qec \"{prun}\" /dev/null");
    let output = Command::new("sh")
        .arg("-c")
        .arg(&session)
        .env("SHELL", "/bin/sh") // what `script` runs the session in
        .env("HOME", fleet.dir())
        .output()
        .unwrap();
    let screen = String::from_utf8_lossy(&output.stdout);
    assert_eq!(screen.matches("Password:").count(), 1, "{screen}");
    assert_eq!(screen.matches("fleetpw").count(), 3, "{screen}");
    assert!(
        !screen.contains("Fleet-pw-42"),
        "the password was echoed: {screen}"
    );
}

#[test]
fn rsa_and_ecdsa_keys_authenticate() {
    let fleet = TestFleet::start(1);
    for (kind, bits) in [("rsa", "3072"), ("ecdsa", "256")] {
        let key = fleet.dir().join(format!("id_{kind}"));
        let made = Command::new("ssh-keygen")
            .args(["-q", "-t", kind, "-b", bits, "-N", "", "-f"])
            .arg(&key)
            .status()
            .unwrap();
        assert!(made.success());
        let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
        let mut authorized = std::fs::OpenOptions::new()
            .append(true)
            .open(fleet.dir().join("authorized_keys"))
            .unwrap();
        std::io::Write::write_all(&mut authorized, public.as_bytes()).unwrap();
        let mut prun = prun_without_keys(&fleet);
        prun.arg("--identity")
            .arg(&key)
            .args(["-H", &fleet.host(0), "true"]);
        run(prun).expect_code(0);
    }
}

#[test]
fn user_certificates_beside_the_key_or_named_by_certificate_file() {
    let scratch = tempfile::tempdir().unwrap();
    let keygen = |args: &[&str]| {
        let status = Command::new("ssh-keygen").args(args).status().unwrap();
        assert!(status.success(), "ssh-keygen {args:?}");
    };
    let ca = scratch.path().join("ca");
    let user = scratch.path().join("user");
    for key in [&ca, &user] {
        keygen(&[
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-f",
            &key.to_string_lossy(),
        ]);
    }
    let ca_pub = format!("TrustedUserCAKeys {}.pub", ca.display());
    let fleet = TestFleet::start_with(1, &["--sshd-option", &ca_pub]);
    let prun_with = |extra: &[&str]| {
        let mut prun = prun_without_keys(&fleet);
        prun.env_remove("SSH_AUTH_SOCK")
            .arg("--identity")
            .arg(&user)
            .args(extra)
            .args(["-H", &fleet.host(0), "true"]);
        run(prun)
    };
    // The key alone is in no authorized_keys: refused.
    prun_with(&[]).expect_code(4);
    let user_pub = format!("{}.pub", user.display());
    keygen(&[
        "-q",
        "-s",
        &ca.to_string_lossy(),
        "-I",
        "fleet-test",
        "-n",
        "root",
        "-V",
        "-5m:+1h",
        &user_pub,
    ]);
    let beside = scratch.path().join("user-cert.pub");
    prun_with(&[]).expect_code(0);
    let elsewhere = scratch.path().join("elsewhere.pub");
    std::fs::rename(&beside, &elsewhere).unwrap();
    prun_with(&[]).expect_code(4);
    let named = format!("CertificateFile={}", elsewhere.display());
    prun_with(&["-O", &named]).expect_code(0);

    // The same certificate held by ssh-agent, with no key file at all.
    std::fs::rename(&elsewhere, &beside).unwrap();
    let agent = Agent::start(scratch.path());
    agent.add(&user);
    let mut prun = prun_without_keys(&fleet);
    prun.env("SSH_AUTH_SOCK", &agent.socket)
        .args(["-H", &fleet.host(0), "true"]);
    run(prun).expect_code(0);
}

#[test]
fn an_agent_that_never_answers_is_left_out_not_waited_on() {
    let fleet = TestFleet::start(2);
    // A socket that takes connections and never says a word.
    let socket = fleet.dir().join("mute-agent.sock");
    let _mute = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let mut prun = fleet.prun_all();
    prun.env("SSH_AUTH_SOCK", &socket).arg("true");
    let result = run(prun);
    result.expect_code(0);
    assert!(
        result
            .stderr
            .contains("did not answer within 5s; not using it"),
        "{}",
        result.stderr
    );
}

/// A PAM service for sshd: the account's password, then a one-time code
/// (libpam-oath, HOTP with RFC 4226's test secret), removed when dropped.
struct OtpService {
    /// The PAM service, named for this process and test: runs at once
    /// never share one.
    name: String,
    pam_file: std::path::PathBuf,
    _users: tempfile::TempDir,
}

static OTP_SERVICES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl OtpService {
    /// RFC 4226's test secret and its first codes.
    const SECRET: &'static str = "3132333435363738393031323334353637383930";
    const CODES: [&'static str; 2] = ["755224", "287082"];

    fn install(user: &str) -> OtpService {
        let module = ["/lib", "/usr/lib"].iter().any(|lib| {
            std::fs::read_dir(lib).is_ok_and(|entries| {
                entries
                    .flatten()
                    .any(|arch| arch.path().join("security/pam_oath.so").exists())
            })
        });
        assert!(module, "pam_oath.so not found: install libpam-oath");
        let dir = tempfile::tempdir().unwrap();
        let users = dir.path().join("users.oath");
        std::fs::write(&users, format!("HOTP {user} - {}\n", Self::SECRET)).unwrap();
        let sequence = OTP_SERVICES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("fleet-otp-{}-{sequence}", std::process::id());
        let pam_file = Path::new("/etc/pam.d").join(&name);
        std::fs::write(
            &pam_file,
            format!(
                "auth required pam_unix.so\n\
                 auth required pam_oath.so usersfile={} window=20\n\
                 account required pam_permit.so\nsession required pam_permit.so\n",
                users.display()
            ),
        )
        .unwrap();
        OtpService {
            name,
            pam_file,
            _users: dir,
        }
    }
}

impl Drop for OtpService {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.pam_file);
    }
}

#[test]
fn one_time_codes_are_asked_per_host_in_turn() {
    let user = password_user();
    let service = OtpService::install(user);
    let fleet = TestFleet::start_with(2, &["--pam-service", &service.name]);
    let prun = format!(
        "{} -F none -A -l {user} -O UserKnownHostsFile={} -h {} -i 'id -un'",
        support::tool_path("prun").display(),
        fleet.known_hosts().display(),
        fleet.hosts_file().display()
    );
    // The password once, then a code for each host as it asks.
    let [first, second] = OtpService::CODES;
    let session = format!(
        "(sleep 2; printf 'Fleet-pw-42\\n'; sleep 2; printf '{first}\\n'; sleep 2; printf '{second}\\n') \
         | script -qec \"{prun}\" /dev/null"
    );
    let output = Command::new("sh")
        .arg("-c")
        .arg(&session)
        .env("SHELL", "/bin/sh") // what `script` runs the session in
        .env("HOME", fleet.dir())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let screen = String::from_utf8_lossy(&output.stdout);
    assert_eq!(screen.matches("Password:").count(), 1, "{screen}");
    for host in [fleet.host(0), fleet.host(1)] {
        let question = format!("{host}: One-time password (OATH) for `{user}':");
        assert_eq!(screen.matches(&question).count(), 1, "{screen}");
    }
    assert_eq!(
        screen.matches(&format!("{user}\r\n")).count(),
        2,
        "{screen}"
    );
    assert!(
        !screen.contains("Fleet-pw-42"),
        "the password was echoed: {screen}"
    );

    // Unattended, nobody can give the code: refused, not hung.
    let password = fleet.dir().join("password");
    std::fs::write(&password, "Fleet-pw-42\n").unwrap();
    let mut unattended = prun_without_keys(&fleet);
    unattended
        .args(["-l", user, "--password-file"])
        .arg(&password)
        .args(["-H", &fleet.host(0), "true"]);
    // SAFETY: setsid in the child drops the controlling terminal, as under cron.
    unsafe {
        unattended.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let result = run(unattended);
    result.expect_code(4);
    // No empty code is sent (a failed login there): fleet gives up first.
    assert!(
        result.stdout_text().contains(
            "which asks `One-time password (OATH) for `fleetpw':`, and there is no terminal"
        ),
        "{}",
        result.stdout_text()
    );
}

#[test]
fn ctrl_c_at_a_code_prompt_asks_no_other_host_and_gives_the_terminal_back() {
    let user = password_user();
    let service = OtpService::install(user);
    let fleet = TestFleet::start_with(3, &["--pam-service", &service.name]);
    let prun = format!(
        "trap : INT; s=$(date +%s); {} -F none -A -l {user} -O UserKnownHostsFile={} -h {} true; \
         echo PRUNRC=$? TOOK=$(( $(date +%s) - s )); stty -a",
        support::tool_path("prun").display(),
        fleet.known_hosts().display(),
        fleet.hosts_file().display()
    );
    // The password, then Ctrl-C at the first host's code; the Enter that
    // comes much later must not be what lets prun go. The Ctrl-C reaches
    // the session's shell too, which outlives it (the trap) to report, as
    // an operator's interactive shell does.
    let session = format!(
        "(sleep 2; printf 'Fleet-pw-42\\n'; sleep 3; printf '\\003'; sleep 10; printf '\\n') \
         | script -qec '{prun}' /dev/null"
    );
    let output = Command::new("sh")
        .arg("-c")
        .arg(&session)
        .env("SHELL", "/bin/sh") // what `script` runs the session in
        .env("HOME", fleet.dir())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let screen = String::from_utf8_lossy(&output.stdout);
    // At most the first host asked (a loaded machine may not have got
    // that far when the Ctrl-C came); never another after it.
    assert!(screen.matches("One-time password").count() <= 1, "{screen}");
    // Interrupted hosts: pssh's exit 3, well before the Enter 15 s in.
    assert!(screen.contains("PRUNRC=3 "), "{screen}");
    let took: u64 = screen
        .split("TOOK=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|seconds| seconds.parse().ok())
        .unwrap_or(u64::MAX);
    assert!(
        took < 14,
        "prun waited for the abandoned prompt's Enter: {screen}"
    );
    let settings = screen.split("PRUNRC=").nth(1).unwrap_or_default();
    assert!(
        settings.contains(" echo ") && !settings.contains("-echo "),
        "the terminal's echo stayed off: {screen}"
    );
}

#[test]
fn authentication_options_choose_the_methods_tried() {
    let user = password_user();
    let fleet = TestFleet::start_with(1, &["--password-auth"]);
    let password = fleet.dir().join("password");
    std::fs::write(&password, "Fleet-pw-42\n").unwrap();
    std::fs::set_permissions(
        &password,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let with = |mut prun: Command, options: &[&str]| {
        prun.args(["-l", user, "--password-file"]).arg(&password);
        for option in options {
            prun.args(["-O", option]);
        }
        prun.args(["-H", &fleet.host(0), "true"]);
        run(prun)
    };
    // No key: the password gets in, unless the options leave it out.
    with(prun_without_keys(&fleet), &[]).expect_code(0);
    let only_password = ["PreferredAuthentications=password"];
    with(prun_without_keys(&fleet), &only_password).expect_code(0);
    let no_passwords = [
        "PasswordAuthentication=no",
        "KbdInteractiveAuthentication=no",
    ];
    let result = with(prun_without_keys(&fleet), &no_passwords);
    result.expect_code(4);
    assert!(
        result
            .stdout_text()
            .contains("tried: nothing: no agent, no key"),
        "{}",
        result.stdout_text()
    );
    // With the fleet's key, which every test user may log in with.
    let result = with(
        fleet.prun(),
        &["PubkeyAuthentication=no", "PasswordAuthentication=no"],
    );
    result.expect_code(4);
    assert!(
        result
            .stdout_text()
            .contains("tried: keyboard-interactive)"),
        "{}",
        result.stdout_text()
    );
    with(
        fleet.prun(),
        &["PreferredAuthentications=gssapi-with-mic,publickey"],
    )
    .expect_code(0);
    // Unattended runs pass BatchMode=no too; it is accepted.
    with(fleet.prun(), &["BatchMode=no", "PubkeyAuthentication=no"]).expect_code(0);
}

/// An ssh-agent at `socket` that lists the public key `public` (an
/// OpenSSH .pub line) and refuses every signature.
fn refusing_agent(socket: &Path, public: &str) {
    use base64::Engine;
    use std::io::{Read, Write};
    let blob = public
        .split_whitespace()
        .nth(1)
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .expect("a public key line");
    let listener = std::os::unix::net::UnixListener::bind(socket).unwrap();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let blob = blob.clone();
            std::thread::spawn(move || loop {
                let mut length = [0u8; 4];
                if stream.read_exact(&mut length).is_err() {
                    return;
                }
                let mut message = vec![0u8; u32::from_be_bytes(length) as usize];
                if stream.read_exact(&mut message).is_err() {
                    return;
                }
                // 11: list identities, answered with 12; anything else: 5, failure.
                let reply = match message.first() {
                    Some(11) => {
                        let mut reply = vec![12];
                        reply.extend(1u32.to_be_bytes());
                        reply.extend((blob.len() as u32).to_be_bytes());
                        reply.extend(&blob);
                        reply.extend(0u32.to_be_bytes());
                        reply
                    }
                    _ => vec![5],
                };
                let mut framed = (reply.len() as u32).to_be_bytes().to_vec();
                framed.extend(reply);
                if stream.write_all(&framed).is_err() {
                    return;
                }
            });
        }
    });
}

#[test]
fn an_agent_that_will_not_sign_is_named_and_the_key_file_still_tried() {
    let fleet = TestFleet::start(1);
    let socket = fleet.dir().join("refusing-agent.sock");
    let public = std::fs::read_to_string(fleet.key().with_extension("pub")).unwrap();
    refusing_agent(&socket, &public);
    // The agent lists the fleet's key and will not sign; the key's file does.
    let mut with_file = fleet.prun_all();
    with_file.env("SSH_AUTH_SOCK", &socket).arg("true");
    run(with_file).expect_code(0);
    let mut agent_only = prun_without_keys(&fleet);
    agent_only
        .env("SSH_AUTH_SOCK", &socket)
        .args(["-H", &fleet.host(0), "true"]);
    let result = run(agent_only);
    result.expect_code(4);
    let expected = format!("from ssh-agent at {} (it did not sign", socket.display());
    assert!(
        result.stdout_text().contains(&expected),
        "{}",
        result.stdout_text()
    );
}
