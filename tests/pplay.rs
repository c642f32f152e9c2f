//! pplay on fleet-lab: the shipped xen-evtchn rollout on real sshd hosts
//! that really reboot, with faults, kill -9 and resume, --check, the crash
//! scan, and bad input. These tests need root, as CI has.

mod support;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Duration;

use support::rollout::{kernel_release, most_down_at_once, resume, small_play, Rollout};
use support::{
    assert_contains_all, check_snapshot, mkfifo, normalise, run, tool, wait_until, Lab, SmallDisk,
};

#[test]
fn twenty_hosts_roll_out_the_new_module_never_more_than_serial_down() {
    let rollout = Rollout::start(20, &[]);
    let before = rollout.boot_ids();
    let result = rollout.roll();
    result.expect_code(0);
    let stdout = result.stdout_text();
    assert_contains_all(
        &stdout,
        &[
            "batches of 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1",
            "20 done, 0 failed",
        ],
    );
    let after = rollout.boot_ids();
    for index in 0..20 {
        assert_ne!(
            before[index],
            after[index],
            "lab-{:03} did not reboot",
            index + 1
        );
        assert_eq!(rollout.module_on_disk(index), rollout.new_sha);
        let loaded = rollout.loaded(index);
        assert!(
            loaded.contains(&format!("loaded sha256={}", rollout.new_sha)),
            "{loaded}"
        );
    }
    let entries = rollout.entries();
    // serial [1, "10%"] of 20 hosts: one canary, then 2 at a time.
    assert_eq!(most_down_at_once(&entries), 2);
    let reboots: Vec<&serde_json::Value> = entries
        .iter()
        .filter(|e| e["event"] == "reboot_issued" || e["event"] == "reboot_up")
        .collect();
    assert_eq!(reboots[0]["event"], "reboot_issued");
    assert_eq!(
        reboots[1]["event"], "reboot_up",
        "the canary was back before anyone else went down"
    );
    assert_eq!(reboots[0]["host"], reboots[1]["host"]);
}

#[test]
fn a_second_rollout_on_an_updated_fleet_reboots_nothing() {
    let rollout = Rollout::start(4, &[]);
    rollout.roll().expect_code(0);
    let before = rollout.boot_ids();
    let mut again = rollout.pplay();
    again
        .arg("--json")
        .arg("--journal")
        .arg(rollout.work.path().join("again.journal"))
        .arg(&rollout.playbook);
    let result = run(again);
    result.expect_code(0);
    assert_eq!(rollout.boot_ids(), before, "a host rebooted again");
    let events: Vec<serde_json::Value> = result
        .stdout_text()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let tasks: Vec<&serde_json::Value> = events.iter().filter(|e| e["type"] == "task").collect();
    assert!(!tasks.is_empty());
    for task in &tasks {
        assert!(
            task["status"] == "ok" || task["status"] == "skipped",
            "{task}"
        );
    }
    let reboots = tasks.iter().filter(|t| t["task"] == "reboot");
    assert!(reboots.clone().count() == 4 && reboots.clone().all(|t| t["status"] == "skipped"));
}

#[test]
fn when_and_changed_when_decide_what_runs_and_what_changed() {
    let lab = Lab::start(1, &[]);
    let work = tempfile::tempdir().unwrap();
    let play = r#"hosts: all
tasks:
  - name: only reads
    run: "true"
    changed_when: false
  - name: exit 3 is a change
    run: exit 3
    changed_when: 3
  - name: said updated
    run: echo updated 2 files
    changed_when: "updated *"
  - name: after a change
    when: "changed: exit 3 is a change and not changed: only reads"
    run: touch /tmp/after-change
  - name: wrong kernel
    when: "{{ host.kernel }} == 0.0-none or {{ host.name }} != {{ host.name }}"
    run: touch /tmp/wrong-kernel
"#;
    let command = small_play(&lab, work.path(), play, "when.journal", &["--json"]);
    let result = run(command);
    result.expect_code(0);
    let statuses: BTreeMap<String, String> = result
        .stdout_text()
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|e| e["type"] == "task")
        .map(|e| {
            (
                e["task"].as_str().unwrap().into(),
                e["status"].as_str().unwrap().into(),
            )
        })
        .collect();
    let expected = [
        ("only reads", "ok"),
        ("exit 3 is a change", "changed"),
        ("said updated", "changed"),
        ("after a change", "changed"),
        ("wrong kernel", "skipped"),
    ];
    for (task, status) in expected {
        assert_eq!(statuses[task], status, "{task}: {statuses:?}");
    }
    assert_eq!(
        lab.output_of(
            0,
            "ls /tmp/after-change /tmp/wrong-kernel 2>/dev/null; true"
        ),
        "/tmp/after-change\n"
    );
    // A condition naming no earlier task is refused before any host.
    let bad = "hosts: all\ntasks:\n  - run: \"true\"\n    when: \"changed: later\"\n  - name: later\n    run: \"true\"\n";
    let refused = run(small_play(&lab, work.path(), bad, "bad.journal", &[]));
    refused.expect_code(2);
    assert!(
        refused.stderr.contains("small.yml:3")
            && refused.stderr.contains("names no task before this one"),
        "{}",
        refused.stderr
    );
}

