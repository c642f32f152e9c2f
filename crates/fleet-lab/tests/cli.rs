//! fleet-lab's command line refuses bad input with a usage error, before it
//! touches a namespace. Being an integration test of this crate, it also makes
//! `cargo nextest run` build the `fleet-lab` binary that fleet's own tests
//! drive (Cargo builds a package's binaries only for its integration tests).

use std::process::Command;

fn lab(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_fleet-lab"))
        .args(args)
        .env("FLEET_LAB_DIR", "/nonexistent/fleet-lab-cli-test")
        .output()
        .expect("fleet-lab runs")
}

#[test]
fn a_bad_fault_is_refused_with_the_kinds_it_knows() {
    let output = lab(&["up", "3", "--fault", "lab-001=melted"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("melted"), "{stderr}");
}

#[test]
fn a_fault_without_a_host_is_refused() {
    let output = lab(&["up", "3", "--fault", "down"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("expected HOST=KIND"), "{stderr}");
}

#[test]
fn net_zero_is_refused() {
    let output = lab(&["up", "3", "--net", "0"]);
    assert_eq!(output.status.code(), Some(2));
}
