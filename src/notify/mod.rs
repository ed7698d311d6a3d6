//! The notification edge: sends each event to the configured receivers
//! (`notify:`) and keeps the event journal that `magos history` reads.
//!
//! [`Notifier::send`] never waits: it puts the event in the queue of each
//! receiver that wants it. Each receiver has one worker task of its own that
//! delivers its queue one event after the other, so a receiver gets the
//! events in the order they were sent, and a receiver that hangs holds up
//! only its own queue. A delivery has a time limit per attempt and a bounded
//! number of attempts with a growing pause between them. A queue holds at
//! most [`Delivery::queue`] events: when it is full, its oldest event is
//! dropped. A receiver that fails in the end, or whose event was dropped,
//! gets a log line (its kind and host, never its token) and counts in
//! `magos_notifications_failed_total`. The requests themselves come from
//! [`crate::core::notify::request`].

pub mod journal;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;

use crate::config::NotifySink;
use crate::core::event::{Event, EventKind};
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
    /// The events that may wait for one receiver (besides the one being
    /// delivered); beyond, the oldest waiting one is dropped.
    pub queue: usize,
}

impl Default for Delivery {
    fn default() -> Self {
        Self {
            attempts: 3,
            timeout: Duration::from_secs(10),
            backoff: Duration::from_secs(2),
            queue: 100,
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
    /// One per sink, in the order of `sinks`.
    lanes: Vec<Arc<Lane>>,
    /// The events queued or being delivered, over every sink; `flush`
    /// waits for it to reach 0.
    pending: tokio::sync::watch::Sender<usize>,
}

/// The queue of one receiver and what its worker needs.
struct Lane {
    state: Mutex<LaneState>,
    /// Wakes the worker: an event was queued, or the notifier is gone.
    wake: tokio::sync::Notify,
}

#[derive(Default)]
struct LaneState {
    queue: VecDeque<Job>,
    /// The worker task was started (on the first event for this sink).
    started: bool,
    /// The notifier is gone: the worker ends once its queue is empty.
    closed: bool,
}

/// One event for one receiver.
struct Job {
    kind: EventKind,
    request: Request,
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
            lanes: sinks
                .iter()
                .map(|_| {
                    Arc::new(Lane {
                        state: Mutex::new(LaneState::default()),
                        wake: tokio::sync::Notify::new(),
                    })
                })
                .collect(),
            pending: tokio::sync::watch::Sender::new(0),
        }
    }

    /// Counts the deliveries that failed in `counter` (the daemon's
    /// `magos_notifications_failed_total`) from now on. (Workers already
    /// started keep the counter they had: call it before the first `send`.)
    pub fn count_failures_in(&mut self, counter: Counter) {
        self.failed = counter;
    }

    /// The deliveries that failed (or were dropped) so far.
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

    /// Queues `event` for every receiver that wants its kind; their workers
    /// deliver it in the background, after the events queued before it.
    pub fn send(&self, event: &Event) {
        if !self.sinks.iter().any(|s| s.events.contains(&event.kind)) {
            return;
        }
        let Some(http) = self.http() else { return };
        for (i, (sink, lane)) in self.sinks.iter().zip(&self.lanes).enumerate() {
            if !sink.events.contains(&event.kind) {
                continue;
            }
            let target = Target {
                kind: sink.kind,
                url: sink.url.expose(),
                token: sink.token.as_ref().map(|t| t.expose()),
                secret: sink.secret.as_ref().map(|s| s.expose()),
            };
            let job = Job {
                kind: event.kind,
                request: notify::request(&target, event),
            };
            let mut state = lane.state.lock().unwrap_or_else(|e| e.into_inner());
            if state.queue.len() >= self.delivery.queue.max(1)
                && let Some(dropped) = state.queue.pop_front()
            {
                self.failed.inc();
                self.pending.send_modify(|p| *p -= 1);
                tracing::warn!(sink = i, receiver = %label(sink), event = %dropped.kind, queued = state.queue.len() + 1, "notification dropped: too many waiting for this receiver");
            }
            state.queue.push_back(job);
            self.pending.send_modify(|p| *p += 1);
            if !state.started {
                state.started = true;
                let worker = Worker {
                    index: i,
                    label: label(sink),
                    lane: lane.clone(),
                    http: http.clone(),
                    delivery: Delivery {
                        timeout: sink.timeout.0,
                        ..self.delivery
                    },
                    failed: self.failed.clone(),
                    pending: self.pending.clone(),
                };
                self.handle.spawn(worker.run());
            }
            drop(state);
            lane.wake.notify_one();
        }
    }

