//! fleet-lab: a local fleet of real OpenSSH hosts that behave like the Xen
//! hosts of a cluster. Each host is a real sshd in its own PID, mount and UTS
//! namespaces on its own 127.NET.x.y address, with its own hostname, boot_id,
//! /tmp, /run, /var/log and /lib/modules. `reboot` on a host ends its PID
//! namespace (dropping every session), and a supervisor boots it again after
//! a delay with a new boot_id. Hosts can be given faults.
//!
//! The lab is for tests, benchmarks and the demo; the tools know nothing of it.

pub mod cli;
mod fault;
mod setup;
mod supervisor;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;

pub use fault::Fault;
pub use setup::{down, set_fault, status, up, HostStatus};
pub use supervisor::supervise;

/// Why a lab command failed.
#[derive(Debug, Error)]
pub enum LabError {
    #[error("fleet-lab needs root to create namespaces; run it as root (sudo fleet-lab ...)")]
    NotRoot,
    #[error("{0} not found; install it (apt-get install openssh-server util-linux)")]
    Missing(&'static str),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Config { path: PathBuf, message: String },
    #[error("no lab is running in {}", .0.display())]
    NotRunning(PathBuf),
    #[error("no lab host `{0}`: give a name like lab-007 or an address")]
    UnknownHost(String),
    #[error("{0}")]
    Invalid(String),
    #[error("hosts not up after {}s: {hosts}; see {}", waited.as_secs(), log.display())]
    StartTimeout {
        waited: Duration,
        hosts: String,
        log: PathBuf,
    },
}

/// Attaches the path to an I/O error.
fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> LabError + '_ {
    move |source| LabError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The lab's settings, written to DIR/lab.conf by `up` and read by the supervisor.
#[derive(Debug, Clone, PartialEq)]
pub struct LabConfig {
    pub count: usize,
    /// Second octet of the hosts' addresses: 127.NET.x.y.
    pub net: u8,
    pub port: u16,
    /// How long a rebooting host stays unreachable.
    pub downtime: Duration,
    /// How long a host with the slow-boot fault stays unreachable.
    pub slow_boot: Duration,
    /// Share of hosts (0 to 1) whose /var/log/messages holds the evtchn crash.
    pub crash_share: f64,
    /// Kernel releases the hosts report, given round-robin; none: the
    /// machine's own.
    pub kernels: Vec<String>,
}

impl Default for LabConfig {
    fn default() -> Self {
        LabConfig {
            count: 20,
            net: 100,
            port: 2222,
            downtime: Duration::from_secs(3),
            slow_boot: Duration::from_secs(30),
            crash_share: 0.1,
            kernels: Vec::new(),
        }
    }
}

/// Largest lab: 250 addresses per /24 and 200 of those.
pub const MAX_HOSTS: usize = 50_000;

impl LabConfig {
    fn to_text(&self) -> String {
        format!(
            "count={}\nnet={}\nport={}\ndowntime_ms={}\nslow_boot_ms={}\ncrash_share={}\nkernels={}\n",
            self.count,
            self.net,
            self.port,
            self.downtime.as_millis(),
            self.slow_boot.as_millis(),
            self.crash_share,
            self.kernels.join(",")
        )
    }

    fn from_text(text: &str, path: &Path) -> Result<Self, LabError> {
        let bad = |message: String| LabError::Config {
            path: path.to_path_buf(),
            message,
        };
        let mut config = LabConfig::default();
        for (number, line) in text.lines().enumerate() {
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| bad(format!("line {}: expected key=value", number + 1)))?;
            let invalid = || bad(format!("line {}: bad value for {key}", number + 1));
            match key {
                "count" => config.count = value.parse().map_err(|_| invalid())?,
                "net" => config.net = value.parse().map_err(|_| invalid())?,
                "port" => config.port = value.parse().map_err(|_| invalid())?,
                "downtime_ms" => {
                    config.downtime = Duration::from_millis(value.parse().map_err(|_| invalid())?)
                }
                "slow_boot_ms" => {
                    config.slow_boot = Duration::from_millis(value.parse().map_err(|_| invalid())?)
                }
                "crash_share" => config.crash_share = value.parse().map_err(|_| invalid())?,
                "kernels" => config.kernels = parse_kernels(value).map_err(|_| invalid())?,
                _ => return Err(bad(format!("line {}: unknown key {key}", number + 1))),
            }
        }
        Ok(config)
    }

    /// Address of host `index` (0-based).
    pub fn address(&self, index: usize) -> Ipv4Addr {
        Ipv4Addr::new(127, self.net, (index / 250) as u8, (index % 250 + 1) as u8)
    }