#[test]
fn flags_given_with_resume_win_over_the_journals() {
    let lab = Lab::start(1, &[]);
    let work = tempfile::tempdir().unwrap();
    let play = "hosts: all\ntasks:\n  - name: slow\n    run: sleep 3\n";
    let first = run(small_play(
        &lab,
        work.path(),
        play,
        "slow.journal",
        &["-t", "1"],
    ));
    first.expect_code(5);
    assert!(
        first.stdout_text().contains("timed out after 1s"),
        "{}",
        first.stdout_text()
    );
    // The journal says -t 1; the resume gives the task time, and prints JSON.
    let resumed = resume(&work.path().join("slow.journal"), &["-t", "30", "--json"]);
    resumed.expect_code(0);
    let stdout = resumed.stdout_text();
    let last: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["type"], "summary", "{stdout}");
    assert_eq!(last["done"].as_array().unwrap().len(), 1, "{stdout}");
}

#[test]
fn hosts_that_never_return_stop_the_rollout_at_max_fail() {
    let rollout = Rollout::start(
        8,
        &[
            "--fault",
            "lab-002=never-returns",
            "--fault",
            "lab-003=never-returns",
        ],
    );
    // Faults given at `up` bite at the first reboot, which is the rollout's.
    let before = rollout.boot_ids();
    let untouched: Vec<String> = (3..8).map(|i| rollout.module_on_disk(i)).collect();
    let result = rollout.roll();
    result.expect_code(5);
    let stdout = result.stdout_text();
    assert!(stdout.contains("more than max_fail (1)"), "{stdout}");
    assert!(stdout.contains("did not come back within 10s"), "{stdout}");
    assert!(stdout.contains("resume with: pplay --resume"), "{stdout}");
    let ends = rollout.host_ends();
    assert_eq!(ends.get(&rollout.lab.name(0)), Some(&true));
    assert_eq!(ends.get(&rollout.lab.name(1)), Some(&false));
    assert_eq!(ends.get(&rollout.lab.name(2)), Some(&false));
    assert_eq!(ends.len(), 3, "no later host was started: {ends:?}");
    for index in 3..8 {
        assert_eq!(
            rollout.boot_id(index),
            before[index],
            "lab-{:03} was rebooted",
            index + 1
        );
        assert_eq!(rollout.module_on_disk(index), untouched[index - 3]);
    }
    let started: HashSet<String> = rollout
        .entries()
        .iter()
        .filter(|e| e["event"] == "task_start" && e["phase"] == "tasks")
        .map(|e| e["host"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(started.len(), 3, "{started:?}");
}

#[test]
fn a_bad_module_is_rolled_back_by_on_failure() {
    let rollout = Rollout::start(3, &[]);
    let old: Vec<String> = (0..3).map(|i| rollout.module_on_disk(i)).collect();
    // The fault spoils the host's next boot (the rollout's), not the one after.
    rollout.lab.lab(&["fault", "lab-002", "bad-module"]);
    let result = rollout.roll();
    result.expect_code(5);
    let stdout = result.stdout_text();
    assert_contains_all(
        &stdout,
        &[
            "xen_evtchn did not load the new module",
            "on_failure: put the old module back: changed",
            "on_failure: the old module is loaded: ok",
            "2 done, 1 failed",
        ],
    );
    assert_eq!(
        rollout.module_on_disk(1),
        old[1],
        "the old module is back on disk"
    );
    assert!(rollout
        .loaded(1)
        .contains(&format!("loaded sha256={}", old[1])));
    for index in [0, 2] {
        assert_eq!(rollout.module_on_disk(index), rollout.new_sha);
    }
}

#[test]
fn resume_after_kill_9_finishes_without_rebooting_finished_hosts() {
    let rollout = Rollout::start(6, &[]);
    let mut command = rollout.rollout_command(&[]);
    command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut pplay = command.spawn().unwrap();
    wait_until(Duration::from_secs(120), "two hosts finished", || {
        rollout.host_ends().len() >= 2
    });
    pplay.kill().unwrap();
    pplay.wait().unwrap();
    let finished = rollout.host_ends();
    let at_kill = rollout.boot_ids();
    let mut resume = tool("pplay");
    resume
        .current_dir("/")
        .arg("--resume")
        .arg(rollout.journal());
    let result = run(resume);
    result.expect_code(0);
    let stdout = result.stdout_text();
    assert!(
        stdout.contains("finished earlier are left alone"),
        "{stdout}"
    );
    for (index, boot_at_kill) in at_kill.iter().enumerate() {
        let host = rollout.lab.name(index);
        if finished.contains_key(&host) {
            assert_eq!(
                &rollout.boot_id(index),
                boot_at_kill,
                "{host} was rebooted again"
            );
            assert!(
                !stdout.contains(&format!("{host} install")),
                "{host} was contacted again"
            );
        }
        assert_eq!(rollout.module_on_disk(index), rollout.new_sha);
        assert!(rollout.loaded(index).contains(&rollout.new_sha), "{host}");
    }
    assert_eq!(rollout.host_ends().values().filter(|ok| **ok).count(), 6);
}

/// Starts a rollout of 4 hosts and sends `signal` once the canary is done;
/// checks that pplay stopped as the first Ctrl-C says (exit 3, the resume
/// command, no task cut short, no host started after), and returns its stdout.
fn stop_after_the_canary(rollout: &Rollout, signal: libc::c_int) -> String {
    let mut command = rollout.rollout_command(&[]);
    command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let pplay = command.spawn().unwrap();
    wait_until(Duration::from_secs(120), "the canary finished", || {
        !rollout.host_ends().is_empty()
    });
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pplay.id() as libc::pid_t, signal) };
    let output = pplay.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(output.status.code(), Some(3), "{stdout}");
    let resume_line = format!(
        "resume with: pplay --resume {}",
        rollout.journal().display()
    );
    assert!(stdout.contains(&resume_line), "{stdout}");
    let ends = rollout.host_ends();
    assert!(
        ends.len() < 4,
        "the rollout went on after the signal: {ends:?}"
    );
    // A running task was let finish: no task start lacks its end.
    let entries = rollout.entries();
    let count = |event: &str| entries.iter().filter(|e| e["event"] == event).count();
    assert_eq!(
        count("task_start"),
        count("task_end"),
        "a task was cut short"
    );
    stdout
}

