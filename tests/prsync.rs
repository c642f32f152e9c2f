//! prsync on fleet-lab hosts, each with its own files: what a first sync
//! lays down, that a re-sync sends only what changed, --delete and
//! --exclude, rsync's trailing-slash rule, dry runs, and a cut sync.

mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use support::{run, wait_until, Lab, TestFleet};

/// A tree with what trips copies up: links, modes, an empty directory,
/// a name with a space and a newline, and `files` small files in subdirectories.
fn make_tree(root: &Path, files: usize) {
    for index in 0..files {
        let dir = root.join(format!("d{}", index % 7));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join(format!("f{index:03}")),
            format!("file {index}\n").repeat(index % 13 + 1),
        )
        .unwrap();
    }
    std::fs::create_dir_all(root.join("empty")).unwrap();
    std::fs::write(root.join("name with space\nand newline"), "odd name\n").unwrap();
    let secret = root.join("secret");
    std::fs::write(&secret, "only the owner\n").unwrap();
    std::fs::set_permissions(&secret, PermissionsExt::from_mode(0o600)).unwrap();
    let tool = root.join("tool.sh");
    std::fs::write(&tool, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&tool, PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::set_permissions(root.join("d1"), PermissionsExt::from_mode(0o750)).unwrap();
    std::os::unix::fs::symlink("d0/f000", root.join("link")).unwrap();
    std::os::unix::fs::symlink("/nowhere", root.join("dangling")).unwrap();
}

/// Every entry under `root`: kind, mode, content or link target, and
/// (for files) mtime.
fn describe(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut found = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let what = if meta.file_type().is_symlink() {
                format!("link {}", std::fs::read_link(&path).unwrap().display())
            } else if meta.is_dir() {
                stack.push(path.clone());
                format!("dir {:o}", meta.mode() & 0o7777)
            } else {
                let content = std::fs::read(&path).unwrap();
                format!(
                    "file {:o} {} {:?}",
                    meta.mode() & 0o7777,
                    meta.mtime(),
                    content
                )
            };
            found.insert(path.strip_prefix(root).unwrap().to_path_buf(), what);
        }
    }
    found
}

fn prsync(lab: &Lab, args: &[&str]) -> std::process::Command {
    let mut command = lab.tool("prsync");
    command.arg("-h").arg(lab.dir().join("hosts")).args(args);
    command
}

/// Inode and mtime of every file under `root`.
fn identities(root: &Path) -> BTreeMap<PathBuf, (u64, i64)> {
    describe(root)
        .keys()
        .filter_map(|path| {
            let meta = std::fs::symlink_metadata(root.join(path)).ok()?;
            meta.is_file()
                .then(|| (path.clone(), (meta.ino(), meta.mtime())))
        })
        .collect()
}

