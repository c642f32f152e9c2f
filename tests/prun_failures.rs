//! prun when things go wrong: unreachable hosts, timeouts that must kill the
//! remote command, refused keys, and bad input.

mod support;

use std::path::Path;
use std::time::Duration;

use support::{free_port, process_running, run, wait_until, Run, TestFleet};

#[test]
fn refused_port_is_an_ssh_error() {
    let fleet = TestFleet::start(1);
    let mut prun = fleet.prun();
    prun.args([
        "-H",
        &format!("127.0.0.1:{}", free_port()),
        "-H",
        &fleet.host(0),
        "true",
    ]);
    let result = run(prun);
    result.expect_code(4);
    assert!(
        result.stdout_text().contains("cannot connect"),
        "{}",
        result.stdout_text()
    );
    assert!(
        result.stderr.contains("1 ok, 1 unreachable"),
        "{}",
        result.stderr
    );
}

#[test]
fn black_holed_host_hits_the_connect_timeout() {
    let fleet = TestFleet::start(1);
    // The kernel completes the TCP handshake from the backlog; nothing ever speaks.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_host = format!("127.0.0.1:{}", silent.local_addr().unwrap().port());
    let mut prun = fleet.prun();
    prun.args(["-O", "ConnectTimeout=1", "-H", &silent_host, "true"]);
    let result = run(prun);
    result.expect_code(4);
    assert!(
        result
            .stdout_text()
            .contains("connection timed out after 1s"),
        "{}",
        result.stdout_text()
    );
}

#[test]
fn timeout_kills_the_remote_command_and_its_children() {
    // Ten hosts at once: the deadline then often passes before a shell has
    // reported its pid, a race that must still end in a kill.
    let fleet = TestFleet::start(10);
    let marker = format!("sleep {}", 30_000 + std::process::id() % 10_000);
    let mut prun = fleet.prun_all();
    // A background child and a foreground one: both must die.
    prun.args(["-t", "1", &format!("{marker} & {marker}; wait")]);
    let result = run(prun);
    result.expect_code(3);
    assert_eq!(
        result.stdout_text().matches("Timed out").count(),
        10,
        "{}",
        result.stdout_text()
    );
    assert!(
        !result.stderr.contains("did not report its pid"),
        "{}",
        result.stderr
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !process_running(&marker),
        "`{marker}` still runs on the host after the timeout"
    );
}

#[test]
fn a_reader_that_stops_reading_does_not_hold_back_the_timeout() {
    // `prun -P ... | less` with the pager left alone: stdout is a pipe
    // nobody reads, and the timeout must still stop every host's command.
    let fleet = TestFleet::start(2);
    let marker = format!("yes fleet-stalled-{}", std::process::id());
    let mut prun = fleet.prun_all();
    prun.args(["-t", "2", "-P", &marker]);
    prun.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = prun.spawn().unwrap();
    // Only the hosts' `yes`: prun's own command line holds the marker too.
    let remote = format!("^{marker}$");
    wait_until(Duration::from_secs(60), "the command starts", || {
        process_running(&remote)
    });
    wait_until(
        Duration::from_secs(60),
        "the command is stopped on the hosts while prun's stdout is not read",
        || !process_running(&remote),
    );
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("the output was not being read"), "{stderr}");
    assert!(!stderr.contains("may still run"), "{stderr}");
}

