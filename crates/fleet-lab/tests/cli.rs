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
fn bad_flags_are_usage_errors_that_say_what_was_expected() {
    let cases: [(&[&str], &str); 3] = [
        (&["up", "3", "--fault", "lab-001=melted"], "melted"),
        (&["up", "3", "--fault", "down"], "expected HOST=KIND"),
        (&["up", "3", "--net", "0"], "--net"),
    ];
    for (args, expected) in cases {
        let output = lab(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}