#[test]
fn ctrl_c_lets_running_tasks_finish_and_resume_completes() {
    let rollout = Rollout::start(4, &[]);
    let stdout = stop_after_the_canary(&rollout, libc::SIGINT);
    assert!(stdout.contains("not started"), "{stdout}");
    resume(&rollout.journal(), &[]).expect_code(0);
    for index in 0..4 {
        assert_eq!(rollout.module_on_disk(index), rollout.new_sha);
    }
}

#[test]
fn window_mode_keeps_at_most_serial_hosts_in_flight() {
    let rollout = Rollout::start(6, &[]);
    rollout.rewrite_playbook("mode: batch", "mode: window");
    rollout.rewrite_playbook("serial: [1, \"10%\"]", "serial: 2");
    let result = run(rollout.rollout_command(&["--json"]));
    result.expect_code(0);
    assert_eq!(most_down_at_once(&rollout.entries()), 2);
    for index in 0..6 {
        assert!(rollout.loaded(index).contains(&rollout.new_sha));
    }
    // --json: nothing but JSON objects on stdout, the plan first, the summary last.
    let lines: Vec<serde_json::Value> = result
        .stdout_text()
        .lines()
        .map(|line| serde_json::from_str(line).expect("every line is JSON"))
        .collect();
    assert_eq!(lines[0]["type"], "plan");
    assert_eq!(lines[0]["mode"], "window");
    let summary = lines.last().unwrap();
    assert_eq!(summary["type"], "summary");
    assert_eq!(summary["done"].as_array().unwrap().len(), 6);
    let reboots = lines
        .iter()
        .filter(|l| l["type"] == "task" && l["task"] == "reboot" && l["status"] == "changed")
        .count();
    assert_eq!(reboots, 6);
    assert!(
        lines.iter().all(|l| l["type"] != "batch"),
        "window mode has no batches"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l["type"] == "host" && l["status"] == "done")
            .count(),
        6
    );
}

