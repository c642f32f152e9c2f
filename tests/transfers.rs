//! pcp, pslurp and pnuke on fleet-lab hosts, each with its own files:
//! atomic verified pushes, per-host pulls, and safe kills.

mod support;

use std::collections::HashSet;
use std::process::Stdio;
use std::time::Duration;

use support::{run, wait_until, Lab};

fn sha256(path: &std::path::Path) -> String {
    let output = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout)
        .split(' ')
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn push_to_fifty_hosts_with_content_mode_and_digest_verified() {
    let lab = Lab::start(50, &[]);
    let module = lab.dir().join("xen-evtchn.ko");
    support::random_file(&module, 100_000);
    let mut pcp = lab.tool("pcp");
    pcp.args(["-h"]).arg(lab.dir().join("hosts")).args([
        "-p",
        "50",
        "--max-transfers",
        "16",
        "--mode",
        "0640",
    ]);
    pcp.arg(&module).arg("/var/log/");
    let result = run(pcp);
    result.expect_code(0);
    assert_eq!(result.stdout_text().matches("installed 1 item").count(), 50);
    let mut check = lab.prun();
    check
        .arg("-h")
        .arg(lab.dir().join("hosts"))
        .args(["-p", "50", "-i"]);
    check.arg("echo \"$(sha256sum < /var/log/xen-evtchn.ko | cut -c1-64) $(stat -c %a /var/log/xen-evtchn.ko)\"; ls -a /var/log | grep -c pcp-");
    let stdout = run(check).stdout_text();
    assert_eq!(
        stdout
            .matches(&format!("{} 640\n0\n", sha256(&module)))
            .count(),
        50,
        "{stdout}"
    );
}

#[test]
fn a_cut_transfer_leaves_the_old_file_and_no_temporary_file() {
    let lab = Lab::start(1, &[]);
    std::fs::write(lab.var_log(0).join("module.ko"), b"old module").unwrap();
    let big = lab.dir().join("module.ko");
    support::random_file(&big, 300_000_000);
    let mut pcp = lab.tool("pcp");
    pcp.args(["-H", &lab.host(0)])
        .arg(&big)
        .arg("/var/log/module.ko");
    let mut child = pcp
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let temp_exists = || {
        std::fs::read_dir(lab.var_log(0))
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with(".pcp-"))
    };
    wait_until(Duration::from_secs(20), "the transfer started", temp_exists);
    child.kill().unwrap();
    child.wait().unwrap();
    wait_until(
        Duration::from_secs(10),
        "the host removed its temporary file",
        || !temp_exists(),
    );
    assert_eq!(
        std::fs::read(lab.var_log(0).join("module.ko")).unwrap(),
        b"old module"
    );
}

