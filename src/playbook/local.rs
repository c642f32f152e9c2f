//! `delegate_to: localhost`: a task's command run on this machine under
//! the rules a remote command has. It goes through `sh -c` as sshd would
//! run it, in a process group of its own, with stdin closed; when the
//! task's timeout passes or the operator aborts, the whole group is killed
//! (SIGTERM, then SIGKILL after a grace period), so nothing it started is
//! left behind.

use std::io;
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use crate::ssh::{Kill, OutputSink, RemoteExit, RunEnd, Stream};

/// How long a killed group gets between SIGTERM and SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(2);

/// Runs `command` here; stdout and stderr go to their sinks as they come.
pub async fn run(
    command: &str,
    timeout: Option<Duration>,
    abort: &CancellationToken,
    sink: &mut impl OutputSink,
) -> io::Result<RunEnd> {
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let deadline = async {
        match timeout {
            Some(limit) => tokio::time::sleep(limit).await,
            None => std::future::pending().await,
        }
    };
    let output = forward(stdout, stderr, sink);
    tokio::pin!(output);
    let ended = tokio::select! {
        result = &mut output => {
            result?;
            let status = child.wait().await?;
            return Ok(RunEnd::Exited(exit_of(status)));
        }
        _ = deadline => Stopped::TimedOut,
        _ = abort.cancelled() => Stopped::Cancelled,
    };
    let kill = kill_group(&mut child).await;
    Ok(match ended {
        Stopped::TimedOut => RunEnd::TimedOut(kill),
        Stopped::Cancelled => RunEnd::Cancelled(kill),
    })
}

enum Stopped {
    TimedOut,
    Cancelled,
}

/// Both pipes to the sink until both close (every process of the group
/// that holds them has ended).
async fn forward(
    stdout: Option<impl AsyncRead + Unpin>,
    stderr: Option<impl AsyncRead + Unpin>,
    sink: &mut impl OutputSink,
) -> io::Result<()> {
    let (out_tx, mut chunks) = tokio::sync::mpsc::channel::<(Stream, Bytes)>(16);
    let err_tx = out_tx.clone();
    let readers = async move {
        tokio::join!(
            pump(stdout, Stream::Stdout, out_tx),
            pump(stderr, Stream::Stderr, err_tx)
        )
    };
    let writer = async {
        while let Some((stream, data)) = chunks.recv().await {
            sink.output(stream, data).await?;
        }
        Ok::<(), io::Error>(())
    };
    let ((out, err), written) = tokio::join!(readers, writer);
    out.and(err).and(written)
}

async fn pump(
    pipe: Option<impl AsyncRead + Unpin>,
    stream: Stream,
    chunks: tokio::sync::mpsc::Sender<(Stream, Bytes)>,
) -> io::Result<()> {
    let Some(mut pipe) = pipe else {
        return Ok(());
    };
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = pipe.read(&mut buffer).await?;
        if read == 0 {
            return Ok(());
        }
        let data = Bytes::copy_from_slice(&buffer[..read]);
        if chunks.send((stream, data)).await.is_err() {
            return Ok(());
        }
    }
}

/// SIGTERM to the group, SIGKILL after the grace period.
async fn kill_group(child: &mut Child) -> Kill {
    let Some(pid) = child.id() else {
        return Kill::Confirmed;
    };
    let group = pid as libc::pid_t;
    // SAFETY: killpg only sends a signal; the group is the child's own.
    unsafe { libc::killpg(group, libc::SIGTERM) };
    if tokio::time::timeout(KILL_GRACE, child.wait())
        .await
        .is_err()
    {
        // SAFETY: as above.
        unsafe { libc::killpg(group, libc::SIGKILL) };
    }
    match child.wait().await {
        Ok(_) => Kill::Confirmed,
        Err(error) => Kill::NotConfirmed(error.to_string()),
    }
}

fn exit_of(status: std::process::ExitStatus) -> RemoteExit {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => RemoteExit::Code(code as u32),
        (None, Some(signal)) => RemoteExit::Signal(signal.to_string()),
        (None, None) => RemoteExit::Lost,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Output kept, by stream.
    #[derive(Default)]
    struct Kept(Vec<u8>, Vec<u8>);

    impl OutputSink for Kept {
        async fn output(&mut self, stream: Stream, data: Bytes) -> io::Result<()> {
            match stream {
                Stream::Stdout => self.0.extend_from_slice(&data),
                Stream::Stderr => self.1.extend_from_slice(&data),
            }
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_local_command_gives_its_output_and_exit_code() {
        let mut kept = Kept::default();
        let never = CancellationToken::new();
        let end = run("echo out; echo err >&2; exit 3", None, &never, &mut kept).await;
        assert!(matches!(end, Ok(RunEnd::Exited(RemoteExit::Code(3)))));
        assert_eq!(
            (kept.0.as_slice(), kept.1.as_slice()),
            (&b"out\n"[..], &b"err\n"[..])
        );
    }

    #[tokio::test]
    async fn a_timeout_kills_the_whole_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("left-behind");
        // A child in the background would outlive a kill of the shell alone.
        let command = format!("(sleep 2; touch '{}') & sleep 60", marker.display());
        let never = CancellationToken::new();
        let limit = Some(Duration::from_millis(300));
        let end = run(&command, limit, &never, &mut Kept::default()).await;
        assert!(
            matches!(end, Ok(RunEnd::TimedOut(Kill::Confirmed))),
            "{end:?}"
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(!marker.exists(), "the background child survived the kill");
    }
}
