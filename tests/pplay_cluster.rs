//! pplay doing the whole Xen job on fleet-lab: hosts on two kernels, the
//! build play (one build host per kernel), the rollout with its batch
//! hooks, tasks delegated elsewhere or run once, several plays in one file
//! and a kill -9 between them. Real sshd hosts that really reboot; root.

mod support;

use std::path::Path;
use std::time::Duration;

use support::rollout::{most_down_at_once, resume, small_play, spawn_quietly, Rollout};
use support::{run, tool, wait_until, Lab};

const KERNELS: &str = "6.1.0-18-amd64,6.1.0-21-amd64";

/// A hook script that appends its name and arguments to `log`.
fn logging_script(dir: &Path, name: &str, log: &Path) -> String {
    let path = dir.join(name);
    let text = format!("#!/bin/sh\necho \"{name} $*\" >> '{}'\n", log.display());
    std::fs::write(&path, text).unwrap();
    let mode = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    std::fs::set_permissions(&path, mode).unwrap();
    path.display().to_string()
}

#[test]
fn two_kernels_roll_out_drained_batch_by_batch_and_a_second_run_reboots_nothing() {
    let rollout = Rollout::start(12, &["--kernels", KERNELS]);
    let log = rollout.work.path().join("scheduler.log");
    let drain = logging_script(rollout.work.path(), "drain", &log);
    let undrain = logging_script(rollout.work.path(), "undrain", &log);
    let mut command = rollout.pplay();
    command
        .args(["-e", &format!("drain_command={drain}")])
        .args(["-e", &format!("undrain_command={undrain}")])
        .arg("--journal")
        .arg(rollout.journal())
        .arg(&rollout.playbook);
    run(command).expect_code(0);
    for index in 0..12 {
        let kernel = rollout.kernel(index);
        assert_eq!(
            rollout.module_on_disk(index),
            rollout.new_shas[&kernel],
            "lab-{:03}",
            index + 1
        );
        assert!(rollout.loaded(index).contains(&rollout.new_shas[&kernel]));
    }
    // serial [1, "10%"] of 12: batches of 1, 2, 2, 2, 2, 2, 1; each
    // drained before any of its hosts is touched and put back after.
    let lines = std::fs::read_to_string(&log).unwrap();
    let expected: Vec<String> = lines.lines().map(str::to_string).collect();
    assert_eq!(expected.len(), 14, "{lines}");
    for (pair, lines) in expected.chunks(2).enumerate() {
        let drained = lines[0].strip_prefix("drain ").expect(&lines[0]);
        assert_eq!(
            lines[1],
            format!("undrain {drained}"),
            "batch {}: {expected:?}",
            pair + 1
        );
    }
    let drained: Vec<usize> = expected
        .iter()
        .filter_map(|line| line.strip_prefix("drain "))
        .map(|hosts| hosts.split(' ').count())
        .collect();
    assert_eq!(drained, [1, 2, 2, 2, 2, 2, 1]);
    assert!(most_down_at_once(&rollout.entries()) <= 2);

    let before = rollout.boot_ids();
    let mut again = rollout.pplay();
    again
        .arg("--journal")
        .arg(rollout.work.path().join("again.journal"))
        .arg(&rollout.playbook);
    let result = run(again);
    result.expect_code(0);
    assert_eq!(rollout.boot_ids(), before, "a host rebooted again");
    let stdout = result.stdout_text();
    let reboots: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("] reboot: "))
        .collect();
    assert_eq!(reboots.len(), 7, "{stdout}");
    assert!(
        reboots.iter().all(|l| l.contains("reboot: skipped")),
        "{stdout}"
    );
    assert!(!stdout.contains(": changed "), "{stdout}");
}

