//! What a playbook file says, as serde reads it. Unknown keys, wrong types
//! and duplicate keys are refused by serde-saphyr with their position;
//! `load.rs` then checks what serde cannot (one action per task,
//! variables defined, sources readable).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::yaml::{Scalar, YamlDuration};

/// One play, as written: the whole file, or one item of a list of plays.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlayFile {
    pub name: Option<String>,
    /// Inventory groups or host patterns to run on (default: all).
    pub hosts: Option<String>,
    pub serial: Option<Serial>,
    pub max_fail: Option<Amount>,
    #[serde(default)]
    pub mode: Mode,
    #[serde(default)]
    pub order: Order,
    /// After preflight, keep one host per distinct value of this template
    /// (`"{{ host.kernel }}"`: a build host per kernel); the others are done.
    pub one_per: Option<String>,
    /// Run every task through sudo, unless a task says otherwise.
    #[serde(rename = "become")]
    pub sudo: Option<bool>,
    /// Whom `become` runs tasks as (root unless set).
    #[serde(rename = "become_user")]
    pub sudo_user: Option<String>,
    pub vars: Option<Spanned<BTreeMap<String, Scalar>>>,
    /// Run on every host, before any host is changed; a failure stops all.
    #[serde(default)]
    pub preflight: Vec<Spanned<TaskSpec>>,
    pub tasks: Vec<Spanned<TaskSpec>>,
    /// Run on a host whose task failed, e.g. to put the old module back.
    #[serde(default)]
    pub on_failure: Vec<Spanned<TaskSpec>>,
    /// Run around each batch (window mode: each host), e.g. to drain the
    /// batch from a scheduler; a failure fails the batch's hosts untouched.
    #[serde(default)]
    pub before_batch: Vec<Spanned<TaskSpec>>,
    /// Run after each batch, whatever became of its hosts (undrain).
    #[serde(default)]
    pub after_batch: Vec<Spanned<TaskSpec>>,
}

/// How hosts are rolled: in waves, or as a sliding window.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// A batch starts when the previous one has finished.
    #[default]
    Batch,
    /// A host starts as soon as another finishes, `serial` at most in flight.
    Window,
}

/// The order hosts are taken in.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    #[default]
    Inventory,
    Sorted,
    Shuffle,
}

/// A number of hosts, or a share of the play's hosts (`"25%"`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Amount {
    Count(usize),
    Percent(f64),
}

impl Amount {
    /// How many hosts out of `total`; a share rounds up to at least one.
    pub fn of(self, total: usize) -> usize {
        match self {
            Amount::Count(count) => count,
            Amount::Percent(percent) => ((percent / 100.0 * total as f64).ceil() as usize).max(1),
        }
    }

    /// How many failures out of `total` a failure budget allows: a share
    /// rounds down, as Ansible's max_fail_percentage does ("10%" of 12
    /// hosts allows 1: 2 would be 16.7 %).
    pub fn allowed_of(self, total: usize) -> usize {
        match self {
            Amount::Count(count) => count,
            Amount::Percent(percent) => (percent / 100.0 * total as f64).floor() as usize,
        }
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Amount::Count(count) => write!(f, "{count}"),
            Amount::Percent(percent) => write!(f, "{percent}%"),
        }
    }
}

const AMOUNT: &str = "a number of hosts or a percentage from 0% to 100% like \"10%\"";

fn parse_amount<E: de::Error>(text: &str) -> Result<Amount, E> {
    let parsed = match text.trim().strip_suffix('%') {
        Some(number) => number
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|p| (0.0..=100.0).contains(p))
            .map(Amount::Percent),
        None => text.trim().parse::<usize>().ok().map(Amount::Count),
    };
    parsed.ok_or_else(|| E::custom(format!("expected {AMOUNT}, found `{text}`")))
}

struct AmountVisitor;

