//! fleet-lab: hosts with their own names, boot_ids and files, real reboots,
//! faults, and a clean `down`. These tests need root, as CI has.

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use support::{assert_contains_all, process_running, run, tool, wait_until, Lab};

const MODULE: &str = "/lib/modules/$(uname -r)/kernel/drivers/xen/xen-evtchn.ko";

fn boot_id(lab: &Lab, index: usize) -> String {
    lab.output_of(index, "cat /proc/sys/kernel/random/boot_id")
        .trim()
        .to_string()
}

/// Waits for host `index` to answer with a boot_id other than `old`.
fn wait_for_new_boot(lab: &Lab, index: usize, old: &str, limit: Duration) -> String {
    let mut new = String::new();
    wait_until(limit, "the host came back with a new boot_id", || {
        let result = lab.run_on(index, "cat /proc/sys/kernel/random/boot_id");
        new = result
            .stdout_text()
            .lines()
            .nth(1)
            .unwrap_or_default()
            .trim()
            .to_string();
        result.code() == 0 && !new.is_empty() && new != old
    });
    new
}

#[test]
fn hundred_hosts_answer_with_their_own_hostname_and_boot_id() {
    let lab = Lab::start(100, &[]);
    let mut prun = lab.prun();
    prun.arg("-h")
        .arg(lab.dir().join("hosts"))
        .args(["-p", "100", "-i"]);
    prun.arg("echo \"$(hostname) $(cat /proc/sys/kernel/random/boot_id)\"");
    let result = run(prun);
    result.expect_code(0);
    let stdout = result.stdout_text();
    let lines: Vec<&str> = stdout.lines().filter(|l| l.starts_with("lab-")).collect();
    let names: HashSet<&str> = lines.iter().map(|l| l.split(' ').next().unwrap()).collect();
    let boot_ids: HashSet<&str> = lines.iter().map(|l| l.split(' ').nth(1).unwrap()).collect();
    assert_eq!(names.len(), 100, "{stdout}");
    assert!(names.contains("lab-001") && names.contains("lab-100"));
    assert_eq!(boot_ids.len(), 100, "every host has its own boot_id");
    let real_boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    assert!(!boot_ids.contains(real_boot_id.trim()));
}

#[test]
fn files_written_on_one_host_stay_on_that_host() {
    let lab = Lab::start(3, &["--crash-share", "0.34"]);
    let marker = format!("fleet-lab-isolation-{}", std::process::id());
    for path in ["/tmp", "/var/log", "/lib/modules"] {
        lab.output_of(0, &format!("echo one > {path}/{marker}"));
        assert_eq!(lab.output_of(0, &format!("cat {path}/{marker}")), "one\n");
        let elsewhere = lab.run_on(1, &format!("test -e {path}/{marker}"));
        assert_eq!(
            elsewhere.code(),
            5,
            "{path}/{marker} leaked to another host"
        );
        assert!(
            !std::path::Path::new(&format!("{path}/{marker}")).exists(),
            "{path} leaked to the machine"
        );
    }
    assert!(lab
        .output_of(0, "cat /var/log/messages")
        .contains("lab-001"));
    let crashed = std::fs::read_to_string(lab.dir().join("crashed-hosts")).unwrap();
    assert_eq!(crashed, format!("{}  # lab-003\n", lab.host(2)));
    let log = lab.output_of(2, "cat /var/log/messages");
    assert!(
        log.contains("lab-003 kernel: kernel BUG at drivers/xen/evtchn.c:264!"),
        "{log}"
    );
    assert!(!log.contains("w-xen09"));
    assert!(!lab
        .output_of(1, "cat /var/log/messages")
        .contains("kernel BUG"));
}

