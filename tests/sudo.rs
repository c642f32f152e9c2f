//! `--sudo` and pplay's `become` against real sshd and real sudo: an
//! unprivileged user each test creates (and removes), with a sudoers
//! drop-in of its own, logging in with the fleet's key.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::{assert_contains_all, process_running, run, tool, wait_until, TestFleet};

/// What every password test user gets; the tests look for it everywhere.
const PASSWORD: &str = "Sudo-pw-31";

/// An ordinary user with a password and its own sudoers rules, gone when
/// dropped. Created before the fleet, which copies /etc/passwd at start.
struct SudoUser {
    /// Named for this process: runs at once never share a user.
    name: String,
    sudoers: PathBuf,
}

impl SudoUser {
    fn create(base: &str, shell: &str, rules: &str) -> SudoUser {
        let name = format!("{base}p{}", std::process::id());
        retry_on_lock(|| {
            Command::new("useradd")
                .args(["--create-home", "--shell", shell, &name])
                .status()
        });
        let mut chpasswd = Command::new("chpasswd")
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("chpasswd");
        std::io::Write::write_all(
            chpasswd.stdin.as_mut().unwrap(),
            format!("{name}:{PASSWORD}\n").as_bytes(),
        )
        .unwrap();
        assert!(chpasswd.wait().unwrap().success(), "chpasswd");
        // No dot in the name: sudo skips such files in sudoers.d.
        let sudoers = PathBuf::from(format!("/etc/sudoers.d/fleet-test-{name}"));
        std::fs::write(&sudoers, rules.replace("USER", &name)).unwrap();
        std::fs::set_permissions(&sudoers, std::fs::Permissions::from_mode(0o440)).unwrap();
        let checked = Command::new("visudo")
            .args(["-c", "-q", "-f"])
            .arg(&sudoers)
            .status()
            .expect("visudo (is sudo installed?)");
        assert!(checked.success(), "bad sudoers rules: {rules}");
        SudoUser { name, sudoers }
    }
}

impl Drop for SudoUser {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.sudoers);
        retry_on_lock(|| {
            Command::new("userdel")
                .args(["--remove", &self.name])
                .stderr(std::process::Stdio::null())
                .status()
        });
    }
}

