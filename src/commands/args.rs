//! The flags shared by the pssh-style tools, as clap definitions, and their
//! conversion into validated settings before any host is contacted.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::builder::FalseyValueParser;
use clap::{ArgAction, Args};

use super::prompt::{ask_hidden, read_secret_file};
use super::UsageError;
use crate::duration::parse_seconds;
use crate::inventory::HostSelection;
use crate::model::Host;
use crate::output::Inline;
use crate::ssh::{ConfigFile, Secrets, SshOptions};

/// The flags every pssh-style tool shares: hosts, connection, output, help.
#[derive(Debug, Args)]
pub struct CommonArgs {
    #[command(flatten)]
    pub targets: TargetArgs,
    #[command(flatten)]
    pub connect: ConnectArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    /// Print help (-h is pssh's hosts file)
    #[arg(long, action = ArgAction::Help)]
    help: Option<bool>,
}

/// Which hosts: `-h`, `-H`, `-g`, `-l`.
#[derive(Debug, Args)]
pub struct TargetArgs {
    /// Hosts file: one `[user@]host[:port]` (or `host[:port] user`) per line; ranges like web[01-20] allowed
    #[arg(short = 'h', long = "hosts", value_name = "HOST_FILE")]
    pub host_files: Vec<PathBuf>,
    /// Hosts on the command line, space separated, e.g. "web[1-3] root@db1:2222"
    #[arg(short = 'H', long = "host", value_name = "HOST_STRING")]
    pub host_strings: Vec<String>,
    /// Only the hosts whose name matches this wildcard (* and ?)
    #[arg(short = 'g', long = "host-glob", value_name = "GLOB")]
    pub glob: Option<String>,
    /// Remote user for hosts whose entry names none
    #[arg(short = 'l', long = "user", env = "PSSH_USER", value_name = "USER")]
    pub user: Option<String>,
}

/// How to connect and how many at once: `-p -t -O -x -X --identity -v`.
#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// Most hosts in flight at once
    #[arg(short = 'p', long = "par", env = "PSSH_PAR", default_value_t = 32, value_name = "PAR",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub parallelism: u32,
    /// Per-host command timeout in seconds (0: none; at most 30 days)
    #[arg(
        short = 't',
        long = "timeout",
        env = "PSSH_TIMEOUT",
        default_value = "60",
        value_name = "SECONDS",
        value_parser = parse_seconds
    )]
    pub timeout: Duration,
    /// SSH option as Keyword=value, e.g. StrictHostKeyChecking=accept-new (repeatable; PSSH_OPTIONS adds one)
    #[arg(short = 'O', long = "option", value_name = "OPTION")]
    pub options: Vec<String>,
    /// Extra ssh arguments as one string, e.g. "-i key -o Port=2222" (repeatable)
    #[arg(
        short = 'x',
        long = "extra-args",
        allow_hyphen_values = true,
        value_name = "ARGS"
    )]
    pub extra_args: Vec<String>,
    /// One extra ssh argument (repeatable)
    #[arg(
        short = 'X',
        long = "extra-arg",
        allow_hyphen_values = true,
        value_name = "ARG"
    )]
    pub extra_arg: Vec<String>,
    /// Private key to authenticate with (repeatable); same as -O IdentityFile=KEY
    #[arg(long = "identity", value_name = "KEY")]
    pub identities: Vec<PathBuf>,
    /// ssh_config file to read instead of ~/.ssh/config (`none`: read none)
    #[arg(short = 'F', long = "ssh-config", value_name = "FILE")]
    pub ssh_config: Option<PathBuf>,
    /// Ask once for a password, used for password and keyboard-interactive auth on every host
    #[arg(short = 'A', long = "askpass")]
    pub askpass: bool,
    /// Read the password from the first line of FILE instead of asking (unattended -A)
    #[arg(long = "password-file", value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Read the passphrase of encrypted keys from the first line of FILE instead of asking
    #[arg(long = "passphrase-file", value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Run the command as root through sudo; with -A, sudo's password prompt is answered too
    #[arg(long = "sudo")]
    pub sudo: bool,
    /// Run the command as USER through sudo (implies --sudo)
    #[arg(long = "sudo-user", value_name = "USER")]
    pub sudo_user: Option<String>,
    /// Reach every host through these bastions, as [user@]host[:port],...
    #[arg(short = 'J', long = "jump", value_name = "JUMPS")]
    pub jump: Option<String>,
    /// More logging on stderr (-v, -vv); RUST_LOG also works
    #[arg(short = 'v', long = "verbose", action = ArgAction::Count)]
    pub verbose: u8,
}