#[test]
fn reboot_drops_sessions_and_the_host_returns_with_a_new_boot_id() {
    let lab = Lab::start(3, &[]);
    for (index, command) in ["reboot", "shutdown -r now", "systemctl reboot"]
        .into_iter()
        .enumerate()
    {
        let before = boot_id(&lab, index);
        lab.output_of(
            index,
            &format!("echo kept >> /var/log/messages; echo new > {MODULE}"),
        );
        // A long command on the host, whose session the reboot must end.
        let mut sleeper = lab.prun();
        sleeper.args(["-H", &lab.host(index), "-t", "60", "sleep 50"]);
        sleeper
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let sleeper = sleeper.spawn().unwrap();
        std::thread::sleep(Duration::from_millis(500));
        let rebooted_at = Instant::now();
        lab.run_on(index, command);
        let dropped = sleeper.wait_with_output().unwrap();
        assert!(
            rebooted_at.elapsed() < Duration::from_secs(3),
            "session outlived the reboot"
        );
        assert_eq!(
            dropped.status.code(),
            Some(4),
            "{}",
            String::from_utf8_lossy(&dropped.stdout)
        );
        let after = wait_for_new_boot(&lab, index, &before, Duration::from_secs(15));
        assert_ne!(before, after);
        assert!(
            lab.output_of(index, "tail -1 /var/log/messages")
                .contains("kept")
                || lab
                    .output_of(index, "cat /var/log/messages")
                    .contains("kept")
        );
        assert_eq!(
            lab.output_of(index, &format!("cat {MODULE}")),
            "new\n",
            "files under /lib/modules survive a reboot"
        );
        let loaded = lab.output_of(index, "cat /run/fleet-lab/loaded-modules");
        let digest = lab.output_of(index, &format!("sha256sum {MODULE} | cut -d' ' -f1"));
        assert!(
            loaded.contains(&format!("xen_evtchn loaded sha256={}", digest.trim())),
            "{loaded}"
        );
        assert_eq!(
            lab.output_of(index, "cat /sys/module/xen_evtchn/initstate"),
            "live\n"
        );
    }
}

#[test]
fn network_faults_take_hosts_off_the_network_until_cleared() {
    let lab = Lab::start(4, &["--fault", "lab-004=refuse"]);
    lab.lab(&["fault", "lab-001", "down"]);
    lab.lab(&["fault", &lab.host(1), "blackhole"]);
    lab.lab(&["fault", "lab-003", "refuse"]);
    std::thread::sleep(Duration::from_millis(300));
    let expect = |index: usize, text: &str| {
        let result = lab.run_on(index, "true");
        result.expect_code(4);
        assert!(
            result.stdout_text().contains(text),
            "host {index}: {}",
            result.stdout_text()
        );
    };
    expect(0, "connection timed out");
    expect(1, "connection timed out");
    expect(2, "cannot connect");
    expect(3, "cannot connect");
    let status = lab.lab(&["status"]).stdout_text();
    let first = status.lines().find(|l| l.starts_with("lab-001\t"));
    assert!(
        first.is_some_and(
            |line| line.contains("down fault=down") && line.matches("fault=").count() == 1
        ),
        "{status}"
    );
    for host in ["lab-001", "lab-002", "lab-003", "lab-004"] {
        lab.lab(&["fault", host, "clear"]);
    }
    for index in 0..4 {
        wait_until(Duration::from_secs(10), "the host answers again", || {
            lab.run_on(index, "true").code() == 0
        });
    }
}

#[test]
fn reboot_faults_show_at_the_next_reboot() {
    let lab = Lab::start(4, &["--slow-boot", "4"]);
    let boots: Vec<String> = (0..4).map(|i| boot_id(&lab, i)).collect();
    for (host, fault) in [
        ("lab-001", "slow-boot"),
        ("lab-002", "never-returns"),
        ("lab-003", "bad-module"),
        ("lab-004", "hostkey-changed"),
    ] {
        lab.lab(&["fault", host, fault]);
    }
    let rebooted = Instant::now();
    for index in 0..4 {
        lab.run_on(index, "reboot");
    }
    // bad-module: back on time, module failed, a kernel BUG in the log.
    wait_for_new_boot(&lab, 2, &boots[2], Duration::from_secs(10));
    assert!(lab
        .output_of(2, "cat /run/fleet-lab/loaded-modules")
        .starts_with("xen_evtchn failed"));
    assert!(lab
        .output_of(2, "tail -1 /var/log/messages")
        .contains("kernel BUG at drivers/xen/evtchn.c"));
    assert_eq!(lab.run_on(2, "test -e /sys/module/xen_evtchn").code(), 5);
    // hostkey-changed: back, but refused by known_hosts.
    wait_until(Duration::from_secs(10), "the host offers a new key", || {
        lab.run_on(3, "true")
            .stdout_text()
            .contains("HOST KEY CHANGED")
    });
    // slow-boot: away for the slow-boot delay, then back.
    let back = wait_for_new_boot(&lab, 0, &boots[0], Duration::from_secs(15));
    assert!(!back.is_empty());
    assert!(
        rebooted.elapsed() >= Duration::from_secs(4),
        "slow-boot host came back too soon"
    );
    // never-returns: still away, and back once cleared.
    assert_eq!(lab.run_on(1, "true").code(), 4);
    lab.lab(&["fault", "lab-002", "clear"]);
    wait_for_new_boot(&lab, 1, &boots[1], Duration::from_secs(10));
}