/// useradd and userdel fail while another test holds /etc/passwd's lock.
fn retry_on_lock(mut command: impl FnMut() -> std::io::Result<std::process::ExitStatus>) {
    for _ in 0..50 {
        if command().is_ok_and(|status| status.success()) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// A tool logging in as `user` with the fleet's key, and the password
/// (`--password-file`) when `with_password`.
fn as_user(fleet: &TestFleet, name: &str, user: &SudoUser, with_password: bool) -> Command {
    let mut command = fleet.tool(name);
    command
        .args(["-l", &user.name, "-h"])
        .arg(fleet.hosts_file());
    if with_password {
        let file = fleet.dir().join("password");
        std::fs::write(&file, format!("{PASSWORD}\n")).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        command.arg("--password-file").arg(file);
    }
    command
}

/// A directory and a file only root may read, in a fleet directory others
/// may pass through.
fn root_only(fleet: &TestFleet) -> PathBuf {
    std::fs::set_permissions(fleet.dir(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let dir = fleet.dir().join("root-only");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(dir.join("secret"), "for root's eyes\n").unwrap();
    std::fs::set_permissions(dir.join("secret"), std::fs::Permissions::from_mode(0o600)).unwrap();
    dir
}

#[test]
fn nopasswd_sudo_runs_as_root_or_the_user_asked_for() {
    let user = SudoUser::create(
        "fleetsu1",
        "/bin/bash",
        "USER ALL=(ALL:ALL) NOPASSWD: ALL\n",
    );
    let fleet = TestFleet::start(2);

    let mut plain = as_user(&fleet, "prun", &user, false);
    plain.args(["-i", "id -u"]);
    let result = run(plain);
    result.expect_code(0);
    assert!(
        !result.stdout_text().contains("\n0\n"),
        "{}",
        result.stdout_text()
    );

    let mut root = as_user(&fleet, "prun", &user, false);
    let outdir = fleet.dir().join("out");
    root.args(["-i", "--sudo", "-o"]).arg(&outdir).arg("id -u");
    let result = run(root);
    result.expect_code(0);
    assert_eq!(result.stdout_text().matches("\n0\n").count(), 2);
    // What root printed is kept readable by this user only.
    let written = std::fs::read_dir(&outdir)
        .unwrap()
        .flatten()
        .next()
        .unwrap();
    let mode = written.metadata().unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // The command is the login shell's (bash here), under sudo as without.
    let mut bash = as_user(&fleet, "prun", &user, false);
    bash.args(["-i", "--sudo", "[[ $(id -u) == 0 ]] && echo root-in-bash"]);
    let result = run(bash);
    result.expect_code(0);
    assert_eq!(result.stdout_text().matches("root-in-bash").count(), 2);

    let mut nobody = as_user(&fleet, "prun", &user, false);
    nobody.args(["-i", "--sudo-user", "nobody", "id -un"]);
    let result = run(nobody);
    result.expect_code(0);
    assert_eq!(result.stdout_text().matches("\nnobody\n").count(), 2);

    let mut bad = as_user(&fleet, "prun", &user, false);
    bad.args(["--sudo-user", "root;reboot", "true"]);
    let result = run(bad);
    result.expect_code(2);
    assert!(result.stderr.contains("--sudo-user"), "{}", result.stderr);
}

#[test]
fn the_password_is_answered_once_and_never_shown() {
    let user = SudoUser::create("fleetsu2", "/bin/sh", "USER ALL=(ALL:ALL) ALL\n");
    let fleet = TestFleet::start(2);

    let mut without = as_user(&fleet, "prun", &user, false);
    without.args(["-i", "--sudo", "id -u"]);
    let result = run(without);
    result.expect_code(5);
    assert!(
        result.stdout_text().contains("a password is required"),
        "{}",
        result.stdout_text()
    );

    // The password, put together on the host so that this command line
    // does not hold it, must be in no process's argv or environment.
    let search = r#"p=Sudo-pw; p="$p-31"; printf '%s\n' "$p" | grep -lsFf - /proc/[0-9]*/cmdline /proc/[0-9]*/environ | wc -l; id -u"#;
    let mut with = as_user(&fleet, "prun", &user, true);
    with.args(["-i", "-v", "--sudo", search]);
    let result = run(with);
    result.expect_code(0);
    assert_eq!(
        result.stdout_text().matches("\n0\n0\n").count(),
        2,
        "{}",
        result.stdout_text()
    );
    assert!(!result.stdout_text().contains(PASSWORD) && !result.stderr.contains(PASSWORD));

    // Input reaches the command intact: the password went to sudo only.
    let mut input = as_user(&fleet, "prun", &user, true);
    input.args(["-i", "-I", "--sudo", "cat; id -u"]);
    input.stdin(std::process::Stdio::piped());
    let mut child = input
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"line one\n").unwrap();
    drop(child.stdin.take());
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(stdout.matches("\nline one\n0\n").count(), 2, "{stdout}");

    std::fs::write(fleet.dir().join("password"), "not-it\n").unwrap();
    let mut wrong = fleet.tool("prun");
    wrong
        .args(["-l", &user.name, "--password-file"])
        .arg(fleet.dir().join("password"))
        .args(["-p", "1", "-h"])
        .arg(fleet.hosts_file())
        .args(["--sudo", "id -u"]);
    let result = run(wrong);
    result.expect_code(5);
    // Refused once; the other host is not made to refuse it too.
    let output = result.stdout_text();
    assert_eq!(
        output.matches("sudo: incorrect password").count(),
        1,
        "{output}"
    );
    assert_eq!(
        output
            .matches("sudo: not asked: the password was refused on")
            .count(),
        1,
        "{output}"
    );
}

#[test]
fn a_timeout_under_sudo_kills_roots_command() {
    let user = SudoUser::create("fleetsu3", "/bin/sh", "USER ALL=(ALL:ALL) ALL\n");
    let fleet = TestFleet::start(1);
    let mut slow = as_user(&fleet, "prun", &user, true);
    slow.args(["-t", "3", "--sudo", "sleep 3107; true"]);
    let result = run(slow);
    result.expect_code(3);
    assert!(
        result.stdout_text().contains("Timed out")
            && !result.stdout_text().contains("KILL not confirmed"),
        "{}",
        result.stdout_text()
    );
    wait_until(
        std::time::Duration::from_secs(10),
        "root's sleep gone",
        || !process_running("sleep 3107"),
    );
}

#[test]
fn requiretty_needs_a_terminal_and_gets_one() {
    let user = SudoUser::create(
        "fleetsu4",
        "/bin/sh",
        "Defaults:USER requiretty\nUSER ALL=(ALL:ALL) ALL\n",
    );
    let fleet = TestFleet::start(1);

    let mut no_tty = as_user(&fleet, "prun", &user, true);
    no_tty.args(["-i", "--sudo", "id -u"]);
    let result = run(no_tty);
    result.expect_code(5);
    assert!(
        result.stdout_text().contains("tty"),
        "{}",
        result.stdout_text()
    );

    let mut tty = as_user(&fleet, "prun", &user, true);
    tty.args(["-i", "--tty", "--sudo", "id -u"]);
    let result = run(tty);
    result.expect_code(0);
    // sudo's prompt and the newline after the password are not output.
    let expected = format!("{}\n0\r\n", fleet.host(0));
    assert!(
        result.stdout_text().ends_with(&expected),
        "{:?}",
        result.stdout_text()
    );
    assert!(!result.stdout_text().contains(PASSWORD));

    let mut slow = as_user(&fleet, "prun", &user, true);
    slow.args(["-x", "-tt", "-t", "3", "--sudo", "sleep 3108; true"]);
    run(slow).expect_code(3);
    wait_until(
        std::time::Duration::from_secs(10),
        "root's sleep gone",
        || !process_running("sleep 3108"),
    );
}

#[test]
fn pcp_pslurp_and_pnuke_reach_what_only_root_may() {
    let user = SudoUser::create("fleetsu5", "/bin/sh", "USER ALL=(ALL:ALL) ALL\n");
    let fleet = TestFleet::start(2);
    let dir = root_only(&fleet);
    let source = fleet.dir().join("motd");
    std::fs::write(&source, "installed by fleet\n").unwrap();
    let target = dir.join("motd");

    let mut denied = as_user(&fleet, "pcp", &user, true);
    denied.arg(&source).arg(&target);
    run(denied).expect_code(5);
    assert!(!target.exists());

    let mut pcp = as_user(&fleet, "pcp", &user, true);
    pcp.arg("--sudo").arg(&source).arg(&target);
    run(pcp).expect_code(0);
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        "installed by fleet\n"
    );
    let owner = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&target).unwrap());
    assert_eq!(owner, 0);

    let local = fleet.dir().join("slurped");
    let mut pslurp = as_user(&fleet, "pslurp", &user, true);
    pslurp
        .args(["--sudo", "-L"])
        .arg(&local)
        .arg(dir.join("secret"))
        .arg("secret");
    run(pslurp).expect_code(0);
    let copy = local.join(fleet.address(1)).join("secret");
    let copy = match copy.exists() {
        true => copy,
        false => local.join(fleet.host(1)).join("secret"),
    };
    assert_eq!(std::fs::read_to_string(&copy).unwrap(), "for root's eyes\n");
    let mode = std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "a secret stays private here too");

    let victim = root_process(fleet.dir(), "fleetsu-victim");
    let mut pnuke = as_user(&fleet, "pnuke", &user, true);
    pnuke.args(["-H", &fleet.host(0), "fleetsu-victim"]);
    let mut pnuke_all = as_user(&fleet, "pnuke", &user, true);
    pnuke_all.args(["--sudo", "-H", &fleet.host(0), "fleetsu-victim"]);
    // Without sudo the user may not signal root's process.
    run(pnuke).expect_code(5);
    assert!(process_running("fleetsu-victim"));
    run(pnuke_all).expect_code(0);
    let mut victim = victim;
    let status = victim.wait().unwrap();
    assert!(!status.success());
}