#[test]
fn check_mode_changes_nothing() {
    let rollout = Rollout::start(3, &[]);
    let before = rollout.boot_ids();
    let modules: Vec<String> = (0..3).map(|i| rollout.module_on_disk(i)).collect();
    let mut command = rollout.pplay();
    command.arg("--check").arg(&rollout.playbook);
    let result = run(command);
    result.expect_code(0);
    let stdout = result.stdout_text();
    assert_contains_all(
        &stdout,
        &[
            "install the new module: would (install /lib/modules/",
            "reboot: would (reboot with `reboot`)",
            "preflight: record the current module: ok lab-[001-003] (3)",
            "pplay: batch 1/3: lab-001\n",
            "pplay: batch 3/3: lab-003\n",
        ],
    );
    assert_eq!(rollout.boot_ids(), before);
    for (index, module) in modules.iter().enumerate() {
        assert_eq!(&rollout.module_on_disk(index), module);
    }
    let mut limited = rollout.pplay();
    limited
        .args([
            "--check",
            "--limit",
            &rollout.lab.name(1),
            "--start-at-task",
            "reboot",
        ])
        .arg(&rollout.playbook);
    let result = run(limited);
    result.expect_code(0);
    let stdout = result.stdout_text();
    assert!(
        stdout.contains(&format!(
            "reboot: would (reboot with `reboot`) {}",
            rollout.lab.name(1)
        )),
        "{stdout}"
    );
    assert!(!stdout.contains("install the new module"), "{stdout}");
    assert!(!stdout.contains(&rollout.lab.name(0)), "{stdout}");
    let journals = std::fs::read_dir(rollout.work.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "journal")
        })
        .count();
    assert_eq!(journals, 0, "--check writes no journal");
}

#[test]
fn crash_scan_groups_the_hosts_that_logged_the_bug() {
    let lab = Lab::start(10, &["--crash-share", "0.3"]);
    let collected = tempfile::tempdir().unwrap();
    let mut command = tool("pplay");
    command
        .args(["-O", "ConnectTimeout=2", "-i"])
        .arg(lab.dir().join("inventory.yml"))
        .arg("-e")
        .arg(format!("collect_dir={}", collected.path().display()))
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks/crash-scan.yml"))
        .arg("--journal")
        .arg(collected.path().join("scan.journal"));
    let result = run(command);
    result.expect_code(5);
    let crashed: HashSet<String> = std::fs::read_to_string(lab.dir().join("crashed-hosts"))
        .unwrap()
        .lines()
        .filter_map(|line| Some(line.split_once('#')?.1.trim().to_string()))
        .collect();
    assert!(!crashed.is_empty());
    // Each crashed host on its own line, with the line its log holds.
    let stdout = result.stdout_text();
    let failed: HashSet<String> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("pplay: failed (1): evtchn BUG: logged "))
        .map(|l| {
            let (line, host) = l.rsplit_once(": ").unwrap();
            assert!(
                line.ends_with(&format!(
                    "{host} kernel: kernel BUG at drivers/xen/evtchn.c:264!"
                )),
                "{l}"
            );
            host.to_string()
        })
        .collect();
    assert_eq!(failed, crashed, "{stdout}");
    for index in 0..10 {
        let pulled = collected.path().join(lab.name(index)).join("messages");
        let original = lab.var_log(index).join("messages");
        assert_eq!(
            std::fs::read(pulled).unwrap(),
            std::fs::read(original).unwrap()
        );
    }
    // --check runs the read-only scan too, and fails the same hosts.
    let mut check = tool("pplay");
    check
        .args(["-O", "ConnectTimeout=2", "--check", "-i"])
        .arg(lab.dir().join("inventory.yml"))
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks/crash-scan.yml"));
    let checked = run(check);
    checked.expect_code(5);
    let summary = format!("{} failed", crashed.len());
    assert!(
        checked.stdout_text().contains(&summary),
        "{}",
        checked.stdout_text()
    );
}

