//! The lab commands that run in the operator's process: `up` writes the lab
//! directory and starts the supervisor, `down` stops it and sweeps up,
//! `status` reads the hosts' state files, `set_fault` changes a host's fault.

use std::fmt::Write as _;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use russh::keys::ssh_key::LineEnding;
use russh::keys::{Algorithm, PrivateKey};

use super::{host_name, io_error, module_path, Fault, LabConfig, LabError, Layout, MAX_HOSTS};

const INIT_SCRIPT: &str = include_str!("assets/init.sh");
const POWER_SCRIPT: &str = include_str!("assets/power.sh");
/// depmod for lab hosts, which the machine may not have (no kmod).
const DEPMOD_SCRIPT: &str = include_str!("assets/depmod.sh");
const UNAME_SCRIPT: &str = include_str!("assets/uname.sh");
const MAKE_SCRIPT: &str = include_str!("assets/make.sh");
const MODINFO_SCRIPT: &str = include_str!("assets/modinfo.sh");
/// The crash the lab plants in some hosts' logs (its host name is replaced).
const CRASH_LOG: &str = include_str!("assets/xen-evtchn-bug.log");
/// Names under which the power script is installed on every host.
const POWER_COMMANDS: &[&str] = &["reboot", "shutdown", "poweroff", "halt"];

/// One host as `status` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostStatus {
    pub name: String,
    pub address: String,
    /// What the supervisor last wrote: `up`, `rebooting`, `booting`, `down`, ...
    pub state: String,
    pub fault: Option<String>,
}

/// Writes a fresh lab into `dir` with `faults` applied, starts the supervisor
/// (`supervisor` is the fleet-lab binary), and waits until every host is up.
pub fn up(
    dir: &Path,
    config: &LabConfig,
    faults: &[(String, Fault)],
    supervisor: &Path,
) -> Result<Duration, LabError> {
    let started = Instant::now();
    check_prerequisites(config)?;
    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    let layout = Layout::new(&dir.canonicalize().map_err(io_error(dir))?);
    check_not_masked(&layout.dir)?;
    check_lab_dir(&layout)?;
    if read_pid(&layout).is_some() {
        down(&layout.dir)?;
    }
    check_addresses_free(config)?;
    write_lab(&layout, config)?;
    for (host, fault) in faults {
        let index = resolve_host(config, host)?;
        write_fault(&layout, index, Some(*fault))?;
    }
    let mut supervisor = start_supervisor(&layout, supervisor)?;
    if let Err(error) = wait_until_settled(&layout, config, &mut supervisor) {
        // A lab that did not come up is not left running half-booted.
        let _ = down(&layout.dir);
        return Err(error);
    }
    Ok(started.elapsed())
}

/// Refuses addresses another lab or service listens on, by name, before
/// any host boots (sshd would fail to bind, deep inside a namespace).
fn check_addresses_free(config: &LabConfig) -> Result<(), LabError> {
    for index in 0..config.count {
        let address = std::net::SocketAddr::from((config.address(index), config.port));
        // std sets SO_REUSEADDR: a socket in TIME_WAIT passes, a listener does not.
        if let Err(error) = std::net::TcpListener::bind(address) {
            return Err(LabError::Invalid(format!(
                "{} ({address}): {error}; another lab or service listens there: \
                 choose another --net or --port",
                host_name(index)
            )));
        }
    }
    Ok(())
}

fn check_prerequisites(config: &LabConfig) -> Result<(), LabError> {
    // SAFETY: geteuid has no side effects.
    if unsafe { libc::geteuid() } != 0 {
        return Err(LabError::NotRoot);
    }
    if !Path::new("/usr/sbin/sshd").exists() {
        return Err(LabError::Missing("/usr/sbin/sshd"));
    }
    if which("unshare").is_none() {
        return Err(LabError::Missing("unshare"));
    }
    if config.count == 0 || config.count > MAX_HOSTS {
        return Err(LabError::Invalid(format!(
            "the lab holds 1 to {MAX_HOSTS} hosts, not {}",
            config.count
        )));
    }
    if config.net == 0 {
        return Err(LabError::Invalid(
            "--net 0 would use 127.0.x.y, which the machine itself uses; pick 1-255".into(),
        ));
    }
    Ok(())
}

