//! `fetch:` pslurp's semantics inside a playbook: the remote file streams
//! into DEST/HOST/NAME through a temporary file beside it, renamed into
//! place only once the whole file arrived, so memory stays bounded and a
//! failed pull never leaves a partial file under the final name.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use super::host::{HostRun, TaskError};
use super::rollout::TaskStatus;
use crate::model::file_names;
use crate::ssh::{shell_quote, RemoteExit};

pub async fn fetch(
    host: &mut HostRun,
    src: &str,
    dest: &str,
    timeout: Option<Duration>,
) -> Result<TaskStatus, TaskError> {
    let failed = |message: String| TaskError::Failed(message);
    let name = Path::new(src)
        .file_name()
        .ok_or_else(|| failed(format!("fetch src `{src}` has no file name")))?;
    let host_dir = file_names(std::slice::from_ref(&host.host)).remove(0);
    let dir = Path::new(dest).join(host_dir);
    std::fs::create_dir_all(&dir).map_err(|e| failed(format!("{}: {e}", dir.display())))?;
    let final_path = dir.join(name);
    let temp = dir.join(format!(
        ".{}.pplay-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let mut file = File::create(&temp).map_err(|e| failed(format!("{}: {e}", temp.display())))?;
    let mut bytes = 0u64;
    let command = format!("cat -- {}", shell_quote(src));
    let result = host
        .exec_streaming(&command, &[], timeout, &mut |data| {
            bytes += data.len() as u64;
            file.write_all(data)
        })
        .await;
    let finished = match result {
        Ok(captured) if captured.exit == RemoteExit::Code(0) => file
            .sync_all()
            .and_then(|()| std::fs::rename(&temp, &final_path))
            .map_err(|e| failed(format!("{}: {e}", final_path.display()))),
        Ok(captured) => Err(failed(captured.failure())),
        Err(error) => Err(error),
    };
    if finished.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    finished.map(|()| TaskStatus::Done(format!("{bytes} bytes to {}", final_path.display())))
}