#[test]
fn up_on_a_taken_address_says_so_and_leaves_nothing_running() {
    let port = support::free_port();
    let net = 10 + (std::process::id() * 3) % 240;
    let second = format!("127.{net}.0.2:{port}");
    let _holder = std::net::TcpListener::bind(&second).expect("bind the second host's address");
    let dir = tempfile::Builder::new()
        .prefix("fleet-lab-test-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let mut up = tool("fleet-lab");
    up.arg("--dir")
        .arg(dir.path())
        .args(["up", "3", "--net", &net.to_string()]);
    up.args(["--port", &port.to_string()]);
    let result = run(up);
    assert_eq!(result.code(), 1, "{}", result.stderr);
    assert_contains_all(
        &result.stderr,
        &["lab-002", &second, "Address already in use"],
    );
    assert!(
        !process_running(&dir.path().to_string_lossy()),
        "a lab process was left running"
    );
}

#[test]
fn down_leaves_no_process_behind() {
    let lab = Lab::start(5, &[]);
    let dir = lab.dir().to_string_lossy().into_owned();
    assert!(support::process_running(&dir));
    let mut down = tool("fleet-lab");
    down.arg("--dir").arg(lab.dir()).arg("down");
    run(down).expect_code(0);
    assert!(
        !support::process_running(&dir),
        "a lab process survived down"
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&dir),
        "a lab mount is visible on the machine"
    );
    assert_eq!(lab.run_on(0, "true").code(), 4);
}

#[test]
fn up_refuses_without_root_in_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut up = std::process::Command::new("setpriv");
    up.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(support::lab_binary());
    up.arg("--dir").arg(dir.path()).args(["up", "1"]);
    let result = run(up);
    result.expect_code(1);
    assert_eq!(result.stderr.lines().count(), 1, "{}", result.stderr);
    assert!(result.stderr.contains("needs root"), "{}", result.stderr);
}

#[test]
fn a_killed_supervisor_takes_its_hosts_along_and_the_next_up_recovers() {
    let lab = Lab::start(3, &[]);
    let pid: i32 = std::fs::read_to_string(lab.dir().join("lab.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: killing the lab's own supervisor, as a crash would.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let dir = lab.dir().to_string_lossy().into_owned();
    wait_until(
        Duration::from_secs(5),
        "every host died with the supervisor",
        || !support::process_running(&format!("sshd -D -f {dir}")),
    );
    let mut again = tool("fleet-lab");
    again.arg("--dir").arg(lab.dir()).args([
        "up",
        "3",
        "--net",
        &lab.net.to_string(),
        "--port",
        &lab.port.to_string(),
    ]);
    run(again).expect_code(0);
    assert_eq!(lab.run_on(2, "hostname").code(), 0);
}

#[test]
fn up_refuses_a_directory_that_is_not_a_lab_and_down_kills_only_the_labs() {
    let dir = tempfile::Builder::new()
        .prefix("not-a-lab-")
        .tempdir_in("/var/tmp")
        .unwrap();
    std::fs::write(dir.path().join("precious"), "keep me").unwrap();
    let mut up = tool("fleet-lab");
    up.arg("--dir").arg(dir.path()).args(["up", "1"]);
    let result = run(up);
    result.expect_code(1);
    assert!(result.stderr.contains("holds no lab"), "{}", result.stderr);
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["precious"]);
    // A process that only names the lab's directory is not the lab's.
    let lab = Lab::start(1, &[]);
    let mut watcher = std::process::Command::new("tail")
        .arg("-f")
        .arg(lab.dir().join("lab.log"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    lab.lab(&["down"]);
    assert!(
        watcher.try_wait().unwrap().is_none(),
        "down killed a bystander"
    );
    watcher.kill().unwrap();
    watcher.wait().unwrap();
}
