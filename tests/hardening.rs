//! What an operator, a shell script, systemd or a hostile input can do to
//! the pssh-style tools, against real sshd (and Dropbear) and fleet-lab:
//! signals, overloaded hosts that ignore TERM, inputs that would panic or
//! eat memory, a low open-files limit, and the test hosts' own dotfiles.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use support::{mkfifo, run, tool, wait_until, Lab, SmallDisk, TestFleet};

/// A number no other test (or earlier run) uses, for process markers.
fn unique() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    50_000 + (std::process::id() % 1000) * 10 + NEXT.fetch_add(1, Ordering::Relaxed)
}

/// How many processes on this machine have exactly `command_line`.
fn count_processes(command_line: &str) -> usize {
    let output = Command::new("pgrep")
        .args(["-fc", &format!("^{command_line}$")])
        .output()
        .expect("pgrep");
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

/// Starts `command`, waits until `count` remote processes run
/// `command_line`, sends `signal`, and returns the exit code and stdout.
fn signal_when_running(
    mut command: Command,
    signal: libc::c_int,
    command_line: &str,
    count: usize,
) -> (Option<i32>, String) {
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = command.spawn().expect("spawn");
    wait_until(
        Duration::from_secs(120),
        &format!("{count} hosts run `{command_line}`"),
        || count_processes(command_line) >= count,
    );
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, signal) };
    let output = child.wait_with_output().expect("wait");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[test]
fn term_and_hup_stop_every_remote_command_like_ctrl_c() {
    let fleet = TestFleet::start(50);
    for signal in [libc::SIGTERM, libc::SIGHUP] {
        let sleeper = format!("sleep {}", unique());
        let mut prun = fleet.prun_all();
        prun.args(["-p", "50", "-t", "0", &sleeper]);
        let (code, stdout) = signal_when_running(prun, signal, &sleeper, 50);
        assert_eq!(code, Some(3), "signal {signal}: {stdout}");
        assert_eq!(stdout.matches("Interrupted").count(), 50, "{stdout}");
        assert_eq!(
            count_processes(&sleeper),
            0,
            "`{sleeper}` survived {signal}"
        );
    }
    // pslurp of a FIFO: `cat` blocks on every host until it is killed.
    let fifo = fleet.dir().join(format!("fifo-{}", unique()));
    mkfifo(&fifo);
    let local = fleet.dir().join("pulled");
    let mut pslurp = fleet.tool("pslurp");
    pslurp
        .arg("-h")
        .arg(fleet.hosts_file())
        .args(["-p", "50", "-t", "0", "-L"])
        .arg(&local)
        .arg(&fifo)
        .arg("messages");
    let cat = format!("cat -- {}", fifo.display());
    let (code, stdout) = signal_when_running(pslurp, libc::SIGTERM, &cat, 50);
    assert_eq!(code, Some(3), "{stdout}");
    assert_eq!(count_processes(&cat), 0, "`{cat}` survived SIGTERM");
    let left = std::fs::read_dir(&local).map_or(0, |dir| dir.count());
    assert_eq!(
        left,
        0,
        "an interrupted pull left files in {}",
        local.display()
    );
}

/// Runs `command` (prefixed by a sleep with a unique marker) on every host
/// of `fleet` with `-t seconds`; every host must time out with its kill
/// confirmed, and no sleep may survive.
fn assert_timeouts_kill(fleet: &TestFleet, seconds: &str, prefix: &str) {
    let sleeper = format!("sleep {}", unique());
    let mut prun = fleet.prun_all();
    prun.args(["-p", "50", "-t", seconds])
        .arg(format!("{prefix}{sleeper}"));
    let result = run(prun);
    result.expect_code(3);
    let stdout = result.stdout_text();
    assert_eq!(stdout.matches("Timed out").count(), fleet.count, "{stdout}");
    assert!(!stdout.contains("not confirmed"), "{stdout}");
    assert_eq!(
        count_processes(&sleeper),
        0,
        "`{sleeper}` survived the kill"
    );
}