#[test]
fn a_re_sync_sends_only_what_changed_and_hosts_get_their_own_plans() {
    let lab = Lab::start(3, &[]);
    let tree = lab.dir().join("tree");
    make_tree(&tree, 500);
    let source = format!("{}/", tree.display());
    let first = run(prsync(&lab, &["-a", &source, "/var/log/tree"]));
    first.expect_code(0);
    let entries = describe(&tree);
    let files = entries.values().filter(|v| v.starts_with("file")).count();
    let links = entries.values().filter(|v| v.starts_with("link")).count();
    let dirs = entries.values().filter(|v| v.starts_with("dir")).count();
    let created = format!("{} created, 0 updated, 0 deleted", files + links + dirs);
    assert_eq!(
        first.stdout_text().matches(&created).count(),
        3,
        "{}",
        first.stdout_text()
    );
    for host in 0..3 {
        let copy = lab.var_log(host).join("tree");
        assert_eq!(describe(&copy), entries, "host {host}");
    }

    // Two files change here; one host has lost a file meanwhile.
    let before = identities(&lab.var_log(0).join("tree"));
    std::thread::sleep(Duration::from_millis(1100));
    std::fs::write(tree.join("d3/f010"), "changed\n").unwrap();
    std::fs::write(tree.join("d4/f200"), "changed too\n").unwrap();
    std::fs::remove_file(lab.var_log(2).join("tree/d5/f012")).unwrap();
    let second = run(prsync(&lab, &["-a", &source, "/var/log/tree"]));
    second.expect_code(0);
    let text = second.stdout_text();
    let bytes = "changed\n".len() + "changed too\n".len();
    let same = format!("0 created, 2 updated, 0 deleted, {bytes} bytes");
    assert_eq!(text.matches(&same).count(), 2, "{text}");
    let lost = std::fs::metadata(tree.join("d5/f012")).unwrap().len() as usize;
    let own = format!("1 created, 2 updated, 0 deleted, {} bytes", bytes + lost);
    assert_eq!(text.matches(&own).count(), 1, "{text}");
    assert!(
        second
            .stderr
            .contains("changed: 1 created, 6 updated, 0 deleted"),
        "{}",
        second.stderr
    );
    let after = identities(&lab.var_log(0).join("tree"));
    let changed: Vec<&PathBuf> = before
        .iter()
        .filter(|(path, id)| after.get(*path) != Some(id))
        .map(|(path, _)| path)
        .collect();
    assert_eq!(changed, [Path::new("d3/f010"), Path::new("d4/f200")]);
    for host in 0..3 {
        assert_eq!(describe(&lab.var_log(host).join("tree")), describe(&tree));
    }

    // Nothing left to do: every host says so, in the JSON too.
    let third = run(prsync(&lab, &["-a", "--json", &source, "/var/log/tree"]));
    third.expect_code(0);
    assert_eq!(
        third
            .stdout_text()
            .matches("\"status\":\"unchanged\"")
            .count(),
        3
    );
}

#[test]
fn delete_exclude_trailing_slashes_and_dry_runs() {
    let lab = Lab::start(1, &[]);
    let conf = lab.dir().join("conf");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(conf.join("a"), "a\n").unwrap();
    std::fs::write(conf.join("b"), "b\n").unwrap();
    // rsync's rule: `conf` lands as conf/ inside, `conf/` is what it holds.
    run(prsync(&lab, &["-r", conf.to_str().unwrap(), "/var/log/t1"])).expect_code(0);
    run(prsync(
        &lab,
        &["-r", &format!("{}/", conf.display()), "/var/log/t2"],
    ))
    .expect_code(0);
    assert_eq!(
        std::fs::read_to_string(lab.var_log(0).join("t1/conf/a")).unwrap(),
        "a\n"
    );
    assert_eq!(
        std::fs::read_to_string(lab.var_log(0).join("t2/b")).unwrap(),
        "b\n"
    );
    // One file to a path that is not a directory: that path is the file.
    run(prsync(
        &lab,
        &[conf.join("a").to_str().unwrap(), "/var/log/renamed.conf"],
    ))
    .expect_code(0);
    assert_eq!(
        std::fs::read_to_string(lab.var_log(0).join("renamed.conf")).unwrap(),
        "a\n"
    );

    let host = lab.var_log(0).join("t1/conf");
    std::fs::write(host.join("extra"), "extra\n").unwrap();
    std::fs::write(host.join("keep.log"), "kept\n").unwrap();
    std::fs::create_dir_all(host.join("old")).unwrap();
    std::fs::write(host.join("old/x"), "x\n").unwrap();
    std::fs::write(host.join("old/y.log"), "kept too\n").unwrap();
    let before = describe(&host);
    let args = [
        "-r",
        "--delete",
        "--exclude",
        "*.log",
        conf.to_str().unwrap(),
        "/var/log/t1",
    ];
    let mut dry = args.to_vec();
    dry.push("-n");
    let dry = run(prsync(&lab, &dry));
    dry.expect_code(0);
    let text = dry.stdout_text();
    support::assert_contains_all(
        &text,
        &[
            "would: 0 created, 0 updated, 2 deleted, 0 bytes",
            "delete conf/extra",
            "delete conf/old/x",
        ],
    );
    assert_eq!(describe(&host), before, "a dry run changed the host");
    let real = run(prsync(&lab, &args));
    real.expect_code(0);
    assert!(
        real.stdout_text()
            .contains("0 created, 0 updated, 2 deleted, 0 bytes"),
        "{}",
        real.stdout_text()
    );
    let left: Vec<PathBuf> = describe(&host).into_keys().collect();
    let wanted: Vec<PathBuf> = ["a", "b", "keep.log", "old", "old/y.log"]
        .iter()
        .map(PathBuf::from)
        .collect();
    assert_eq!(left, wanted);
}

