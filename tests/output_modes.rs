//! What people and scripts read: each output mode of a real run against
//! real sshd checked against stored text (timestamps, addresses and
//! durations normalised), the JSON Lines schema, gathering 200 hosts, and
//! the progress line (only ever on a terminal).

mod support;

use std::collections::HashSet;
use std::path::Path;

use support::{run, TestFleet};

/// Replaces what changes from run to run: clock times, the fleet's
/// address prefix and port, and durations.
fn normalise(text: &str, fleet: &TestFleet) -> String {
    let host = fleet.host(0);
    let (address, port) = host.rsplit_once(':').unwrap();
    let prefix = address.rsplit_once('.').unwrap().0;
    let mut out = String::new();
    for line in text.lines() {
        let mut line = line
            .replace(prefix, "NET")
            .replace(&format!(":{port}"), ":PORT");
        // [N] HH:MM:SS and "in 0.7s" / "1.65" style durations.
        line = regex_lite_time(&line);
        // Rules are as long as the header, which holds the port.
        if !line.is_empty() && line.chars().all(|c| c == '-') {
            line = "----".into();
        }
        // Table columns are padded to the longest host name.
        line = line.split_whitespace().collect::<Vec<_>>().join(" ");
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// HH:MM:SS → TT:TT:TT, and any decimal number → D.DD (durations).
fn regex_lite_time(line: &str) -> String {
    let chars: Vec<char> = line.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let is_clock = i + 8 <= chars.len()
            && chars[i..i + 8].iter().enumerate().all(|(k, c)| {
                if k == 2 || k == 5 {
                    *c == ':'
                } else {
                    c.is_ascii_digit()
                }
            });
        if is_clock {
            out.push_str("TT:TT:TT");
            i += 8;
            continue;
        }
        if chars[i].is_ascii_digit() {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            if i + 1 < chars.len() && chars[i] == '.' && chars[i + 1].is_ascii_digit() {
                i += 1;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
                out.push_str("D.DD");
            } else {
                out.extend(&chars[start..i]);
            }
            continue;
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// Compares with tests/snapshots/NAME.txt; `UPDATE_SNAPSHOTS=1` rewrites it.
fn check_snapshot(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/snapshots/{name}.txt"));
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "no snapshot {}; run with UPDATE_SNAPSHOTS=1",
            path.display()
        )
    });
    assert_eq!(actual, expected, "output of {name} changed");
}

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
            normalise(&result.stdout_text(), &fleet),
            normalise(&result.stderr, &fleet)
        );
        check_snapshot(name, &text);
    }
}

#[test]
fn json_lines_follow_the_schema() {
    let fleet = TestFleet::start(4);
    let mut prun = fleet.prun_all();
    prun.args(["--json", "-t", "2"]).arg(
        "case $PSSH_NODENUM in 0) echo hello;; 1) printf '\\377\\n' >&2; exit 3;; 2) sleep 5;; 3) kill -9 $$;; esac",
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
        env!("CARGO_BIN_EXE_prun"),
        args.iter()
            .map(|a| format!("'{a}'"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let mut script = std::process::Command::new("script");
    script
        .args(["-qec", &command, "/dev/null"])
        .env("TERM", "xterm");
    let output = script.output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("done, "), "{text}");
    assert!(
        text.contains("3 hosts in"),
        "the summary follows the bar: {text}"
    );
}
