//! Shared helpers for the tests that run against the test bed: a rootless Podman
//! API socket and a plain-HTTP registry on 127.0.0.1, set up by `scripts/testbed.sh`.
//!
//! The test bed is described by `/run/magos-testbed/env` (shell `KEY=VALUE` lines;
//! `MAGOS_TESTBED_ENV` names another file). Variables of the process environment
//! override the file's values.
//!
//! The skip rule: every test starts with
//! `let Some(tb) = support::testbed() else { return };`. When the test bed is not
//! available and `MAGOS_REQUIRE_PODMAN=1`, [`testbed`] panics with the reason (a
//! missing test bed is a failure, never a silent pass); otherwise it prints
//! `skipped: podman not available (…)` on standard error and the test returns.
//!
//! Network rule: these helpers only reach 127.0.0.1 and unix sockets.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

mod activated;
pub use activated::Activated;

/// Where `scripts/testbed.sh` writes the description of the test bed.
pub const DEFAULT_ENV_FILE: &str = "/run/magos-testbed/env";

/// How long one HTTP exchange may take before the helpers give up.
const IO_TIMEOUT: Duration = Duration::from_secs(60);

/// The running test bed, as described by its env file.
#[derive(Debug, Clone)]
pub struct Testbed {
    vars: BTreeMap<String, String>,
    /// The non-root user that runs rootless Podman.
    pub user: String,
    /// Its numeric user id.
    pub uid: u32,
    /// Its numeric group id.
    pub gid: u32,
    /// Its `XDG_RUNTIME_DIR` (`/run/user/<uid>`).
    pub runtime_dir: PathBuf,
    /// `CONTAINER_HOST`: `unix://` + the path of the libpod API socket.
    pub container_host: String,
    /// The path of the libpod API socket.
    pub podman_socket: PathBuf,
    /// The registry's `host:port` (always on 127.0.0.1, plain HTTP).
    pub registry: String,
}

/// The test bed, or `None` (after printing `skipped: podman not available`) when it
/// is not available and `MAGOS_REQUIRE_PODMAN` is not `1`. The message goes to
/// the process's standard error, visible even when the test passes.
///
/// # Panics
/// When the test bed is not available and `MAGOS_REQUIRE_PODMAN=1`.
pub fn testbed() -> Option<&'static Testbed> {
    static TESTBED: OnceLock<Result<Testbed, String>> = OnceLock::new();
    match TESTBED.get_or_init(load) {
        Ok(tb) => Some(tb),
        Err(reason) => {
            if std::env::var("MAGOS_REQUIRE_PODMAN").as_deref() == Ok("1") {
                panic!(
                    "the podman test bed is required (MAGOS_REQUIRE_PODMAN=1) but not available: \
                     {reason}; start it as root with scripts/testbed.sh"
                );
            }
            // Written to the process's standard error, not through `eprintln!`, which
            // the test harness captures and hides for passing tests.
            let test = std::thread::current()
                .name()
                .unwrap_or("a podman test")
                .to_string();
            let _ = writeln!(
                io::stderr(),
                "\nskipped: podman not available ({test}: {reason})"
            );
            None
        }
    }
}

