//! What people and scripts read: each output mode of a real run against
//! real sshd checked against stored text (timestamps, addresses and
//! durations normalised), the JSON Lines schema, gathering 200 hosts, and
//! the progress line (only ever on a terminal).

mod support;

use std::collections::HashSet;

use support::{check_snapshot, normalise, run, TestFleet};

#[test]
fn each_mode_prints_what_the_snapshot_says() {
    let fleet = TestFleet::start(3);
    // -p 1: hosts finish in host order, so the text is the same every run.
    // Later hosts are slower, so the --summary table (slowest first) is stable.
    let command = "sleep $((PSSH_NODENUM / 2)).$((PSSH_NODENUM % 2 * 5)); \
                   echo out $PSSH_NODENUM; echo err >&2; exit $((PSSH_NODENUM == 2))";
    let modes: [(&str, &[&str]); 5] = [
        ("status", &[]),
        ("inline", &["-i"]),
        ("print", &["-P"]),
        ("gather", &["-b"]),
        ("summary_table", &["--summary"]),
    ];
    for (name, flags) in modes {
        let mut prun = fleet.prun_all();
        prun.args(["-p", "1"]).args(flags).arg(command);
        let result = run(prun);
        result.expect_code(5);
        let text = format!(
            "--- stdout\n{}--- stderr\n{}",
            normalise(&result.stdout_text(), &fleet.host(0)),
            normalise(&result.stderr, &fleet.host(0))
        );
        check_snapshot(name, &text);
    }
}

#[test]
fn json_lines_follow_the_schema() {
    let fleet = TestFleet::start(4);
    let mut prun = fleet.prun_all();
    prun.args(["--json", "-t", "5"]).arg(
        "case $PSSH_NODENUM in 0) echo hello;; 1) printf '\\377\\n' >&2; exit 3;; 2) sleep 900;; 3) kill -9 $$;; esac",
    );
    let result = run(prun);
    assert!(result.stderr.is_empty() || !result.stderr.contains('{'));
    let lines: Vec<serde_json::Value> = result
        .stdout_text()
        .lines()
        .map(|line| serde_json::from_str(line).expect("every stdout line is JSON"))
        .collect();
    assert_eq!(lines.len(), 5, "4 hosts and a summary");
    let string_or_null = |v: &serde_json::Value| v.is_string() || v.is_null();
    for host in &lines[..4] {
        assert_eq!(host["type"], "host");
        for key in ["host", "name"] {
            assert!(host[key].is_string(), "{key} in {host}");
        }
        assert!(host["port"].is_u64());
        assert!(string_or_null(&host["user"]) && string_or_null(&host["signal"]));
        assert!(host["exit_code"].is_u64() || host["exit_code"].is_null());
        assert!(
            host["started_at"].is_f64() && host["ended_at"].is_f64() && host["duration_s"].is_f64()
        );
        for stream in ["stdout", "stderr"] {
            assert!(host[stream].is_string());
            assert!(
                ["utf-8", "base64"].contains(&host[format!("{stream}_encoding")].as_str().unwrap())
            );
            assert!(host[format!("{stream}_truncated")].is_boolean());
        }
        assert!(
            host["error"].is_null()
                || (host["error"]["kind"].is_string() && host["error"]["message"].is_string())
        );
    }
    let by_host = |index: usize| {
        lines[..4]
            .iter()
            .find(|l| l["host"] == fleet.host(index))
            .unwrap()
            .clone()
    };
    assert_eq!(by_host(0)["status"], "ok");
    assert_eq!(by_host(0)["stdout"], "hello\n");
    assert_eq!(by_host(1)["status"], "failed");
    assert_eq!(by_host(1)["exit_code"], 3);
    assert_eq!(by_host(1)["stderr_encoding"], "base64");
    assert_eq!(by_host(1)["stderr"], "/wo=");
    assert_eq!(by_host(2)["status"], "timed_out");
    assert_eq!(by_host(2)["error"]["kind"], "timed_out");
    assert_eq!(by_host(3)["signal"], "KILL");
    let summary = &lines[4];
    assert_eq!(summary["type"], "summary");
    assert_eq!(summary["hosts"], 4);
    assert_eq!(summary["failed"], 3);
    assert_eq!(summary["counts"]["ok"], 1);
    assert!(summary["duration_s"].is_f64());
}

#[test]
fn gather_folds_two_hundred_hosts_into_three_groups() {
    let fleet = TestFleet::start(200);
    let mut prun = fleet.prun_all();
    prun.args(["-p", "200", "-b", "echo group $((PSSH_NODENUM * 3 / 200))"]);
    let result = run(prun);
    result.expect_code(0);
    let stdout = result.stdout_text();
    let headers: Vec<&str> = stdout
        .lines()
        .filter(|l| !l.starts_with('-') && !l.starts_with("group "))
        .collect();
    assert_eq!(headers.len(), 3, "{stdout}");
    let mut seen = HashSet::new();
    for (header, group) in headers.iter().zip(["0", "1", "2"]) {
        let (folded, count) = header.rsplit_once(' ').unwrap();
        let hosts = fleet::inventory::parse_host_spec(folded).unwrap();
        assert_eq!(count, format!("({})", hosts.len()));
        for host in &hosts {
            let index = (0..200).find(|i| fleet.host(*i) == host.label()).unwrap();
            assert_eq!((index * 3 / 200).to_string(), group, "{header}");
            assert!(seen.insert(index));
        }
        assert!(stdout.contains(&format!(
            "{header}\n{}\ngroup {group}\n",
            "-".repeat(header.len())
        )));
    }
    assert_eq!(seen.len(), 200);
}

#[test]
fn progress_is_drawn_only_on_a_terminal() {
    let fleet = TestFleet::start(3);
    let mut prun = fleet.prun_all();
    prun.arg("sleep 1.5");
    let result = run(prun);
    result.expect_code(0);
    assert!(!result.stderr.contains("done,"), "{}", result.stderr);
    assert!(
        !result.stderr.contains('\x1b'),
        "no terminal codes in a captured run"
    );
    // Under a pseudo-terminal (script), the line appears on stderr.
    let args: Vec<String> = fleet
        .prun_all()
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let command = format!(
        "{} {} 'sleep 1.5'",
        support::tool_path("prun").display(),
        args.iter()
            .map(|a| format!("'{a}'"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let mut script = std::process::Command::new("script");
    script
        .args(["-qec", &command, "/dev/null"])
        .env("SHELL", "/bin/sh") // what `script` runs the command in
        .env("TERM", "xterm");
    let output = script.output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("done, "), "{text}");
    assert!(
        text.contains("3 hosts in"),
        "the summary follows the bar: {text}"
    );
}
