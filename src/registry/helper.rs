//! Docker credential helpers (`credHelpers` and `credsStore` in an auth file):
//! `docker-credential-<name> get` with the server URL on standard input answers
//! `{"ServerURL": …, "Username": …, "Secret": …}` on standard output. The helper
//! runs with a time limit and its standard error captured; the secret it
//! answers is never logged or put in an error.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde::Deserialize;

use super::RegistryError;
use super::settings::Credentials;
use crate::config::Secret;

/// What a helper answers to `get`.
#[derive(Deserialize)]
struct Answer {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

/// The program of helper `name`: `docker-credential-<name>`, found on `PATH`.
pub fn program(name: &str) -> String {
    format!("docker-credential-{name}")
}

/// Reads a helper's standard output. `Ok(None)` for an empty secret.
/// Errors never quote the output (it holds the secret).
pub fn parse_answer(stdout: &[u8]) -> Result<Option<Credentials>, String> {
    let answer: Answer = serde_json::from_slice(stdout).map_err(|_| {
        "its answer is not the JSON object {\"Username\": …, \"Secret\": …} of the \
         credential helper protocol"
            .to_owned()
    })?;
    if answer.secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(Credentials {
        username: answer.username,
        password: Secret::new(answer.secret),
    }))
}

/// Whether a failed helper said it has no credentials for the server (the
/// protocol's "credentials not found" message): no credentials, not an error.
fn not_found(stdout: &str, stderr: &str) -> bool {
    let said = format!("{stdout} {stderr}").to_ascii_lowercase();
    said.contains("credentials not found")
}

/// The first line of a helper's error output, at most 300 characters.
fn first_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .chars()
        .take(300)
        .collect()
}

/// Runs `docker-credential-<helper> get` for `server` (the registry's key in
/// the auth file) within `timeout`. Blocks; call it from `spawn_blocking`.
/// `Ok(None)`: the helper has no credentials for that server.
pub fn get(
    helper: &str,
    registry: &str,
    server: &str,
    timeout: Duration,
) -> Result<Option<Credentials>, RegistryError> {
    let err = |message: String| RegistryError::CredentialHelper {
        registry: registry.to_owned(),
        helper: program(helper),
        message,
    };
    let mut cmd = Command::new(program(helper));
    cmd.arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt as _;
        cmd.process_group(0);
    }
    let mut child = cmd.spawn().map_err(|e| {
        err(if e.kind() == std::io::ErrorKind::NotFound {
            "the program is not on PATH; install it or remove the helper from the auth file"
                .to_owned()
        } else {
            format!("cannot start it: {e}")
        })
    })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading is reported by its status below.
        let _ = stdin.write_all(server.as_bytes());
    }
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(timeout) {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => return Err(err(format!("waiting for it failed: {e}"))),
        Err(_) => {
            kill_group(pid);
            return Err(err(format!(
                "it did not answer within {}s (registries.timeout) and was stopped",
                timeout.as_secs()
            )));
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        if not_found(&stdout, &stderr) {
            tracing::debug!(registry, helper = %program(helper), "the credential helper has no credentials");
            return Ok(None);
        }
        let said = first_line(&stderr);
        let status = out
            .status
            .code()
            .map_or_else(|| "was killed".to_owned(), |c| format!("exited with {c}"));
        return Err(err(if said.is_empty() {
            format!("`get` {status}")
        } else {
            format!("`get` {status}: {said}")
        }));
    }
    parse_answer(&out.stdout).map_err(err)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_and_never_quoted() {
        let c = parse_answer(br#"{"ServerURL":"h","Username":"u","Secret":"s3cr3t"}"#)
            .unwrap()
            .unwrap();
        assert_eq!(c.username, "u");
        assert_eq!(c.password.expose(), "s3cr3t");
        assert!(!format!("{c:?}").contains("s3cr3t"));
        assert!(
            parse_answer(br#"{"Username":"u","Secret":""}"#)
                .unwrap()
                .is_none()
        );
        let e = parse_answer(b"user s3cr3t").unwrap_err();
        assert!(!e.contains("s3cr3t"), "{e}");
    }

    #[test]
    fn credentials_not_found_is_no_credentials() {
        assert!(not_found("credentials not found in native keychain\n", ""));
        assert!(!not_found("", "pass: gpg: decryption failed"));
        assert_eq!(first_line("\n  boom \nmore"), "boom");
    }
}
