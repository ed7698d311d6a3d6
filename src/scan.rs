//! The scanner edge of the vulnerability gate (`scan:`): runs the configured
//! command with an image reference added, within `scan.timeout` (then its
//! whole process group is killed), and returns its standard output, which
//! the core reads as Trivy or Grype JSON. The output is never logged; an
//! error carries the exit status and the first line of standard error.

use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Largest report read (a big image's Trivy JSON is a few MiB).
const OUTPUT_LIMIT: usize = 64 << 20;

/// Runs `command… image` and returns its standard output. Blocks; call it
/// from `spawn_blocking`.
pub fn run(command: &[String], image: &str, timeout: Duration) -> Result<Vec<u8>, String> {
    let Some((program, args)) = command.split_first() else {
        return Err("scan.command is empty".to_owned());
    };
    let mut cmd = Command::new(program);
    cmd.args(args)
        .arg(image)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt as _;
        cmd.process_group(0);
    }
    let child = cmd.spawn().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            format!("the scanner `{program}` is not on PATH")
        } else {
            format!("cannot start the scanner `{program}`: {e}")
        }
    })?;
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(timeout) {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => return Err(format!("waiting for the scanner failed: {e}")),
        Err(_) => {
            kill_group(pid);
            return Err(format!(
                "the scanner did not finish within {}s (scan.timeout) and was stopped",
                timeout.as_secs()
            ));
        }
    };
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let said: String = stderr
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("")
            .chars()
            .take(300)
            .collect();
        let status = out
            .status
            .code()
            .map_or_else(|| "was killed".to_owned(), |c| format!("exited with {c}"));
        return Err(format!("the scanner {status}: {said}"));
    }
    if out.stdout.len() > OUTPUT_LIMIT {
        return Err(format!(
            "the scanner's report is larger than {} MiB",
            OUTPUT_LIMIT >> 20
        ));
    }
    Ok(out.stdout)
}

#[cfg(unix)]
fn kill_group(pid: u32) {
    if let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

#[cfg(not(unix))]
fn kill_group(_pid: u32) {}