#[test]
fn the_remote_kill_is_confirmed_on_fifty_term_ignoring_hosts_and_on_dropbear() {
    assert_timeouts_kill(&TestFleet::start(50), "3", "trap '' TERM; ");
    assert_timeouts_kill(&TestFleet::start_with(3, &["--dropbear"]), "2", "");
}

#[test]
fn a_hosts_file_naming_millions_of_hosts_fails_at_once_naming_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, "x17[1-90000]\n".repeat(200)).unwrap();
    let mut prun = tool("prun");
    // The filter matches nothing, so no version of prun ever looks a name up.
    prun.arg("-h").arg(&hosts).args(["-g", "nothing", "true"]);
    let result = run(prun);
    result.expect_code(2);
    let expected = format!(
        "{}:2: the hosts file expands to more than 100000 hosts",
        hosts.display()
    );
    assert!(result.stderr.contains(&expected), "{}", result.stderr);
    assert!(
        result.max_rss_kib < 64 * 1024,
        "refusing the file took {} KiB",
        result.max_rss_kib
    );
}

#[test]
fn pnuke_refuses_an_empty_pattern_and_spares_pid_1_and_sshd() {
    let lab = Lab::start(1, &[]);
    let pnuke = |args: &[&str]| {
        let mut command = lab.tool("pnuke");
        command.args(["-H", &lab.host(0)]).args(args);
        run(command)
    };
    for everything in ["", "  ", ".", "^", ".*", "sleep|"] {
        let result = pnuke(&["--list", everything]);
        result.expect_code(2);
        assert!(result.stderr.contains("every process"), "{}", result.stderr);
    }
    let listed = pnuke(&["-i", "--list", "^[a-z]"]);
    listed.expect_code(0);
    let stdout = listed.stdout_text();
    assert!(stdout.contains("[protected: pid 1;"), "{stdout}");
    assert!(
        stdout.contains("[protected: the host's ssh server;"),
        "{stdout}"
    );
    let spared = pnuke(&["-s", "CONT", "sshd"]);
    spared.expect_code(0);
    let stdout = spared.stdout_text();
    assert!(stdout.contains("signalled with CONT: 0 ("), "{stdout}");
    let forced = pnuke(&["-s", "CONT", "--force", "sshd"]);
    forced.expect_code(0);
    assert!(
        !forced.stdout_text().contains("CONT: 0"),
        "{}",
        forced.stdout_text()
    );
    // A pattern that looks like a flag is a pattern.
    let dashed = pnuke(&["--list", "--", "-9"]);
    dashed.expect_code(0);
    assert!(
        dashed.stdout_text().contains("\nno match\n"),
        "{}",
        dashed.stdout_text()
    );
    assert_eq!(lab.output_of(0, "echo alive"), "alive\n");
}

#[test]
fn durations_beyond_thirty_days_are_usage_errors_not_panics() {
    let fleet = TestFleet::start(1);
    let huge = "18446744073709551615";
    let config = fleet.dir().join("ssh_config");
    std::fs::write(&config, "Host *\n  ConnectTimeout 99999999999\n").unwrap();
    let cases: [&[&str]; 4] = [
        &["-t", huge],
        &["-O", &format!("ServerAliveInterval={huge}")],
        &["-O", "ConnectTimeout=2592001"],
        &["-F", &config.to_string_lossy()],
    ];
    for flags in cases {
        let mut prun = fleet.prun_all();
        prun.args(flags).arg("true");
        let result = run(prun);
        assert_eq!(result.code(), 2, "{flags:?}: {}", result.stderr);
        assert!(!result.stderr.contains("panicked"), "{}", result.stderr);
    }
    let playbook = fleet.dir().join("p.yml");
    std::fs::write(
        &playbook,
        "hosts: all\ntasks:\n  - run: true\n    timeout: 99999999d\n",
    )
    .unwrap();
    let mut pplay = tool("pplay");
    pplay.arg("-i").arg(fleet.hosts_file()).arg(&playbook);
    let result = run(pplay);
    result.expect_code(2);
    assert!(result.stderr.contains("p.yml:4:"), "{}", result.stderr);
    assert!(
        result.stderr.contains("at most 30 days"),
        "{}",
        result.stderr
    );
}