#[test]
fn backup_keeps_the_previous_file_and_skip_unchanged_sends_nothing() {
    let lab = Lab::start(3, &[]);
    let file = lab.dir().join("app.conf");
    std::fs::write(&file, "version 1\n").unwrap();
    let push = |extra: &[&str]| {
        let mut pcp = lab.tool("pcp");
        pcp.arg("-h")
            .arg(lab.dir().join("hosts"))
            .args(extra)
            .arg(&file)
            .arg("/var/log/app.conf");
        run(pcp)
    };
    push(&[]).expect_code(0);
    // A trailing slash names a directory, which must be there.
    let mut missing = lab.tool("pcp");
    missing
        .arg("-h")
        .arg(lab.dir().join("hosts"))
        .arg(&file)
        .arg("/var/log/nodir/");
    let missing = run(missing);
    missing.expect_code(5);
    assert!(
        missing
            .stderr
            .contains("pcp: no such directory: /var/log/nodir/"),
        "{}",
        missing.stderr
    );
    std::fs::write(&file, "version 2\n").unwrap();
    push(&["--backup"]).expect_code(0);
    for index in 0..3 {
        assert_eq!(
            std::fs::read_to_string(lab.var_log(index).join("app.conf")).unwrap(),
            "version 2\n"
        );
        assert_eq!(
            std::fs::read_to_string(lab.var_log(index).join("app.conf.bak")).unwrap(),
            "version 1\n"
        );
    }
    let modified = std::fs::metadata(lab.var_log(0).join("app.conf"))
        .unwrap()
        .modified()
        .unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let again = push(&["--skip-unchanged"]);
    again.expect_code(0);
    assert_eq!(
        again.stdout_text().matches(" unchanged").count(),
        3,
        "{}",
        again.stdout_text()
    );
    assert!(again.stderr.contains("3 unchanged"), "{}", again.stderr);
    assert_eq!(
        std::fs::metadata(lab.var_log(0).join("app.conf"))
            .unwrap()
            .modified()
            .unwrap(),
        modified
    );
    // Same content, another mode (or owner) asked for: not unchanged.
    let mode = push(&["--skip-unchanged", "--mode", "600", "--owner", "root"]);
    mode.expect_code(0);
    assert_eq!(mode.stdout_text().matches(" unchanged").count(), 0);
    let installed = std::fs::metadata(lab.var_log(0).join("app.conf")).unwrap();
    let mode = std::os::unix::fs::PermissionsExt::mode(&installed.permissions());
    assert_eq!(mode & 0o777, 0o600);
    let again = push(&["--skip-unchanged", "--mode", "600", "--owner", "root"]);
    assert_eq!(again.stdout_text().matches(" unchanged").count(), 3);
    // A tree is always sent: --skip-unchanged says so instead of doing nothing.
    let mut tree = lab.tool("pcp");
    tree.arg("-h")
        .arg(lab.dir().join("hosts"))
        .args(["-r", "--skip-unchanged"])
        .arg(lab.dir())
        .arg("/var/log/");
    run(tree).expect_code(2);
}

#[test]
fn recursive_copy_keeps_modes_and_symlinks() {
    let lab = Lab::start(2, &[]);
    let tree = lab.dir().join("bundle");
    std::fs::create_dir_all(tree.join("bin")).unwrap();
    std::fs::write(tree.join("bin/tool"), "#!/bin/sh\necho tool\n").unwrap();
    std::fs::set_permissions(
        tree.join("bin/tool"),
        std::os::unix::fs::PermissionsExt::from_mode(0o750),
    )
    .unwrap();
    std::os::unix::fs::symlink("bin/tool", tree.join("current")).unwrap();
    let mut pcp = lab.tool("pcp");
    pcp.arg("-h")
        .arg(lab.dir().join("hosts"))
        .arg("-r")
        .arg(&tree)
        .arg("/var/log/");
    run(pcp).expect_code(0);
    for index in 0..2 {
        let copied = lab.var_log(index).join("bundle");
        assert_eq!(
            std::fs::read_link(copied.join("current")).unwrap(),
            std::path::Path::new("bin/tool")
        );
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(copied.join("bin/tool"))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o7777, 0o750);
    }
}

#[test]
fn pull_from_fifty_hosts_into_per_host_directories() {
    let lab = Lab::start(50, &["--crash-share", "0.1"]);
    let local = lab.dir().join("pulled");
    let mut pslurp = lab.tool("pslurp");
    pslurp
        .arg("-h")
        .arg(lab.dir().join("hosts"))
        .args(["-p", "50", "-L"])
        .arg(&local)
        .args(["/var/log/messages", "messages"]);
    run(pslurp).expect_code(0);
    let mut crashed = 0;
    for index in 0..50 {
        let pulled = std::fs::read(local.join(lab.host(index)).join("messages")).unwrap();
        assert!(
            pulled == std::fs::read(lab.var_log(index).join("messages")).unwrap(),
            "host {index} differs"
        );
        crashed += usize::from(
            String::from_utf8_lossy(&pulled).contains("kernel BUG at drivers/xen/evtchn.c:264!"),
        );
    }
    assert_eq!(crashed, 5);
    let mut missing = lab.tool("pslurp");
    missing
        .args(["-H", &lab.host(0), "-L"])
        .arg(&local)
        .args(["/var/log/nothing-here", "nothing"]);
    let result = run(missing);
    result.expect_code(5);
    assert!(
        result
            .stderr
            .contains("no such file: /var/log/nothing-here"),
        "{}",
        result.stderr
    );
    let leftovers: HashSet<String> = std::fs::read_dir(local.join(lab.host(0)))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        leftovers,
        HashSet::from(["messages".to_string()]),
        "a failed pull left a file"
    );
}