/// Where output goes: `-o -e -i --inline-stdout -P --failed-hosts`.
#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Write each host's stdout to OUTDIR/<host>
    #[arg(
        short = 'o',
        long = "outdir",
        env = "PSSH_OUTDIR",
        value_name = "OUTDIR"
    )]
    pub outdir: Option<PathBuf>,
    /// Write each host's stderr to ERRDIR/<host>
    #[arg(
        short = 'e',
        long = "errdir",
        env = "PSSH_ERRDIR",
        value_name = "ERRDIR"
    )]
    pub errdir: Option<PathBuf>,
    /// Print each host's stdout and stderr after its status line
    #[arg(short = 'i', long = "inline", env = "PSSH_INLINE", action = ArgAction::SetTrue,
          value_parser = FalseyValueParser::new())]
    pub inline: bool,
    /// Print each host's stdout (only) after its status line
    #[arg(long = "inline-stdout")]
    pub inline_stdout: bool,
    /// Print output as `host: line` while it arrives
    #[arg(short = 'P', long = "print", env = "PSSH_PRINT", action = ArgAction::SetTrue,
          value_parser = FalseyValueParser::new())]
    pub print: bool,
    /// Write the hosts that did not succeed to FILE, as a hosts file for a re-run
    #[arg(long = "failed-hosts", value_name = "FILE")]
    pub failed_hosts: Option<PathBuf>,
    /// Print each distinct output once, under the hosts that gave it (as clush -b)
    #[arg(short = 'b', long = "gather")]
    pub gather: bool,
    /// With --gather, compare and print stderr too
    #[arg(long = "gather-stderr")]
    pub gather_stderr: bool,
    /// JSON Lines on stdout: one object per host, then a summary (schema in README)
    #[arg(long = "json", conflicts_with_all = ["gather", "print", "inline", "inline_stdout"])]
    pub json: bool,
    /// No summary and no progress line on stderr
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
    /// After the run, a table of every host's status, exit code and duration, slowest first
    #[arg(long = "summary")]
    pub summary: bool,
    /// Most output -i and -b hold per host and stream (e.g. 64M, 1G); the rest is cut, with a marker
    #[arg(long = "output-limit", value_name = "SIZE", default_value = "64M", value_parser = parse_size)]
    pub output_limit: usize,
}

/// A size in bytes, or with a K, M or G suffix (powers of 1024).
fn parse_size(text: &str) -> Result<usize, String> {
    let trimmed = text.trim();
    let (number, scale) = match trimmed.char_indices().last() {
        Some((at, 'K' | 'k')) => (&trimmed[..at], 1 << 10),
        Some((at, 'M' | 'm')) => (&trimmed[..at], 1 << 20),
        Some((at, 'G' | 'g')) => (&trimmed[..at], 1 << 30),
        _ => (trimmed, 1),
    };
    number
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .filter(|&bytes| bytes > 0)
        .ok_or_else(|| format!("expected a size like 64M, 512K or 1G, found `{text}`"))
}

impl TargetArgs {
    /// Loads the hosts; an empty selection is an error, not a silent no-op.
    pub fn load_hosts(&self) -> Result<Vec<Host>, UsageError> {
        let selection = HostSelection {
            files: self.host_files.clone(),
            host_strings: self.host_strings.clone(),
            glob: self.glob.clone(),
        };
        let hosts = selection.load()?;
        if hosts.is_empty() {
            let files: Vec<String> = self
                .host_files
                .iter()
                .map(|file| file.display().to_string())
                .collect();
            let why = match (self.glob.is_some(), files.is_empty()) {
                (true, _) => "no host matches the -g pattern".to_string(),
                (false, true) => "no hosts given: use -h HOST_FILE or -H HOST_STRING".to_string(),
                (false, false) => format!(
                    "no hosts in {}: only blank lines and comments",
                    files.join(", ")
                ),
            };
            return Err(UsageError::Invalid(why));
        }
        Ok(hosts)
    }
}