#[test]
fn backups_checksums_and_bad_input() {
    let lab = Lab::start(1, &[]);
    let conf = lab.dir().join("conf");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(conf.join("app.conf"), "version 1\n").unwrap();
    let source = format!("{}/", conf.display());
    run(prsync(&lab, &["-r", &source, "/var/log/app"])).expect_code(0);
    // Changed within the second of the sync, to the same size: times are
    // compared to the nanosecond, so it is seen.
    std::fs::write(conf.join("app.conf"), "version 2\n").unwrap();
    let quick_edit = run(prsync(&lab, &["-r", &source, "/var/log/app"]));
    assert!(
        quick_edit.stdout_text().contains("0 created, 1 updated"),
        "{}",
        quick_edit.stdout_text()
    );
    std::fs::write(conf.join("app.conf"), "version 1\n").unwrap();
    run(prsync(&lab, &["-r", &source, "/var/log/app"])).expect_code(0);
    // Same size, same second: only -c sees the difference.
    let host_file = lab.var_log(0).join("app/app.conf");
    let mtime = std::fs::metadata(&host_file).unwrap().modified().unwrap();
    std::fs::write(&host_file, "version X\n").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&host_file)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let quick = run(prsync(&lab, &["-r", &source, "/var/log/app"]));
    assert!(
        quick.stdout_text().contains(" unchanged"),
        "{}",
        quick.stdout_text()
    );
    let checked = run(prsync(
        &lab,
        &["-r", "-c", "--backup", &source, "/var/log/app"],
    ));
    assert!(
        checked.stdout_text().contains("0 created, 1 updated"),
        "{}",
        checked.stdout_text()
    );
    assert_eq!(std::fs::read_to_string(&host_file).unwrap(), "version 1\n");
    assert_eq!(
        std::fs::read_to_string(lab.var_log(0).join("app/app.conf~")).unwrap(),
        "version X\n"
    );

    // The same content with another time or mode: set, not sent again.
    let inode = std::fs::metadata(&host_file).unwrap().ino();
    let local = conf.join("app.conf");
    std::fs::File::options()
        .write(true)
        .open(&local)
        .unwrap()
        .set_modified(std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000))
        .unwrap();
    std::fs::set_permissions(&local, PermissionsExt::from_mode(0o600)).unwrap();
    let attributes = run(prsync(&lab, &["-r", "-c", &source, "/var/log/app"]));
    assert!(
        attributes
            .stdout_text()
            .contains("0 created, 1 updated, 0 deleted, 0 bytes"),
        "{}",
        attributes.stdout_text()
    );
    let now = std::fs::metadata(&host_file).unwrap();
    assert_eq!(
        (now.ino(), now.mtime(), now.mode() & 0o777),
        (inode, 1_000_000_000, 0o600)
    );

    // Compressed, into a directory that is not there yet.
    run(prsync(&lab, &["-r", "-z", &source, "/var/log/fresh"])).expect_code(0);
    assert_eq!(
        std::fs::read_to_string(lab.var_log(0).join("fresh/app.conf")).unwrap(),
        "version 1\n"
    );

    let excludes = lab.dir().join("excludes");
    std::fs::write(&excludes, "*.tmp\n+ keep\n").unwrap();
    let bad = run(prsync(
        &lab,
        &[
            "-r",
            "--exclude-from",
            excludes.to_str().unwrap(),
            &source,
            "/var/log/app",
        ],
    ));
    bad.expect_code(2);
    assert!(
        bad.stderr.contains("excludes:2: include rules"),
        "{}",
        bad.stderr
    );
    let directory = run(prsync(&lab, &[conf.to_str().unwrap(), "/var/log/app"]));
    directory.expect_code(2);
    assert!(
        directory.stderr.contains("is a directory; use -r or -a"),
        "{}",
        directory.stderr
    );
    let onto_file = run(prsync(&lab, &["-r", &source, "/var/log/app/app.conf"]));
    onto_file.expect_code(5);
    assert!(
        onto_file
            .stdout_text()
            .contains("/var/log/app/app.conf is not a directory"),
        "{}",
        onto_file.stdout_text()
    );
}

