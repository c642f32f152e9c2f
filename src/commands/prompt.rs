//! Asking the operator for a secret on the terminal, with echo off, and
//! reading secrets from files for unattended runs. Secrets never pass
//! through argv, the environment or the logs.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::sync::Mutex;

use super::UsageError;
use crate::output::hidden_while;
use crate::text::read_bounded;

/// The terminal and its settings while a prompt has its echo off.
static ECHO_OFF: Mutex<Option<(libc::c_int, libc::termios)>> = Mutex::new(None);

/// Turns the terminal's echo back on if a prompt turned it off: for a
/// process about to exit in the middle of a prompt.
pub fn restore_terminal() {
    let saved = ECHO_OFF.lock().map(|mut saved| saved.take());
    if let Ok(Some((fd, termios))) = saved {
        // SAFETY: the prompt's descriptor is open while it is recorded here.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &termios) };
    }
}

/// Asks `prompt` on /dev/tty and reads one line without echoing it; `None`
/// when there is no terminal. A progress line stays off the screen meanwhile.
pub fn ask_hidden(prompt: &str) -> Option<String> {
    hidden_while(|| read_hidden(prompt))
}

fn read_hidden(prompt: &str) -> Option<String> {
    let mut tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .ok()?;
    let fd = tty.as_raw_fd();
    // SAFETY: tcgetattr/tcsetattr only read and write the termios we own.
    let mut saved: libc::termios = unsafe { std::mem::zeroed() };
    if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
        return None;
    }
    let mut silent = saved;
    silent.c_lflag &= !libc::ECHO;
    silent.c_lflag |= libc::ECHONL;
    let _ = tty.write_all(prompt.as_bytes());
    let _ = tty.flush();
    if let Ok(mut echo_off) = ECHO_OFF.lock() {
        // The settings from before any prompt are the ones to restore.
        echo_off.get_or_insert((fd, saved));
    }
    unsafe { libc::tcsetattr(fd, libc::TCSANOW, &silent) };
    let mut line = String::new();
    let read = BufReader::new(&tty).read_line(&mut line);
    restore_terminal();
    read.ok()?;
    Some(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Asks `prompt` on /dev/tty and reads one line, echoed; `None` when there
/// is no terminal.
pub fn ask_line(prompt: &str) -> Option<String> {
    hidden_while(|| read_line(prompt))
}

fn read_line(prompt: &str) -> Option<String> {
    let mut tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .ok()?;
    tty.write_all(prompt.as_bytes()).ok()?;
    let mut line = String::new();
    BufReader::new(&tty).read_line(&mut line).ok()?;
    Some(line.trim_end_matches(['\r', '\n']).to_string())
}

/// The most a secret file may hold: a password or passphrase is one line.
const MAX_SECRET_FILE: u64 = 64 * 1024;

/// The first line of a secret file, which must be a regular file of a few
/// KB at most. A file others can read gets a warning.
pub fn read_secret_file(path: &Path) -> Result<String, UsageError> {
    let unreadable = |e: &dyn std::fmt::Display| {
        UsageError::Invalid(format!("cannot read {}: {e}", path.display()))
    };
    let bytes = read_bounded(path, MAX_SECRET_FILE).map_err(|e| unreadable(&e))?;
    if std::fs::metadata(path)
        .map(|m| m.mode() & 0o077 != 0)
        .unwrap_or(false)
    {
        tracing::warn!(
            "{} can be read by other users; chmod 600 it",
            path.display()
        );
    }
    let text = String::from_utf8(bytes).map_err(|_| unreadable(&"not UTF-8"))?;
    Ok(text
        .lines()
        .next()
        .unwrap_or_default()
        .trim_end_matches('\r')
        .to_string())
}