#[test]
fn ctrl_c_kills_running_commands_and_cancels_the_rest() {
    let fleet = TestFleet::start(3);
    let marker = format!("sleep {}", 40_000 + std::process::id() % 10_000);
    let mut prun = fleet.prun_all();
    prun.args(["-p", "1", &marker]);
    prun.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = prun.spawn().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !process_running(&format!("^sh -c .*{marker}|^bash -c .*{marker}")) {
        assert!(
            std::time::Instant::now() < deadline,
            "the command never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(3), "{stdout}");
    assert_eq!(stdout.matches("Interrupted").count(), 1, "{stdout}");
    assert_eq!(
        stdout.matches("Cancelled before it started").count(),
        2,
        "{stdout}"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !process_running(&marker),
        "`{marker}` still runs after Ctrl-C"
    );
}

#[test]
fn wrong_user_key_is_an_auth_failure() {
    let fleet = TestFleet::start(1);
    let stranger = fleet.dir().join("stranger");
    let keygen = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&stranger)
        .status()
        .unwrap();
    assert!(keygen.success());
    let mut prun = support::tool("prun");
    prun.arg("-O").arg(format!(
        "UserKnownHostsFile={}",
        fleet.known_hosts().display()
    ));
    prun.arg("--identity")
        .arg(&stranger)
        .args(["-H", &fleet.host(0), "true"]);
    let result = run(prun);
    result.expect_code(4);
    assert!(
        result.stdout_text().contains("permission denied for user"),
        "{}",
        result.stdout_text()
    );
}

#[test]
fn changed_host_key_refuses_the_host_and_runs_nothing() {
    let fleet = TestFleet::start(2);
    let other = std::fs::read_to_string(fleet.dir().join("id_ed25519.pub")).unwrap();
    let other_key: Vec<&str> = other.split_whitespace().take(2).collect();
    // Host 0 keeps its real key; host 1's entry now holds a different key.
    let known = format!(
        "[{}]:{} {}\n",
        fleet.address(1),
        fleet.port,
        other_key.join(" ")
    );
    let original = std::fs::read_to_string(fleet.known_hosts()).unwrap();
    let host0_line = original.lines().next().unwrap();
    std::fs::write(fleet.known_hosts(), format!("{host0_line}\n{known}")).unwrap();
    let marker_dir = fleet.dir().join("markers");
    std::fs::create_dir(&marker_dir).unwrap();
    let mut prun = fleet.prun_all();
    prun.arg(format!("touch {}/$PSSH_NODENUM", marker_dir.display()));
    let result = run(prun);
    result.expect_code(4);
    assert!(
        result.stdout_text().contains("HOST KEY CHANGED"),
        "{}",
        result.stdout_text()
    );
    assert!(marker_dir.join("0").exists());
    assert!(
        !marker_dir.join("1").exists(),
        "the command ran on a host with a changed key"
    );
}

#[test]
fn unknown_hosts_are_refused_unless_accept_new_records_them() {
    let fleet = TestFleet::start(20);
    let fresh = fleet.dir().join("fresh_known_hosts");
    let mut refused = support::tool("prun");
    refused
        .arg("-O")
        .arg(format!("UserKnownHostsFile={}", fresh.display()));
    refused
        .arg("--identity")
        .arg(fleet.key())
        .arg("-h")
        .arg(fleet.hosts_file())
        .arg("true");
    let result = run(refused);
    result.expect_code(4);
    assert_eq!(
        result
            .stdout_text()
            .matches("is not in known_hosts")
            .count(),
        20
    );
    // The summary gives the 20 refusals as one group, without fingerprints.
    let failed: Vec<&str> = result
        .stderr
        .lines()
        .filter(|l| l.contains("FAILED"))
        .collect();
    assert_eq!(failed.len(), 1, "{}", result.stderr);
    assert!(failed[0].contains("not in known_hosts") && !failed[0].contains("SHA256:"));
    // pplay's summary likewise.
    let playbook = fleet.dir().join("true.yml");
    std::fs::write(&playbook, "hosts: all\ntasks:\n  - run: true\n").unwrap();
    let mut pplay = support::tool("pplay");
    pplay
        .arg("-O")
        .arg(format!("UserKnownHostsFile={}", fresh.display()))
        .arg("--identity")
        .arg(fleet.key())
        .arg("-i")
        .arg(fleet.hosts_file())
        .arg(&playbook);
    let result = run(pplay);
    let stdout = result.stdout_text();
    let failed: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("pplay: failed ("))
        .collect();
    assert_eq!(failed.len(), 1, "{stdout}");
    assert!(failed[0].starts_with("pplay: failed (20): "), "{stdout}");
    assert!(!failed[0].contains("SHA256:"), "{stdout}");

    let mut accepting = support::tool("prun");
    accepting
        .arg("-O")
        .arg(format!("UserKnownHostsFile={}", fresh.display()));
    accepting.args(["-O", "StrictHostKeyChecking=accept-new"]);
    accepting
        .arg("--identity")
        .arg(fleet.key())
        .arg("-h")
        .arg(fleet.hosts_file())
        .arg("true");
    run(accepting).expect_code(0);
    let mut recorded: Vec<String> = std::fs::read_to_string(&fresh)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let mut expected: Vec<String> = std::fs::read_to_string(fleet.known_hosts())
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    recorded.sort();
    expected.sort();
    assert_eq!(
        recorded, expected,
        "every new host recorded once, as whole lines"
    );

    // HashKnownHosts yes (Debian's default): names written hashed, read back.
    let hashed = fleet.dir().join("hashed_known_hosts");
    for strict in ["accept-new", "yes"] {
        let mut prun = support::tool("prun");
        prun.arg("-O")
            .arg(format!("UserKnownHostsFile={}", hashed.display()))
            .args(["-O", &format!("StrictHostKeyChecking={strict}")])
            .args(["-O", "HashKnownHosts=yes", "--identity"])
            .arg(fleet.key())
            .arg("-h")
            .arg(fleet.hosts_file())
            .arg("true");
        run(prun).expect_code(0);
    }
    let text = std::fs::read_to_string(&hashed).unwrap();
    assert_eq!(
        text.lines().filter(|l| l.starts_with("|1|")).count(),
        20,
        "{text}"
    );
    assert!(!text.contains(&format!("127.{}.", fleet.net)), "{text}");
}