#[test]
fn a_cut_sync_leaves_each_file_old_or_new_and_no_temporary_file() {
    let lab = Lab::start(1, &[]);
    let tree = lab.dir().join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("small.conf"), "new\n").unwrap();
    support::random_file(&tree.join("big.img"), 300_000_000);
    let host = lab.var_log(0).join("tree");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("small.conf"), "old\n").unwrap();
    std::fs::write(host.join("big.img"), "old image\n").unwrap();
    let temporary = || {
        std::fs::read_dir(&host)
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with(".prsync-"))
    };
    // Cut by kill -9 (the connection drops), then by Ctrl-C (prsync
    // stops the host's script, whose cleanup a second TERM must not cut).
    for signal in [libc::SIGKILL, libc::SIGINT] {
        let child = prsync(
            &lab,
            &["-r", &format!("{}/", tree.display()), "/var/log/tree"],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
        wait_until(Duration::from_secs(30), "the sync started", temporary);
        // SAFETY: kill(2) on our own child, which has not been waited for.
        unsafe { libc::kill(child.id() as libc::pid_t, signal) };
        child.wait_with_output().unwrap();
        wait_until(
            // Generous: a loaded machine may be slow to notice the cut.
            Duration::from_secs(60),
            "the host removed its temporary files",
            || !temporary(),
        );
    }
    assert_eq!(
        std::fs::read_to_string(host.join("small.conf")).unwrap(),
        "old\n"
    );
    assert_eq!(
        std::fs::read_to_string(host.join("big.img")).unwrap(),
        "old image\n"
    );
}

#[test]
fn pplay_sync_changes_only_when_something_is_sent() {
    let lab = Lab::start(2, &[]);
    let conf = lab.dir().join("conf");
    std::fs::create_dir_all(conf.join("sub")).unwrap();
    std::fs::write(conf.join("a.conf"), "a\n").unwrap();
    std::fs::write(conf.join("sub/b.conf"), "b\n").unwrap();
    let playbook = lab.dir().join("sync.yml");
    std::fs::write(
        &playbook,
        format!(
            "tasks:\n  - name: push the configuration\n    sync: {{src: {}/, dest: /var/log/conf, delete: true, exclude: ['*.local']}}\n",
            conf.display()
        ),
    )
    .unwrap();
    let pplay = |extra: &[&str]| {
        let mut command = support::tool("pplay");
        command
            .args(["-O", "ConnectTimeout=2", "-i"])
            .arg(lab.dir().join("inventory.yml"))
            .args(extra)
            .arg(&playbook);
        run(command)
    };
    std::fs::create_dir_all(lab.var_log(1).join("conf")).unwrap();
    std::fs::write(lab.var_log(1).join("conf/stale"), "stale\n").unwrap();
    std::fs::write(lab.var_log(1).join("conf/host.local"), "mine\n").unwrap();
    let check = pplay(&["--check"]);
    check.expect_code(0);
    assert!(
        check
            .stdout_text()
            .contains("would (sync /var/log/conf: would: 3 created, 0 updated, 1 deleted"),
        "{}",
        check.stdout_text()
    );
    assert!(
        lab.var_log(1).join("conf/stale").exists(),
        "--check changed a host"
    );
    let first = pplay(&[]);
    first.expect_code(0);
    let text = first.stdout_text();
    assert!(
        text.contains("push the configuration: changed lab-[001-002] (2)"),
        "{text}"
    );
    for host in 0..2 {
        assert_eq!(
            std::fs::read_to_string(lab.var_log(host).join("conf/sub/b.conf")).unwrap(),
            "b\n"
        );
    }
    assert!(!lab.var_log(1).join("conf/stale").exists());
    assert!(lab.var_log(1).join("conf/host.local").exists());
    let again = pplay(&[]);
    again.expect_code(0);
    assert!(
        again
            .stdout_text()
            .contains("push the configuration: ok lab-[001-002] (2)"),
        "{}",
        again.stdout_text()
    );
}

