//! One binary, several names, and the Debian package: fleet answers to its
//! subcommands, to the pssh names and to `fleet-`-prefixed links; `fleet
//! docs` writes man pages and completions for both spellings; the .deb
//! installs into a throwaway root and its binary works.

mod support;

use std::path::Path;
use std::process::Command;

use support::{assert_contains_all, run, tool, tool_path, trust_fleet, TestFleet};

/// `--version` names the git commit the binary was built from.
fn assert_version(text: &str, name: &str) {
    let commit = text
        .split("(commit ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_default();
    assert!(text.starts_with(&format!("{name} ")), "{text}");
    assert!(
        commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit()),
        "{text}"
    );
}

#[test]
fn one_binary_answers_to_its_subcommands_and_to_the_pssh_names() {
    let fleet = TestFleet::start(2);
    let with_fleet = |command: &mut Command| {
        command.args(["-F", "none"]);
        trust_fleet(command, fleet.dir());
        command.arg("-h").arg(fleet.hosts_file());
    };
    // `fleet run`, and a `fleet-prun` link (where `prun` is Open MPI's).
    let mut subcommand = tool("fleet");
    subcommand.arg("run");
    with_fleet(&mut subcommand);
    subcommand.args(["-i", "echo via-subcommand"]);
    let output = run(subcommand);
    output.expect_code(0);
    assert_eq!(output.stdout_text().matches("via-subcommand").count(), 2);

    let dir = tempfile::tempdir().unwrap();
    let prefixed = dir.path().join("fleet-prun");
    std::os::unix::fs::symlink(tool_path("fleet"), &prefixed).unwrap();
    let mut link = Command::new(&prefixed);
    with_fleet(&mut link);
    link.arg("exit 7");
    run(link).expect_code(5);

    let version = run({
        let mut command = tool("fleet");
        command.arg("--version");
        command
    });
    assert_version(&version.expect_code(0).stdout_text(), "fleet");
    let prun_version = run({
        let mut command = tool("prun");
        command.arg("-V");
        command
    });
    assert_version(&prun_version.expect_code(0).stdout_text(), "prun");
}

#[test]
fn help_lists_the_tools_and_the_exit_codes() {
    let bare = run(tool("fleet"));
    assert_eq!(bare.code(), 2);
    assert_contains_all(
        &bare.stderr,
        &["run", "sync", "play", "docs", "prun", "Exit status"],
    );
    for (name, status) in [
        ("prun", "  4  a host could not be connected to"),
        ("pplay", "  5  a host failed"),
    ] {
        let mut help = tool(name);
        help.arg("--help");
        let help = run(help);
        assert_contains_all(&help.expect_code(0).stdout_text(), &["Exit status", status]);
    }
    let mut unknown = tool("fleet");
    unknown.arg("frobnicate");
    let unknown = run(unknown);
    assert_eq!(unknown.code(), 2, "{}", unknown.stderr);
    assert!(unknown.stderr.contains("frobnicate"), "{}", unknown.stderr);
}

