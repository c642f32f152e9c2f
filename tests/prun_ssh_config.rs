//! prun reaching hosts the way `ssh` does: ssh_config with OpenSSH's
//! precedence, and ProxyJump bastions sharing one connection.

mod support;

use support::{run, tool, TestFleet};

/// prun with an explicit ssh_config and no other key or known_hosts.
fn prun_with_config(config: &std::path::Path) -> std::process::Command {
    let mut prun = std::process::Command::new(support::tool_path("prun"));
    prun.arg("-F")
        .arg(config)
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null());
    prun
}

#[test]
fn ssh_config_is_honoured_with_the_command_line_first() {
    let fleet = TestFleet::start(3);
    let config = fleet.dir().join("ssh_config");
    let net = fleet.net;
    std::fs::write(
        &config,
        format!(
            "Host alias-one\n  HostName 127.{net}.0.1\n\
             Host 127.{net}.0.* !127.{net}.0.3\n  User nosuchuser\n\
             Host *\n  Port {port}\n  IdentityFile {key}\n  UserKnownHostsFile {known}\n  Frobnicate yes\n",
            port = fleet.port,
            key = fleet.key().display(),
            known = fleet.known_hosts().display(),
        ),
    )
    .unwrap();
    // HostName alias, with Port, key and known_hosts all from the config.
    let mut alias = prun_with_config(&config);
    alias.args([
        "-H",
        "root@alias-one",
        "-i",
        "hostname -I 2>/dev/null; echo via-alias",
    ]);
    let result = run(alias);
    result.expect_code(0);
    assert!(result.stdout_text().contains("via-alias"));
    // The config's wrong user applies to hosts 1 and 2 but not to the negated 3.
    let mut wrong_user = prun_with_config(&config);
    wrong_user.args(["-H", &format!("127.{net}.0.[1-3]"), "true"]);
    let result = run(wrong_user);
    result.expect_code(4);
    assert_eq!(
        result
            .stdout_text()
            .matches("permission denied for user nosuchuser")
            .count(),
        2
    );
    // -O beats the config; -l beats -O; the hosts entry beats them all.
    for flags in [
        vec!["-O", "User=root"],
        vec!["-l", "root", "-O", "User=nosuchuser"],
    ] {
        let mut fixed = prun_with_config(&config);
        fixed
            .args(&flags)
            .args(["-H", &format!("127.{net}.0.[1-3]"), "true"]);
        run(fixed).expect_code(0);
    }
    let mut entry = prun_with_config(&config);
    entry.args([
        "-l",
        "nosuchuser",
        "-H",
        &format!("root@127.{net}.0.1:{}", fleet.port),
        "true",
    ]);
    run(entry).expect_code(0);
}

#[test]
fn hosts_behind_a_bastion_share_one_connection_to_it() {
    let bastion = TestFleet::start(1);
    let fleet = TestFleet::start(20);
    let known = format!(
        "{} {}",
        bastion.known_hosts().display(),
        fleet.known_hosts().display()
    );
    let mut prun = tool("prun");
    prun.arg("-O").arg(format!("UserKnownHostsFile={known}"));
    prun.arg("--identity")
        .arg(bastion.key())
        .arg("--identity")
        .arg(fleet.key());
    prun.args(["-J", &format!("root@{}", bastion.host(0)), "-p", "20", "-i"]);
    prun.arg("-h")
        .arg(fleet.hosts_file())
        .arg("echo $PSSH_HOST");
    let result = run(prun);
    result.expect_code(0);
    assert_eq!(result.stdout_text().matches("[SUCCESS]").count(), 20);
    let log = std::fs::read_to_string(bastion.dir().join("sshd-0.log")).unwrap();
    assert_eq!(
        log.matches("Accepted publickey").count(),
        1,
        "one connection to the bastion:\n{log}"
    );
    let behind = std::fs::read_to_string(fleet.dir().join("sshd-0.log")).unwrap()
        + &std::fs::read_to_string(fleet.dir().join("sshd-1.log")).unwrap();
    assert_eq!(behind.matches("Accepted publickey").count(), 20);
}