#[test]
fn malformed_hosts_file_names_the_line_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts.txt");
    std::fs::write(&hosts, "web1\nweb2:22 root extra\n").unwrap();
    let mut prun = support::tool("prun");
    prun.arg("-h").arg(&hosts).arg("true");
    let result = run(prun);
    result.expect_code(2);
    assert!(
        result
            .stderr
            .contains(&format!("{}:2: expected", hosts.display())),
        "{}",
        result.stderr
    );
    assert!(!result.stderr.contains("panicked"), "{}", result.stderr);
}

#[test]
fn bad_flags_and_options_exit_2_with_a_reason() {
    let mut unknown = support::tool("prun");
    unknown.args(["-H", "h", "-O", "Frobnicate=yes", "true"]);
    let result = run(unknown);
    result.expect_code(2);
    assert!(
        result
            .stderr
            .contains("unknown SSH option `Frobnicate`; supported:"),
        "{}",
        result.stderr
    );

    let mut missing_key = support::tool("prun");
    missing_key.args(["-H", "h", "--identity", "/nonexistent/key", "true"]);
    let result = run(missing_key);
    result.expect_code(2);
    assert!(
        result.stderr.contains("/nonexistent/key: no such file"),
        "{}",
        result.stderr
    );

    let mut no_hosts = support::tool("prun");
    no_hosts.arg("true");
    run(no_hosts).expect_code(2);
}

#[test]
fn revoked_keys_are_refused_and_wildcard_entries_accepted() {
    let fleet = TestFleet::start(2);
    let lines = std::fs::read_to_string(fleet.known_hosts()).unwrap();
    // Both hosts share one sshd, so one host key: trust it for every address
    // of the fleet by wildcard, then revoke it for host 2 only.
    let key = lines
        .lines()
        .next()
        .unwrap()
        .split_once(' ')
        .unwrap()
        .1
        .to_string();
    let wildcard = format!("[127.{}.0.*]:{} {key}\n", fleet.net, fleet.port);
    let known = fleet.dir().join("wildcard_known_hosts");
    std::fs::write(&known, &wildcard).unwrap();
    let with_known = |path: &std::path::Path| {
        let mut prun = support::tool("prun");
        prun.arg("-O")
            .arg(format!("UserKnownHostsFile={}", path.display()));
        prun.arg("--identity")
            .arg(fleet.key())
            .arg("-h")
            .arg(fleet.hosts_file())
            .arg("true");
        prun
    };
    run(with_known(&known)).expect_code(0);
    let revoked = format!("@revoked [{}]:{} {key}\n", fleet.address(1), fleet.port);
    std::fs::write(&known, format!("{wildcard}{revoked}")).unwrap();
    let result = run(with_known(&known));
    result.expect_code(4);
    let stdout = result.stdout_text();
    assert_eq!(stdout.matches("[SUCCESS]").count(), 1, "{stdout}");
    assert!(stdout.contains("is revoked"), "{stdout}");
}

#[test]
fn a_terminal_when_asked_and_the_timeout_still_kills_on_it() {
    let fleet = TestFleet::start(2);
    let mut plain = fleet.prun_all();
    plain.args(["-i", "tty || true"]);
    let result = run(plain);
    result.expect_code(0);
    assert_eq!(
        result.stdout_text().matches("not a tty").count(),
        2,
        "{}",
        result.stdout_text()
    );
    for flags in [
        vec!["--tty"],
        vec!["-x", "-t"],
        vec!["-x", "-tt"],
        vec!["-O", "RequestTTY=yes"],
    ] {
        let mut tty = fleet.prun_all();
        tty.args(&flags).args(["-i", "tty; echo to-stderr >&2"]);
        let result = run(tty);
        result.expect_code(0);
        let stdout = result.stdout_text();
        assert_eq!(
            stdout.matches("/dev/pts/").count(),
            2,
            "{flags:?}: {stdout}"
        );
        // A terminal has one stream: stderr arrives with stdout, and
        // fleet's own pid line never shows.
        assert_eq!(
            stdout.matches("to-stderr").count(),
            2,
            "{flags:?}: {stdout}"
        );
        assert!(!stdout.contains("fleet-pid"), "{stdout}");
    }
    // A terminal never ends its input: -I with it would wait for ever.
    let mut with_input = fleet.prun_all();
    with_input.args(["--tty", "-I", "cat"]);
    let result = run(with_input);
    result.expect_code(2);
    assert!(
        result.stderr.contains("-I with a terminal"),
        "{}",
        result.stderr
    );
    let marker = format!("sleep {}", 40_000 + std::process::id() % 10_000);
    let mut slow = fleet.prun_all();
    slow.args(["--tty", "-t", "1", &format!("{marker} & {marker}; wait")]);
    let result = run(slow);
    result.expect_code(3);
    assert_eq!(
        result.stdout_text().matches("Timed out").count(),
        2,
        "{}",
        result.stdout_text()
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !process_running(&marker),
        "`{marker}` still runs after the timeout on a terminal"
    );
}