#[test]
fn a_missing_module_fails_only_the_hosts_of_its_kernel_in_preflight() {
    let rollout = Rollout::start(4, &["--kernels", KERNELS]);
    let missing = rollout.work.path().join("modules/6.1.0-21-amd64");
    std::fs::remove_dir_all(&missing).unwrap();
    rollout.rewrite_playbook("max_fail: 1", "max_fail: 2");
    let before = rollout.boot_ids();
    let result = rollout.roll();
    result.expect_code(5);
    let stdout = result.stdout_text();
    assert!(
        stdout.contains("modules/6.1.0-21-amd64/xen-evtchn.ko: No such file"),
        "{stdout}"
    );
    let after = rollout.boot_ids();
    for (index, boot_id) in before.iter().enumerate() {
        let kernel = rollout.kernel(index);
        match kernel.as_str() {
            "6.1.0-21-amd64" => assert_eq!(&after[index], boot_id),
            _ => assert_eq!(rollout.module_on_disk(index), rollout.new_shas[&kernel]),
        }
    }
    let failed: Vec<_> = rollout
        .host_ends()
        .into_iter()
        .filter(|(_, ok)| !ok)
        .map(|(h, _)| h)
        .collect();
    assert_eq!(failed, ["lab-002", "lab-004"]);
}

