//! prun against real sshd: fan-out, pssh's output and exit codes, ranges,
//! stdin, environment and option mapping.

mod support;

use std::io::Write;
use std::process::Stdio;

use support::{run, TestFleet};

#[test]
fn fifty_hosts_succeed_with_one_status_line_each() {
    let fleet = TestFleet::start(50);
    let mut prun = fleet.prun_all();
    prun.args([
        "-p",
        "64",
        "-i",
        "echo $PSSH_HOST $PSSH_NODENUM/$PSSH_NUMNODES",
    ]);
    let result = run(prun);
    result.expect_code(0);
    let stdout = result.stdout_text();
    assert_eq!(stdout.matches("[SUCCESS]").count(), 50, "{stdout}");
    for index in 0..50 {
        let address = fleet.address(index);
        assert!(
            stdout.contains(&format!(
                "[SUCCESS] {}\n{address} {index}/50\n",
                fleet.host(index)
            )),
            "{stdout}"
        );
    }
    assert!(result.stderr.contains("50 hosts in"), "{}", result.stderr);
    assert!(result.stderr.contains(": 50 ok"), "{}", result.stderr);
}

#[test]
fn non_zero_exits_fail_those_hosts_with_exit_code_5() {
    let fleet = TestFleet::start(10);
    let mut prun = fleet.prun_all();
    prun.args(["--failed-hosts"])
        .arg(fleet.dir().join("failed"))
        .arg("[ $PSSH_NODENUM -ge 3 ] || exit 7");
    let result = run(prun);
    result.expect_code(5);
    let stdout = result.stdout_text();
    assert_eq!(stdout.matches("[FAILURE]").count(), 3, "{stdout}");
    assert_eq!(
        stdout.matches("Exited with error code 7").count(),
        3,
        "{stdout}"
    );
    assert!(
        result.stderr.contains("7 ok, 3 failed"),
        "{}",
        result.stderr
    );
    let mut failed: Vec<String> = std::fs::read_to_string(fleet.dir().join("failed"))
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    failed.sort();
    let mut expected: Vec<String> = (0..3).map(|i| fleet.host(i)).collect();
    expected.sort();
    assert_eq!(failed, expected);
}

#[test]
fn ranges_in_hosts_files_and_host_strings() {
    let fleet = TestFleet::start(8);
    let hosts = fleet.dir().join("ranged");
    let net = fleet.net;
    std::fs::write(
        &hosts,
        format!("# first five\n127.{net}.0.[1-5]:{}\n", fleet.port),
    )
    .unwrap();
    let mut prun = fleet.prun();
    prun.arg("-h")
        .arg(&hosts)
        .args(["-H", &format!("127.{net}.0.[6,8]:{}", fleet.port), "true"]);
    let result = run(prun);
    result.expect_code(0);
    let stdout = result.stdout_text();
    assert_eq!(stdout.matches("[SUCCESS]").count(), 7, "{stdout}");
    assert!(
        !stdout.contains(&fleet.host(6)),
        "host 7 was not named: {stdout}"
    );
}

#[test]
fn send_input_reaches_every_host_once() {
    let fleet = TestFleet::start(5);
    let mut prun = fleet.prun_all();
    prun.args(["-I", "-i", "cat; echo"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = prun.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"payload line\nsecond")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        stdout.matches("payload line\nsecond\n").count(),
        5,
        "{stdout}"
    );
}

#[test]
fn a_large_input_waits_on_disk_and_an_endless_one_is_refused() {
    let fleet = TestFleet::start(3);
    // 3 MB: past what is kept in memory, so it is sent from the spool.
    let input: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("input");
    std::fs::write(&file, &input).unwrap();
    let mut prun = fleet.prun_all();
    prun.args(["-I", "-i", "cksum"])
        .stdin(std::fs::File::open(&file).unwrap());
    let result = run(prun);
    result.expect_code(0);
    let expected = std::process::Command::new("cksum")
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .unwrap();
    let expected = String::from_utf8_lossy(&expected.stdout).into_owned();
    let stdout = result.stdout_text();
    assert_eq!(stdout.matches(expected.as_str()).count(), 3, "{stdout}");

    let mut endless = fleet.prun_all();
    endless
        .args(["-I", "cat"])
        .stdin(std::fs::File::open("/dev/zero").unwrap());
    let refused = run(endless);
    refused.expect_code(2);
    let stderr = &refused.stderr;
    assert!(
        stderr.contains("-I: standard input is larger than 1024 MiB"),
        "{stderr}"
    );
    // Read to its limit on disk, not in memory.
    assert!(
        refused.max_rss_kib < 100 * 1024,
        "{} KiB",
        refused.max_rss_kib
    );
}

#[test]
fn glob_filter_and_pssh_extra_args() {
    let fleet = TestFleet::start(3);
    let mut prun = support::tool("prun");
    // Key and known_hosts given the way existing pssh scripts give them.
    let extra = format!(
        "-i {} -o UserKnownHostsFile={}",
        fleet.key().display(),
        fleet.known_hosts().display()
    );
    prun.arg("-x").arg(extra).arg("-h").arg(fleet.hosts_file());
    prun.args(["-g", &format!("*.{}", 2), "-P", "echo streamed"]);
    let result = run(prun);
    result.expect_code(0);
    let stdout = result.stdout_text();
    assert!(
        stdout.contains(&format!("{}: streamed\n", fleet.host(1))),
        "{stdout}"
    );
    assert_eq!(stdout.matches("[SUCCESS]").count(), 1, "{stdout}");
}

#[test]
fn pssh_environment_defaults_apply() {
    let fleet = TestFleet::start(4);
    let mut prun = fleet.prun_all();
    prun.env("PSSH_PAR", "1")
        .env("PSSH_INLINE", "1")
        .arg("echo serial");
    let result = run(prun);
    result.expect_code(0);
    assert_eq!(result.stdout_text().matches("serial\n").count(), 4);

    // PSSH_OPTIONS adds to the -O options the fleet's own setup gives.
    let mut tty = fleet.prun_all();
    tty.env("PSSH_OPTIONS", "RequestTTY=yes")
        .args(["-i", "test -t 0 && echo on-a-tty"]);
    let result = run(tty);
    result.expect_code(0);
    assert_eq!(result.stdout_text().matches("on-a-tty").count(), 4);
    let mut bad = fleet.prun_all();
    bad.env("PSSH_OPTIONS", "Bogus=1").arg("true");
    let result = run(bad);
    result.expect_code(2);
    assert!(
        result
            .stderr
            .contains("PSSH_OPTIONS: unknown SSH option `Bogus`"),
        "{}",
        result.stderr
    );
}
