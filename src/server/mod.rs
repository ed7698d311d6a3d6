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

pub mod liveness;
pub mod metrics;
pub mod webhook;

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::config::Secret;
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
}

/// Serves `listener` until `shutdown` completes.
pub async fn serve(listener: TcpListener, state: Arc<State>, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "http endpoint: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(&state, req).await) }
            });
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "http endpoint: connection ended with an error");
            }
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