#[test]
fn a_bastion_with_a_wrong_host_key_refuses_everything_behind_it() {
    let bastion = TestFleet::start(1);
    let fleet = TestFleet::start(3);
    // The bastion's entry holds the fleet's host key instead of its own.
    let fleet_key_line = std::fs::read_to_string(fleet.known_hosts()).unwrap();
    let fleet_key = fleet_key_line
        .lines()
        .next()
        .unwrap()
        .split_once(' ')
        .unwrap()
        .1;
    let known = fleet.dir().join("known_with_wrong_bastion");
    std::fs::write(
        &known,
        format!(
            "{fleet_key_line}[{}]:{} {fleet_key}\n",
            bastion.address(0),
            bastion.port
        ),
    )
    .unwrap();
    let markers = fleet.dir().join("markers");
    std::fs::create_dir(&markers).unwrap();
    let mut prun = tool("prun");
    prun.arg("-O")
        .arg(format!("UserKnownHostsFile={}", known.display()));
    prun.arg("--identity")
        .arg(bastion.key())
        .arg("--identity")
        .arg(fleet.key());
    prun.args(["-J", &format!("root@{}", bastion.host(0))]);
    prun.arg("-h")
        .arg(fleet.hosts_file())
        .arg(format!("touch {}/$PSSH_NODENUM", markers.display()));
    let result = run(prun);
    result.expect_code(4);
    let stdout = result.stdout_text();
    assert_eq!(stdout.matches("through bastion").count(), 3, "{stdout}");
    assert_eq!(stdout.matches("HOST KEY CHANGED").count(), 3, "{stdout}");
    assert_eq!(
        std::fs::read_dir(&markers).unwrap().count(),
        0,
        "a command ran behind a refused bastion"
    );
}

#[test]
fn proxy_command_carries_the_connection_through_nc_or_ssh_w() {
    let fleet = TestFleet::start(3);
    let net = fleet.net;
    let log = fleet.dir().join("proxy.log");
    let ssh_w = format!(
        "ssh -i {key} -o UserKnownHostsFile={known} -o StrictHostKeyChecking=yes -o BatchMode=yes \
         -p {port} -W %h:%p root@127.{net}.0.1",
        key = fleet.key().display(),
        known = fleet.known_hosts().display(),
        port = fleet.port,
    );
    let config = fleet.dir().join("ssh_config");
    std::fs::write(
        &config,
        format!(
            "Host 127.{net}.0.3\n  ProxyCommand none\n\
             Host 127.{net}.0.2\n  ProxyCommand {ssh_w}\n\
             Host *\n  ProxyCommand sh -c 'echo %n >> {log}; exec nc \"%h\" %p'\n  Port {port}\n  User root\n\
             \x20 IdentityFile {key}\n  UserKnownHostsFile {known}\n",
            log = log.display(),
            port = fleet.port,
            key = fleet.key().display(),
            known = fleet.known_hosts().display(),
        ),
    )
    .unwrap();
    let mut prun = prun_with_config(&config);
    prun.args(["-H", &format!("127.{net}.0.[1-3]"), "-i", "echo reached"]);
    let result = run(prun);
    result.expect_code(0);
    assert_eq!(result.stdout_text().matches("reached").count(), 3);
    // Host 1 went through nc; 2 through `ssh -W` (its own first match);
    // 3 directly (`ProxyCommand none` comes first for it).
    let through_nc = std::fs::read_to_string(&log).unwrap();
    assert_eq!(through_nc, format!("127.{net}.0.1\n"));
    // A user name a shell would act on never reaches the proxy's shell.
    let mut injected = prun_with_config(&config);
    injected.args([
        "-l",
        "z$(touch${IFS}/tmp/pwned)",
        "-H",
        &format!("127.{net}.0.1"),
        "true",
    ]);
    let refused = run(injected);
    refused.expect_code(2);
    assert!(
        refused.stderr.contains("expected a user name"),
        "{}",
        refused.stderr
    );
    // A proxy that cannot reach its host says why.
    std::fs::write(
        &config,
        format!(
            "Host *\n  ProxyCommand nc -w 2 127.{net}.0.1 1\n  User root\n  IdentityFile {key}\n  UserKnownHostsFile {known}\n",
            key = fleet.key().display(),
            known = fleet.known_hosts().display(),
        ),
    )
    .unwrap();
    let mut failing = prun_with_config(&config);
    failing.args(["-H", &format!("127.{net}.0.1"), "true"]);
    let failed = run(failing);
    assert_ne!(failed.code(), 0);
    assert!(
        failed
            .stdout_text()
            .contains("through ProxyCommand `exec nc -w 2"),
        "{}",
        failed.stdout_text()
    );
}