impl<'de> Visitor<'de> for AmountVisitor {
    type Value = Amount;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(AMOUNT)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Amount, E> {
        usize::try_from(v)
            .map(Amount::Count)
            .map_err(|_| E::custom("number too large"))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Amount, E> {
        parse_amount(v)
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(AmountVisitor)
    }
}

/// `serial:` one amount, or a list that ramps up (`[1, 5, "25%"]`); the
/// last one repeats until every host has had its turn.
#[derive(Debug, Clone, PartialEq)]
pub struct Serial(pub Vec<Amount>);

impl<'de> Deserialize<'de> for Serial {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SerialVisitor;
        impl<'de> Visitor<'de> for SerialVisitor {
            type Value = Serial;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "{AMOUNT}, or a list of them")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Serial, E> {
                AmountVisitor.visit_u64(v).map(|a| Serial(vec![a]))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Serial, E> {
                parse_amount(v).map(|a| Serial(vec![a]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Serial, A::Error> {
                let mut amounts = Vec::new();
                while let Some(amount) = seq.next_element::<Amount>()? {
                    amounts.push(amount);
                }
                Ok(Serial(amounts))
            }
        }
        deserializer.deserialize_any(SerialVisitor)
    }
}

/// One task: a name, exactly one action, and options common to all.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    pub name: Option<String>,
    pub run: Option<String>,
    pub copy: Option<CopySpec>,
    pub sync: Option<SyncSpec>,
    pub fetch: Option<FetchSpec>,
    pub kill: Option<KillSpec>,
    pub reboot: Option<RebootSpec>,
    pub wait_for: Option<WaitForSpec>,
    #[serde(rename = "assert")]
    pub assertion: Option<AssertSpec>,
    pub pause: Option<PauseSpec>,
    /// Keep the trimmed stdout of `run` as this variable for later tasks.
    pub register: Option<String>,
    /// Exit codes of `run` that count as success (default `[0]`).
    pub ok_codes: Option<Vec<u32>>,
    /// Run the task only when this condition holds (see `condition.rs`).
    pub when: Option<String>,
    /// When `run` changed the host: an exit code, an output wildcard, or
    /// `true`/`false` (default: changed, unless `read_only`).
    pub changed_when: Option<ChangedWhen>,
    /// Skip the task when this remote path exists.
    pub creates: Option<String>,
    /// Skip the task when this remote command succeeds.
    pub unless: Option<String>,
    /// Limit on the task's commands (not on reboot, which has its own).
    pub timeout: Option<YamlDuration>,
    /// Changes nothing, so `--check` may run it.
    #[serde(default)]
    pub read_only: bool,
    /// Run on `localhost` or another inventory host, with this host's variables.
    pub delegate_to: Option<String>,
    /// Run once per play (per batch in batch hooks), the outcome shared.
    #[serde(default)]
    pub run_once: bool,
    /// Run the task's commands through sudo (overrides the play's).
    #[serde(rename = "become")]
    pub sudo: Option<bool>,
    /// Whom `become` runs the task as (overrides the play's).
    #[serde(rename = "become_user")]
    pub sudo_user: Option<String>,
}

/// `changed_when:` of a `run` task: how its command says it changed the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangedWhen {
    /// `true`: always; `false`: never (a command that only reads).
    Always(bool),
    /// This exit code (accepted, as if in `ok_codes`) means changed; 0 means not.
    ExitCode(u32),
    /// A shell-style wildcard (`*`, `?`) some line of stdout matches.
    Output(String),
}

impl<'de> Deserialize<'de> for ChangedWhen {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ChangedWhenVisitor;
        impl Visitor<'_> for ChangedWhenVisitor {
            type Value = ChangedWhen;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("true, false, an exit code from 1 to 255, or an output pattern")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<ChangedWhen, E> {
                Ok(ChangedWhen::Always(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ChangedWhen, E> {
                match v {
                    1..=255 => Ok(ChangedWhen::ExitCode(v as u32)),
                    _ => Err(E::custom(format!(
                        "expected an exit code from 1 to 255 (0 is `not changed`), found {v}"
                    ))),
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ChangedWhen, E> {
                match v.is_empty() {
                    true => Err(E::custom("expected an output pattern, found an empty one")),
                    false => Ok(ChangedWhen::Output(v.to_string())),
                }
            }
        }
        deserializer.deserialize_any(ChangedWhenVisitor)
    }
}

/// `copy:` pcp's semantics for one file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopySpec {
    /// Local file.
    pub src: String,
    /// Remote file or directory.
    pub dest: String,
    /// Octal mode as a string (`"0644"`); default: the local file's.
    pub mode: Option<String>,
    /// Keep the previous destination as DEST+SUFFIX (`true` means `.bak`).
    pub backup: Option<Scalar>,
    #[serde(default)]
    pub skip_unchanged: bool,
    pub owner: Option<String>,
    pub group: Option<String>,
}

/// `sync:` prsync's semantics for one local tree (always recursive; `dir/`
/// syncs what the directory holds, `dir` the directory itself).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq, Hash)]
#[serde(deny_unknown_fields)]
pub struct SyncSpec {
    /// Local file or directory.
    pub src: String,
    /// Remote directory (or file, for one file).
    pub dest: String,
    /// Symbolic links as links, owners and groups (as root): prsync -a.
    #[serde(default)]
    pub archive: bool,
    #[serde(default)]
    pub delete: bool,
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default)]
    pub checksum: bool,
    #[serde(default)]
    pub compress: bool,
    /// Keep replaced and deleted files as NAME+SUFFIX (`true` means `~`).
    pub backup: Option<String>,
}

/// `fetch:` pslurp's semantics: into DEST/HOST/NAME.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FetchSpec {
    pub src: String,
    /// Local directory; each host gets its own directory under it.
    pub dest: String,
    /// DEST is the local file itself (DEST/NAME when it ends in `/`), not
    /// a directory per host: for files named by a fact, such as a module
    /// built for `{{ host.kernel }}`.
    #[serde(default)]
    pub flat: bool,
}