#[test]
fn text_output_matches_the_snapshot() {
    let lab = Lab::start(2, &[]);
    let work = tempfile::tempdir().unwrap();
    let playbook = work.path().join("snapshot.yml");
    std::fs::write(
        &playbook,
        r#"- name: snapshot
  hosts: xen
  serial: 1
  max_fail: 1
  before_batch:
    - name: drain
      delegate_to: localhost
      run_once: true
      changed_when: false
      run: echo drain {{ batch.hosts }} {{ batch.number }}/{{ batch.count }}
  tasks:
    - name: say hello
      run: echo hello
      register: greeting
    - name: greeting arrived
      assert: {command: "echo {{ greeting }}", equals: hello}
    - name: guarded
      run: "false"
      creates: /proc/sys/kernel/random/boot_id
    - name: the second host fails
      run: test "{{ host.hostname }}" != lab-002
  after_batch:
    - name: undrain
      delegate_to: localhost
      run_once: true
      changed_when: false
      run: echo undrain {{ batch.hosts }}
- name: second play
  hosts: xen
  tasks:
    - name: the greeting carried over
      assert: {command: "echo {{ greeting }}", equals: hello}
"#,
    )
    .unwrap();
    let journal = work.path().join("snapshot.journal");
    let mut command = tool("pplay");
    command
        .arg("-i")
        .arg(lab.dir().join("inventory.yml"))
        .arg("--journal")
        .arg(&journal)
        .arg(&playbook);
    let result = run(command);
    result.expect_code(5);
    let text = result
        .stdout_text()
        .replace(&journal.display().to_string(), "JOURNAL");
    check_snapshot("pplay", &normalise(&text, &lab.host(0)));
}

