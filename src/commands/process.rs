//! What the tools need of the process they run in, kept at the binary's
//! edge: logging, the open-files limit (and how many hosts it allows), a
//! watch on stdout's reader, colour, and a line on stderr that cannot panic.

use std::io::{IsTerminal, Write};

use tokio_util::sync::CancellationToken;

/// Sets up `tracing` on stderr: warnings by default, more with -v/-vv, or RUST_LOG.
pub fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "fleet=debug",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .without_time()
        .try_init();
}

/// Lifts the open-files limit to its hard maximum (each host in flight
/// holds a socket, and `-p 1000` must not die at the default 1024), and
/// returns the soft limit now in force.
pub fn raise_open_file_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return u64::MAX;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return raised.rlim_cur;
            }
        }
    }
    limit.rlim_cur
}

/// Open files kept aside for everything but the hosts: stdio, the journal,
/// known_hosts, the runtime's own.
const RESERVED_FILES: u64 = 24;
/// Below this open-files limit not even one host can run reliably.
const MIN_OPEN_FILES: u64 = RESERVED_FILES + 8;

/// Raises the open-files limit and says how many hosts it lets be in
/// flight at once, each holding `per_host` files (its socket, an agent
/// socket while it authenticates, its output files). A limit too low for
/// even one host is refused before any is contacted: no host may fail for
/// a reason of this machine's.
pub fn hosts_the_file_limit_allows(tool: &str, per_host: u64) -> Result<(usize, u64), String> {
    let limit = raise_open_file_limit();
    if limit < MIN_OPEN_FILES + per_host {
        return Err(format!(
            "the open files limit is {limit}; {tool} needs at least {} (ulimit -n)",
            MIN_OPEN_FILES + per_host
        ));
    }
    let allowed = ((limit - RESERVED_FILES) / per_host.max(1)).max(1);
    Ok((usize::try_from(allowed).unwrap_or(usize::MAX), limit))
}

/// `wanted` hosts in flight (`-p`), lowered to what the open-files limit
/// allows, saying so once.
pub fn parallelism_within_file_limit(
    tool: &str,
    wanted: usize,
    per_host: u64,
) -> Result<usize, String> {
    let (allowed, limit) = hosts_the_file_limit_allows(tool, per_host)?;
    if wanted <= allowed {
        return Ok(wanted);
    }
    notice(
        tool,
        &format!("-p {wanted} lowered to {allowed}: open files limit is {limit}"),
    );
    Ok(allowed)
}

/// Cancels `token` when the reader of stdout goes away (`prun ... | head`
/// read what it wanted and left): nobody reads any more, so the run stops
/// and its remote commands are killed, as pssh would die of SIGPIPE. A
/// thread waits for the pipe's end, so this holds even while the hosts
/// print nothing. Only for pipes and sockets: a file or terminal has no
/// such end.
pub fn cancel_when_stdout_closes(token: CancellationToken) {
    // SAFETY: fstat writes only the struct we own.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(libc::STDOUT_FILENO, &mut stat) } != 0 {
        return;
    }
    let kind = stat.st_mode & libc::S_IFMT;
    if kind != libc::S_IFIFO && kind != libc::S_IFSOCK {
        return;
    }
    std::thread::spawn(move || {
        let mut stdout = libc::pollfd {
            fd: libc::STDOUT_FILENO,
            events: 0,
            revents: 0,
        };
        // SAFETY: poll reads and writes only the one pollfd we own; with no
        // events asked, it returns only on POLLERR or POLLHUP.
        while unsafe { libc::poll(&mut stdout, 1, -1) } < 0 {}
        token.cancel();
    });
}

/// One line to the operator on stderr, before the output thread runs (or
/// after it ended); a closed stderr (a hung-up terminal) is no reason to
/// panic.
pub fn notice(tool: &str, message: &str) {
    let _ = writeln!(std::io::stderr(), "{tool}: {message}");
}

/// Colour only on a terminal and never with NO_COLOR set.
pub fn stdout_color() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}