/// Directories every lab host mounts its own copy over; a lab kept under one
/// of them would be invisible to its own hosts.
const MASKED_DIRS: &[&str] = &[
    "/tmp",
    "/run",
    "/var/log",
    "/lib/modules",
    "/proc",
    "/usr/local/sbin",
];

fn check_not_masked(dir: &Path) -> Result<(), LabError> {
    match MASKED_DIRS.iter().find(|masked| dir.starts_with(masked)) {
        Some(masked) => Err(LabError::Invalid(format!(
            "the lab directory {} is under {masked}, which every lab host replaces with its own; use another, e.g. /var/tmp/fleet-lab",
            dir.display()
        ))),
        None => Ok(()),
    }
}

/// The lab writes and replaces files in its directory (`bin/`, `hosts`,
/// keys): it must be new, empty, or a lab already. `/` or a home directory
/// given by mistake is refused before anything is touched.
fn check_lab_dir(layout: &Layout) -> Result<(), LabError> {
    if layout.config().exists() {
        return Ok(());
    }
    let mut entries = std::fs::read_dir(&layout.dir).map_err(io_error(&layout.dir))?;
    match entries.next() {
        None => Ok(()),
        Some(_) => Err(LabError::Invalid(format!(
            "{} is not empty and holds no lab (no lab.conf): give a new or empty directory, e.g. /var/tmp/fleet-lab",
            layout.dir.display()
        ))),
    }
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

fn write_lab(layout: &Layout, config: &LabConfig) -> Result<(), LabError> {
    let hosts_dir = layout.dir.join("hosts.d");
    if hosts_dir.exists() {
        std::fs::remove_dir_all(&hosts_dir).map_err(io_error(&hosts_dir))?;
    }
    write(&layout.config(), config.to_text())?;
    write_executable(&layout.init_script(), INIT_SCRIPT)?;
    write_power_commands(layout)?;
    ensure_lib_modules()?;
    let client = new_key(&layout.key())?;
    write(&layout.authorized_keys(), format!("{client}\n"))?;
    let mut hosts = String::new();
    let mut known_hosts = String::new();
    // Hosts go by their names (lab-001...), reached at their addresses.
    let mut inventory = format!(
        "# fleet-lab: {count} hosts, a pplay inventory (see fleet's README)\n\
         vars:\n  user: root\n  identity_file: {key}\n  known_hosts_file: {known}\n\
         groups:\n  - name: xen\n    hosts: [\"lab-[001-{last:03}]\"]\nhosts:\n",
        count = config.count,
        last = config.count,
        key = layout.key().display(),
        known = layout.known_hosts().display(),
    );
    let mut crashed = String::new();
    for index in 0..config.count {
        let address = config.address(index);
        let host_key = write_host(layout, config, index)?;
        let _ = writeln!(hosts, "{address}:{}", config.port);
        let _ = writeln!(known_hosts, "[{address}]:{} {host_key}", config.port);
        let _ = writeln!(
            inventory,
            "  {}: {{address: {address}, port: {}}}",
            host_name(index),
            config.port
        );
        if config.has_crash(index) {
            // A hosts file prun -h reads, naming each host for people.
            let _ = writeln!(crashed, "{address}:{}  # {}", config.port, host_name(index));
        }
    }
    write(&layout.hosts_file(), hosts)?;
    write(&layout.known_hosts(), known_hosts)?;
    write(&layout.inventory(), inventory)?;
    write(&layout.crashed_hosts(), crashed)
}

fn write_power_commands(layout: &Layout) -> Result<(), LabError> {
    let bin = layout.bin();
    if bin.exists() {
        std::fs::remove_dir_all(&bin).map_err(io_error(&bin))?;
    }
    std::fs::create_dir_all(&bin).map_err(io_error(&bin))?;
    write_executable(&bin.join("systemctl"), POWER_SCRIPT)?;
    write_executable(&bin.join("depmod"), DEPMOD_SCRIPT)?;
    write_executable(&bin.join("uname"), UNAME_SCRIPT)?;
    write_executable(&bin.join("make"), MAKE_SCRIPT)?;
    write_executable(&bin.join("modinfo"), MODINFO_SCRIPT)?;
    for name in POWER_COMMANDS {
        symlink("systemctl", bin.join(name)).map_err(io_error(&bin))?;
    }
    Ok(())
}

/// Lab hosts mount their own /lib/modules; containers often have none to
/// mount over. An empty directory is created then, and left in place: other
/// labs may be mounted on it.
fn ensure_lib_modules() -> Result<(), LabError> {
    let path = Path::new("/lib/modules");
    if !path.exists() {
        std::fs::create_dir_all(path).map_err(io_error(path))?;
    }
    Ok(())
}

/// Creates one host's directory; returns its public host key line.
fn write_host(layout: &Layout, config: &LabConfig, index: usize) -> Result<String, LabError> {
    let dir = layout.host_dir(index);
    let name = host_name(index);
    for sub in ["boot", "root/var/log", "root/tmp"] {
        std::fs::create_dir_all(dir.join(sub)).map_err(io_error(&dir))?;
    }
    write(&dir.join("name"), format!("{name}\n"))?;
    let kernel = config.kernel(index);
    write(&dir.join("kernel"), format!("{kernel}\n"))?;
    // What `make -C /lib/modules/K/build` needs to find (see make.sh).
    let build = dir.join("root/lib/modules").join(&kernel).join("build");
    std::fs::create_dir_all(&build).map_err(io_error(&build))?;
    let host_key = new_key(&dir.join("ssh_host_ed25519_key"))?;
    write(&dir.join("sshd_config"), sshd_config(layout, config, index))?;
    write(&dir.join("root/var/log/messages"), messages(config, index))?;
    let module = dir.join("root").join(module_path(&kernel));
    if let Some(parent) = module.parent() {
        std::fs::create_dir_all(parent).map_err(io_error(parent))?;
    }
    write(&module, old_module(&name, &kernel))?;
    write(&dir.join("state"), "booting\n")?;
    Ok(host_key)
}

fn sshd_config(layout: &Layout, config: &LabConfig, index: usize) -> String {
    let dir = layout.host_dir(index);
    format!(
        "ListenAddress {address}:{port}\n\
         HostKey {dir}/ssh_host_ed25519_key\n\
         PidFile {dir}/boot/sshd.pid\n\
         AuthorizedKeysFile {keys}\n\
         StrictModes no\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
         PermitRootLogin prohibit-password\nMaxStartups 100\nMaxSessions 64\nUseDNS no\n\
         PrintMotd no\nPrintLastLog no\nSubsystem sftp internal-sftp\nLogLevel INFO\n",
        address = config.address(index),
        port = config.port,
        dir = dir.display(),
        keys = layout.authorized_keys().display(),
    )
}

/// Ordinary syslog lines, and for some hosts the evtchn crash under their name.
fn messages(config: &LabConfig, index: usize) -> String {
    let name = host_name(index);
    let mut text = format!(
        "Dec 22 23:58:01 {name} systemd[1]: Started Session 4 of user root.\n\
         Dec 23 00:10:44 {name} xenstored: Checking store ...\n\
         Dec 23 00:20:02 {name} kernel: xen:balloon: Cannot add additional memory (-17)\n"
    );
    if config.has_crash(index) {
        text.push_str(&CRASH_LOG.replace("w-xen09", &name));
    }
    text
}

/// An "old" xen-evtchn.ko for `kernel`: its bytes differ per build, so
/// tests can tell it from the one a rollout installs.
fn old_module(name: &str, kernel: &str) -> Vec<u8> {
    let mut build = [0u8; 16];
    let _ = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut build));
    let build: String = build.iter().map(|b| format!("{b:02x}")).collect();
    let mut module =
        format!("\x7fELF fleet-lab xen-evtchn.ko vermagic={kernel} SMP mod_unload; (old) host={name} build={build}\n")
            .into_bytes();
    module.resize(64 * 1024, 0);
    module
}