#[test]
fn bad_input_is_refused_before_any_host_is_contacted() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 1: a host that were contacted would fail differently.
    std::fs::write(
        dir.path().join("inv.yml"),
        "groups:\n  - name: xen\n    hosts: ['127.0.0.1:1']\n",
    )
    .unwrap();
    let cases = [
        ("tasks:\n  - run: x\n    regster: y\n", "bad.yml:3:5: unknown field `regster`"),
        ("tasks:\n  - run: echo {{ nope }}\n", "bad.yml:2:5: task `run echo {{ nope }}`: variable `nope` is not defined for host 127.0.0.1:1"),
        ("serial: [1, lots]\ntasks: []\n", "bad.yml:1:13: expected a number of hosts or a percentage"),
        ("tasks:\n  - copy: {src: /nonexistent/x.ko, dest: /tmp/}\n", "copy src /nonexistent/x.ko: No such file"),
        ("tasks:\n  - copy: {src: /etc/hostname, dest: /tmp/, owner: 'root; touch /tmp/x'}\n", "bad.yml:2:5: copy owner: expected a user or group name"),
        ("tasks:\n  - kill: {pattern: x, signal: BANANA}\n", "bad.yml:2:5: kill signal: expected a signal"),
        ("tasks:\n  - sync: {src: /nonexistent/tree/, dest: /tmp/}\n", "bad.yml:2:5: task `sync /tmp/`: sync src /nonexistent/tree/: No such file"),
        ("tasks:\n  - sync: {src: /etc/, dest: /tmp/, exclude: ['[']}\n", "bad.yml:2:5: sync exclude: bad pattern `[`"),
        ("tasks:\n  - sync: {src: /etc/, dest: /tmp/, backup: ''}\n", "bad.yml:2:5: sync backup: expected a suffix"),
        ("tasks:\n  - {name: a, run: x}\n  - {name: a, run: y}\n", "bad.yml:3:5: a second task named `a`"),
        ("tasks:\n  - fetch: {src: '', dest: out}\n", "bad.yml:2:5: fetch: expected a non-empty `src` and `dest`"),
        ("tasks:\n  - run: echo /tmp\n    register: where\n  - fetch: {src: /etc/hostname, dest: '{{ where }}'}\n", "bad.yml:4:5: task `fetch /etc/hostname`: fetch dest may not use `where`: a task registers it"),
        ("tasks:\n  - {run: x, ok_codes: [0, 300]}\n", "bad.yml:2:5: ok_codes: expected exit codes from 0 to 255, found 300"),
        ("tasks:\n  - wait_for: {command: x, interval: 0}\n", "bad.yml:2:5: wait_for interval: expected at least 0.1 s"),
        ("tasks:\n  - {run: uname -r, register: host.kernel}\n", "bad.yml:2:5: register: `host.kernel` is pplay's own"),
        ("tasks:\n  - {run: x, delegate_to: nosuch}\n", "bad.yml:2:5: task `run x`: delegate_to nosuch: not a host of"),
        ("on_failure:\n  - {run: x, run_once: true}\ntasks: []\n", "bad.yml:2:5: on_failure: task `run x`: run_once"),
        ("tasks: []\n---\ntasks: []\n", "expected one YAML document, found several"),
        ("vars: {batch.hosts: x}\ntasks: []\n", "bad.yml`: variable `batch.hosts` (of the playbook, the inventory or -e) is pplay's own"),
    ];
    for (text, expected) in cases {
        std::fs::write(dir.path().join("bad.yml"), text).unwrap();
        let mut command = tool("pplay");
        command
            .current_dir(dir.path())
            .args(["-i", "inv.yml", "bad.yml"]);
        let result = run(command);
        result.expect_code(2);
        assert!(
            result.stderr.contains(expected),
            "{text:?}: {}",
            result.stderr
        );
        assert!(!result.stderr.contains("panicked"));
    }
    // A journal to resume must be a journal: not a device, a FIFO or binary.
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    let binary = dir.path().join("binary");
    std::fs::write(&binary, b"{\"event\":\"start\xff\"}\n").unwrap();
    let checked = dir.path().join("checked");
    std::fs::write(
        &checked,
        "{\"event\":\"start\",\"argv\":[\"--check\",\"-i\",\"inv.yml\",\"bad.yml\"],\"cwd\":\"/\",\
         \"playbook_sha256\":\"x\",\"inputs\":{},\"pid\":1,\"time\":1.0}\n",
    )
    .unwrap();
    for (journal, expected) in [
        (Path::new("/dev/zero"), "/dev/zero: is not a regular file"),
        (fifo.as_path(), "fifo: is not a regular file"),
        (binary.as_path(), "binary:1: column 16: not UTF-8"),
        (checked.as_path(), "checked: its command line has --check"),
    ] {
        let result = resume(journal, &[]);
        result.expect_code(2);
        assert!(result.stderr.contains(expected), "{}", result.stderr);
    }
    for bad in ["bad key=1", "host.name=x"] {
        let mut command = tool("pplay");
        command
            .current_dir(dir.path())
            .args(["-i", "inv.yml", "-e", bad, "bad.yml"]);
        run(command).expect_code(2);
    }
    let mut skip = tool("pplay");
    skip.current_dir(dir.path())
        .args(["--skip-failed", "-i", "inv.yml", "bad.yml"]);
    let refused = run(skip);
    refused.expect_code(2);
    assert!(
        refused.stderr.contains("--skip-failed goes with --resume"),
        "{}",
        refused.stderr
    );
}

