//! The lab's supervisor: one daemon process that boots every host, reboots
//! it when its namespace ends, and applies faults. Hosts are
//! `unshare --pid --mount --uts` around init.sh and sshd.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::net::{TcpSocket, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::setup::{new_key, write};
use super::{host_name, io_error, kernel_release, module_path, Fault, LabConfig, LabError, Layout};

/// Hosts booting at once: enough to bring 1000 up quickly, few enough not
/// to stall the machine with a fork storm.
const BOOT_SLOTS: usize = 32;
/// How long sshd may take to listen after its namespace starts.
const BOOT_LIMIT: Duration = Duration::from_secs(20);

/// Reads DIR/lab.conf.
pub(super) fn load_config(layout: &Layout) -> Result<LabConfig, LabError> {
    let path = layout.config();
    let text = std::fs::read_to_string(&path).map_err(io_error(&path))?;
    LabConfig::from_text(&text, &path)
}

/// Runs the lab in `dir` until `shutdown` fires; `reload` means fault files
/// changed. Every host's namespace is gone when this returns.
pub async fn supervise(
    dir: &Path,
    shutdown: CancellationToken,
    reload: Arc<Notify>,
) -> Result<(), LabError> {
    let layout = Layout::new(dir);
    let config = load_config(&layout)?;
    write(&layout.pid_file(), format!("{}\n", std::process::id()))?;
    let lab = Arc::new(Lab {
        layout,
        config,
        boot_slots: Semaphore::new(BOOT_SLOTS),
    });
    let mut faults = Vec::with_capacity(lab.config.count);
    let mut hosts = JoinSet::new();
    for index in 0..lab.config.count {
        let (sender, receiver) = watch::channel(lab.read_fault(index));
        faults.push(sender);
        let host = HostRunner {
            lab: Arc::clone(&lab),
            index,
            faults: receiver,
            shutdown: shutdown.clone(),
        };
        hosts.spawn(host.run());
    }
    tracing::info!("lab of {} hosts started", lab.config.count);
    loop {
        tokio::select! {
            _ = reload.notified() => {
                for (index, sender) in faults.iter().enumerate() {
                    let fault = lab.read_fault(index);
                    sender.send_if_modified(|current| std::mem::replace(current, fault) != fault);
                }
            }
            _ = shutdown.cancelled() => break,
        }
    }
    while hosts.join_next().await.is_some() {}
    let _ = std::fs::remove_file(lab.layout.pid_file());
    tracing::info!("lab stopped");
    Ok(())
}

/// What all host runners share.
struct Lab {
    layout: Layout,
    config: LabConfig,
    boot_slots: Semaphore,
}

impl Lab {
    fn read_fault(&self, index: usize) -> Option<Fault> {
        let text = std::fs::read_to_string(self.layout.host_dir(index).join("fault")).ok()?;
        match text.trim().parse() {
            Ok(fault) => Some(fault),
            Err(why) => {
                tracing::warn!(host = host_name(index), "ignoring fault file: {why}");
                None
            }
        }
    }
}

/// How a running host stopped running.
enum Stopped {
    /// Its namespace ended: it rebooted (or crashed, which looks the same).
    Rebooted,
    /// A fault took it off the network.
    TakenDown,
    Shutdown,
}

/// One host's life: boot, run, reboot, obey faults.
struct HostRunner {
    lab: Arc<Lab>,
    index: usize,
    faults: watch::Receiver<Option<Fault>>,
    shutdown: CancellationToken,
}

impl HostRunner {
    async fn run(mut self) {
        let mut rebooting = false;
        // bad-module spoils one boot; a boot without it re-arms it.
        let mut bad_module_spent = false;
        loop {
            let mut fault = *self.faults.borrow_and_update();
            match (fault, bad_module_spent) {
                (Some(Fault::BadModule), true) => fault = None,
                (Some(Fault::BadModule), false) => bad_module_spent = true,
                _ => bad_module_spent = false,
            }
            if let Some(fault) = fault.filter(|f| f.holds_host_down()) {
                self.set_state(&format!("down fault={fault}"));
                if !self.hold_down(fault).await {
                    return;
                }
                rebooting = false;
                continue;
            }
            if rebooting && !self.reboot_delay(fault).await {
                return;
            }
            let mut child = match self.boot(fault).await {
                Ok(child) => child,
                Err(error) => {
                    tracing::warn!(host = self.name(), "boot failed: {error}");
                    self.set_state(&format!("down boot-failed: {error}"));
                    if !self.wait_for_fault_change().await {
                        return;
                    }
                    continue;
                }
            };
            match self.watch_running(&mut child).await {
                Stopped::Rebooted => rebooting = true,
                Stopped::TakenDown => {
                    stop(&mut child).await;
                    rebooting = false;
                }
                Stopped::Shutdown => {
                    stop(&mut child).await;
                    self.set_state("stopped");
                    return;
                }
            }
            if rebooting && *self.faults.borrow() == Some(Fault::NeverReturns) {
                self.set_state("down fault=never-returns");
                if !self.wait_for_fault_change().await {
                    return;
                }
                rebooting = false;
            }
        }
    }