    /// Waits until every queued event was delivered or given up (a command
    /// of the CLI, before it exits). Each delivery is bounded by its
    /// attempts and time limits; the caller bounds the whole.
    pub async fn flush(&self) {
        let mut pending = self.pending.subscribe();
        let _ = pending.wait_for(|&p| p == 0).await;
    }
}

impl Drop for Notifier {
    /// The workers end once their queue is empty.
    fn drop(&mut self) {
        for lane in &self.lanes {
            lane.state.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
            lane.wake.notify_one();
        }
    }
}

/// A receiver as logs show it: its kind and its URL's scheme and host.
fn label(sink: &NotifySink) -> String {
    format!("{} {}", sink.kind, sink.url.redacted())
}

/// The task that delivers one receiver's queue, one event at a time.
struct Worker {
    index: usize,
    label: String,
    lane: Arc<Lane>,
    http: reqwest::Client,
    delivery: Delivery,
    failed: Counter,
    pending: tokio::sync::watch::Sender<usize>,
}

impl Worker {
    async fn run(self) {
        loop {
            let job = {
                let mut state = self.lane.state.lock().unwrap_or_else(|e| e.into_inner());
                match state.queue.pop_front() {
                    Some(job) => Some(job),
                    None if state.closed => return,
                    None => None,
                }
            };
            let Some(job) = job else {
                // `notify_one` keeps a wake-up given before this wait.
                self.lane.wake.notified().await;
                continue;
            };
            if let Err(error) = deliver(&self.http, &job.request, self.delivery).await {
                self.failed.inc();
                tracing::warn!(sink = self.index, receiver = %self.label, event = %job.kind, %error, attempts = self.delivery.attempts, "notification not delivered");
            }
            self.pending.send_modify(|p| *p -= 1);
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
                queue: 100,
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

    /// A receiver on 127.0.0.1 that records the `reason` of each event
    /// posted to it (the webhook's JSON body).
    struct Recorder {
        addr: std::net::SocketAddr,
        /// Every request, as it arrives (a retry too).
        arrived: tokio::sync::watch::Receiver<Vec<String>>,
        /// The requests answered 200, in the order answered.
        accepted: tokio::sync::watch::Receiver<Vec<String>>,
    }

    /// A [`Recorder`]: the first attempt of the event whose reason is
    /// `fail_first` is answered 503 after a pause (a slow receiver that
    /// fails); every other request is answered 200 once `open` holds true
    /// (until then, the receiver hangs).
    async fn recorder(
        fail_first: Option<&str>,
        open: tokio::sync::watch::Receiver<bool>,
    ) -> Recorder {
        use http_body_util::BodyExt as _;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let arrived = tokio::sync::watch::Sender::new(Vec::<String>::new());
        let accepted = tokio::sync::watch::Sender::new(Vec::<String>::new());
        let recorder = Recorder {
            addr,
            arrived: arrived.subscribe(),
            accepted: accepted.subscribe(),
        };
        let fail_first = fail_first.map(str::to_owned);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (arrived, accepted) = (arrived.clone(), accepted.clone());
                let (fail_first, open) = (fail_first.clone(), open.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let (arrived, accepted) = (arrived.clone(), accepted.clone());
                            let (fail_first, mut open) = (fail_first.clone(), open.clone());
                            async move {
                                let body = req.into_body().collect().await.unwrap().to_bytes();
                                let json: serde_json::Value =
                                    serde_json::from_slice(&body).unwrap();
                                let reason = json["reason"].as_str().unwrap_or("").to_owned();
                                let mut first = false;
                                arrived.send_modify(|a| {
                                    first = !a.contains(&reason);
                                    a.push(reason.clone());
                                });
                                let status =
                                    if first && fail_first.as_deref() == Some(reason.as_str()) {
                                        tokio::time::sleep(Duration::from_millis(50)).await;
                                        503
                                    } else {
                                        let _ = open.wait_for(|&o| o).await;
                                        accepted.send_modify(|a| a.push(reason));
                                        200
                                    };
                                Ok::<_, std::convert::Infallible>(
                                    hyper::Response::builder()
                                        .status(status)
                                        .body(http_body_util::Full::new(bytes::Bytes::new()))
                                        .unwrap(),
                                )
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        recorder
    }

    /// A notifier with one webhook per address, `queue` events at most
    /// waiting for each, retries 100 ms then 200 ms apart.
    fn notifier_to(addrs: &[std::net::SocketAddr], queue: usize) -> Notifier {
        let sinks: Vec<NotifySink> = addrs
            .iter()
            .map(|addr| NotifySink {
                kind: SinkKind::Webhook,
                url: NotifyUrl::parse(&format!("http://{addr}/hook")).unwrap(),
                token: None,
                events: NotifySink::default_events(),
                secret: None,
                timeout: HumanDuration(Duration::from_secs(60)),
            })
            .collect();
        Notifier::new(
            &sinks,
            tokio::runtime::Handle::current(),
            Delivery {
                attempts: 3,
                timeout: Duration::from_secs(60),
                backoff: Duration::from_millis(100),
                queue,
            },
        )
    }

    /// The event numbered `n` (in its reason).
    fn numbered(n: usize) -> Event {
        let mut event = Event::new(EventKind::PassFailed, 1);
        event.reason = Some(n.to_string());
        event
    }

    /// Waits (at most a minute: a guard, not a measure) until `list` holds
    /// `len` entries.
    async fn until_len(list: &mut tokio::sync::watch::Receiver<Vec<String>>, len: usize) {
        let done = tokio::time::timeout(Duration::from_secs(60), list.wait_for(|l| l.len() >= len))
            .await
            .is_ok();
        assert!(done, "still {:?} after a minute", *list.borrow());
    }

    #[tokio::test]
    async fn a_receiver_gets_the_events_in_the_order_they_were_sent_even_when_one_is_retried() {
        let (_open, gate) = tokio::sync::watch::channel(true);
        let got = recorder(Some("1"), gate).await;
        let n = notifier_to(&[got.addr], 100);
        for i in 1..=20 {
            n.send(&numbered(i));
        }
        n.flush().await;
        let want: Vec<String> = (1..=20).map(|i| i.to_string()).collect();
        // Event 1 is tried again before event 2 is sent at all.
        let mut arrived = vec!["1".to_owned()];
        arrived.extend(want.iter().cloned());
        assert_eq!(*got.arrived.borrow(), arrived);
        assert_eq!(*got.accepted.borrow(), want);
        assert_eq!(n.failures(), 0);
    }

    #[tokio::test]
    async fn a_hanging_receiver_delays_no_other_and_drops_its_oldest_waiting_events() {
        let (open_hang, gate) = tokio::sync::watch::channel(false);
        let mut hang = recorder(None, gate).await;
        let (_open, gate) = tokio::sync::watch::channel(true);
        let mut good = recorder(None, gate).await;
        let n = notifier_to(&[hang.addr, good.addr], 2);

        n.send(&numbered(1));
        until_len(&mut hang.arrived, 1).await;
        until_len(&mut good.accepted, 1).await;
        // The hanging receiver holds event 1: `send` returns at once all the
        // same, and the other receiver gets each event.
        for i in 2..=5 {
            n.send(&numbered(i));
            until_len(&mut good.accepted, i).await;
        }
        assert_eq!(*hang.arrived.borrow(), ["1"]);
        // Its queue holds two: 2 and 3 made way for 4 and 5.
        assert_eq!(n.failures(), 2);

        open_hang.send(true).unwrap();
        n.flush().await;
        assert_eq!(*hang.accepted.borrow(), ["1", "4", "5"]);
        assert_eq!(*good.accepted.borrow(), ["1", "2", "3", "4", "5"]);
        assert_eq!(n.failures(), 2);
    }
}