/// `kill:` pnuke's semantics.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KillSpec {
    pub pattern: String,
    #[serde(default = "default_signal")]
    pub signal: String,
    /// Signal pid 1 and the host's sshd too (protected otherwise).
    #[serde(default)]
    pub force: bool,
}

fn default_signal() -> String {
    "KILL".into()
}

/// `reboot:` a verified reboot: down, back with a new boot_id, test, stable.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RebootSpec {
    #[serde(default = "default_reboot_command")]
    pub command: String,
    /// Longest wait for the connection to drop.
    #[serde(default = "default_down_timeout")]
    pub down_timeout: YamlDuration,
    /// Longest wait for the host to answer with a new boot_id.
    #[serde(default = "default_up_timeout")]
    pub up_timeout: YamlDuration,
    /// Retried until it succeeds, after the host is back.
    #[serde(default = "default_test_command")]
    pub test_command: String,
    #[serde(default = "default_test_timeout")]
    pub test_timeout: YamlDuration,
    /// How long the host must then stay reachable.
    #[serde(default = "default_stable_for")]
    pub stable_for: YamlDuration,
}

fn default_reboot_command() -> String {
    "reboot".into()
}
fn default_test_command() -> String {
    "true".into()
}
fn default_down_timeout() -> YamlDuration {
    YamlDuration(Duration::from_secs(120))
}
fn default_up_timeout() -> YamlDuration {
    YamlDuration(Duration::from_secs(600))
}
fn default_test_timeout() -> YamlDuration {
    YamlDuration(Duration::from_secs(300))
}
fn default_stable_for() -> YamlDuration {
    YamlDuration(Duration::from_secs(10))
}

/// `wait_for:` a command retried until it succeeds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitForSpec {
    pub command: String,
    #[serde(default = "default_wait_timeout")]
    pub timeout: YamlDuration,
    #[serde(default = "default_interval")]
    pub interval: YamlDuration,
}

fn default_wait_timeout() -> YamlDuration {
    YamlDuration(Duration::from_secs(300))
}
fn default_interval() -> YamlDuration {
    YamlDuration(Duration::from_secs(2))
}

/// `assert:` a command whose trimmed stdout must equal or match a value.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssertSpec {
    pub command: String,
    pub equals: Option<String>,
    /// A shell-style wildcard (`*`, `?`) the whole output must match.
    pub matches: Option<String>,
    /// Said when the assertion fails.
    pub message: Option<String>,
}

/// `pause:` a fixed wait, or until the operator confirms on the terminal.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PauseSpec {
    pub duration: Option<YamlDuration>,
    pub prompt: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_share_rounds_up_and_a_failure_budget_share_down() {
        let ten_percent = Amount::Percent(10.0);
        assert_eq!(ten_percent.of(12), 2);
        assert_eq!(ten_percent.allowed_of(12), 1);
        assert_eq!(ten_percent.allowed_of(9), 0);
        assert_eq!(Amount::Count(3).allowed_of(12), 3);
        let none: Amount = parse_amount::<serde::de::value::Error>("0%").unwrap();
        assert_eq!(none.allowed_of(100), 0);
        assert!(parse_amount::<serde::de::value::Error>("100.5%").is_err());
    }
}
