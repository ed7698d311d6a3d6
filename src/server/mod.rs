//! The daemon's HTTP endpoint: health, readiness, Prometheus metrics and signed
//! webhooks. Bound to 127.0.0.1 by default.
//!
//! Routes:
//! - `GET /healthz`: 200 while the process is alive and its loop is not stuck.
//! - `GET /readyz`: 200 once the first reconcile pass has finished, with the
//!   last pass's status line (stacks in sync, failing stacks and why).
//! - `GET /metrics`: Prometheus text.
//! - `POST /hooks/github` (also `/hooks/gitea`, `/hooks/forgejo`): a signed push
//!   event; a push to the followed branch triggers a pass (202 at once).
//! - `POST /hooks/registry`: a signed registry notification; triggers a pass.
//!
//! Webhooks must carry `X-Hub-Signature-256`; without a configured secret every
//! webhook is refused, so an open port never lets anyone drive deployments.
//!
//! What clients may hold is bounded (`daemon.http`): a request's headers must
//! arrive within `header_timeout`; a connection with no request under way is
//! closed after `idle_timeout`; at most `max_connections` are open, and a new
//! one beyond that closes the oldest idle connection (or is itself closed when
//! every connection is busy), so idle or slow clients never keep `/healthz`
//! from a new client nor take every file descriptor. Accept errors (out of
//! file descriptors above all) back off exponentially, up to a second, instead
//! of spinning, and close the oldest idle connection to free a descriptor.

pub mod liveness;
pub mod metrics;
pub mod webhook;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

use crate::config::{HttpLimits, Secret};
pub use liveness::Liveness;
pub use metrics::Metrics;
use webhook::ForgeEvent;

/// The largest webhook body accepted; GitHub caps payloads at 25 MB but push
/// events for a homelab repository are a few kilobytes.
pub const MAX_BODY: usize = 1024 * 1024;

/// A pass requested through a webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookTrigger {
    /// The followed branch moved.
    GitPush {
        /// The branch.
        branch: String,
    },
    /// A registry announced a push.
    RegistryPush,
}

/// What the endpoint needs to answer.
pub struct State {
    /// Set once the first pass has finished (the loop's own flag).
    pub ready: Arc<AtomicBool>,
    /// The last pass's status line (the systemd `STATUS=`).
    pub status: Arc<Mutex<String>>,
    /// Whether the loop is making progress.
    pub liveness: Arc<Liveness>,
    /// The metrics.
    pub metrics: Arc<Metrics>,
    /// The secret git forges sign with.
    pub forge_secret: Option<Secret>,
    /// The secret registry notifications are signed with.
    pub registry_secret: Option<Secret>,
    /// The branch whose pushes trigger a pass.
    pub branch: String,
    /// Where triggers go; a full queue means a pass is already due.
    pub triggers: mpsc::Sender<HookTrigger>,
    /// What clients may hold (`daemon.http`).
    pub limits: HttpLimits,
}

/// The first wait after an accept error; it doubles up to [`ACCEPT_BACKOFF_MAX`].
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
/// The longest wait after repeated accept errors.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// One open connection.
struct Conn {
    /// Requests under way on it.
    busy: AtomicUsize,
    /// When a request last started or ended (or the connection opened).
    last: Mutex<Instant>,
    /// Set once it was asked to close.
    closing: AtomicBool,
    /// Wakes its task to close it.
    close: Notify,
}

impl Conn {
    fn touch(&self) {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
    }