    fn name(&self) -> String {
        host_name(self.index)
    }

    fn dir(&self) -> PathBuf {
        self.lab.layout.host_dir(self.index)
    }

    fn address(&self) -> SocketAddr {
        SocketAddr::new(
            self.lab.config.address(self.index).into(),
            self.lab.config.port,
        )
    }

    /// Why init ended before sshd listened: sshd's last words (it logs
    /// with -E, so a taken address shows there), else init's console.
    fn boot_failure(&self, status: std::process::ExitStatus) -> String {
        let dir = self.dir();
        let last_lines = |name: &str| {
            let text = std::fs::read_to_string(dir.join(name)).ok()?;
            let lines: Vec<&str> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            let tail = &lines[lines.len().saturating_sub(2)..];
            (!tail.is_empty()).then(|| tail.join("; "))
        };
        match last_lines("sshd.log").or_else(|| last_lines("console.log")) {
            Some(words) => format!("init exited with {status}: {words}"),
            None => format!(
                "init exited with {status}; see {0}/console.log and {0}/sshd.log",
                dir.display()
            ),
        }
    }

    fn set_state(&self, state: &str) {
        if let Err(error) = write(&self.dir().join("state"), format!("{state}\n")) {
            tracing::warn!(host = self.name(), "{error}");
        }
    }

    /// The time a rebooting host stays away; false if the lab shut down meanwhile.
    async fn reboot_delay(&self, fault: Option<Fault>) -> bool {
        self.set_state("rebooting");
        let delay = match fault {
            Some(Fault::SlowBoot) => self.lab.config.slow_boot,
            _ => self.lab.config.downtime,
        };
        tokio::select! {
            _ = tokio::time::sleep(delay) => true,
            _ = self.shutdown.cancelled() => false,
        }
    }

    /// Boots the host: a fresh boot_id and module state, then its namespace.
    async fn boot(&self, fault: Option<Fault>) -> Result<Child, LabError> {
        let _slot = self
            .lab
            .boot_slots
            .acquire()
            .await
            .map_err(|_| LabError::Invalid("lab stopping".into()))?;
        self.set_state("booting");
        let boot_id = prepare_boot(&self.dir(), &self.name(), fault)?;
        let pid_file = self.dir().join("boot/sshd.pid");
        let _ = std::fs::remove_file(&pid_file);
        let mut child = self.spawn_namespace()?;
        let started = Instant::now();
        while !pid_file.exists() {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(LabError::Invalid(self.boot_failure(status)));
            }
            if started.elapsed() > BOOT_LIMIT {
                stop(&mut child).await;
                return Err(LabError::Invalid("sshd did not start listening".into()));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.set_state(&format!("up boot_id={boot_id}"));
        Ok(child)
    }

    fn spawn_namespace(&self) -> Result<Child, LabError> {
        let console_path = self.dir().join("console.log");
        let console = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&console_path)
            .map_err(io_error(&console_path))?;
        let console_err = console.try_clone().map_err(io_error(&console_path))?;
        let mut command = Command::new("unshare");
        command
            .args([
                "--pid",
                "--fork",
                "--kill-child=SIGKILL",
                "--mount-proc",
                "--uts",
                "--propagation",
                "private",
            ])
            .arg("/bin/sh")
            .arg(self.lab.layout.dir.join("init.sh"))
            .arg(self.dir())
            .arg(&self.lab.layout.dir)
            .stdin(Stdio::null())
            .stdout(console)
            .stderr(console_err)
            .kill_on_drop(true);
        // SAFETY: prctl in the child before exec: if the supervisor dies, so
        // does unshare, and with it (--kill-child) the host's namespace.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        command.spawn().map_err(io_error(Path::new("unshare")))
    }

    async fn watch_running(&mut self, child: &mut Child) -> Stopped {
        loop {
            tokio::select! {
                _ = child.wait() => return Stopped::Rebooted,
                changed = self.faults.changed() => {
                    if changed.is_err() {
                        return Stopped::Shutdown;
                    }
                    if self.faults.borrow().is_some_and(Fault::holds_host_down) {
                        return Stopped::TakenDown;
                    }
                }
                _ = self.shutdown.cancelled() => return Stopped::Shutdown,
            }
        }
    }

    /// Keeps the host off the network in the way `fault` says until the
    /// fault changes; false if the lab shut down meanwhile.
    async fn hold_down(&mut self, fault: Fault) -> bool {
        let _imposter = match fault {
            Fault::Down => Imposter::silent(self.address()).await,
            Fault::Blackhole => Imposter::mute(self.address()).await,
            _ => None,
        };
        self.wait_for_fault_change().await
    }

    async fn wait_for_fault_change(&mut self) -> bool {
        tokio::select! {
            changed = self.faults.changed() => changed.is_ok(),
            _ = self.shutdown.cancelled() => false,
        }
    }
}

