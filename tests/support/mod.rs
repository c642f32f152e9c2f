//! A fleet of real OpenSSH sshd hosts for one test, started through
//! bench/testfleet.sh and stopped when dropped. A test that cannot start
//! sshd fails; it never skips.

#![allow(dead_code)] // each test binary uses a different part of this module

pub mod rollout;

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

static FLEETS_STARTED: AtomicU32 = AtomicU32::new(0);

/// Real sshd processes serving `count` hosts on 127.NET.0.x:PORT.
pub struct TestFleet {
    dir: tempfile::TempDir,
    pub count: usize,
    pub net: u32,
    pub port: u16,
}

impl TestFleet {
    pub fn start(count: usize) -> TestFleet {
        Self::start_with(count, &[])
    }

    /// Starts a fleet with extra `testfleet.sh up` flags.
    pub fn start_with(count: usize, extra: &[&str]) -> TestFleet {
        let dir = tempfile::tempdir().expect("temp dir");
        // Distinct address block and port per fleet, so concurrently running
        // tests never share a host.
        let sequence = FLEETS_STARTED.fetch_add(1, Ordering::Relaxed);
        let net = 10 + (std::process::id() * 7 + sequence * 13) % 240;
        let port = free_port();
        let output = Command::new(script())
            .args(["up", &dir.path().to_string_lossy(), &count.to_string()])
            .args(["--port", &port.to_string(), "--net", &net.to_string()])
            .args(extra)
            .output()
            .expect("run bench/testfleet.sh");
        assert!(
            output.status.success(),
            "cannot start the sshd test fleet (is openssh-server installed, and are we root?):\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        TestFleet {
            dir,
            count,
            net,
            port,
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn hosts_file(&self) -> PathBuf {
        self.dir().join("hosts")
    }

    pub fn known_hosts(&self) -> PathBuf {
        self.dir().join("known_hosts")
    }

    pub fn key(&self) -> PathBuf {
        self.dir().join("id_ed25519")
    }

    /// Address of host `index` (0-based), as the script assigns them.
    pub fn address(&self, index: usize) -> String {
        loopback_address(self.net, index)
    }

    /// `addr:port` of host `index`: its name in status lines and output files.
    pub fn host(&self, index: usize) -> String {
        format!("{}:{}", self.address(index), self.port)
    }

    /// `prun` with this fleet's key and known_hosts, and a clean environment.
    pub fn prun(&self) -> Command {
        self.tool("prun")
    }

    /// Any of the pssh-style tools, set up like [`TestFleet::prun`].
    pub fn tool(&self, name: &str) -> Command {
        tool_for(name, self.dir())
    }

    /// `prun -h hosts` over the whole fleet.
    pub fn prun_all(&self) -> Command {
        let mut command = self.prun();
        command.arg("-h").arg(self.hosts_file());
        command
    }
}

impl Drop for TestFleet {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .args(["down", &self.dir().to_string_lossy()])
            .status();
    }
}

/// A fleet-lab: real sshd hosts in namespaces that reboot, stopped when dropped.
pub struct Lab {
    dir: tempfile::TempDir,
    pub count: usize,
    pub net: u32,
    pub port: u16,
}

impl Lab {
    /// Starts `count` hosts with a 1 s reboot downtime, plus `extra` flags for `up`.
    pub fn start(count: usize, extra: &[&str]) -> Lab {
        // Not under /tmp: every lab host mounts its own /tmp over it.
        let dir = tempfile::Builder::new()
            .prefix("fleet-lab-test-")
            .tempdir_in("/var/tmp")
            .expect("temp dir");
        let sequence = FLEETS_STARTED.fetch_add(1, Ordering::Relaxed);
        let net = 10 + (std::process::id() * 11 + sequence * 17) % 240;
        let port = free_port();
        let mut up = tool("fleet-lab");
        up.arg("--dir")
            .arg(dir.path())
            .args(["up", &count.to_string()]);
        up.args([
            "--net",
            &net.to_string(),
            "--port",
            &port.to_string(),
            "--downtime",
            "1",
        ]);
        up.args(extra);
        let result = run(up);
        assert!(
            result.status.success(),
            "cannot start fleet-lab (root and openssh-server are needed):\n{}\n{}",
            result.stdout_text(),
            result.stderr
        );
        Lab {
            dir,
            count,
            net,
            port,
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn address(&self, index: usize) -> String {
        loopback_address(self.net, index)
    }

    pub fn host(&self, index: usize) -> String {
        format!("{}:{}", self.address(index), self.port)
    }

    /// Host `index`'s name in the lab's inventory (`lab-001`): what pplay
    /// calls it.
    pub fn name(&self, index: usize) -> String {
        format!("lab-{:03}", index + 1)
    }

    /// `prun` with the lab's key and known_hosts and a short connect timeout.
    pub fn prun(&self) -> Command {
        self.tool("prun")
    }

    /// Any of the pssh-style tools, set up like [`Lab::prun`].
    pub fn tool(&self, name: &str) -> Command {
        let mut command = tool_for(name, self.dir());
        command.args(["-O", "ConnectTimeout=2"]);
        command
    }

    /// A lab host's /var/log as the machine sees it.
    pub fn var_log(&self, index: usize) -> PathBuf {
        self.dir()
            .join(format!("hosts.d/lab-{:03}/root/var/log", index + 1))
    }

    /// Runs `command` on host `index`; returns prun's result (stdout inline).
    pub fn run_on(&self, index: usize, command: &str) -> Run {
        let mut prun = self.prun();
        prun.args(["-H", &self.host(index), "-i", "-t", "20", command]);
        run(prun)
    }

    /// The command's stdout on host `index`, which must succeed.
    pub fn output_of(&self, index: usize, command: &str) -> String {
        let result = self.run_on(index, command);
        result.expect_code(0);
        let text = result.stdout_text();
        text.split_once('\n')
            .map(|(_, rest)| rest.to_string())
            .unwrap_or_default()
    }

    /// `fleet-lab --dir DIR ARGS...`, which must succeed.
    pub fn lab(&self, args: &[&str]) -> Run {
        let mut command = tool("fleet-lab");
        command.arg("--dir").arg(self.dir()).args(args);
        let result = run(command);
        result.expect_code(0);
        result
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let mut down = tool("fleet-lab");
        down.arg("--dir").arg(self.dir()).arg("down");
        let _ = down.status();
    }
}

/// Polls `check` every 100 ms until it holds; panics with `what` after `limit`.
pub fn wait_until(limit: std::time::Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// 127.NET.x.y of host `index`: 250 hosts per /24, as testfleet.sh and fleet-lab number them.
fn loopback_address(net: u32, index: usize) -> String {
    format!("127.{net}.{}.{}", index / 250, index % 250 + 1)
}

/// A tool trusting the known_hosts and using the key that testfleet.sh and
/// fleet-lab both write into their directory.
fn tool_for(name: &str, dir: &Path) -> Command {
    let mut command = tool(name);
    trust_fleet(&mut command, dir);
    command
}

/// Gives a tool's command line the known_hosts and key of the fleet in `dir`.
pub fn trust_fleet(command: &mut Command, dir: &Path) {
    command
        .arg("-O")
        .arg(format!(
            "UserKnownHostsFile={}",
            dir.join("known_hosts").display()
        ))
        .arg("--identity")
        .arg(dir.join("id_ed25519"));
}

/// A fleet binary with no PSSH_* defaults or colour leaking in from the caller.
pub fn tool(name: &str) -> Command {
    if name == "fleet-lab" {
        return lab_command();
    }
    let mut command = Command::new(tool_path(name));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PSSH_") {
            command.env_remove(key);
        }
    }
    // The machine's agent must not lend keys to tests that do not ask for it.
    command
        .env("NO_COLOR", "1")
        .env_remove("SSH_AUTH_SOCK")
        .stdin(Stdio::null());
    // Run directories (journals, fetched files) go under the test's own
    // state directory, never root's home.
    command.env(
        "XDG_STATE_HOME",
        std::env::temp_dir().join("fleet-test-state"),
    );
    if ["prun", "pcp", "pslurp", "pnuke", "prsync", "pplay"].contains(&name) {
        // The machine's own ~/.ssh/config must not steer the tests; a test
        // that wants a config passes its own -F, which comes first and wins.
        command.args(["-F", "none"]);
    }
    command
}

/// A link named `name` (prun, pcp, ..., or fleet itself) to the fleet
/// binary, as the package installs them: the tools are fleet called by
/// another name.
pub fn tool_path(name: &str) -> PathBuf {
    let fleet = PathBuf::from(env!("CARGO_BIN_EXE_fleet"));
    if name == "fleet" {
        return fleet;
    }
    let links = Path::new(env!("CARGO_TARGET_TMPDIR")).join("links");
    std::fs::create_dir_all(&links).unwrap();
    let link = links.join(name);
    if std::fs::read_link(&link).ok().as_ref() != Some(&fleet) {
        // Tests run in parallel processes: each makes its own link and
        // renames it into place, so no test sees a half-made one.
        let own = links.join(format!(".{name}.{}", std::process::id()));
        let _ = std::fs::remove_file(&own);
        std::os::unix::fs::symlink(&fleet, &own).unwrap();
        std::fs::rename(&own, &link).unwrap();
    }
    link
}

/// The fleet-lab binary, built beside the tools by the workspace (it is a
/// crate of its own, so Cargo gives the tests no CARGO_BIN_EXE for it).
pub fn lab_binary() -> PathBuf {
    let lab = Path::new(env!("CARGO_BIN_EXE_fleet")).with_file_name("fleet-lab");
    assert!(
        lab.exists(),
        "{} is not built: run the tests from the workspace root (cargo nextest run)",
        lab.display()
    );
    lab
}

fn lab_command() -> Command {
    let mut command = Command::new(lab_binary());
    command.env("NO_COLOR", "1").stdin(Stdio::null());
    command
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/testfleet.sh")
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// Result of running a tool: output, exit code and peak memory.
pub struct Run {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
    /// Peak resident set size of the tool process, in KiB.
    pub max_rss_kib: i64,
}

impl Run {
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Assert on the exit code, showing everything the tool said if it differs.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code(),
            code,
            "unexpected exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout_text(),
            self.stderr
        );
        self
    }
}

/// Assert that `text` holds every one of `needles`, showing it when not.
pub fn assert_contains_all(text: &str, needles: &[&str]) {
    for needle in needles {
        assert!(text.contains(needle), "no `{needle}` in:\n{text}");
    }
}

/// A tmpfs of `size` (`64k`) mounted at a new directory `path`, for the
/// tests of a full disk; unmounted when dropped, even when the test fails.
pub struct SmallDisk {
    path: PathBuf,
}

impl SmallDisk {
    pub fn mount(path: PathBuf, size: &str) -> SmallDisk {
        std::fs::create_dir(&path).expect("the mount point");
        let mounted = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "fleet-test-small",
            ])
            .arg(&path)
            .status()
            .expect("mount");
        assert!(mounted.success(), "mount a {size} tmpfs");
        SmallDisk { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

/// Makes a FIFO at `path`, for the tests that feed one where a file belongs.
pub fn mkfifo(path: &Path) {
    let made = Command::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(made.success(), "mkfifo {}", path.display());
}

/// Runs `command` to completion and measures its own peak RSS with wait4.
#[allow(clippy::zombie_processes)] // reaped by wait4, which std's wait cannot replace here
pub fn run(mut command: Command) -> Run {
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("spawn tool");
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    let out_reader = std::thread::spawn(move || read_all(stdout));
    let err_reader = std::thread::spawn(move || read_all(stderr));
    let (status, max_rss_kib) = wait_with_rusage(child.id() as libc::pid_t);
    Run {
        status,
        stdout: out_reader.join().expect("stdout reader"),
        stderr: String::from_utf8_lossy(&err_reader.join().expect("stderr reader")).into_owned(),
        max_rss_kib,
    }
}

fn read_all(mut reader: impl std::io::Read) -> Vec<u8> {
    let mut data = Vec::new();
    reader.read_to_end(&mut data).expect("read tool output");
    data
}

fn wait_with_rusage(pid: libc::pid_t) -> (ExitStatus, i64) {
    let mut status = 0;
    // SAFETY: wait4 writes only into the two locals we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid, "wait4 failed");
    (ExitStatus::from_raw(status), usage.ru_maxrss)
}

/// True while some process's command line contains `needle`.
pub fn process_running(needle: &str) -> bool {
    let output: Output = Command::new("pgrep")
        .args(["-f", needle])
        .output()
        .expect("pgrep");
    output.status.success()
}

/// Writes `size` random bytes to `path` without holding them in this process:
/// Linux carries a parent's peak RSS into a spawned child's ru_maxrss.
pub fn random_file(path: &Path, size: usize) {
    let status = Command::new("head")
        .args(["-c", &size.to_string(), "/dev/urandom"])
        .stdout(std::fs::File::create(path).expect("create"))
        .status()
        .expect("head");
    assert!(status.success());
}

/// Replaces what changes from run to run: clock times, the address
/// prefix and port of `host` (any host of the fleet), and durations.
pub fn normalise(text: &str, host: &str) -> String {
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
pub fn check_snapshot(name: &str, actual: &str) {
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