    /// The kernel release host `index` reports (`uname -r`), and whose
    /// /lib/modules it has.
    pub fn kernel(&self, index: usize) -> String {
        match self.kernels.len() {
            0 => kernel_release(),
            count => self.kernels[index % count].clone(),
        }
    }

    /// Whether host `index` logged the evtchn crash: spread evenly over the lab.
    pub fn has_crash(&self, index: usize) -> bool {
        let share = self.crash_share.clamp(0.0, 1.0);
        ((index + 1) as f64 * share).floor() > (index as f64 * share).floor()
    }
}

/// Name of host `index`: lab-001, lab-002, ...
pub fn host_name(index: usize) -> String {
    format!("lab-{:03}", index + 1)
}

/// Where everything of one lab lives.
#[derive(Debug, Clone)]
pub struct Layout {
    pub dir: PathBuf,
}

impl Layout {
    pub fn new(dir: &Path) -> Self {
        Layout {
            dir: dir.to_path_buf(),
        }
    }
    pub fn config(&self) -> PathBuf {
        self.dir.join("lab.conf")
    }
    pub fn pid_file(&self) -> PathBuf {
        self.dir.join("lab.pid")
    }
    pub fn log(&self) -> PathBuf {
        self.dir.join("lab.log")
    }
    /// pssh hosts file of the lab.
    pub fn hosts_file(&self) -> PathBuf {
        self.dir.join("hosts")
    }
    pub fn known_hosts(&self) -> PathBuf {
        self.dir.join("known_hosts")
    }
    /// The client key every lab host accepts.
    pub fn key(&self) -> PathBuf {
        self.dir.join("id_ed25519")
    }
    pub fn inventory(&self) -> PathBuf {
        self.dir.join("inventory.yml")
    }
    /// The hosts whose log holds the evtchn crash: a hosts file
    /// (`ADDRESS:PORT  # lab-NNN`), for `prun -h`.
    pub fn crashed_hosts(&self) -> PathBuf {
        self.dir.join("crashed-hosts")
    }
    fn bin(&self) -> PathBuf {
        self.dir.join("bin")
    }
    fn init_script(&self) -> PathBuf {
        self.dir.join("init.sh")
    }
    fn authorized_keys(&self) -> PathBuf {
        self.dir.join("authorized_keys")
    }
    pub fn host_dir(&self, index: usize) -> PathBuf {
        self.dir.join("hosts.d").join(host_name(index))
    }
}

/// The running kernel's release: what `uname -r` says on every lab host.
pub fn kernel_release() -> String {
    // SAFETY: uname fills the struct we own; the fields are NUL-terminated.
    unsafe {
        let mut name: libc::utsname = std::mem::zeroed();
        if libc::uname(&mut name) != 0 {
            return "unknown".into();
        }
        std::ffi::CStr::from_ptr(name.release.as_ptr())
            .to_string_lossy()
            .into_owned()
    }
}

/// Where a host running `kernel` keeps its xen-evtchn module, relative to
/// its root.
pub fn module_path(kernel: &str) -> String {
    format!("lib/modules/{kernel}/kernel/drivers/xen/xen-evtchn.ko")
}

/// `--kernels K1,K2,...`: releases as `uname -r` prints them, which also
/// name directories (/lib/modules/K), so no `/`, no blank, none empty.
pub fn parse_kernels(text: &str) -> Result<Vec<String>, String> {
    let kernels: Vec<String> = text
        .split(',')
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .collect();
    let valid = |k: &String| {
        k != "."
            && k != ".."
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._+-~".contains(c))
    };
    match kernels.iter().find(|k| !valid(k)) {
        Some(bad) => Err(format!(
            "`{bad}` is not a kernel release (letters, digits and . _ + - ~)"
        )),
        None => Ok(kernels),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_round_trips() {
        let config = LabConfig {
            count: 7,
            net: 42,
            crash_share: 0.25,
            kernels: vec!["6.1.0-18-amd64".into(), "6.1.0-21-amd64".into()],
            ..Default::default()
        };
        let path = Path::new("lab.conf");
        assert_eq!(
            LabConfig::from_text(&config.to_text(), path).unwrap(),
            config
        );
        assert!(LabConfig::from_text("count=x\n", path)
            .unwrap_err()
            .to_string()
            .contains("line 1"));
    }

    #[test]
    fn addresses_and_crash_share() {
        let config = LabConfig {
            count: 1000,
            crash_share: 0.1,
            ..Default::default()
        };
        assert_eq!(config.address(0), Ipv4Addr::new(127, 100, 0, 1));
        assert_eq!(config.address(250), Ipv4Addr::new(127, 100, 1, 1));
        assert_eq!((0..1000).filter(|&i| config.has_crash(i)).count(), 100);
        assert_eq!(host_name(6), "lab-007");
    }
}