async fn stop(child: &mut Child) {
    let _ = child.start_kill();
    let _ = child.wait().await;
}

/// What listens on a faulty host's address instead of its sshd.
enum Imposter {
    /// A full accept queue: further SYNs are dropped, so connecting times out.
    Silent {
        _listener: tokio::net::TcpListener,
        _filler: TcpStream,
    },
    /// Accepts connections and never says a word.
    Mute(tokio::task::AbortHandle),
}

impl Imposter {
    async fn silent(address: SocketAddr) -> Option<Imposter> {
        let listener = bind_when_free(address, 0).await?;
        let filler = TcpStream::connect(address).await.ok()?;
        Some(Imposter::Silent {
            _listener: listener,
            _filler: filler,
        })
    }

    async fn mute(address: SocketAddr) -> Option<Imposter> {
        let listener = bind_when_free(address, 1024).await?;
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        Some(Imposter::Mute(task.abort_handle()))
    }
}

impl Drop for Imposter {
    fn drop(&mut self) {
        if let Imposter::Mute(task) = self {
            task.abort();
        }
    }
}

/// Binds once the host's dying sshd has let go of the address.
async fn bind_when_free(address: SocketAddr, backlog: u32) -> Option<tokio::net::TcpListener> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match bind(address, backlog) {
            Ok(listener) => return Some(listener),
            Err(error) if Instant::now() > deadline => {
                tracing::warn!(%address, "cannot take over the address for a fault: {error}");
                return None;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

fn bind(address: SocketAddr, backlog: u32) -> std::io::Result<tokio::net::TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(backlog)
}

/// Writes the boot's files: a new boot_id, and which xen-evtchn.ko "loaded"
/// (the one on disk now), or its failure under the bad-module fault.
/// Returns the boot_id.
fn prepare_boot(dir: &Path, name: &str, fault: Option<Fault>) -> Result<String, LabError> {
    if fault == Some(Fault::HostKeyChanged) {
        new_key(&dir.join("ssh_host_ed25519_key"))?;
    }
    let uuid_path = Path::new("/proc/sys/kernel/random/uuid");
    let boot_id = std::fs::read_to_string(uuid_path)
        .map_err(io_error(uuid_path))?
        .trim()
        .to_string();
    write(&dir.join("boot/boot_id"), format!("{boot_id}\n"))?;
    let kernel = std::fs::read_to_string(dir.join("kernel"))
        .map_or_else(|_| kernel_release(), |k| k.trim().to_string());
    let module = module_path(&kernel);
    let digest = std::fs::read(dir.join("root").join(&module))
        .ok()
        .map(|bytes| hex(&Sha256::digest(bytes)));
    let bad_module = fault == Some(Fault::BadModule);
    let (modules, loaded) = match (&digest, bad_module) {
        (Some(digest), false) => (
            format!("xen_evtchn 20480 0 - Live 0x0000000000000000\n{OTHER_MODULES}"),
            format!("xen_evtchn loaded sha256={digest} path=/{module}\n"),
        ),
        (Some(digest), true) => {
            log_module_failure(dir, name)?;
            (
                OTHER_MODULES.to_string(),
                format!("xen_evtchn failed sha256={digest} path=/{module}\n"),
            )
        }
        (None, _) => (
            OTHER_MODULES.to_string(),
            format!("xen_evtchn missing path=/{module}\n"),
        ),
    };
    write(&dir.join("boot/modules"), &modules)?;
    write(&dir.join("boot/loaded-modules"), loaded)?;
    write_sys_module(&dir.join("boot/sys-module"), &modules)?;
    Ok(boot_id)
}

/// /sys/module as the host will see it: a directory per loaded module with
/// its `initstate`, from the lines of /proc/modules.
fn write_sys_module(root: &Path, proc_modules: &str) -> Result<(), LabError> {
    if root.exists() {
        std::fs::remove_dir_all(root).map_err(io_error(root))?;
    }
    for name in proc_modules
        .lines()
        .filter_map(|line| line.split(' ').next())
    {
        let module = root.join(name);
        std::fs::create_dir_all(&module).map_err(io_error(&module))?;
        write(&module.join("initstate"), "live\n")?;
        write(&module.join("refcnt"), "0\n")?;
    }
    Ok(())
}

const OTHER_MODULES: &str = "xenfs 16384 1 - Live 0x0000000000000000\n\
                             xen_privcmd 28672 1 xenfs, Live 0x0000000000000000\n";

fn log_module_failure(dir: &Path, name: &str) -> Result<(), LabError> {
    use std::io::Write;
    let path = dir.join("root/var/log/messages");
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&path)
        .map_err(io_error(&path))?;
    let stamp = "Dec 23 01:02:03";
    writeln!(
        log,
        "{stamp} {name} kernel: xen_evtchn: module verification failed: bad module"
    )
    .map_err(io_error(&path))?;
    writeln!(
        log,
        "{stamp} {name} kernel: kernel BUG at drivers/xen/evtchn.c:264!"
    )
    .map_err(io_error(&path))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