#[test]
fn the_build_play_makes_one_module_per_kernel_with_its_vermagic() {
    let lab = Lab::start(4, &["--kernels", KERNELS]);
    let work = tempfile::tempdir().unwrap();
    std::fs::write(
        work.path().join("evtchn.c"),
        "/* evtchn.c with the port-reuse fix */\n",
    )
    .unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks/xen-evtchn-build.yml");
    let mut command = tool("pplay");
    command
        .current_dir(work.path())
        .args(["-O", "ConnectTimeout=2", "-i"])
        .arg(lab.dir().join("inventory.yml"))
        .args([
            "-e",
            "source=evtchn.c",
            "-e",
            "modules=build",
            "--journal",
            "build.journal",
        ])
        .arg(&shipped);
    let result = run(command);
    result.expect_code(0);
    let stdout = result.stdout_text();
    assert!(
        stdout.contains(
            "one host per `{{ host.kernel }}`: lab-001 (6.1.0-18-amd64), lab-002 (6.1.0-21-amd64)"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("build: changed lab-[001-002] (2)"),
        "{stdout}"
    );
    for kernel in KERNELS.split(',') {
        let module =
            std::fs::read(work.path().join("build").join(kernel).join("xen-evtchn.ko")).unwrap();
        let first_line = String::from_utf8_lossy(&module);
        assert!(
            first_line.contains(&format!("vermagic={kernel} SMP")),
            "{first_line}"
        );
    }
    // The modules are what the rollout takes: -e modules=build.
    assert_eq!(
        std::fs::read_dir(work.path().join("build"))
            .unwrap()
            .count(),
        2
    );
}

#[test]
fn run_once_runs_once_and_delegate_to_reaches_another_host() {
    let lab = Lab::start(3, &[]);
    let work = tempfile::tempdir().unwrap();
    let once_log = work.path().join("once.log");
    let text = format!(
        "hosts: all\nserial: 1\ntasks:\n\
         \x20 - name: once for the play\n    run_once: true\n    delegate_to: localhost\n    run: echo ran >> '{log}' && echo first\n    register: said\n\
         \x20 - name: everyone has its value\n    assert: {{command: 'echo {{{{ said | quote }}}}', equals: first}}\n\
         \x20 - name: where\n    delegate_to: lab-003\n    run: hostname\n    register: where\n\
         \x20 - name: ran on lab-003\n    assert: {{command: 'echo {{{{ where | quote }}}}', equals: lab-003}}\n",
        log = once_log.display()
    );
    let result = run(small_play(&lab, work.path(), &text, "once.journal", &[]));
    result.expect_code(0);
    assert_eq!(std::fs::read_to_string(&once_log).unwrap(), "ran\n");
}

#[test]
fn kill_9_in_the_second_play_resumes_there() {
    let lab = Lab::start(3, &[]);
    let work = tempfile::tempdir().unwrap();
    let log = work.path().join("plays.log");
    let text = format!(
        "- name: first\n  hosts: all\n  tasks:\n\
         \x20   - name: note\n      delegate_to: localhost\n      run: echo first {{{{ host.name }}}} >> '{log}'\n\
         - name: second\n  hosts: all\n  serial: 1\n  tasks:\n\
         \x20   - name: note\n      delegate_to: localhost\n      run: echo second {{{{ host.name }}}} >> '{log}'\n\
         \x20   - name: slow\n      run: sleep 2\n",
        log = log.display()
    );
    let journal = work.path().join("plays.journal");
    let mut child = spawn_quietly(small_play(&lab, work.path(), &text, "plays.journal", &[]));
    wait_until(
        Duration::from_secs(60),
        "the second play's first host",
        || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("second")
        },
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let resumed = resume(&journal, &[]);
    resumed.expect_code(0);
    let lines = std::fs::read_to_string(&log).unwrap();
    let count = |play: &str| lines.lines().filter(|l| l.starts_with(play)).count();
    assert_eq!(count("first "), 3, "{lines}");
    // The host cut short runs its note again; the others once.
    assert!((3..=4).contains(&count("second ")), "{lines}");
    assert!(
        resumed.stdout_text().contains("play 2/2: second"),
        "{}",
        resumed.stdout_text()
    );
}

#[test]
fn a_batch_after_batch_could_not_put_back_is_put_back_first_on_resume() {
    let lab = Lab::start(4, &[]);
    let work = tempfile::tempdir().unwrap();
    let log = work.path().join("scheduler.log");
    let stuck = work.path().join("scheduler-down");
    std::fs::write(&stuck, "").unwrap();
    let text = format!(
        "hosts: all\nserial: 2\nbefore_batch:\n\
         \x20 - {{name: drain, delegate_to: localhost, run_once: true, run: \"echo drain {{{{ batch.hosts }}}} >> '{log}'\"}}\n\
         tasks:\n  - {{name: work, run: 'true'}}\n\
         after_batch:\n\
         \x20 - {{name: undrain, delegate_to: localhost, run_once: true, run: \"test ! -e '{stuck}' && echo undrain {{{{ batch.hosts }}}} >> '{log}'\"}}\n",
        log = log.display(),
        stuck = stuck.display()
    );
    let first = run(small_play(&lab, work.path(), &text, "hooks.journal", &[]));
    first.expect_code(5);
    let stdout = first.stdout_text();
    assert!(
        stdout.contains("stopped: after_batch failed on lab-00"),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "drain lab-001 lab-002\n"
    );
    std::fs::remove_file(&stuck).unwrap();
    let resumed = resume(&work.path().join("hooks.journal"), &[]);
    resumed.expect_code(0);
    assert!(
        resumed
            .stdout_text()
            .contains("was left open by the run before"),
        "{}",
        resumed.stdout_text()
    );
    let lines = std::fs::read_to_string(&log).unwrap();
    println!("{}", resumed.stdout_text());
    assert_eq!(
        lines,
        "drain lab-001 lab-002\nundrain lab-001 lab-002\ndrain lab-003 lab-004\nundrain lab-003 lab-004\n"
    );
}

#[test]
fn two_copies_of_one_file_keep_their_own_modes_and_registers_never_choose_local_paths() {
    let lab = Lab::start(1, &[]);
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("secret.txt");
    std::fs::write(&source, "s3cret\n").unwrap();
    let text = format!(
        "tasks:\n  - copy: {{src: '{src}', dest: /root/open, mode: '0644'}}\n  - copy: {{src: '{src}', dest: /root/secret, mode: '0600'}}\n",
        src = source.display()
    );
    run(small_play(&lab, work.path(), &text, "modes.journal", &[])).expect_code(0);
    let modes = lab.output_of(0, "stat -c %a /root/open /root/secret");
    assert_eq!(modes.split_whitespace().collect::<Vec<_>>(), ["644", "600"]);
    // The same content already there is left, but never with a wider mode.
    let text = format!(
        "tasks:\n  - copy: {{src: '{src}', dest: /root/open, mode: '0600', skip_unchanged: true}}\n",
        src = source.display()
    );
    let again = run(small_play(&lab, work.path(), &text, "again.journal", &[]));
    again.expect_code(0);
    assert!(
        again.stdout_text().contains("changed"),
        "{}",
        again.stdout_text()
    );
    assert_eq!(lab.output_of(0, "stat -c %a /root/open").trim(), "600");
    // A name a task registers is a host's output, even when a variable of
    // that name exists: never part of a local path.
    let text = "vars: {d: safe}\ntasks:\n  - {run: echo ../../x, register: d}\n  - fetch: {src: /etc/hostname, dest: 'out/{{ d }}'}\n";
    let refused = run(small_play(&lab, work.path(), text, "paths.journal", &[]));
    refused.expect_code(2);
    assert!(refused.stderr.contains("small.yml:4:5: task `fetch /etc/hostname`: fetch dest may not use `d`: a task registers it"), "{}", refused.stderr);
}

#[test]
fn an_abort_during_after_batch_leaves_the_batch_for_the_resume_to_put_back() {
    let lab = Lab::start(2, &[]);
    let work = tempfile::tempdir().unwrap();
    let log = work.path().join("scheduler.log");
    let quick = work.path().join("quick");
    let text = format!(
        "hosts: all\nserial: 2\ntasks:\n  - {{name: work, run: 'true'}}\n\
         after_batch:\n\
         \x20 - {{name: undrain, delegate_to: localhost, run_once: true, run: \"echo start >> '{log}'; test -e '{quick}' || sleep 30; echo undrain >> '{log}'\"}}\n",
        log = log.display(),
        quick = quick.display()
    );
    let journal = work.path().join("abort.journal");
    let mut child = spawn_quietly(small_play(&lab, work.path(), &text, "abort.journal", &[]));
    wait_until(Duration::from_secs(60), "after_batch to start", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("start")
    });
    // The second Ctrl-C aborts what runs, after_batch included.
    for _ in 0..2 {
        // SAFETY: a signal to the child this test started.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(child.wait().unwrap().code(), Some(3));
    let journaled = std::fs::read_to_string(&journal).unwrap();
    assert!(!journaled.contains("\"batch_end\""), "{journaled}");
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "start\n");
    std::fs::write(&quick, "").unwrap();
    let resumed = resume(&journal, &[]);
    resumed.expect_code(0);
    assert!(
        resumed
            .stdout_text()
            .contains("was left open by the run before"),
        "{}",
        resumed.stdout_text()
    );
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "start\nstart\nundrain\n"
    );
}