#[test]
fn files_that_are_not_utf8_are_refused_with_their_position() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, b"127.0.0.1:1\nh\xe9st\n").unwrap();
    let mut prun = tool("prun");
    prun.arg("-h").arg(&hosts).arg("true");
    let result = run(prun);
    result.expect_code(2);
    let at = format!("{}:2:2: not UTF-8", hosts.display());
    assert!(result.stderr.contains(&at), "{}", result.stderr);

    let good_hosts = dir.path().join("good-hosts");
    std::fs::write(&good_hosts, "127.0.0.1:1\n").unwrap();
    let playbook = dir.path().join("p.yml");
    std::fs::write(&playbook, b"hosts: all\ntasks:\n  - run: echo caf\xe9\n").unwrap();
    let mut pplay = tool("pplay");
    pplay.arg("-i").arg(&good_hosts).arg(&playbook);
    let result = run(pplay);
    result.expect_code(2);
    let at = format!("{}:3:18: not UTF-8", playbook.display());
    assert!(result.stderr.contains(&at), "{}", result.stderr);

    let inventory = dir.path().join("inv.yml");
    std::fs::write(&inventory, b"vars:\n  who: \xff\n").unwrap();
    let good_playbook = dir.path().join("good.yml");
    std::fs::write(&good_playbook, "hosts: all\ntasks:\n  - run: true\n").unwrap();
    let mut pplay = tool("pplay");
    pplay.arg("-i").arg(&inventory).arg(&good_playbook);
    let result = run(pplay);
    result.expect_code(2);
    let at = format!("{}:2:8: not UTF-8", inventory.display());
    assert!(result.stderr.contains(&at), "{}", result.stderr);
}

#[test]
fn held_output_and_pushed_files_stay_in_bounded_memory() {
    let fleet = TestFleet::start(10);
    let mut prun = fleet.prun_all();
    prun.args(["-p", "10", "-i", "--output-limit", "1M"])
        .arg("head -c 50000000 /dev/zero");
    let result = run(prun);
    result.expect_code(0);
    let marker = "[output truncated after 1 MiB: 48951424 more bytes not shown";
    assert_eq!(result.stdout_text().matches(marker).count(), 10);
    assert!(
        result.max_rss_kib < 100 * 1024,
        "-i held {} KiB",
        result.max_rss_kib
    );

    let pcp = |source: &Path| {
        let mut pcp = fleet.tool("pcp");
        pcp.arg("-h")
            .arg(fleet.hosts_file())
            .arg(source)
            .arg(fleet.dir().join("copied"));
        pcp
    };
    let result = run(pcp(Path::new("/dev/zero")));
    result.expect_code(2);
    assert!(
        result.stderr.contains("is not a regular file"),
        "{}",
        result.stderr
    );
    let fifo = fleet.dir().join("fifo");
    mkfifo(&fifo);
    let mut reading_fifo = pcp(&fifo)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut status = None;
    wait_until(Duration::from_secs(30), "pcp refuses a FIFO", || {
        status = reading_fifo.try_wait().unwrap();
        status.is_some()
    });
    assert_eq!(status.and_then(|s| s.code()), Some(2));

    let big = fleet.dir().join("big");
    support::random_file(&big, 100_000_000);
    let result = run(pcp(&big));
    result.expect_code(0);
    assert!(
        result.max_rss_kib < 64 * 1024,
        "pushing 100 MB took {} KiB",
        result.max_rss_kib
    );
    let sent = std::fs::read(&big).unwrap();
    assert!(std::fs::read(fleet.dir().join("copied")).unwrap() == sent);
}

#[test]
fn a_low_open_files_limit_lowers_parallelism_instead_of_failing_hosts() {
    let fleet = TestFleet::start(200);
    let mut prun = fleet.prun_all();
    prun.args(["-p", "200", "true"]);
    // SAFETY: setrlimit in the child before exec touches only its own limits.
    unsafe {
        prun.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 128,
                rlim_max: 128,
            };
            match libc::setrlimit(libc::RLIMIT_NOFILE, &limit) {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            }
        });
    }
    let result = run(prun);
    result.expect_code(0);
    assert!(
        result
            .stderr
            .contains("-p 200 lowered to 52: open files limit is 128"),
        "{}",
        result.stderr
    );
    assert!(result.stderr.contains("200 ok"), "{}", result.stderr);
}