/// Generates an ed25519 key at `path` (private, 0600) and `path.pub`;
/// returns the public key line.
pub(super) fn new_key(path: &Path) -> Result<String, LabError> {
    let key = PrivateKey::random(&mut russh::keys::key::safe_rng(), Algorithm::Ed25519)
        .map_err(|e| LabError::Invalid(format!("cannot generate a key: {e}")))?;
    let private = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| LabError::Invalid(format!("cannot encode a key: {e}")))?;
    let public = key
        .public_key()
        .to_openssh()
        .map_err(|e| LabError::Invalid(format!("cannot encode a key: {e}")))?;
    write(path, private.as_bytes())?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(io_error(path))?;
    write(&path.with_extension("pub"), format!("{public}\n"))?;
    Ok(public)
}

pub(super) fn write(path: &Path, contents: impl AsRef<[u8]>) -> Result<(), LabError> {
    std::fs::write(path, contents).map_err(io_error(path))
}

fn write_executable(path: &Path, contents: &str) -> Result<(), LabError> {
    write(path, contents)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).map_err(io_error(path))
}

fn start_supervisor(layout: &Layout, supervisor: &Path) -> Result<std::process::Child, LabError> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(layout.log())
        .map_err(io_error(&layout.log()))?;
    let log_err = log.try_clone().map_err(io_error(&layout.log()))?;
    let mut command = Command::new(supervisor);
    command
        .arg("--dir")
        .arg(&layout.dir)
        .arg("supervise")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);
    // SAFETY: setsid in the child before exec, so the supervisor outlives this
    // process and its terminal.
    unsafe {
        command.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    command.spawn().map_err(io_error(supervisor))
}