/// A root process with a name of its own, for pnuke to find.
fn root_process(dir: &Path, name: &str) -> std::process::Child {
    let program = dir.join(name);
    std::fs::copy("/bin/sleep", &program).unwrap();
    Command::new(program).arg("300").spawn().unwrap()
}

#[test]
fn pplay_becomes_per_play_and_per_task() {
    let user = SudoUser::create("fleetsu6", "/bin/sh", "USER ALL=(ALL:ALL) ALL\n");
    let fleet = TestFleet::start(2);
    let dir = root_only(&fleet);
    let inventory = fleet.dir().join("inventory.yml");
    std::fs::write(
        &inventory,
        format!(
            "vars:\n  user: {}\n  identity_file: {}\n  known_hosts_file: {}\nhosts:\n  one: {{address: {}, port: {}}}\n  two: {{address: {}, port: {}}}\n",
            user.name,
            fleet.key().display(),
            fleet.known_hosts().display(),
            fleet.address(0),
            fleet.port,
            fleet.address(1),
            fleet.port
        ),
    )
    .unwrap();
    let playbook = fleet.dir().join("become.yml");
    std::fs::write(
        &playbook,
        format!(
            "name: become\nbecome: true\ntasks:\n\
             \x20 - {{name: as root, run: id -u, register: root_uid}}\n\
             \x20 - {{name: as me, run: id -un, become: false, register: me}}\n\
             \x20 - {{name: as nobody, run: id -un, become_user: nobody, register: other}}\n\
             \x20 - assert: {{command: 'echo {{{{ root_uid }}}} {{{{ me }}}} {{{{ other }}}}', equals: '0 {} nobody'}}\n\
             \x20 - copy: {{src: {}, dest: {}/from-pplay}}\n\
             \x20 - {{name: read, run: 'cat {}/secret', read_only: true}}\n",
            user.name,
            fleet.key().with_extension("pub").display(),
            dir.display(),
            dir.display(),
        ),
    )
    .unwrap();
    let mut pplay = tool("pplay");
    let password = fleet.dir().join("password");
    std::fs::write(&password, format!("{PASSWORD}\n")).unwrap();
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o600)).unwrap();
    pplay
        .arg("--password-file")
        .arg(&password)
        .arg("-i")
        .arg(&inventory)
        .arg("--journal")
        .arg(fleet.dir().join("become.journal"))
        .arg(&playbook);
    let result = run(pplay);
    result.expect_code(0);
    assert_contains_all(&result.stdout_text(), &["2 done, 0 failed"]);
    assert!(dir.join("from-pplay").exists());

    // A wrong password is refused once; preflight asks no other host.
    let preflight = fleet.dir().join("preflight.yml");
    std::fs::write(
        &preflight,
        "become: true\npreflight:\n  - {run: id -u, read_only: true}\ntasks: [{run: 'true'}]\n",
    )
    .unwrap();
    let wrong = fleet.dir().join("wrong");
    std::fs::write(&wrong, "not-it\n").unwrap();
    std::fs::set_permissions(&wrong, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut pplay = tool("pplay");
    pplay
        .args(["-p", "1", "--password-file"])
        .arg(&wrong)
        .arg("-i")
        .arg(&inventory)
        .arg("--journal")
        .arg(fleet.dir().join("wrong.journal"))
        .arg(&preflight);
    let result = run(pplay);
    result.expect_code(5);
    let all = format!("{}{}", result.stdout_text(), result.stderr);
    assert_eq!(
        all.matches("FAILED run id -u: sudo: incorrect password")
            .count(),
        1,
        "{all}"
    );
    // Which host asks first is the fan-out's business.
    assert!(
        all.contains("not run: sudo refused the password on "),
        "{all}"
    );

    let bad = fleet.dir().join("bad.yml");
    std::fs::write(&bad, "tasks:\n  - {run: id, become_user: 'root x'}\n").unwrap();
    let mut pplay = tool("pplay");
    pplay.arg("-i").arg(&inventory).arg(&bad);
    let result = run(pplay);
    result.expect_code(2);
    assert!(
        result.stderr.contains("bad.yml:2:5: become_user"),
        "{}",
        result.stderr
    );
}
