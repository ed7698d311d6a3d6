//! A real `git http-backend` (the CGI program that ships with git) served over
//! HTTP on 127.0.0.1, behind Basic authentication with `x-access-token:<token>`
//! as GitHub expects it. Requests without the right credentials get 401.
//! [`HttpBackend::hanging_pushes`] serves fetches but never answers a push
//! (`POST …/git-receive-pack`): a remote that hangs.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};

/// What the server saw, for assertions.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    /// Every request line (`METHOD path?query`).
    pub requests: Vec<String>,
    /// Requests refused with 401.
    pub refused: usize,
    /// Requests accepted with the right credentials.
    pub accepted: usize,
    /// Pushes left without an answer (see [`HttpBackend::hanging_pushes`]).
    pub hung: usize,
}

pub struct HttpBackend {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Seen>>,
}

struct Settings {
    root: PathBuf,
    read_token: String,
    write_token: String,
    seen: Arc<Mutex<Seen>>,
    hang_pushes: bool,
}

impl HttpBackend {
    /// Serves the bare repositories under `root`. `read_token` opens fetches,
    /// `write_token` pushes (`git-receive-pack`).
    pub fn start(root: PathBuf, read_token: &str, write_token: &str) -> Self {
        Self::serve(root, read_token, write_token, false)
    }

    /// Like [`HttpBackend::start`] with `token` for both, but a push's pack
    /// (`POST …/git-receive-pack`) is read and never answered.
    pub fn hanging_pushes(root: PathBuf, token: &str) -> Self {
        Self::serve(root, token, token, true)
    }

    fn serve(root: PathBuf, read_token: &str, write_token: &str, hang_pushes: bool) -> Self {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let settings = Arc::new(Settings {
            root,
            read_token: read_token.to_owned(),
            write_token: write_token.to_owned(),
            seen: seen.clone(),
            hang_pushes,
        });
        let addr = super::local_http::serve(move |req| {
            let settings = settings.clone();
            async move { handle(&settings, req).await }
        });
        Self { addr, seen }
    }

    /// The URL of the repository `name` (e.g. `remote.git`).
    pub fn url(&self, name: &str) -> String {
        format!("http://{}/{name}", self.addr)
    }
}

fn basic(token: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{token}"))
    )
}

async fn handle(s: &Settings, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    s.seen
        .lock()
        .unwrap()
        .requests
        .push(format!("{} {path}?{query}", req.method()));
    let pushing = path.ends_with("/git-receive-pack") || query.contains("service=git-receive-pack");
    let expected = basic(if pushing {
        &s.write_token
    } else {
        &s.read_token
    });
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if auth != expected {
        s.seen.lock().unwrap().refused += 1;
        return Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .header("WWW-Authenticate", "Basic realm=\"magos-test\"")
            .body(Full::new(Bytes::from_static(b"authentication required\n")))
            .unwrap();
    }
    s.seen.lock().unwrap().accepted += 1;
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let method = req.method().to_string();
    let content_type = header("content-type");
    let encoding = header("content-encoding");
    let protocol = header("git-protocol");
    let body = req.into_body().collect().await.unwrap().to_bytes();
    if s.hang_pushes && method == "POST" && path.ends_with("/git-receive-pack") {
        s.seen.lock().unwrap().hung += 1;
        std::future::pending::<()>().await;
    }
    let root = s.root.clone();
    let out = tokio::task::spawn_blocking(move || {
        let mut child = Command::new("git")
            .arg("http-backend")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("GIT_PROJECT_ROOT", &root)
            .env("GIT_HTTP_EXPORT_ALL", "1")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("REQUEST_METHOD", method)
            .env("PATH_INFO", path)
            .env("QUERY_STRING", query)
            .env("CONTENT_TYPE", content_type)
            .env("CONTENT_LENGTH", body.len().to_string())
            .env("HTTP_CONTENT_ENCODING", encoding)
            .env("GIT_PROTOCOL", protocol)
            .env("REMOTE_USER", "x-access-token")
            .env("REMOTE_ADDR", "127.0.0.1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&body);
        });
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        out
    })
    .await
    .unwrap();
    cgi_response(&out.stdout)
}

/// Turns CGI output (headers, a blank line, the body) into a response.
fn cgi_response(out: &[u8]) -> Response<Full<Bytes>> {
    let (head, body) = match find(out, b"\r\n\r\n") {
        Some(i) => (&out[..i], &out[i + 4..]),
        None => match find(out, b"\n\n") {
            Some(i) => (&out[..i], &out[i + 2..]),
            None => (&out[..0], out),
        },
    };
    let mut builder = Response::builder();
    for line in String::from_utf8_lossy(head).lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value
                .split(' ')
                .next()
                .unwrap_or("500")
                .parse()
                .unwrap_or(500);
            builder = builder.status(code);
        } else {
            builder = builder.header(name.trim(), value);
        }
    }
    builder
        .body(Full::new(Bytes::copy_from_slice(body)))
        .unwrap()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