#[test]
fn small_things_operators_trip_over() {
    let fleet = TestFleet::start(12);
    // A key others can read is refused, as OpenSSH does; so is a directory.
    let open_key = fleet.dir().join("open_key");
    std::fs::copy(fleet.key(), &open_key).unwrap();
    std::fs::set_permissions(&open_key, std::fs::Permissions::from_mode(0o644)).unwrap();
    for (key, expected) in [
        (
            open_key.as_path(),
            "UNPROTECTED PRIVATE KEY FILE: permissions 0644",
        ),
        (Path::new("/tmp"), "/tmp: is a directory"),
    ] {
        let mut prun = tool("prun");
        prun.arg("--identity")
            .arg(key)
            .args(["-H", &fleet.host(0), "true"]);
        let result = run(prun);
        result.expect_code(2);
        assert!(result.stderr.contains(expected), "{}", result.stderr);
    }
    let open_key_named = open_key.display().to_string();
    // A name no host has is a hosts-file error with its line.
    let hosts = fleet.dir().join("long-hosts");
    std::fs::write(&hosts, format!("a\nb\n{}\n", "n".repeat(300))).unwrap();
    let mut prun = tool("prun");
    prun.arg("-h").arg(&hosts).arg("true");
    let result = run(prun);
    result.expect_code(2);
    let at = format!(
        "{}:3: expected a host name of at most 255 bytes",
        hosts.display()
    );
    assert!(result.stderr.contains(&at), "{}", result.stderr);
    assert!(!result.stderr.contains(&open_key_named));
    // Folding joins across digit widths: hosts .1 to .12 are one range.
    let mut prun = fleet.prun_all();
    prun.args(["-b", "echo same"]);
    let result = run(prun);
    result.expect_code(0);
    let folded = format!("127.{}.0.[1-12]:{} (12)", fleet.net, fleet.port);
    assert!(
        result.stdout_text().contains(&folded),
        "{}",
        result.stdout_text()
    );
    // The JSON cap never cuts a character in two.
    let mut prun = fleet.prun();
    prun.args(["-H", &fleet.host(0), "--json"])
        .arg("head -c 1048575 /dev/zero | tr '\\0' a; printf '\\303\\251tail'");
    let result = run(prun);
    result.expect_code(0);
    let host: serde_json::Value =
        serde_json::from_str(result.stdout_text().lines().next().unwrap()).unwrap();
    assert_eq!(host["stdout_encoding"], "utf-8");
    assert_eq!(host["stdout_truncated"], true);
    assert_eq!(host["stdout"].as_str().unwrap().len(), 1_048_575);
    // A bare `wait` waits for the command's jobs, not for fleet's watchdog.
    let mut prun = fleet.prun();
    prun.args(["-H", &fleet.host(0), "-t", "120", "-i"])
        .arg("sleep 1 & wait; echo waited");
    let result = run(prun);
    result.expect_code(0);
    assert!(
        result.stdout_text().contains("waited"),
        "{}",
        result.stdout_text()
    );
    // A file is never pushed into a directory that has its name.
    let conf = fleet.dir().join("app.conf");
    std::fs::write(&conf, "x=1\n").unwrap();
    let remote = fleet.dir().join("etc");
    std::fs::create_dir_all(remote.join("app.conf")).unwrap();
    let mut pcp = fleet.tool("pcp");
    pcp.args(["-H", &fleet.host(0)]).arg(&conf).arg(&remote);
    let result = run(pcp);
    result.expect_code(5);
    assert!(
        result.stderr.contains("app.conf is a directory"),
        "{}",
        result.stderr
    );
    let inside = std::fs::read_dir(remote.join("app.conf")).unwrap().count();
    assert_eq!(inside, 0, "the file went into the directory");
    // A failed pull leaves no empty directory behind.
    let local = fleet.dir().join("pulled");
    let mut pslurp = fleet.tool("pslurp");
    pslurp
        .args(["-H", &fleet.host(0), "-L"])
        .arg(&local)
        .args(["/nonexistent/file", "file"]);
    let result = run(pslurp);
    result.expect_code(5);
    let left: Vec<_> = std::fs::read_dir(&local)
        .map(|dir| dir.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "a failed pull left {left:?}");
}

