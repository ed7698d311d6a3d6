//! The notification edge: sends each event to the configured receivers
//! (`notify:`) and keeps the event journal that `magos history` reads.
//!
//! [`Notifier::send`] never waits: each request runs as a tokio task of its
//! own, with a time limit per attempt and a bounded number of attempts with a
//! growing pause between them. A receiver that fails in the end gets a log
//! line (its kind and host, never its token) and counts in
//! `magos_notifications_failed_total`. The requests themselves come from
//! [`crate::core::notify::request`].

pub mod journal;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use tokio::task::JoinHandle;

use crate::config::NotifySink;
use crate::core::event::Event;
use crate::core::notify::{self, Request, Target};

pub use journal::Journal;

/// How a delivery is tried.
#[derive(Debug, Clone, Copy)]
pub struct Delivery {
    /// Attempts before giving up.
    pub attempts: u32,
    /// The time limit of one attempt (connect to last byte); a sink's
    /// `timeout` replaces it. Also the limit of connecting.
    pub timeout: Duration,
    /// The pause after the first failed attempt; doubled after each next one.
    pub backoff: Duration,
}

impl Default for Delivery {
    fn default() -> Self {
        Self {
            attempts: 3,
            timeout: Duration::from_secs(10),
            backoff: Duration::from_secs(2),
        }
    }
}

/// Sends events to the receivers of the configuration.
pub struct Notifier {
    sinks: Arc<Vec<NotifySink>>,
    handle: tokio::runtime::Handle,
    /// Made on first use: a command that sends nothing builds no TLS client.
    http: std::sync::OnceLock<Option<reqwest::Client>>,
    delivery: Delivery,
    failed: Counter,
    running: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("sinks", &self.sinks.len())
            .finish_non_exhaustive()
    }
}

/// Makes rustls use the ring provider (the only one compiled in) as the
/// process default, once, so the HTTPS client can start TLS.
fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // An error means another provider was installed first; that one is used.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

impl Notifier {
    /// A notifier for `sinks`, whose requests run on the runtime of `handle`.
    /// Nothing is contacted yet.
    pub fn new(sinks: &[NotifySink], handle: tokio::runtime::Handle, delivery: Delivery) -> Self {
        Self {
            sinks: Arc::new(sinks.to_vec()),
            handle,
            http: std::sync::OnceLock::new(),
            delivery,
            failed: Counter::default(),
            running: Mutex::new(Vec::new()),
        }
    }

    /// Counts the deliveries that failed in `counter` (the daemon's
    /// `magos_notifications_failed_total`) from now on.
    pub fn count_failures_in(&mut self, counter: Counter) {
        self.failed = counter;
    }

    /// The deliveries that failed so far.
    pub fn failures(&self) -> u64 {
        self.failed.get()
    }

    /// The HTTP client, made on first use (`None` when it cannot be made).
    fn http(&self) -> Option<&reqwest::Client> {
        self.http
            .get_or_init(|| {
                install_crypto_provider();
                reqwest::Client::builder()
                    .user_agent(concat!("magos/", env!("CARGO_PKG_VERSION")))
                    .connect_timeout(self.delivery.timeout)
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .map_err(|e| tracing::error!(error = %e.without_url(), "cannot build the notification client; no notification will be sent"))
                    .ok()
            })
            .as_ref()
    }

    /// Sends `event` to every receiver that wants its kind, in the background.
    pub fn send(&self, event: &Event) {
        if !self.sinks.iter().any(|s| s.events.contains(&event.kind)) {
            return;
        }
        let Some(http) = self.http() else { return };
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.retain(|t| !t.is_finished());
        for (i, sink) in self.sinks.iter().enumerate() {
            if !sink.events.contains(&event.kind) {
                continue;
            }
            let target = Target {
                kind: sink.kind,
                url: sink.url.expose(),
                token: sink.token.as_ref().map(|t| t.expose()),
                secret: sink.secret.as_ref().map(|s| s.expose()),
            };
            let request = notify::request(&target, event);
            let label = format!("{} {}", sink.kind, sink.url.redacted());
            let delivery = Delivery {
                timeout: sink.timeout.0,
                ..self.delivery
            };
            let (http, failed) = (http.clone(), self.failed.clone());
            let kind = event.kind;
            running.push(self.handle.spawn(async move {
                if let Err(error) = deliver(&http, &request, delivery).await {
                    failed.inc();
                    tracing::warn!(sink = i, receiver = %label, event = %kind, %error, attempts = delivery.attempts, "notification not delivered");
                }
            }));
        }
    }