#[test]
fn docs_cover_both_spellings_and_help_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut help = tool("fleet");
    help.args(["docs", "--help"]).current_dir(dir.path());
    run(help).expect_code(0);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

    // A link where a page goes is replaced, as install(1) does, never
    // written through.
    let elsewhere = tempfile::tempdir().unwrap();
    let victim = elsewhere.path().join("victim");
    let man1 = dir.path().join("share/man/man1");
    std::fs::create_dir_all(&man1).unwrap();
    std::os::unix::fs::symlink(&victim, man1.join("prun.1")).unwrap();
    let mut docs = tool("fleet");
    docs.arg("docs").arg(dir.path());
    run(docs).expect_code(0);
    assert!(!victim.exists(), "fleet docs wrote through a link");
    assert!(man1.join("prun.1").symlink_metadata().unwrap().is_file());
    let share = dir.path().join("share");
    for page in [
        "fleet",
        "fleet-run",
        "fleet-play",
        "prun",
        "pcp",
        "prsync",
        "pplay",
    ] {
        let text = std::fs::read_to_string(share.join(format!("man/man1/{page}.1"))).unwrap();
        assert_contains_all(&text, &[".TH", ".SH \"EXIT STATUS\"", ".SH \"EXAMPLES\""]);
    }
    for name in ["fleet", "prun", "pcp", "pslurp", "pnuke", "prsync", "pplay"] {
        let bash = share.join(format!("bash-completion/completions/{name}"));
        assert!(std::fs::read_to_string(&bash)
            .unwrap()
            .contains("complete -F"));
        let syntax = Command::new("bash").arg("-n").arg(&bash).status().unwrap();
        assert!(syntax.success(), "{name}'s bash completion does not parse");
        assert!(share.join(format!("zsh/site-functions/_{name}")).exists());
        assert!(share
            .join(format!("fish/vendor_completions.d/{name}.fish"))
            .exists());
    }
    let pplay = std::fs::read_to_string(share.join("man/man1/pplay.1")).unwrap();
    assert!(pplay.contains("resume"), "flags are documented");
    // Each spelling's synopsis and help name the tool as it is called.
    let play = std::fs::read_to_string(share.join("man/man1/fleet-play.1")).unwrap();
    assert!(play.contains("\\fBfleet play\\fR \\-\\-resume"), "{play}");
    assert!(!play.contains("\\fBpplay\\fR"), "{play}");
    let mut help = tool("fleet");
    help.args(["cp", "--help"]);
    let help = run(help).stdout_text();
    assert!(
        help.contains("Usage: fleet cp [OPTIONS] LOCAL... REMOTE"),
        "{help}"
    );
}

/// The package as `.ci/deb` builds it (from the debug build the tests
/// use), installed with dpkg into a root of its own.
#[test]
fn the_deb_installs_into_a_throwaway_root_and_runs() {
    let work = tempfile::tempdir().unwrap();
    let built = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/deb"))
        .env("PROFILE", "dev")
        .arg("--output")
        .arg(work.path().join("fleet.deb"))
        .output()
        .expect("run .ci/deb");
    assert!(
        built.status.success(),
        ".ci/deb failed (is cargo-deb installed?):\n{}{}",
        String::from_utf8_lossy(&built.stdout),
        String::from_utf8_lossy(&built.stderr)
    );
    let root = work.path().join("root");
    for dir in ["var/lib/dpkg/info", "var/lib/dpkg/updates"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    std::fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
    let installed = Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .args(["--force-depends", "--force-script-chrootless", "-i"])
        .arg(work.path().join("fleet.deb"))
        .output()
        .expect("run dpkg");
    assert!(
        installed.status.success(),
        "dpkg -i failed:\n{}",
        String::from_utf8_lossy(&installed.stderr)
    );
    let bin = root.join("usr/bin");
    for link in ["prun", "pcp", "pslurp", "pnuke", "prsync", "pplay"] {
        assert_eq!(
            std::fs::read_link(bin.join(link)).unwrap(),
            Path::new("fleet")
        );
    }
    for file in [
        "usr/share/man/man1/prun.1",
        "usr/share/man/man1/fleet-run.1",
        "usr/share/bash-completion/completions/prun",
        "usr/share/doc/fleet/README.md",
        "usr/share/doc/fleet/copyright",
    ] {
        assert!(root.join(file).exists(), "{file} is not installed");
    }
    let version = Command::new(bin.join("fleet"))
        .arg("--version")
        .output()
        .unwrap();
    assert_version(&String::from_utf8_lossy(&version.stdout), "fleet");

    let fleet = TestFleet::start(1);
    let mut prun = Command::new(bin.join("prun"));
    prun.args(["-F", "none"]);
    trust_fleet(&mut prun, fleet.dir());
    prun.arg("-H")
        .arg(fleet.host(0))
        .args(["-i", "echo installed"])
        .env("NO_COLOR", "1")
        .env_remove("SSH_AUTH_SOCK");
    let output = run(prun);
    assert!(output.expect_code(0).stdout_text().contains("installed"));
}