#[test]
fn pnuke_kills_a_process_tree_and_no_pattern_reaches_a_shell() {
    let lab = Lab::start(2, &[]);
    let start = lab.run_on(
        0,
        "for i in 1 2 3; do setsid sleep 7001 >/dev/null 2>&1 & done; true",
    );
    start.expect_code(0);
    let mut list = lab.tool("pnuke");
    list.arg("-h")
        .arg(lab.dir().join("hosts"))
        .args(["--list", "^sleep$"]);
    let listed = run(list);
    assert!(
        listed.stdout_text().contains("matched 3"),
        "{}",
        listed.stdout_text()
    );
    assert!(listed.stdout_text().contains("sleep 7001"));
    let mut nuke = lab.tool("pnuke");
    nuke.arg("-h").arg(lab.dir().join("hosts")).arg("^sleep$");
    let result = run(nuke);
    result.expect_code(0);
    assert!(
        result.stdout_text().contains("signalled with KILL: 3"),
        "{}",
        result.stdout_text()
    );
    assert!(
        result
            .stdout_text()
            .contains(&format!("{} no match", lab.host(1))),
        "{}",
        result.stdout_text()
    );
    assert_eq!(lab.run_on(0, "pgrep -x sleep").code(), 5, "sleep survived");

    let mut hostile = lab.tool("pnuke");
    hostile
        .arg("-h")
        .arg(lab.dir().join("hosts"))
        .arg("x'; touch /tmp/pwned; '");
    run(hostile).expect_code(0);
    assert_eq!(
        lab.run_on(0, "test -e /tmp/pwned").code(),
        5,
        "the pattern reached a shell"
    );
}

#[test]
fn owner_and_group_are_set_and_directories_can_be_pulled() {
    let lab = Lab::start(2, &[]);
    let file = lab.dir().join("owned");
    std::fs::write(&file, "x\n").unwrap();
    let mut pcp = lab.tool("pcp");
    pcp.arg("-h")
        .arg(lab.dir().join("hosts"))
        .args(["--owner", "nobody", "--group", "nogroup"])
        .arg(&file)
        .arg("/var/log/");
    run(pcp).expect_code(0);
    assert_eq!(
        lab.output_of(1, "stat -c %U:%G /var/log/owned"),
        "nobody:nogroup\n"
    );

    for index in 0..2 {
        let tree = lab.var_log(index).join("app");
        std::fs::create_dir_all(tree.join("old")).unwrap();
        std::fs::write(tree.join("old/app.log"), format!("host {index}\n")).unwrap();
    }
    let local = lab.dir().join("pulled");
    let mut pslurp = lab.tool("pslurp");
    pslurp
        .arg("-h")
        .arg(lab.dir().join("hosts"))
        .args(["-r", "-L"])
        .arg(&local)
        .args(["/var/log/app", "app"]);
    run(pslurp).expect_code(0);
    for index in 0..2 {
        let pulled =
            std::fs::read_to_string(local.join(lab.host(index)).join("app/old/app.log")).unwrap();
        assert_eq!(pulled, format!("host {index}\n"));
    }

    // Pulled again into the same place: the new tree replaces the old one
    // whole, and what a pslurp killed mid-unpack left is cleared.
    let tree = lab.var_log(0).join("app");
    std::fs::remove_dir_all(tree.join("old")).unwrap();
    std::fs::write(tree.join("new.log"), "again\n").unwrap();
    let host_dir = local.join(lab.host(0));
    let abandoned = host_dir.join(format!(".app.pslurp-{}.d", i32::MAX));
    std::fs::create_dir_all(abandoned.join("app")).unwrap();
    let mut again = lab.tool("pslurp");
    again
        .arg("-h")
        .arg(lab.dir().join("hosts"))
        .args(["-r", "-L"])
        .arg(&local)
        .args(["/var/log/app", "app"]);
    run(again).expect_code(0);
    let pulled = std::fs::read_to_string(host_dir.join("app/new.log")).unwrap();
    assert_eq!(pulled, "again\n");
    assert!(!host_dir.join("app/old").exists());
    let left: Vec<_> = std::fs::read_dir(&host_dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left, ["app"]);
}