fn wait_until_settled(
    layout: &Layout,
    config: &LabConfig,
    supervisor: &mut std::process::Child,
) -> Result<(), LabError> {
    let limit = Duration::from_secs(30) + Duration::from_millis(50) * config.count as u32;
    let deadline = Instant::now() + limit;
    loop {
        let waiting: Vec<String> = (0..config.count)
            .filter(|&i| {
                let state =
                    std::fs::read_to_string(layout.host_dir(i).join("state")).unwrap_or_default();
                !(state.starts_with("up") || state.starts_with("down fault="))
            })
            .map(host_name)
            .collect();
        if waiting.is_empty() {
            return Ok(());
        }
        if let Some(failure) = first_boot_failure(layout, config) {
            return Err(LabError::Invalid(failure));
        }
        if let Ok(Some(status)) = supervisor.try_wait() {
            return Err(LabError::Invalid(format!(
                "the lab supervisor exited ({status}); see {}",
                layout.log().display()
            )));
        }
        if Instant::now() > deadline {
            let hosts = waiting
                .iter()
                .take(10)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ");
            return Err(LabError::StartTimeout {
                waited: limit,
                hosts,
                log: layout.log(),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn first_boot_failure(layout: &Layout, config: &LabConfig) -> Option<String> {
    (0..config.count).find_map(|i| {
        let state = std::fs::read_to_string(layout.host_dir(i).join("state")).unwrap_or_default();
        let why = state.strip_prefix("down boot-failed: ")?;
        Some(format!("{} did not boot: {}", host_name(i), why.trim()))
    })
}

/// Stops the lab in `dir`: the supervisor ends every host's namespace, and
/// any process still naming the lab directory is killed.
pub fn down(dir: &Path) -> Result<(), LabError> {
    let layout = Layout::new(&dir.canonicalize().map_err(io_error(dir))?);
    if let Some(pid) = read_pid(&layout) {
        signal(pid, libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        while process_alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        signal(pid, libc::SIGKILL);
    }
    kill_leftovers(&layout.dir);
    let _ = std::fs::remove_file(layout.pid_file());
    Ok(())
}

/// The supervisor's pid, if it is running.
fn read_pid(layout: &Layout) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(layout.pid_file())
        .ok()?
        .trim()
        .parse()
        .ok()?;
    process_alive(pid).then_some(pid)
}

fn process_alive(pid: i32) -> bool {
    // A zombie still "exists" for kill(0); only a running process counts.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    !stat.is_empty()
        && !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
}

fn signal(pid: i32, signal: i32) {
    // SAFETY: kill has no memory effects; a vanished pid only returns ESRCH.
    unsafe { libc::kill(pid, signal) };
}

/// Kills what a crashed supervisor may have left of this lab: its hosts'
/// init processes (ending one ends its host's PID namespace) and a
/// supervisor of the same directory. A process is the lab's only if its
/// arguments are exactly the lab's (`sh DIR/init.sh ...`, `fleet-lab --dir
/// DIR supervise`); anything else naming the directory (`tail -f
/// DIR/lab.log`, the shell that ran `up`) is left alone.
fn kill_leftovers(dir: &Path) {
    let init = dir.join("init.sh").into_os_string().into_vec();
    let dir = dir.as_os_str().as_bytes().to_vec();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        let is_host = args.get(1) == Some(&init.as_slice());
        let is_supervisor = args
            .windows(3)
            .any(|w| w[0] == b"--dir" && w[1] == dir.as_slice() && w[2] == b"supervise");
        if pid != std::process::id() as i32 && (is_host || is_supervisor) {
            signal(pid, libc::SIGKILL);
        }
    }
}

/// Every host's state and fault.
pub fn status(dir: &Path) -> Result<Vec<HostStatus>, LabError> {
    let layout = Layout::new(dir);
    let config = super::supervisor::load_config(&layout)?;
    let running = read_pid(&layout).is_some();
    Ok((0..config.count)
        .map(|index| {
            let host_dir = layout.host_dir(index);
            let state = std::fs::read_to_string(host_dir.join("state")).unwrap_or_default();
            HostStatus {
                name: host_name(index),
                address: format!("{}:{}", config.address(index), config.port),
                state: if running {
                    state.trim().to_string()
                } else {
                    "stopped".into()
                },
                fault: std::fs::read_to_string(host_dir.join("fault"))
                    .ok()
                    .map(|f| f.trim().to_string()),
            }
        })
        .collect())
}

/// Gives `host` a fault (or clears it with `None`) in a running lab.
pub fn set_fault(dir: &Path, host: &str, fault: Option<Fault>) -> Result<(), LabError> {
    let layout = Layout::new(dir);
    let config = super::supervisor::load_config(&layout)?;
    let pid = read_pid(&layout).ok_or_else(|| LabError::NotRunning(dir.to_path_buf()))?;
    let index = resolve_host(&config, host)?;
    write_fault(&layout, index, fault)?;
    signal(pid, libc::SIGUSR1);
    Ok(())
}

fn write_fault(layout: &Layout, index: usize, fault: Option<Fault>) -> Result<(), LabError> {
    let path = layout.host_dir(index).join("fault");
    match fault {
        Some(fault) => write(&path, format!("{fault}\n")),
        None => match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_error(&path)(e)),
            _ => Ok(()),
        },
    }
}

/// Finds a host by name (lab-007), address, or address:port.
fn resolve_host(config: &LabConfig, host: &str) -> Result<usize, LabError> {
    (0..config.count)
        .find(|&i| {
            let address = config.address(i).to_string();
            host == host_name(i) || host == address || host == format!("{address}:{}", config.port)
        })
        .ok_or_else(|| LabError::UnknownHost(host.to_string()))
}
