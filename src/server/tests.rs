use super::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Running {
    addr: std::net::SocketAddr,
    state: Arc<State>,
    triggers: mpsc::Receiver<HookTrigger>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start() -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel(1);
    let state = Arc::new(State {
        ready: Arc::new(AtomicBool::new(false)),
        status: Arc::default(),
        liveness: Arc::new(Liveness::new(Duration::from_secs(60))),
        metrics: Arc::new(Metrics::new()),
        forge_secret: Some(Secret::new("forge-secret")),
        registry_secret: Some(Secret::new("registry-secret")),
        branch: "main".into(),
        triggers: tx,
        limits: crate::config::HttpLimits::default(),
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve(listener, state.clone(), async move {
        let _ = stopped.await;
    }));
    Running {
        addr,
        state,
        triggers: rx,
        _stop: stop,
    }
}

/// Sends one raw HTTP/1.1 request and returns (status, body).
async fn request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn push(branch: &str) -> Vec<u8> {
    format!(r#"{{"ref":"refs/heads/{branch}","after":"0123"}}"#).into_bytes()
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let r = start().await;
    assert_eq!(request(r.addr, "GET", "/healthz", &[], b"").await.0, 200);
    assert_eq!(request(r.addr, "GET", "/readyz", &[], b"").await.0, 503);
    *r.state.status.lock().unwrap() = "1/2 stacks in sync, failing: media".into();
    r.state.ready.store(true, Ordering::Release);
    assert_eq!(
        request(r.addr, "GET", "/readyz", &[], b"").await,
        (
            200,
            "ready: 1/2 stacks in sync, failing: media\n".to_owned()
        )
    );
    let (status, body) = request(r.addr, "GET", "/metrics", &[], b"").await;
    assert_eq!(status, 200);
    assert!(
        body.contains("# TYPE magos_pass_duration_seconds histogram"),
        "{body}"
    );
    assert_eq!(request(r.addr, "GET", "/nope", &[], b"").await.0, 404);
    assert_eq!(request(r.addr, "DELETE", "/metrics", &[], b"").await.0, 405);
}

#[tokio::test]
async fn a_signed_push_to_the_branch_triggers_a_pass() {
    let mut r = start().await;
    let body = push("main");
    let sig = webhook::sign(b"forge-secret", &body);
    let (status, _) = request(
        r.addr,
        "POST",
        "/hooks/github",
        &[
            ("X-GitHub-Event", "push".into()),
            ("X-Hub-Signature-256", sig),
        ],
        &body,
    )
    .await;
    assert_eq!(status, 202);
    assert_eq!(
        r.triggers.try_recv().unwrap(),
        HookTrigger::GitPush {
            branch: "main".into()
        }
    );
}

#[tokio::test]
async fn unsigned_or_wrongly_signed_hooks_are_refused() {
    let mut r = start().await;
    let body = push("main");
    let (status, _) = request(
        r.addr,
        "POST",
        "/hooks/github",
        &[("X-GitHub-Event", "push".into())],
        &body,
    )
    .await;
    assert_eq!(status, 401);
    let bad = webhook::sign(b"not-the-secret", &body);
    let (status, _) = request(
        r.addr,
        "POST",
        "/hooks/github",
        &[
            ("X-GitHub-Event", "push".into()),
            ("X-Hub-Signature-256", bad),
        ],
        &body,
    )
    .await;
    assert_eq!(status, 401);
    let reg = webhook::sign(b"forge-secret", b"{}");
    assert_eq!(
        request(
            r.addr,
            "POST",
            "/hooks/registry",
            &[("X-Hub-Signature-256", reg)],
            b"{}"
        )
        .await
        .0,
        401
    );
    assert!(r.triggers.try_recv().is_err(), "nothing may be triggered");
}

#[tokio::test]
async fn other_branches_and_oversized_bodies_do_not_trigger() {
    let mut r = start().await;
    let body = push("feature");
    let sig = webhook::sign(b"forge-secret", &body);
    let (status, text) = request(
        r.addr,
        "POST",
        "/hooks/gitea",
        &[
            ("X-Gitea-Event", "push".into()),
            ("X-Hub-Signature-256", sig),
        ],
        &body,
    )
    .await;
    assert_eq!(status, 200);
    assert!(text.contains("ignored"), "{text}");
    let big = vec![b'x'; MAX_BODY + 1];
    let sig = webhook::sign(b"forge-secret", &big);
    let (status, _) = request(
        r.addr,
        "POST",
        "/hooks/github",
        &[("X-Hub-Signature-256", sig)],
        &big,
    )
    .await;
    assert_eq!(status, 413);
    assert!(r.triggers.try_recv().is_err());
}

#[tokio::test]
async fn signed_registry_notifications_trigger_a_pass() {
    let mut r = start().await;
    let sig = webhook::sign(b"registry-secret", b"{\"events\":[]}");
    assert_eq!(
        request(
            r.addr,
            "POST",
            "/hooks/registry",
            &[("X-Hub-Signature-256", sig)],
            b"{\"events\":[]}"
        )
        .await
        .0,
        202
    );
    assert_eq!(r.triggers.try_recv().unwrap(), HookTrigger::RegistryPush);
}

#[tokio::test]
async fn healthz_reports_a_stuck_loop() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, _rx) = mpsc::channel(1);
    let liveness = Arc::new(Liveness::new(Duration::ZERO));
    let state = Arc::new(State {
        ready: Arc::new(AtomicBool::new(true)),
        status: Arc::default(),
        liveness: liveness.clone(),
        metrics: Arc::new(Metrics::new()),
        forge_secret: None,
        registry_secret: None,
        branch: "main".into(),
        triggers: tx,
        limits: crate::config::HttpLimits::default(),
    });
    tokio::spawn(serve(listener, state, std::future::pending()));
    let _step = liveness.begin("check registries");
    // With no allowance, the step is stuck as soon as any time has passed.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (status, body) = request(addr, "GET", "/healthz", &[], b"").await;
        if status == 503 {
            assert!(body.contains("check registries"), "{body}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "healthz never reported the stuck step"
        );
        tokio::task::yield_now().await;
    }
    // Without a secret, webhooks are refused outright.
    let body = push("main");
    let sig = webhook::sign(b"", &body);
    assert_eq!(
        request(
            addr,
            "POST",
            "/hooks/github",
            &[("X-Hub-Signature-256", sig)],
            &body
        )
        .await
        .0,
        401
    );
}