fn load() -> Result<Testbed, String> {
    let path = std::env::var_os("MAGOS_TESTBED_ENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_ENV_FILE));
    let mut vars = match std::fs::read_to_string(&path) {
        Ok(text) => parse_env(&text),
        Err(e) if e.kind() == io::ErrorKind::NotFound => BTreeMap::new(),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let file_keys: Vec<String> = vars.keys().cloned().collect();
    for key in file_keys {
        if let Ok(value) = std::env::var(&key) {
            vars.insert(key, value);
        }
    }
    for (key, value) in std::env::vars() {
        if key.starts_with("MAGOS_TEST") {
            vars.insert(key, value);
        }
    }
    if vars.get("MAGOS_TESTBED_READY").map(String::as_str) != Some("1") {
        return Err(format!(
            "{} is missing or does not say MAGOS_TESTBED_READY=1",
            path.display()
        ));
    }
    let get = |key: &str| {
        vars.get(key)
            .filter(|v| !v.is_empty())
            .cloned()
            .ok_or_else(|| format!("{key} is not set in {}", path.display()))
    };
    let number = |key: &str| {
        get(key)?
            .parse::<u32>()
            .map_err(|e| format!("{key} in {} is not a number: {e}", path.display()))
    };
    let container_host = get("CONTAINER_HOST")?;
    let podman_socket =
        PathBuf::from(container_host.strip_prefix("unix://").ok_or_else(|| {
            format!("CONTAINER_HOST {container_host:?} is not a unix:// address")
        })?);
    let registry = get("MAGOS_TEST_REGISTRY")?;
    if !registry.starts_with("127.0.0.1:") {
        return Err(format!(
            "MAGOS_TEST_REGISTRY {registry:?} is not on 127.0.0.1; tests reach only this machine"
        ));
    }
    let tb = Testbed {
        user: get("MAGOS_TESTBED_USER")?,
        uid: number("MAGOS_TESTBED_UID")?,
        gid: number("MAGOS_TESTBED_GID")?,
        runtime_dir: PathBuf::from(get("XDG_RUNTIME_DIR_TESTBED")?),
        container_host,
        podman_socket,
        registry,
        vars,
    };
    match unix_http(&tb.podman_socket, "GET", "/v5.0.0/libpod/_ping", &[]) {
        Ok(r) if r.status == 200 => {}
        Ok(r) => {
            return Err(format!(
                "the libpod API at {} answered _ping with HTTP {}",
                tb.podman_socket.display(),
                r.status
            ));
        }
        Err(e) => {
            return Err(format!(
                "the libpod API at {} does not answer: {e}",
                tb.podman_socket.display()
            ));
        }
    }
    Ok(tb)
}

/// Parses shell `KEY=VALUE` lines: comments and blank lines are skipped, an
/// optional `export ` is dropped, and one pair of surrounding quotes is removed.
pub fn parse_env(text: &str) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim();
        let value = ['"', '\'']
            .iter()
            .find_map(|q| {
                value
                    .strip_prefix(*q)
                    .and_then(|v| v.strip_suffix(*q))
                    .filter(|_| value.len() >= 2)
            })
            .unwrap_or(value);
        vars.insert(key.trim().to_string(), value.to_string());
    }
    vars
}

impl Testbed {
    /// A value from the env file (or its override in the process environment).
    pub fn var(&self, key: &str) -> Option<&str> {
        self.vars.get(key).map(String::as_str)
    }

    /// A value that the test bed always writes.
    ///
    /// # Panics
    /// When the key is missing: the env file is older than the test.
    pub fn require(&self, key: &str) -> &str {
        self.var(key).unwrap_or_else(|| {
            panic!("{key} is missing from the test bed's env file; rerun scripts/testbed.sh")
        })
    }

    /// The test user's home folder.
    pub fn home(&self) -> String {
        self.var("MAGOS_TESTBED_HOME")
            .map(str::to_string)
            .unwrap_or_else(|| format!("/home/{}", self.user))
    }