#[test]
fn test_hosts_have_their_own_home_and_a_plain_shell() {
    let fleet = TestFleet::start(1);
    let mut prun = fleet.prun_all();
    prun.args(["-i", "echo \"$HOME\"; readlink /proc/$$/exe"]);
    let result = run(prun);
    result.expect_code(0);
    let stdout = result.stdout_text();
    let lines: Vec<&str> = stdout.lines().skip(1).collect();
    assert_eq!(lines[0], fleet.dir().join("home").display().to_string());
    assert!(
        lines[1].ends_with("/dash") || lines[1].ends_with("/sh"),
        "{stdout}"
    );
}

#[test]
fn kill_9_of_fleet_leaves_no_remote_command_and_no_half_copied_file() {
    let fleet = TestFleet::start(5);
    // prun: the command dies with its connection (a watchdog reads it),
    // with the jobs it put in process groups of their own.
    let sleeper = format!("sleep {}", unique());
    let mut prun = fleet.prun_all();
    prun.args(["-t", "0"])
        .arg(format!("bash -c 'set -m; {sleeper} & {sleeper}'"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = prun.spawn().unwrap();
    wait_until(Duration::from_secs(60), "5 hosts run two sleeps", || {
        count_processes(&sleeper) == 10
    });
    child.kill().unwrap();
    child.wait().unwrap();
    wait_until(Duration::from_secs(30), "the orphaned sleeps end", || {
        count_processes(&sleeper) == 0
    });
    // With input of ours (-I) the command's stdin is no watchdog: the
    // connection's sshd is watched instead.
    let reader = format!("sleep {}", unique());
    let mut prun = fleet.prun_all();
    prun.args(["-t", "0", "-I", &format!("cat >/dev/null; {reader}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = prun.spawn().unwrap();
    drop(child.stdin.take());
    wait_until(Duration::from_secs(60), "5 hosts run the reader", || {
        count_processes(&reader) == 5
    });
    child.kill().unwrap();
    child.wait().unwrap();
    wait_until(Duration::from_secs(30), "the readers end", || {
        count_processes(&reader) == 0
    });
    // pcp: a transfer cut by kill -9 leaves no temporary file on any host.
    let big = fleet.dir().join("big");
    support::random_file(&big, 300_000_000);
    let dest = fleet.dir().join("dest");
    std::fs::create_dir(&dest).unwrap();
    let mut pcp = fleet.tool("pcp");
    pcp.arg("-h").arg(fleet.hosts_file()).arg(&big).arg(&dest);
    let mut child = pcp
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(60), "the transfer started", || {
        std::fs::read_dir(&dest).is_ok_and(|mut d| d.next().is_some())
    });
    child.kill().unwrap();
    child.wait().unwrap();
    wait_until(Duration::from_secs(30), "no temporary file is left", || {
        std::fs::read_dir(&dest).is_ok_and(|mut d| d.next().is_none())
    });
    // pcp -r spools its archive, pslurp writes its pulls: a kill -9 in the
    // middle leaves neither a spool nor an empty host directory.
    let tree = fleet.dir().join("tree");
    std::fs::create_dir(&tree).unwrap();
    std::fs::rename(&big, tree.join("big")).unwrap();
    let spools = fleet.dir().join("tmp");
    std::fs::create_dir(&spools).unwrap();
    let mut pcp = fleet.tool("pcp");
    pcp.env("TMPDIR", &spools)
        .arg("-h")
        .arg(fleet.hosts_file())
        .arg("-r")
        .arg(&tree)
        .arg(&dest);
    kill_9_once_it_writes(pcp, &dest);
    assert_eq!(entries(&spools), Vec::<String>::new(), "a spool was left");
    let pulled = fleet.dir().join("pulled");
    let mut pslurp = fleet.tool("pslurp");
    pslurp
        .arg("-h")
        .arg(fleet.hosts_file())
        .arg("-L")
        .arg(&pulled)
        .arg(tree.join("big"))
        .arg("big");
    kill_9_once_it_writes(pslurp, &pulled);
    assert_eq!(entries(&pulled), Vec::<String>::new(), "pslurp left files");
}

/// The names in `dir`.
fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into())
                .collect()
        })
        .unwrap_or_default()
}