/// A one-host fleet whose host key is certified by `ca` with `extra`
/// testfleet flags, and a known_hosts that trusts only the CA.
fn certified_host(ca: &Path, extra: &[&str]) -> (TestFleet, std::path::PathBuf) {
    let ca_text = ca.to_string_lossy().into_owned();
    let mut args = vec!["--host-ca", ca_text.as_str()];
    args.extend(extra);
    let fleet = TestFleet::start_with(1, &args);
    let known = fleet.dir().join("ca_known_hosts");
    let ca_pub = std::fs::read_to_string(format!("{}.pub", ca.display())).unwrap();
    let line = format!(
        "@cert-authority [{}]:{} {}",
        fleet.address(0),
        fleet.port,
        ca_pub.trim()
    );
    std::fs::write(&known, format!("{line}\n")).unwrap();
    (fleet, known)
}

fn prun_trusting(fleet: &TestFleet, known: &Path) -> Run {
    let mut prun = support::tool("prun");
    prun.arg("-O")
        .arg(format!("UserKnownHostsFile={}", known.display()))
        .arg("--identity")
        .arg(fleet.key())
        .args(["-H", &fleet.host(0), "true"]);
    run(prun)
}

#[test]
fn host_certificates_are_checked_for_ca_validity_principal_and_revocation() {
    let scratch = tempfile::tempdir().unwrap();
    let ca = scratch.path().join("host_ca");
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&ca)
        .status()
        .unwrap();
    assert!(status.success());
    let (fleet, known) = certified_host(&ca, &[]);
    prun_trusting(&fleet, &known).expect_code(0);
    // Another CA trusted for the host, and the host's plain key known:
    // the plain line vouches for the key inside the certificate.
    let other = scratch.path().join("other_ca");
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .status()
        .unwrap();
    assert!(status.success());
    let other_pub = std::fs::read_to_string(format!("{}.pub", other.display())).unwrap();
    let plain = std::fs::read_to_string(fleet.known_hosts()).unwrap();
    let mixed = fleet.dir().join("mixed_known_hosts");
    std::fs::write(
        &mixed,
        format!("{plain}@cert-authority * {}\n", other_pub.trim()),
    )
    .unwrap();
    prun_trusting(&fleet, &mixed).expect_code(0);
    // @revoked on the CA wins over @cert-authority.
    let ca_pub = std::fs::read_to_string(format!("{}.pub", ca.display())).unwrap();
    let trusted = std::fs::read_to_string(&known).unwrap();
    let revoked = format!("{trusted}@revoked * {}\n", ca_pub.trim());
    std::fs::write(&known, revoked).unwrap();
    let result = prun_trusting(&fleet, &known);
    result.expect_code(4);
    assert!(
        result.stdout_text().contains("host certificate of"),
        "{}",
        result.stdout_text()
    );
    assert!(
        result.stdout_text().contains("revoked in"),
        "{}",
        result.stdout_text()
    );
    drop(fleet);
    for (flags, words) in [
        (vec!["--host-cert-validity", "-2h:-1h"], "expired at"),
        (
            vec!["--host-cert-principals", "someone-else"],
            "valid for someone-else",
        ),
    ] {
        let (fleet, known) = certified_host(&ca, &flags);
        let result = prun_trusting(&fleet, &known);
        result.expect_code(4);
        assert!(
            result.stdout_text().contains(words),
            "{flags:?}: {}",
            result.stdout_text()
        );
    }
}

#[test]
fn a_command_too_long_for_the_hosts_shell_is_refused_before_any_host_is_contacted() {
    // sshd hands the command to the shell as one argument, which Linux
    // caps at 128 KiB, and the wrapper holds the command twice.
    let fleet = TestFleet::start(1);
    let mut prun = fleet.prun_all();
    prun.arg(format!("echo {}", "x".repeat(70 * 1024)));
    let result = run(prun);
    result.expect_code(2);
    assert!(
        result.stderr.contains("prun: the command is too long: ")
            && result.stderr.contains("copy it to the hosts as a script"),
        "{}",
        result.stderr
    );
    assert_eq!(result.stdout_text(), "");
    let mut prun = fleet.prun_all();
    prun.args(["-i", &format!("echo {} | wc -c", "x".repeat(60 * 1024))]);
    let result = run(prun);
    result.expect_code(0);
    assert!(
        result.stdout_text().contains(&(60 * 1024 + 1).to_string()),
        "{}",
        result.stdout_text()
    );
}