    /// `runuser -u <test user> -- env -i`: a command run as the test user with an
    /// empty environment; the caller adds the variables, the program and its
    /// arguments.
    pub fn as_user(&self) -> Command {
        // runuser is in sbin, which a non-login PATH may lack.
        let runuser = ["/usr/sbin/runuser", "/sbin/runuser"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or("runuser");
        let mut cmd = Command::new(runuser);
        cmd.args(["-u", &self.user, "--", "env", "-i"]);
        cmd
    }

    /// The podman CLI as the test user, ready to run: `runuser` with a clean
    /// environment (its home, `XDG_RUNTIME_DIR`, `PODMAN_IGNORE_CGROUPSV1_WARNING=1`),
    /// in `/`. Paths given to it must be absolute and readable by that user (see
    /// [`Testbed::user_dir`]).
    pub fn podman_command(&self, args: &[&str]) -> Command {
        self.user_program("podman", args)
    }

    /// A program run as the test user with the rootless podman environment of
    /// [`Testbed::podman_command`] (`podman-compose`, `timeout podman-compose …`),
    /// in `/` unless the caller sets another folder.
    pub fn user_program(&self, program: &str, args: &[&str]) -> Command {
        let mut cmd = self.as_user();
        cmd.arg(format!("HOME={}", self.home()))
            .arg(format!("USER={}", self.user))
            .arg(format!("LOGNAME={}", self.user))
            .arg("PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .arg(format!("XDG_RUNTIME_DIR={}", self.runtime_dir.display()))
            .arg("PODMAN_IGNORE_CGROUPSV1_WARNING=1")
            .arg("TMPDIR=/var/tmp")
            .arg(program)
            .args(args)
            .current_dir("/");
        cmd
    }

    /// Runs the podman CLI as the test user (see [`Testbed::podman_command`]).
    ///
    /// # Panics
    /// When `runuser` cannot be started.
    pub fn podman_cli(&self, args: &[&str]) -> Output {
        self.podman_command(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run podman as {} through runuser: {e}", self.user))
    }

    /// Runs the podman CLI as the test user and returns its standard output.
    ///
    /// # Panics
    /// When podman exits non-zero (the message has the command and its stderr).
    pub fn podman_ok(&self, args: &[&str]) -> String {
        let out = self.podman_cli(args);
        assert!(
            out.status.success(),
            "podman {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A fresh directory under `/var/tmp` owned by the test user (mode 0755), removed
    /// when the returned value is dropped: for files podman must read as that user.
    pub fn user_dir(&self, prefix: &str) -> tempfile::TempDir {
        let dir = tempfile::Builder::new()
            .prefix(&format!("{prefix}-"))
            .tempdir_in("/var/tmp")
            .expect("create a directory under /var/tmp");
        std::os::unix::fs::chown(dir.path(), Some(self.uid), Some(self.gid))
            .expect("give the directory to the test user");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("make the directory readable");
        dir
    }

    /// Removes every container, network and volume of a compose project (by its
    /// `com.docker.compose.project` label) and podman-compose's pod of it,
    /// ignoring failures: for drop guards.
    pub fn remove_project(&self, project: &str) {
        let label = format!("label=com.docker.compose.project={project}");
        let ids = |args: &[&str]| {
            let out = self.podman_cli(args);
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        for id in ids(&["ps", "-aq", "--filter", &label]) {
            let _ = self.podman_cli(&["rm", "-f", "-t", "0", &id]);
        }
        for n in ids(&["network", "ls", "-q", "--filter", &label]) {
            let _ = self.podman_cli(&["network", "rm", "-f", &n]);
        }
        for v in ids(&["volume", "ls", "-q", "--filter", &label]) {
            let _ = self.podman_cli(&["volume", "rm", "-f", &v]);
        }
        // The pod podman-compose makes for a project routed to the compose CLI.
        let _ = self.podman_cli(&["pod", "rm", "-f", "-t", "0", &format!("pod_{project}")]);
    }

    /// A request to the libpod API socket. A `GET` the busy service refuses or
    /// drops before answering (every test shares it) is tried again, twice.
    pub fn libpod(&self, method: &str, path: &str) -> io::Result<HttpResponse> {
        let mut tries = 0;
        loop {
            match unix_http(&self.podman_socket, method, path, &[]) {
                Err(e) if tries < 2 && method == "GET" && transient(&e) => {
                    eprintln!("libpod {method} {path}: {e}; trying again");
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(200));
                }
                r => return r,
            }
        }
    }

    /// A request to the test registry (`path` starts with `/v2/`).
    pub fn registry_request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> io::Result<HttpResponse> {
        let port = self
            .registry
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok())
            .ok_or_else(|| io::Error::other(format!("no port in {:?}", self.registry)))?;
        http_request_port(port, method, path, headers)
    }
}

/// Every manifest media type, for a `HEAD` that must answer for an index too.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.docker.distribution.manifest.v2+json";

impl Testbed {
    /// The digest the test registry gives `image` (`$MAGOS_TEST_REGISTRY/repo:tag`), from
    /// a `HEAD` of its manifest.
    pub fn manifest_digest(&self, image: &str) -> String {
        let (repo, tag) = image.rsplit_once(':').expect("the image has a tag");
        let path = repo
            .strip_prefix(&format!("{}/", self.registry))
            .expect("the image is on the test registry");
        let r = self
            .registry_request(
                "HEAD",
                &format!("/v2/{path}/manifests/{tag}"),
                &[("Accept", MANIFEST_ACCEPT)],
            )
            .expect("HEAD a manifest");
        assert_eq!(r.status, 200, "HEAD manifest of {image}");
        r.header("docker-content-digest")
            .expect("the registry names the digest")
            .to_owned()
    }
}

/// A name no other test (nor an earlier run) uses: `prefix-<pid>-<time>-<n>`, in
/// the characters container, image and volume names allow.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() % 1_000_000_000_000)
        .unwrap_or(0);
    format!("{prefix}-{}-{nanos:x}-{n}", std::process::id())
}

/// Polls `condition` every `poll` until it holds or `timeout` has passed; says
/// whether it held. For waiting on a state, never as a fixed delay.
pub fn wait_until(timeout: Duration, poll: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(poll);
    }
}

/// `n` ports free on 127.0.0.1 now, below Linux's ephemeral range (32768 and
/// up), so that no outgoing connection and no `free_port` of another test takes
/// one of them while a long apply publishes them all.
pub fn free_ports_below_ephemeral(n: usize) -> Vec<u16> {
    let start = 20_000 + (std::process::id() % 10_000) as u16;
    (0..12_000u16)
        .map(|k| 20_000 + (start - 20_000 + k) % 12_000)
        .filter(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .take(n)
        .collect()
}

/// A free TCP port on 127.0.0.1 at the time of the call.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// An HTTP response read by the helpers below.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Header names (as sent) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `GET path` from `127.0.0.1:port` over plain HTTP/1.1.
pub fn http_get(port: u16, path: &str) -> io::Result<HttpResponse> {
    http_request_port(port, "GET", path, &[])
}

/// A plain HTTP/1.1 request to `127.0.0.1:port`.
pub fn http_request_port(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> io::Result<HttpResponse> {
    let stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    http_exchange(stream, &format!("127.0.0.1:{port}"), method, path, headers)
}

/// A plain HTTP/1.1 request over a unix socket (the libpod API's transport).
pub fn unix_http(
    socket: &Path,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> io::Result<HttpResponse> {
    let stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    http_exchange(stream, "d", method, path, headers)
}

/// Whether a request failed before any answer in a way a retry can mend.
fn transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
    ) || e
        .to_string()
        .contains("connection closed inside the headers")
        || e.to_string().contains("bad status line \"\"")
}

/// Writes one request (no body, `Connection: close`) and reads the whole response.
fn http_exchange<S: Read + Write>(
    mut stream: S,
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> io::Result<HttpResponse> {
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    stream.flush()?;

    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line)?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| bad(format!("bad status line {status_line:?}")))?;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Err(bad("connection closed inside the headers".into()));
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| bad(format!("bad header line {line:?}")))?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let response = HttpResponse {
        status,
        headers,
        body: Vec::new(),
    };
    let no_body =
        method == "HEAD" || status == 204 || status == 304 || (100..200).contains(&status);
    let body = if no_body {
        Vec::new()
    } else if response
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        read_chunked(&mut reader)?
    } else if let Some(len) = response.header("content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| bad(format!("bad content-length {len:?}")))?;
        let mut body = vec![0; len];
        reader.read_exact(&mut body)?;
        body
    } else {
        let mut body = Vec::new();
        reader.read_to_end(&mut body)?;
        body
    };
    Ok(HttpResponse { body, ..response })
}

fn read_chunked(reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size_line = String::new();
        reader.read_line(&mut size_line)?;
        let size_hex = size_line.trim().split(';').next().unwrap_or("");
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| bad(format!("bad chunk size {size_line:?}")))?;
        if size == 0 {
            // Trailer lines up to the empty one.
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        let mut crlf = [0; 2];
        reader.read_exact(&mut crlf)?;
    }
}

fn bad(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Serialises the tests that kill the rootless netns's pasta with the tests that
/// start containers for minutes on end (200 containers, the conformance corpus):
/// Podman starts a dead netns pasta again as soon as any bridge container
/// starts, so a long run of starts beside such a test hides what it killed.
pub fn rootless_netns_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Sends SIGTERM to a child (a daemon the test started), as systemd stops it.
pub fn sigterm(child: &std::process::Child) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -TERM {} failed", child.id());
}

/// A child process (a `magos run` daemon) killed and reaped when the test ends,
/// whatever the outcome.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A finished command's exit code and output, for assertion messages.
pub fn show(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