#[test]
fn a_journal_has_one_owner_and_a_lost_reboot_line_never_reboots_twice() {
    let rollout = Rollout::start(3, &[]);
    let booted = rollout.boot_id(0);
    let mut first = rollout.spawn_quietly();
    wait_until(Duration::from_secs(120), "the rollout started", || {
        rollout.entries().iter().any(|e| e["event"] == "task_start")
    });
    // Neither a resume nor a new run may take a journal that is in use,
    // and no second run of the rollout may start beside it.
    let owner = format!("is in use by pplay pid {} (started ", first.id());
    let second = resume(&rollout.journal(), &[]);
    second.expect_code(2);
    assert!(second.stderr.contains(&owner), "{}", second.stderr);
    let again = run(rollout.rollout_command(&[]));
    again.expect_code(2);
    let rolling = format!("by pplay pid {} of ", first.id());
    assert!(
        again.stderr.contains("is already being rolled out over"),
        "{}",
        again.stderr
    );
    assert!(again.stderr.contains(&rolling), "{}", again.stderr);
    // The canary reboots; pplay dies, and the crash tears the journal's
    // reboot_issued line (and loses what came after).
    wait_until(Duration::from_secs(120), "the canary rebooted", || {
        rollout.boot_id(0) != booted
    });
    first.kill().unwrap();
    first.wait().unwrap();
    let rebooted = rollout.boot_id(0);
    let text = std::fs::read_to_string(rollout.journal()).unwrap();
    let at = text
        .find("{\"event\":\"reboot_issued\"")
        .expect("a reboot_issued line");
    std::fs::write(rollout.journal(), &text[..at + 30]).unwrap();
    // -v: a line per task per host, with the reboot's note.
    let result = resume(&rollout.journal(), &["-v"]);
    result.expect_code(0);
    assert_eq!(
        rollout.boot_id(0),
        rebooted,
        "the canary was rebooted twice"
    );
    assert!(
        result
            .stdout_text()
            .contains("the host had rebooted already"),
        "{}",
        result.stdout_text()
    );
    for index in 0..3 {
        assert!(rollout.loaded(index).contains(&rollout.new_sha));
    }
}

#[test]
fn term_stops_pplay_like_the_first_ctrl_c_and_gives_the_resume_command() {
    let rollout = Rollout::start(4, &[]);
    stop_after_the_canary(&rollout, libc::SIGTERM);
    resume(&rollout.journal(), &[]).expect_code(0);
}

#[test]
fn extra_vars_reach_commands_as_text_through_quote() {
    let lab = Lab::start(1, &[]);
    let work = tempfile::tempdir().unwrap();
    let play = "hosts: all\ntasks:\n  - run: echo {{ msg | quote }} > /tmp/said\n";
    let command = small_play(
        &lab,
        work.path(),
        play,
        "quote.journal",
        &["-e", "msg=it's; touch /tmp/pwned"],
    );
    run(command).expect_code(0);
    assert_eq!(
        lab.output_of(0, "cat /tmp/said; test -e /tmp/pwned && echo PWNED; true"),
        "it's; touch /tmp/pwned\n"
    );
}

#[test]
fn resume_retries_the_hosts_that_failed_and_counts_every_host() {
    let lab = Lab::start(3, &[]);
    let work = tempfile::tempdir().unwrap();
    let play = "hosts: all\nserial: 1\nmax_fail: 0\ntasks:\n  \
                - {name: first, run: touch /tmp/first-ran}\n  \
                - {name: may fail, run: test ! -e /tmp/fail-here}\n  \
                - {name: last, run: touch /tmp/last-ran}\n";
    for skip_failed in [false, true] {
        lab.output_of(0, "rm -f /tmp/*-ran");
        lab.output_of(1, "rm -f /tmp/*-ran; touch /tmp/fail-here");
        lab.output_of(2, "rm -f /tmp/*-ran");
        let journal = format!("retry-{skip_failed}.journal");
        let stopped = run(small_play(&lab, work.path(), play, &journal, &[]));
        stopped.expect_code(5);
        let summary = "pplay: 1 done, 1 failed, 0 stopped, 1 not started";
        assert!(
            stopped.stdout_text().contains(summary),
            "{}",
            stopped.stdout_text()
        );
        lab.output_of(1, "rm /tmp/fail-here");
        let flags: &[&str] = if skip_failed { &["--skip-failed"] } else { &[] };
        let resumed = resume(&work.path().join(&journal), flags);
        let stdout = resumed.stdout_text();
        let last_ran = lab.output_of(1, "ls /tmp/last-ran 2>/dev/null || true");
        match skip_failed {
            false => {
                resumed.expect_code(0);
                assert!(
                    stdout.contains("1 host(s) that failed earlier go again"),
                    "{stdout}"
                );
                assert!(
                    stdout.contains("pplay: 3 done (1 earlier), 0 failed"),
                    "{stdout}"
                );
                assert_eq!(
                    last_ran, "/tmp/last-ran\n",
                    "the failed host was not retried"
                );
            }
            true => {
                resumed.expect_code(5);
                assert!(
                    stdout.contains("1 host(s) that failed earlier stay failed"),
                    "{stdout}"
                );
                let counts = "pplay: 2 done (1 earlier), 1 failed (1 earlier)";
                assert!(stdout.contains(counts), "{stdout}");
                assert_eq!(last_ran, "", "a skipped host was run again");
            }
        }
    }
}