    fn last(&self) -> Instant {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Asks its task to close it (at once when no request is under way).
    fn close(&self) {
        self.closing.store(true, Ordering::Release);
        self.close.notify_one();
    }
}

/// Counts a request under way on a connection for as long as it lives.
struct Busy(Arc<Conn>);

impl Busy {
    fn new(conn: &Arc<Conn>) -> Self {
        conn.busy.fetch_add(1, Ordering::AcqRel);
        conn.touch();
        Busy(conn.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The open connections, oldest first.
#[derive(Default)]
struct Conns {
    next: u64,
    open: BTreeMap<u64, Arc<Conn>>,
}

impl Conns {
    /// Connections not already asked to close.
    fn live(&self) -> usize {
        self.open
            .values()
            .filter(|c| !c.closing.load(Ordering::Acquire))
            .count()
    }

    /// Closes the oldest connection with no request under way; `false` when
    /// every connection is busy.
    fn close_oldest_idle(&self) -> bool {
        let oldest = self
            .open
            .values()
            .find(|c| !c.closing.load(Ordering::Acquire) && c.busy.load(Ordering::Acquire) == 0);
        match oldest {
            Some(c) => {
                c.close();
                true
            }
            None => false,
        }
    }
}

/// Whether an accept error means this process (or the system) is out of file
/// descriptors.
fn out_of_descriptors(e: &std::io::Error) -> bool {
    // EMFILE (24) and ENFILE (23) on Linux and the BSDs.
    matches!(e.raw_os_error(), Some(23 | 24))
}

/// Resolves once `conn` has had no request under way for `idle`.
async fn idle_for(conn: &Conn, idle: Duration) {
    loop {
        if conn.busy.load(Ordering::Acquire) > 0 {
            tokio::time::sleep(idle).await;
            continue;
        }
        let until = conn.last() + idle;
        if Instant::now() >= until {
            return;
        }
        tokio::time::sleep_until(until).await;
    }
}

/// Serves `listener` until `shutdown` completes.
pub async fn serve(listener: TcpListener, state: Arc<State>, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    let conns = Arc::new(Mutex::new(Conns::default()));
    let limits = state.limits.clone();
    let max = (limits.max_connections as usize).max(1);
    let mut backoff = ACCEPT_BACKOFF_MIN;
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => {
                backoff = ACCEPT_BACKOFF_MIN;
                stream
            }
            Err(e) => {
                let fds = out_of_descriptors(&e);
                if fds {
                    // Free a descriptor for the next client.
                    conns
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .close_oldest_idle();
                }
                if backoff == ACCEPT_BACKOFF_MIN {
                    tracing::warn!(error = %e, out_of_descriptors = fds, "http endpoint: accept failed; backing off");
                } else {
                    tracing::debug!(error = %e, wait = ?backoff, "http endpoint: accept failed again");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
        };
        let (id, conn) = {
            let mut all = conns.lock().unwrap_or_else(PoisonError::into_inner);
            if all.live() >= max && !all.close_oldest_idle() {
                // Every connection is busy with a request: this one waits for
                // nothing and is closed at once.
                tracing::debug!(
                    max,
                    "http endpoint: every connection busy; closing a new one"
                );
                continue;
            }
            let conn = Arc::new(Conn {
                busy: AtomicUsize::new(0),
                last: Mutex::new(Instant::now()),
                closing: AtomicBool::new(false),
                close: Notify::new(),
            });
            all.next += 1;
            let id = all.next;
            all.open.insert(id, conn.clone());
            (id, conn)
        };
        let state = state.clone();
        let conns = conns.clone();
        let limits = limits.clone();
        tokio::spawn(async move {
            let service = {
                let conn = conn.clone();
                service_fn(move |req| {
                    let state = state.clone();
                    let busy = Busy::new(&conn);
                    async move {
                        let response = handle(&state, req).await;
                        drop(busy);
                        Ok::<_, Infallible>(response)
                    }
                })
            };
            let served = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout.0)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(served);
            let mut closing = false;
            loop {
                tokio::select! {
                    ended = served.as_mut() => {
                        if let Err(e) = ended {
                            tracing::debug!(error = %e, "http endpoint: connection ended with an error");
                        }
                        break;
                    }
                    _ = conn.close.notified(), if !closing => {
                        served.as_mut().graceful_shutdown();
                        closing = true;
                    }
                    _ = idle_for(&conn, limits.idle_timeout.0), if !closing => {
                        conn.closing.store(true, Ordering::Release);
                        served.as_mut().graceful_shutdown();
                        closing = true;
                    }
                }
            }
            conns
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .open
                .remove(&id);
        });
    }
}

fn text(status: StatusCode, body: impl Into<String>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.into())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

async fn handle(state: &State, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    match (req.method(), path.as_str()) {
        (&Method::GET, "/healthz") => match state.liveness.check() {
            Ok(()) => text(StatusCode::OK, "ok\n"),
            Err(why) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
        },
        (&Method::GET, "/readyz") => {
            if state.ready.load(Ordering::Acquire) {
                let status = state.status.lock().map(|s| s.clone()).unwrap_or_default();
                text(StatusCode::OK, format!("ready: {status}\n"))
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the first pass has not finished\n",
                )
            }
        }
        (&Method::GET, "/metrics") => {
            let mut r = text(StatusCode::OK, state.metrics.render());
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            r
        }
        (&Method::POST, "/hooks/github" | "/hooks/gitea" | "/hooks/forgejo") => {
            forge_hook(state, req).await
        }
        (&Method::POST, "/hooks/registry") => registry_hook(state, req).await,
        (
            _,
            "/healthz" | "/readyz" | "/metrics" | "/hooks/github" | "/hooks/gitea"
            | "/hooks/forgejo" | "/hooks/registry",
        ) => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// Reads a signed body: the verdict is a response to send back, or the body.
async fn signed_body(
    secret: Option<&Secret>,
    req: Request<Incoming>,
) -> Result<(hyper::http::request::Parts, Bytes), Response<Full<Bytes>>> {
    let Some(secret) = secret else {
        return Err(text(
            StatusCode::UNAUTHORIZED,
            "webhooks are disabled: no secret is configured\n",
        ));
    };
    if req
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        .is_some_and(|n| n > MAX_BODY)
    {
        return Err(text(StatusCode::PAYLOAD_TOO_LARGE, "body too large\n"));
    }
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Err(text(StatusCode::PAYLOAD_TOO_LARGE, "body too large\n")),
    };
    let signature = parts
        .headers
        .get("x-hub-signature-256")
        .or_else(|| parts.headers.get("x-gitea-signature"))
        .or_else(|| parts.headers.get("x-forgejo-signature"))
        .and_then(|v| v.to_str().ok());
    if let Err(e) = webhook::verify(secret.expose().as_bytes(), &body, signature) {
        tracing::warn!(reason = %e, "webhook refused");
        return Err(text(StatusCode::UNAUTHORIZED, format!("{e}\n")));
    }
    Ok((parts, body))
}

async fn forge_hook(state: &State, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = match signed_body(state.forge_secret.as_ref(), req).await {
        Ok(ok) => ok,
        Err(response) => return response,
    };
    let event = parts
        .headers
        .get("x-github-event")
        .or_else(|| parts.headers.get("x-gitea-event"))
        .or_else(|| parts.headers.get("x-forgejo-event"))
        .and_then(|v| v.to_str().ok());
    match webhook::forge_event(event, &body) {
        Ok(ForgeEvent::Push { branch }) if branch == state.branch => {
            let _ = state.triggers.try_send(HookTrigger::GitPush { branch });
            text(StatusCode::ACCEPTED, "pass triggered\n")
        }
        Ok(ForgeEvent::Push { branch }) => text(
            StatusCode::OK,
            format!(
                "ignored: push to `{branch}`, following `{}`\n",
                state.branch
            ),
        ),
        Ok(ForgeEvent::OtherRef) => text(StatusCode::OK, "ignored: not a branch\n"),
        Ok(ForgeEvent::Ping) => text(StatusCode::OK, "pong\n"),
        Ok(ForgeEvent::Ignored(name)) => text(StatusCode::OK, format!("ignored: `{name}` event\n")),
        Err(e) => text(StatusCode::BAD_REQUEST, format!("{e}\n")),
    }
}

async fn registry_hook(state: &State, req: Request<Incoming>) -> Response<Full<Bytes>> {
    match signed_body(state.registry_secret.as_ref(), req).await {
        Ok(_) => {
            let _ = state.triggers.try_send(HookTrigger::RegistryPush);
            text(StatusCode::ACCEPTED, "pass triggered\n")
        }
        Err(response) => response,
    }
}

#[cfg(test)]
mod tests;