#[test]
fn a_task_failing_after_ctrl_c_still_ends_the_run_as_stopped_by_the_operator() {
    use std::io::{BufRead, BufReader, Read};
    // One host at a time: the second is left for the resume by the stop.
    let lab = Lab::start(2, &[]);
    let work = tempfile::tempdir().unwrap();
    let started = work.path().join("started");
    let go = work.path().join("go");
    let text = format!(
        "hosts: all\nserial: 1\ntasks:\n  - {{name: slow, delegate_to: localhost, \
         run: \"touch '{started}'; while ! test -e '{go}'; do sleep 0.1; done; exit 1\"}}\n",
        started = started.display(),
        go = go.display()
    );
    let mut command = small_play(&lab, work.path(), &text, "stop.journal", &[]);
    command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn().unwrap();
    wait_until(Duration::from_secs(60), "the task to start", || {
        started.exists()
    });
    // SAFETY: a signal to the child this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    // The task fails only once pplay has taken the Ctrl-C in.
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut said = String::new();
    while !said.contains("running tasks finish") {
        assert_ne!(stderr.read_line(&mut said).unwrap(), 0, "{said}");
    }
    std::fs::write(&go, "").unwrap();
    stderr.read_to_string(&mut said).unwrap();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(3), "{stdout}{said}");
    assert!(
        stdout.contains("failed (1): slow: exit 1: lab-001"),
        "{stdout}"
    );
    assert!(stdout.contains("stopped: interrupted"), "{stdout}");
    assert!(
        stdout.contains("1 failed, 0 stopped, 1 not started"),
        "{stdout}"
    );
}