/// Starts `command` and kills it with -9 once it has a file open under
/// `dir` (named or not) or has put one there.
fn kill_9_once_it_writes(mut command: Command, dir: &Path) {
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let fds = format!("/proc/{}/fd", child.id());
    wait_until(Duration::from_secs(60), "a file is being written", || {
        let open = std::fs::read_dir(&fds).into_iter().flatten().flatten();
        open.filter_map(|fd| std::fs::read_link(fd.path()).ok())
            .any(|target| target.starts_with(dir))
            || !entries(dir).is_empty()
    });
    child.kill().unwrap();
    child.wait().unwrap();
    wait_until(
        Duration::from_secs(30),
        "nothing is left in the way",
        || entries(dir).iter().all(|name| !name.starts_with('.')),
    );
}

#[test]
fn a_full_output_disk_sets_torn_files_aside_and_still_reports_every_host() {
    let fleet = TestFleet::start(3);
    let dir = tempfile::tempdir().unwrap();
    let disk = SmallDisk::mount(dir.path().join("small"), "64k");
    let small = disk.path();
    let mut prun = fleet.prun_all();
    prun.arg("-o")
        .arg(small)
        .arg("head -c 40000 /dev/zero; echo done");
    let result = run(prun);
    let listing = entries(small);
    result.expect_code(1);
    assert!(result.stderr.contains(".partial"), "{}", result.stderr);
    assert!(result.stderr.contains("3 ok"), "{}", result.stderr);
    assert!(
        listing.iter().any(|name| name.ends_with(".partial")),
        "{listing:?}"
    );
    assert_eq!(result.stdout_text().matches("[SUCCESS]").count(), 3);
}

#[test]
fn a_pull_the_local_disk_cannot_hold_is_not_kept_and_every_host_is_reported() {
    let fleet = TestFleet::start(3);
    let dir = tempfile::tempdir().unwrap();
    let disk = SmallDisk::mount(dir.path().join("small"), "64k");
    let small = disk.path();
    let remote = dir.path().join("big");
    std::fs::write(&remote, vec![b'x'; 40_000]).unwrap();
    let mut pslurp = fleet.tool("pslurp");
    pslurp
        .arg("-h")
        .arg(fleet.hosts_file())
        .arg("-L")
        .arg(small)
        .arg(&remote)
        .arg("big");
    let result = run(pslurp);
    let kept: Vec<u64> = fleet_files(small, "big");
    result.expect_code(1);
    assert!(
        result.stderr.contains("No space left on device"),
        "{}",
        result.stderr
    );
    assert!(result.stderr.contains("; not kept"), "{}", result.stderr);
    assert!(result.stderr.contains("3 hosts in"), "{}", result.stderr);
    // At most one pull fits; whatever was kept is whole.
    assert!(
        kept.len() <= 1 && kept.iter().all(|&len| len == 40_000),
        "{kept:?}"
    );
}

/// The sizes of the files named `name` in the per-host directories of `root`.
fn fleet_files(root: &Path, name: &str) -> Vec<u64> {
    entries(root)
        .iter()
        .filter_map(|host| std::fs::metadata(root.join(host).join(name)).ok())
        .map(|metadata| metadata.len())
        .collect()
}