#[test]
fn a_host_back_with_another_key_fails_at_once_and_a_resume_never_mixes_inputs() {
    let rollout = Rollout::start(2, &[]);
    // The fault bites at the host's next boot: the rollout's reboot.
    rollout.lab.lab(&["fault", "lab-002", "hostkey-changed"]);
    // Waiting would not help: without the fix this host waits ten minutes.
    rollout.rewrite_playbook("up_timeout: 10s", "up_timeout: 10m");
    rollout.rewrite_playbook("max_fail: 1", "max_fail: 0");
    let result = rollout.roll();
    result.expect_code(5);
    let stdout = result.stdout_text();
    assert!(
        stdout.contains("came back, but HOST KEY CHANGED"),
        "{stdout}"
    );
    // The module to send changed since the journal was started.
    let module = rollout
        .work
        .path()
        .join("modules")
        .join(kernel_release())
        .join("xen-evtchn.ko");
    std::fs::write(&module, b"another build").unwrap();
    let resumed = resume(&rollout.journal(), &[]);
    resumed.expect_code(2);
    assert!(
        resumed
            .stderr
            .contains("changed since the journal was started: copy src"),
        "{}",
        resumed.stderr
    );
}

#[test]
fn a_reboot_journaled_as_sent_that_never_reached_the_host_is_sent_on_resume() {
    let rollout = Rollout::start(2, &[]);
    // The reboot command takes a while to reboot, so pplay can die after
    // journaling it and before the host goes down; the command dies with
    // the connection, and the host never reboots.
    rollout.rewrite_playbook(
        "    reboot:\n      down_timeout: 10s",
        "    reboot:\n      command: sleep 3; reboot\n      down_timeout: 10s",
    );
    let booted = rollout.boot_id(0);
    let mut first = rollout.spawn_quietly();
    wait_until(
        Duration::from_secs(120),
        "the canary's reboot is sent",
        || {
            rollout
                .entries()
                .iter()
                .any(|e| e["event"] == "reboot_issued")
        },
    );
    first.kill().unwrap();
    first.wait().unwrap();
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(rollout.boot_id(0), booted, "the reboot went through");
    let result = resume(&rollout.journal(), &["-v"]);
    result.expect_code(0);
    let stdout = result.stdout_text();
    assert!(
        stdout.contains("it never reached the host; sent now"),
        "{stdout}"
    );
    assert_ne!(rollout.boot_id(0), booted);
    for index in 0..2 {
        assert!(rollout.loaded(index).contains(&rollout.new_sha));
    }
}

#[test]
fn a_journal_the_disk_cannot_hold_stops_the_run_as_a_local_failure() {
    let rollout = Rollout::start(2, &[]);
    let small = SmallDisk::mount(rollout.work.path().join("small"), "8k");
    // One page of the two is taken: the journal's first page fills, then
    // its next write finds no room.
    std::fs::write(small.path().join("filler"), vec![b'x'; 4096]).unwrap();
    let mut pplay = rollout.pplay();
    pplay
        .arg("--journal")
        .arg(small.path().join("rollout.journal"))
        .arg(&rollout.playbook);
    let result = run(pplay);
    result.expect_code(1);
    let stdout = result.stdout_text();
    assert_eq!(
        stdout.matches("cannot write the journal, stopping").count(),
        1,
        "{stdout}"
    );
    assert!(
        stdout.contains("stopped: cannot write the journal"),
        "{stdout}"
    );
}