#[test]
fn connection_attempts_try_again_while_the_connection_fails() {
    let fleet = TestFleet::start(1);
    let net = fleet.net;
    let tried = fleet.dir().join("tried-once");
    // A proxy that fails the first time it runs, then carries the connection.
    let config = fleet.dir().join("ssh_config");
    std::fs::write(
        &config,
        format!(
            "Host *\n  ProxyCommand sh -c 'if [ -e {tried} ]; then exec nc %h %p; fi; touch {tried}; exit 1'\n\
             \x20 Port {port}\n  User root\n  IdentityFile {key}\n  UserKnownHostsFile {known}\n",
            tried = tried.display(),
            port = fleet.port,
            key = fleet.key().display(),
            known = fleet.known_hosts().display(),
        ),
    )
    .unwrap();
    let host = format!("127.{net}.0.1");
    let mut once = prun_with_config(&config);
    once.args(["-H", &host, "true"]);
    assert_ne!(run(once).code(), 0);
    std::fs::remove_file(&tried).unwrap();
    let mut twice = prun_with_config(&config);
    twice.args(["-O", "ConnectionAttempts=2", "-H", &host, "true"]);
    run(twice).expect_code(0);
}

#[test]
fn match_blocks_choose_settings_per_host_user_and_local_check() {
    let fleet = TestFleet::start(2);
    let config = fleet.dir().join("ssh_config");
    let marker = fleet.dir().join("vpn-up");
    let net = fleet.net;
    std::fs::write(
        &config,
        format!(
            "Host *\n  IdentityFile {key}\n  UserKnownHostsFile {known}\n\
             Match originalhost inner-* exec \"test -e {marker}\"\n  HostName 127.{net}.0.2\n\
             Match originalhost inner-*\n  HostName 127.{net}.0.250\n\
             Match user nosuchuser\n  Port 1\n\
             Match final host 127.{net}.0.*\n  Port {port}\n",
            key = fleet.key().display(),
            known = fleet.known_hosts().display(),
            marker = marker.display(),
            port = fleet.port,
        ),
    )
    .unwrap();
    let inner = |user: &str| {
        let mut prun = prun_with_config(&config);
        prun.args(["-l", user, "-H", "inner-a", "-i", "echo reached"]);
        prun
    };
    // Without the local marker, the exec check fails: the address no one serves.
    let result = run(inner("root"));
    result.expect_code(4);
    assert!(
        result.stdout_text().contains("cannot connect"),
        "{}",
        result.stdout_text()
    );
    // With it, the host is found, through the final pass's Port.
    std::fs::write(&marker, "").unwrap();
    let result = run(inner("root"));
    result.expect_code(0);
    assert!(result.stdout_text().contains("reached"));
    // Match user sees the user from -l: the first Port wins.
    let result = run(inner("nosuchuser"));
    result.expect_code(4);
    // A criterion fleet cannot answer is an error at its line, before any host.
    std::fs::write(
        &config,
        "Host *\n  Port 22\nMatch localnetwork 10.0.0.0/8\n",
    )
    .unwrap();
    let mut prun = prun_with_config(&config);
    prun.args(["-H", "127.0.0.1", "true"]);
    let result = run(prun);
    result.expect_code(2);
    assert!(
        result
            .stderr
            .contains("ssh_config:3: Match localnetwork: fleet supports"),
        "{}",
        result.stderr
    );
}