#[test]
fn devices_fifos_and_huge_files_are_refused_as_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    let fifo = fifo.to_string_lossy().into_owned();
    let known_hosts_fifo = format!("UserKnownHostsFile={fifo}");
    let cases: [&[&str]; 7] = [
        &["-F", "/dev/zero", "-H", "127.0.0.1:1", "true"],
        &[
            "-O",
            "UserKnownHostsFile=/dev/zero",
            "-H",
            "127.0.0.1:1",
            "true",
        ],
        &[
            "-O",
            "GlobalKnownHostsFile=/dev/zero",
            "-H",
            "127.0.0.1:1",
            "true",
        ],
        &["-O", &known_hosts_fifo, "-H", "127.0.0.1:1", "true"],
        &["--password-file", "/dev/zero", "-H", "127.0.0.1:1", "true"],
        &["-h", &fifo, "true"],
        &["-h", "/dev/zero", "true"],
    ];
    for args in cases {
        let mut prun = tool("prun");
        prun.args(args).stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = prun.spawn().unwrap();
        let mut status = None;
        wait_until(Duration::from_secs(30), "prun refuses the input", || {
            status = child.try_wait().unwrap();
            status.is_some()
        });
        assert_eq!(status.and_then(|s| s.code()), Some(2), "{args:?}");
    }
}

#[test]
fn gathered_identical_outputs_from_many_hosts_stay_in_little_memory() {
    let fleet = TestFleet::start(20);
    let mut prun = fleet.prun_all();
    // No time limit: the test is about memory, not this machine's speed.
    prun.args([
        "-p",
        "20",
        "-t",
        "0",
        "-b",
        "head -c 70000000 /dev/zero | tr '\\0' x",
    ]);
    let result = run(prun);
    result.expect_code(0);
    assert!(
        result.max_rss_kib < 100 * 1024,
        "-b held {} KiB",
        result.max_rss_kib
    );
    let stdout = result.stdout_text();
    assert_eq!(stdout.matches("(20)").count(), 1, "one group");
    assert!(stdout.contains("[output truncated after 64 MiB"));
}

#[test]
fn a_reader_that_goes_away_stops_the_run() {
    use std::io::BufRead;
    let fleet = TestFleet::start(3);
    let sleeper = format!("sleep {}", unique());
    let mut prun = fleet.prun_all();
    prun.args(["-P", "-t", "0", &format!("echo hi; {sleeper}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = prun.spawn().unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.ends_with(": hi\n"), "{first}");
    // `| head -1`: the reader is gone; the hosts print nothing more.
    let mut status = None;
    wait_until(Duration::from_secs(60), "prun stops", || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    assert_eq!(status.and_then(|s| s.code()), Some(3));
    assert_eq!(count_processes(&sleeper), 0, "`{sleeper}` survived");
}

#[test]
fn a_stop_signal_at_a_prompt_ends_the_process_with_echo_back_on() {
    let dir = tempfile::tempdir().unwrap();
    let transcript = dir.path().join("transcript");
    // A terminal for the prompt (script), whose input stays open (sleep).
    let session = format!(
        "{} -A -H 127.0.0.1:1 true & echo pid=$!; wait $!; echo rc=$?; stty -a",
        support::tool_path("prun").display()
    );
    let mut terminal = Command::new("sh")
        .arg("-c")
        .arg(r#"sleep 60 | script -qec "$0" /dev/null > "$1""#)
        .env("SHELL", "/bin/sh") // what `script` runs the session in
        .arg(&session)
        .arg(&transcript)
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let text = || std::fs::read_to_string(&transcript).unwrap_or_default();
    wait_until(Duration::from_secs(60), "the password prompt", || {
        text().contains("Password:")
    });
    let pid: libc::pid_t = text()
        .split("pid=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .expect("prun's pid");
    // SAFETY: signalling the prun this test started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    wait_until(Duration::from_secs(60), "prun ends", || {
        text().contains("rc=")
    });
    // SAFETY: ending the process group this test started (the sleep).
    unsafe { libc::killpg(terminal.id() as libc::pid_t, libc::SIGKILL) };
    let _ = terminal.wait();
    let text = text();
    assert!(text.contains("rc=143"), "{text}");
    assert!(
        text.contains(" echo ") && !text.contains("-echo "),
        "{text}"
    );
}
