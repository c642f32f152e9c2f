//! The shipped xen-evtchn rollout on a fleet-lab, for the pplay tests:
//! the lab, the modules to roll out (one per kernel the lab runs), the
//! playbook with lab timeouts, and the journal and state to check.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{run, tool, Lab, Run};

/// The shipped playbook with timeouts fit for a lab whose hosts reboot in
/// a second; every other line is as shipped.
pub fn lab_playbook(dir: &Path) -> PathBuf {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks/xen-evtchn-rollout.yml");
    let mut text = std::fs::read_to_string(shipped).unwrap();
    for (from, to) in [
        ("stable_for: 5s", "stable_for: 1s"),
        ("up_timeout: 10m", "up_timeout: 10s"),
        ("down_timeout: 2m", "down_timeout: 10s"),
        ("test_timeout: 5m", "test_timeout: 10s"),
    ] {
        assert!(
            text.contains(from),
            "the shipped playbook no longer says {from}"
        );
        text = text.replace(from, to);
    }
    let path = dir.join("xen-evtchn-rollout.yml");
    std::fs::write(&path, text).unwrap();
    path
}

pub fn kernel_release() -> String {
    let output = Command::new("uname").arg("-r").output().unwrap();
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

pub fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A lab, the rebuilt modules to roll out (one per kernel the lab runs),
/// and a place for the journal.
pub struct Rollout {
    pub lab: Lab,
    pub work: tempfile::TempDir,
    pub playbook: PathBuf,
    /// SHA-256 of the module built for the machine's kernel.
    pub new_sha: String,
    /// SHA-256 of the module built for each kernel.
    pub new_shas: BTreeMap<String, String>,
}

impl Rollout {
    pub fn start(count: usize, extra: &[&str]) -> Rollout {
        let lab = Lab::start(count, extra);
        let work = tempfile::tempdir().unwrap();
        let kernels = match extra.iter().position(|a| *a == "--kernels") {
            Some(at) => extra[at + 1].split(',').map(str::to_string).collect(),
            None => vec![kernel_release()],
        };
        let mut new_shas = BTreeMap::new();
        for kernel in kernels {
            let module = format!(
                "\x7fELF xen-evtchn.ko vermagic={kernel} SMP mod_unload; rebuilt with the port-reuse fix\n"
            );
            let dir = work.path().join("modules").join(&kernel);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("xen-evtchn.ko"), &module).unwrap();
            new_shas.insert(kernel, sha256(module.as_bytes()));
        }
        let playbook = lab_playbook(work.path());
        Rollout {
            lab,
            work,
            playbook,
            new_sha: new_shas.values().next().cloned().unwrap_or_default(),
            new_shas,
        }
    }

    /// Changes the lab copy of the playbook.
    pub fn rewrite_playbook(&self, from: &str, to: &str) {
        let text = std::fs::read_to_string(&self.playbook).unwrap();
        assert!(text.contains(from), "the playbook no longer says {from}");
        std::fs::write(&self.playbook, text.replace(from, to)).unwrap();
    }

    pub fn journal(&self) -> PathBuf {
        self.work.path().join("rollout.journal")
    }

    /// pplay with the lab's inventory, the module and the journal.
    pub fn pplay(&self) -> Command {
        let mut command = tool("pplay");
        command
            .current_dir(self.work.path())
            .args(["-O", "ConnectTimeout=2", "-i"])
            .arg(self.lab.dir().join("inventory.yml"))
            .arg("-e")
            .arg(format!("modules={}/modules", self.work.path().display()));
        command
    }

    /// pplay rolling the playbook, journaled; `extra` flags go first.
    pub fn rollout_command(&self, extra: &[&str]) -> Command {
        let mut command = self.pplay();
        command
            .args(extra)
            .arg("--journal")
            .arg(self.journal())
            .arg(&self.playbook);
        command
    }

    pub fn roll(&self) -> Run {
        run(self.rollout_command(&[]))
    }

    /// The rollout started in the background, its output discarded, for
    /// tests that stop or kill it midway.
    pub fn spawn_quietly(&self) -> std::process::Child {
        spawn_quietly(self.rollout_command(&[]))
    }

    pub fn host_file(&self, index: usize, path: &str) -> PathBuf {
        self.lab
            .dir()
            .join(format!("hosts.d/lab-{:03}", index + 1))
            .join(path)
    }

    /// The kernel release the lab gave the host.
    pub fn kernel(&self, index: usize) -> String {
        let kernel = std::fs::read_to_string(self.host_file(index, "kernel")).unwrap();
        kernel.trim().to_string()
    }

    /// SHA-256 of the module on the host's disk.
    pub fn module_on_disk(&self, index: usize) -> String {
        let path = format!(
            "root/lib/modules/{}/kernel/drivers/xen/xen-evtchn.ko",
            self.kernel(index)
        );
        sha256(&std::fs::read(self.host_file(index, &path)).unwrap())
    }

    /// What the host's last boot loaded, as fleet-lab records it.
    pub fn loaded(&self, index: usize) -> String {
        std::fs::read_to_string(self.host_file(index, "boot/loaded-modules")).unwrap()
    }

    pub fn boot_id(&self, index: usize) -> String {
        std::fs::read_to_string(self.host_file(index, "boot/boot_id"))
            .unwrap()
            .trim()
            .to_string()
    }

    pub fn boot_ids(&self) -> Vec<String> {
        (0..self.lab.count).map(|i| self.boot_id(i)).collect()
    }

    pub fn entries(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.journal())
            .unwrap_or_default()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// Hosts the journal shows ending, with whether they succeeded.
    pub fn host_ends(&self) -> BTreeMap<String, bool> {
        self.entries()
            .iter()
            .filter(|e| e["event"] == "host_end")
            .map(|e| {
                (
                    e["host"].as_str().unwrap().to_string(),
                    e["ok"].as_bool().unwrap(),
                )
            })
            .collect()
    }
}

/// pplay with `text` as its playbook over the lab's inventory, journaled
/// under `work`; `extra` flags go first.
pub fn small_play(lab: &Lab, work: &Path, text: &str, journal: &str, extra: &[&str]) -> Command {
    let playbook = work.join("small.yml");
    std::fs::write(&playbook, text).unwrap();
    let mut command = tool("pplay");
    command
        .args(["-O", "ConnectTimeout=2", "-i"])
        .arg(lab.dir().join("inventory.yml"))
        .args(extra)
        .arg("--journal")
        .arg(work.join(journal))
        .arg(&playbook);
    command
}

pub fn resume(journal: &Path, extra: &[&str]) -> Run {
    let mut command = tool("pplay");
    command.args(extra).arg("--resume").arg(journal);
    run(command)
}

/// The most reboots in flight at once, from the journal's timestamps: each
/// host is down from the moment its reboot is sent until it answers again.
pub fn most_down_at_once(entries: &[serde_json::Value]) -> usize {
    let mut edges: Vec<(f64, i32)> = Vec::new();
    for entry in entries {
        match entry["event"].as_str() {
            Some("reboot_issued") => edges.push((entry["time"].as_f64().unwrap(), 1)),
            Some("reboot_up") => edges.push((entry["time"].as_f64().unwrap(), -1)),
            _ => {}
        }
    }
    edges.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let (mut down, mut most) = (0, 0);
    for (_, step) in edges {
        down += step;
        most = most.max(down);
    }
    most as usize
}

/// `command` started in the background, its output discarded, for tests
/// that stop or kill it midway.
pub fn spawn_quietly(mut command: Command) -> std::process::Child {
    command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}