impl ConnectArgs {
    /// Makes the relative paths of these flags relative to `base` (a
    /// resumed run's directory): keys, ssh_config, secret files.
    pub fn resolve_against(&mut self, base: &Path) {
        for path in self.identities.iter_mut() {
            *path = base.join(&*path);
        }
        for path in [&mut self.password_file, &mut self.passphrase_file]
            .into_iter()
            .flatten()
        {
            *path = base.join(&*path);
        }
        if let Some(config) = &mut self.ssh_config {
            if config.as_os_str() != "none" {
                *config = base.join(&*config);
            }
        }
    }

    /// Folds `-l`, `-J`, `--identity`, `-O`, `PSSH_OPTIONS`, `-x` and `-X` into SSH options, in that
    /// order of precedence (the first value given for a keyword wins).
    pub fn ssh_options(&self, user: Option<&str>) -> Result<SshOptions, UsageError> {
        let mut options = SshOptions::default();
        if let Some(user) = user {
            options.set("User", user)?;
        }
        if let Some(jumps) = &self.jump {
            options.set("ProxyJump", jumps)?;
        }
        options
            .identity_files
            .extend(self.identities.iter().cloned());
        for option in &self.options {
            options.apply_option(option)?;
        }
        // pssh's PSSH_OPTIONS adds to -O (an -O of the same keyword wins).
        if let Some(option) = std::env::var_os("PSSH_OPTIONS").filter(|o| !o.is_empty()) {
            let option = option.to_str().ok_or_else(|| {
                UsageError::Invalid("PSSH_OPTIONS: expected UTF-8 Keyword=value".into())
            })?;
            options
                .apply_option(option)
                .map_err(|e| UsageError::Invalid(format!("PSSH_OPTIONS: {e}")))?;
        }
        for args in &self.extra_args {
            options.apply_ssh_arg_string(args)?;
        }
        options.apply_ssh_args(&self.extra_arg)?;
        Ok(options)
    }

    /// The ssh_config to apply: `-F FILE`, none with `-F none`, else
    /// ~/.ssh/config when it exists.
    pub fn ssh_config(&self) -> Result<Option<ConfigFile>, UsageError> {
        match &self.ssh_config {
            Some(path) if path.as_os_str() == "none" => Ok(None),
            Some(path) => Ok(Some(ConfigFile::load(path)?)),
            None => Ok(ConfigFile::load_default()?),
        }
    }

    /// The password and passphrase to use, from files or asked on the
    /// terminal; keys' passphrases are asked for only when a key needs one.
    pub fn secrets(&self) -> Result<Secrets, UsageError> {
        let password = match (&self.password_file, self.askpass) {
            (Some(path), _) => Some(read_secret_file(path)?),
            (None, true) => Some(ask_hidden("Password: ").ok_or_else(|| {
                UsageError::Invalid(
                    "-A needs a terminal to ask on; use --password-file FILE".into(),
                )
            })?),
            (None, false) => None,
        };
        let passphrase = self
            .passphrase_file
            .as_deref()
            .map(read_secret_file)
            .transpose()?;
        Ok(Secrets {
            password,
            passphrase,
            ask: Some(Box::new(ask_hidden)),
        })
    }

    /// Whom `--sudo` / `--sudo-user` run commands as, checked; `None`
    /// without either flag.
    pub fn sudo_user(&self) -> Result<Option<&str>, UsageError> {
        let user = match (&self.sudo_user, self.sudo) {
            (Some(user), _) => user.as_str(),
            (None, true) => "root",
            (None, false) => return Ok(None),
        };
        crate::model::check_user(user)
            .map_err(|why| UsageError::Invalid(format!("--sudo-user: {why}")))?;
        Ok(Some(user))
    }

    /// `-t` as a limit; 0 means none.
    pub fn command_timeout(&self) -> Option<Duration> {
        (!self.timeout.is_zero()).then_some(self.timeout)
    }
}

impl OutputArgs {
    /// What the status printer shows after each status line.
    pub fn inline_mode(&self) -> Inline {
        match (self.inline, self.inline_stdout) {
            (true, _) => Inline::StdoutAndStderr,
            (false, true) => Inline::Stdout,
            (false, false) => Inline::Off,
        }
    }
}
