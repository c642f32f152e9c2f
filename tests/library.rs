//! fleet as a library: `examples/slowest.rs`, a program of its own on the
//! public API, built and run against real sshd hosts.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use support::{assert_contains_all, run, TestFleet};

#[test]
fn the_example_program_runs_uptime_and_names_the_slowest_hosts() {
    let built = cargo()
        .args(["build", "--quiet", "--example", "slowest"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("run cargo");
    assert!(built.success(), "cargo build --example slowest failed");
    let example = Path::new(env!("CARGO_BIN_EXE_fleet"))
        .parent()
        .unwrap()
        .join("examples/slowest");

    let fleet = TestFleet::start(3);
    // The example takes the usual ~/.ssh: a HOME of the test's own.
    let home = tempfile::tempdir().unwrap();
    let ssh = home.path().join(".ssh");
    std::fs::create_dir(&ssh).unwrap();
    std::fs::copy(fleet.known_hosts(), ssh.join("known_hosts")).unwrap();
    std::fs::copy(fleet.key(), ssh.join("id_ed25519")).unwrap();
    std::fs::set_permissions(
        ssh.join("id_ed25519"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let mut slowest = Command::new(example);
    slowest
        .arg(fleet.hosts_file())
        .env("HOME", home.path())
        .env("USER", "root")
        .env_remove("SSH_AUTH_SOCK");
    let result = run(slowest);
    let stdout = result.expect_code(0).stdout_text();
    assert_eq!(stdout.matches(" load average").count(), 3, "{stdout}");
    let ranked = stdout.split("slowest:\n").nth(1).unwrap_or_default();
    assert_eq!(ranked.lines().count(), 3, "{stdout}");
    assert_contains_all(
        ranked,
        &[&fleet.host(0), &fleet.host(1), &fleet.host(2), "ok"],
    );
}

/// cargo as a developer runs it, without the variables cargo and nextest
/// give a test (OUT_DIR, CARGO_PKG_NAME, CARGO_MANIFEST_DIR...): ring's
/// build script watches some of them, so with them this build would
/// rebuild ring and all above it, and the next ordinary build would
/// rebuild them back.
fn cargo() -> Command {
    const GIVEN_TO_TESTS: [&str; 9] = [
        "OUT_DIR",
        "CARGO_PKG_",
        "CARGO_MANIFEST_",
        "CARGO_BIN_",
        "CARGO_CRATE_",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_TARGET_TMPDIR",
        "NEXTEST",
        "__NEXTEST",
    ];
    let mut cargo = Command::new(env!("CARGO"));
    for (key, _) in std::env::vars_os() {
        let name = key.to_string_lossy();
        if GIVEN_TO_TESTS.iter().any(|given| name.starts_with(given)) {
            cargo.env_remove(&key);
        }
    }
    cargo
}