    /// Waits for the deliveries under way (a command of the CLI, before it
    /// exits).
    pub async fn flush(&self) {
        let running = std::mem::take(&mut *self.running.lock().unwrap_or_else(|e| e.into_inner()));
        for task in running {
            let _ = task.await;
        }
    }
}

/// Tries `request` up to `delivery.attempts` times. A refusal that asking
/// again cannot change (a 4xx other than 408 and 429) ends it at once. The
/// error names the status or the transport failure, never the URL.
async fn deliver(
    http: &reqwest::Client,
    request: &Request,
    delivery: Delivery,
) -> Result<(), String> {
    let mut pause = delivery.backoff;
    let mut last = String::new();
    for attempt in 1..=delivery.attempts.max(1) {
        if attempt > 1 {
            tokio::time::sleep(pause).await;
            pause = pause.saturating_mul(2);
        }
        let method =
            reqwest::Method::from_bytes(request.method.as_bytes()).unwrap_or(reqwest::Method::POST);
        let mut builder = http.request(method, &request.url).timeout(delivery.timeout);
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        match builder.body(request.body.clone()).send().await {
            Ok(response) => {
                let status = response.status();
                if status.is_success() {
                    return Ok(());
                }
                last = format!("the receiver answered HTTP {}", status.as_u16());
                let final_refusal = status.is_client_error()
                    && status != reqwest::StatusCode::REQUEST_TIMEOUT
                    && status != reqwest::StatusCode::TOO_MANY_REQUESTS;
                if final_refusal {
                    return Err(last);
                }
            }
            Err(e) => last = error_text(e),
        }
    }
    Err(last)
}

/// A transport error without its URL (which may hold a token), with its causes.
fn error_text(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = if e.is_timeout() {
        "no answer in time".to_owned()
    } else if e.is_connect() {
        "cannot connect".to_owned()
    } else {
        "the request failed".to_owned()
    };
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::config::{HumanDuration, NotifyUrl, SinkKind};
    use crate::core::event::EventKind;

    /// A receiver on 127.0.0.1 answering the statuses of `answers` in turn
    /// (the last one from then on); the address and the requests counted.
    async fn receiver(answers: Vec<u16>) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let count = Arc::new(AtomicUsize::new(0));
        let seen = count.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (seen, answers) = (seen.clone(), answers.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |_req| {
                        let n = seen.fetch_add(1, Ordering::SeqCst);
                        let status = answers[n.min(answers.len() - 1)];
                        async move {
                            Ok::<_, std::convert::Infallible>(
                                hyper::Response::builder()
                                    .status(status)
                                    .body(http_body_util::Full::new(bytes::Bytes::new()))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (addr, count)
    }

    fn notifier(addr: std::net::SocketAddr) -> Notifier {
        let sink = NotifySink {
            kind: SinkKind::Webhook,
            url: NotifyUrl::parse(&format!("http://{addr}/hook")).unwrap(),
            token: None,
            events: NotifySink::default_events(),
            secret: None,
            timeout: HumanDuration(Duration::from_secs(5)),
        };
        Notifier::new(
            &[sink],
            tokio::runtime::Handle::current(),
            Delivery {
                attempts: 3,
                timeout: Duration::from_secs(5),
                backoff: Duration::from_millis(1),
            },
        )
    }

    #[tokio::test]
    async fn a_failing_receiver_is_asked_again_until_it_accepts() {
        let (addr, count) = receiver(vec![503, 503, 200]).await;
        let n = notifier(addr);
        n.send(&Event::new(EventKind::Pinned, 1));
        n.flush().await;
        assert_eq!(count.load(Ordering::SeqCst), 3);
        assert_eq!(n.failures(), 0);
    }

    #[tokio::test]
    async fn attempts_are_bounded_and_a_final_refusal_is_not_repeated() {
        let (addr, count) = receiver(vec![500]).await;
        let n = notifier(addr);
        n.send(&Event::new(EventKind::PassFailed, 1));
        n.flush().await;
        assert_eq!(count.load(Ordering::SeqCst), 3);
        assert_eq!(n.failures(), 1);

        let (addr, count) = receiver(vec![401]).await;
        let n = notifier(addr);
        n.send(&Event::new(EventKind::PassFailed, 1));
        n.flush().await;
        assert_eq!(count.load(Ordering::SeqCst), 1);
        assert_eq!(n.failures(), 1);
    }

    #[tokio::test]
    async fn only_the_kinds_a_receiver_wants_are_sent() {
        let (addr, count) = receiver(vec![200]).await;
        let n = notifier(addr);
        // `applied` is not among the default kinds.
        n.send(&Event::new(EventKind::Applied, 1));
        n.flush().await;
        assert_eq!(count.load(Ordering::SeqCst), 0);
    }
}