#[test]
fn hosts_sharing_a_filesystem_keep_their_temporary_files_apart() {
    // Every host of this fleet is this machine: eight at once into one
    // directory, as hosts with an NFS-mounted destination would.
    let fleet = TestFleet::start(8);
    let tree = fleet.dir().join("tree");
    make_tree(&tree, 200);
    let dest = fleet.dir().join("shared");
    let mut prsync = fleet.tool("prsync");
    prsync
        .arg("-h")
        .arg(fleet.hosts_file())
        .arg("-a")
        .arg(format!("{}/", tree.display()))
        .arg(&dest);
    let result = run(prsync);
    result.expect_code(0);
    assert_eq!(describe(&dest), describe(&tree));
}

#[test]
fn replaced_entries_are_kept_with_backup_and_odd_names_and_leftovers_are_handled() {
    let lab = Lab::start(1, &[]);
    let src = lab.dir().join("src");
    std::fs::create_dir_all(src.join("app")).unwrap();
    std::fs::write(src.join("app/f"), "new dir's file\n").unwrap();
    std::fs::write(src.join("conf"), "now a file\n").unwrap();
    std::fs::create_dir_all(src.join("-foo")).unwrap();
    std::fs::write(src.join("-foo/f"), "dash\n").unwrap();
    let host = lab.var_log(0).join("d");
    std::fs::create_dir_all(host.join("conf")).unwrap();
    std::fs::write(host.join("app"), "precious file\n").unwrap();
    std::fs::write(host.join("conf/important"), "precious dir\n").unwrap();
    // Leftovers of runs killed outright: this host's (its pid is gone)
    // and another host's on a shared filesystem (not ours to judge).
    let me = lab.output_of(0, "hostname | tr -cd 'A-Za-z0-9.-'");
    let dead = host.join(format!(".prsync-0123456789ab-{}-999999", me.trim()));
    std::fs::create_dir_all(&dead).unwrap();
    std::fs::write(dead.join("half"), "half a file").unwrap();
    let other = host.join(".prsync-0123456789ab-elsewhere-1.in");
    std::fs::write(&other, "another host's").unwrap();
    let source = format!("{}/", src.display());
    let result = run(prsync(
        &lab,
        &["-r", "--delete", "--backup", &source, "/var/log/d"],
    ));
    result.expect_code(0);
    assert_eq!(
        std::fs::read_to_string(host.join("app/f")).unwrap(),
        "new dir's file\n"
    );
    assert_eq!(
        std::fs::read_to_string(host.join("app~")).unwrap(),
        "precious file\n"
    );
    assert_eq!(
        std::fs::read_to_string(host.join("conf")).unwrap(),
        "now a file\n"
    );
    assert_eq!(
        std::fs::read_to_string(host.join("conf~/important")).unwrap(),
        "precious dir\n"
    );
    assert_eq!(
        std::fs::read_to_string(host.join("-foo/f")).unwrap(),
        "dash\n"
    );
    assert!(!dead.exists(), "a dead run's temporary directory stayed");
    assert!(other.exists(), "another host's temporary file was removed");
    // Backups are never synced over or deleted, however often it runs.
    let again = run(prsync(
        &lab,
        &["-r", "--delete", "--backup", &source, "/var/log/d"],
    ));
    again.expect_code(0);
    assert!(
        again.stdout_text().contains(" unchanged"),
        "{}",
        again.stdout_text()
    );
    assert!(host.join("conf~/important").exists());
}

#[test]
fn dropbear_hosts_are_synced_too() {
    // Dropbear (embedded and rescue hosts) refuses long commands: the
    // plan's script must not be one.
    let fleet = TestFleet::start_with(2, &["--dropbear"]);
    let tree = fleet.dir().join("tree");
    make_tree(&tree, 20);
    let dest = fleet.dir().join("synced");
    let sync = || {
        let mut prsync = fleet.tool("prsync");
        prsync
            .arg("-h")
            .arg(fleet.hosts_file())
            .arg("-a")
            .arg(format!("{}/", tree.display()))
            .arg(&dest);
        run(prsync)
    };
    sync().expect_code(0);
    assert_eq!(describe(&dest), describe(&tree));
    let again = sync();
    again.expect_code(0);
    assert_eq!(again.stdout_text().matches(" unchanged").count(), 2);
}
