//! `magos run` as a service: wires the loop to its triggers (signals, webhooks,
//! the container engine's events) and its reporters (systemd, the HTTP
//! endpoint, the log).
//!
//! Linux/unix only: signals, the notify socket and the engine's event stream.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::schedule::{Backoff, RestartLimiter};
use super::{Control, LoopSettings, PassReport, Reason, Reconciler, Reporter, Shared, run_loop};
use crate::config::Config;
use crate::core::observed::Health;
use crate::core::spec::{LABEL_INSTANCE, LABEL_MANAGED, LABEL_PROJECT};
use crate::engine::containers::{ContainerEvent, Containers, EventFilter, Happened};
use crate::server::{self, HookTrigger, Liveness, Metrics};
use crate::systemd::notify::{Notice, Notifier};

/// Reports to systemd (when started by it) and to the log.
///
/// The datagrams go out from a thread of their own: when the notification
/// socket's queue is full (systemd busy, or a supervisor that stopped reading),
/// that thread waits, never the daemon's runtime, whose passes and HTTP
/// endpoint go on. Notices waiting beyond [`NOTICE_QUEUE`] are dropped, with
/// one warning until the socket takes them again.
pub struct SystemdReporter {
    sender: Option<std::sync::mpsc::SyncSender<Outgoing>>,
    /// A notice was dropped and no datagram went out since: warn once.
    dropping: Arc<AtomicBool>,
    stopped: AtomicBool,
}

/// The notices that may wait for the notification socket.
const NOTICE_QUEUE: usize = 64;

/// One datagram for the sender thread, with whom to tell once it is out.
struct Outgoing {
    notices: Vec<Notice>,
    sent: Option<std::sync::mpsc::Sender<()>>,
}

impl SystemdReporter {
    /// A reporter for `notifier` (`None` when not started by systemd).
    pub fn new(notifier: Option<Notifier>) -> Self {
        let dropping = Arc::new(AtomicBool::new(false));
        let sender = notifier.and_then(|n| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Outgoing>(NOTICE_QUEUE);
            let dropping = dropping.clone();
            std::thread::Builder::new()
                .name("sd-notify".to_owned())
                .spawn(move || {
                    for out in rx {
                        match n.notify(&out.notices) {
                            Ok(()) => dropping.store(false, Ordering::Release),
                            Err(e) => tracing::warn!(error = %e, "could not notify systemd"),
                        }
                        if let Some(done) = out.sent {
                            let _ = done.send(());
                        }
                    }
                })
                .map_err(|e| tracing::warn!(error = %e, "cannot start the systemd notification thread; systemd will not be notified"))
                .ok()
                .map(|_| tx)
        });
        Self {
            sender,
            dropping,
            stopped: AtomicBool::new(false),
        }
    }

    fn send(&self, notices: &[Notice]) {
        self.queue(notices, None);
    }

    /// Queues `notices`; `sent` hears once they are out.
    fn queue(&self, notices: &[Notice], sent: Option<std::sync::mpsc::Sender<()>>) {
        let Some(tx) = &self.sender else { return };
        let out = Outgoing {
            notices: notices.to_vec(),
            sent,
        };
        if let Err(std::sync::mpsc::TrySendError::Full(_)) = tx.try_send(out)
            && !self.dropping.swap(true, Ordering::AcqRel)
        {
            tracing::warn!(
                waiting = NOTICE_QUEUE,
                "systemd is not reading its notification socket: notices are dropped until it does"
            );
        }
    }
}

impl Reporter for SystemdReporter {
    fn ready(&self, status: &str) {
        tracing::info!(status, "ready");
        self.send(&[Notice::Ready, Notice::Status(status.to_owned())]);
    }

    fn status(&self, status: &str) {
        tracing::info!(status, "pass finished");
        self.send(&[Notice::Status(status.to_owned())]);
    }

    /// The unit is `Type=notify` with `ExecReload=kill -HUP`: systemd counts the
    /// reload as done when `kill` returns, so no `RELOADING=1` is sent (it would
    /// put the unit back into "reloading" until the next `READY=1`); the pass
    /// that follows reports through `STATUS=`.
    fn reloading(&self) {
        tracing::info!("reloading the configuration");
    }

    fn stopping(&self) {
        if self.stopped.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::info!("stopping");
        // Out before the process exits, unless the socket stays full.
        let (sent, out) = std::sync::mpsc::channel();
        self.queue(
            &[Notice::Stopping, Notice::Status("stopping".to_owned())],
            Some(sent),
        );
        let _ = out.recv_timeout(Duration::from_secs(1));
    }
}

/// Everything a running daemon shares.
pub struct Daemon {
    /// The loop's progress and readiness.
    pub shared: Shared,
    /// The metrics.
    pub metrics: Arc<Metrics>,
    /// Set on SIGTERM/SIGINT: passes stop at the next safe point.
    pub stopping: Arc<AtomicBool>,
}

impl Daemon {
    /// A daemon whose steps count as stuck after `stuck_after`.
    pub fn new(stuck_after: Duration) -> Self {
        Self {
            shared: Shared {
                liveness: Arc::new(Liveness::new(stuck_after)),
                ready: Arc::new(AtomicBool::new(false)),
                status: Arc::default(),
            },
            metrics: Arc::new(Metrics::new()),
            stopping: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// Runs the daemon until SIGTERM/SIGINT. `containers` is the engine whose
/// container events trigger passes (Podman's or Docker's).
pub async fn serve<R: Reconciler>(
    reconciler: &mut R,
    config: &Config,
    daemon: &Daemon,
    notifier: Option<Notifier>,
    containers: Option<Containers>,
) -> anyhow::Result<PassReport> {
    let (control_tx, control_rx) = mpsc::channel::<Control>(64);
    let watchdog_every = notifier.as_ref().and_then(Notifier::watchdog_ping_interval);
    let reporter = Arc::new(SystemdReporter::new(notifier));
    let mut tasks = tokio::task::JoinSet::new();

    // Signals.
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        let tx = control_tx.clone();
        let stopping = daemon.stopping.clone();
        let reporter = reporter.clone();
        tasks.spawn(async move {
            loop {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                    _ = hup.recv() => {
                        let _ = tx.send(Control::Reload).await;
                        continue;
                    }
                }
                // Passes stop at their next safe point; systemd hears at once.
                stopping.store(true, Ordering::Release);
                // A git operation under way (a push that never answers) ends
                // now, with its whole process group.
                crate::git::stop_all();
                reporter.stopping();
                let _ = tx.send(Control::Shutdown).await;
            }
        });
    }

    // The HTTP endpoint and its webhooks.
    if let Some(addr) = config.daemon.listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr} (daemon.listen): {e}"))?;
        tracing::info!(%addr, "http endpoint listening");
        let (hook_tx, mut hook_rx) = mpsc::channel::<HookTrigger>(8);
        let state = Arc::new(server::State {
            ready: daemon.shared.ready.clone(),
            status: daemon.shared.status.clone(),
            liveness: daemon.shared.liveness.clone(),
            metrics: daemon.metrics.clone(),
            forge_secret: config.daemon.webhook_secret.clone(),
            registry_secret: config.daemon.registry_webhook_secret.clone(),
            branch: config.repo.branch.as_str().to_owned(),
            triggers: hook_tx,
            limits: config.daemon.http.clone(),
        });
        tasks.spawn(server::serve(listener, state, std::future::pending()));
        let tx = control_tx.clone();
        tasks.spawn(async move {
            while let Some(t) = hook_rx.recv().await {
                let _ = tx.send(Control::Trigger(t.into())).await;
            }
        });
    }

    // The systemd watchdog, petted only while the loop makes progress.
    if let Some(every) = watchdog_every {
        let reporter = reporter.clone();
        tasks.spawn(super::watchdog(
            every,
            daemon.shared.liveness.clone(),
            move || {
                reporter.send(&[Notice::Watchdog]);
            },
        ));
    }
    // Until ready, a first pass that keeps making progress (long first pulls)
    // extends systemd's start-up timeout.
    {
        let reporter = reporter.clone();
        let ready = daemon.shared.ready.clone();
        let liveness = daemon.shared.liveness.clone();
        tasks.spawn(async move {
            while !ready.load(Ordering::Acquire) {
                tokio::time::sleep(Duration::from_secs(10)).await;
                if !ready.load(Ordering::Acquire) && liveness.check().is_ok() {
                    reporter.send(&[Notice::ExtendTimeout(Duration::from_secs(30))]);
                }
            }
        });
    }

    // Container events: a managed container that died, was removed or turned
    // unhealthy triggers a pass, within the restart limit.
    if let Some(containers) = containers {
        let tx = control_tx.clone();
        let limit = RestartLimiter::new(
            config.daemon.restart_limit as usize,
            config.daemon.restart_window.0,
        );
        let metrics = daemon.metrics.clone();
        let instance = config.apply.instance.as_str().to_owned();
        tasks.spawn(watch_events(containers, instance, tx, limit, metrics));
    }

    let settings = LoopSettings {
        interval: config.daemon.interval.0,
        jitter: config.daemon.jitter.fraction(),
        backoff: Backoff {
            base: Duration::from_secs(10),
            max: Duration::from_secs(600),
        },
    };
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64 ^ d.as_secs())
        .unwrap_or(1)
        | 1;
    let mut random = move || {
        // xorshift64: jitter needs spread, not cryptographic quality.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 11) as f64 / (1u64 << 53) as f64
    };
    let report = run_loop(
        reconciler,
        settings,
        control_rx,
        reporter.as_ref(),
        &daemon.shared,
        &mut random,
    )
    .await;
    tasks.abort_all();
    Ok(report)
}

/// Follows the engine's container events and turns those of the containers
/// this instance manages (another Magos instance's are not its business) into
/// pass triggers. The stream is reopened with backoff when it ends (Podman's
/// service may exit when idle and be socket-activated again; dockerd may
/// restart).
async fn watch_events(
    containers: Containers,
    instance: String,
    tx: mpsc::Sender<Control>,
    mut limit: RestartLimiter,
    metrics: Arc<Metrics>,
) {
    let mut pause = Duration::from_secs(1);
    loop {
        let filter = EventFilter {
            labels: vec![format!("{LABEL_INSTANCE}={instance}")],
            ..EventFilter::default()
        };
        match containers.events(&filter).await {
            Ok(mut stream) => {
                pause = Duration::from_secs(1);
                while let Some(event) = stream.next().await {
                    let Ok(event) = event else { break };
                    let Some(reason) = event_trigger(&event, &instance) else {
                        continue;
                    };
                    let Reason::Container {
                        stack,
                        container,
                        event,
                    } = &reason
                    else {
                        continue;
                    };
                    if limit.allow(container, tokio::time::Instant::now().into_std()) {
                        tracing::info!(%container, %stack, %event, "managed container event: re-applying");
                        let _ = tx.send(Control::Trigger(reason)).await;
                    } else {
                        metrics.error("crash_loop");
                        tracing::error!(
                            %container, %stack,
                            "container keeps failing: restart limit reached, not re-applying until the window passes"
                        );
                    }
                }
            }
            Err(e) => {
                tracing::debug!(error = %format!("{e:#}"), engine = containers.name(), "container events unavailable; retrying")
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(30));
    }
}

/// The pass a container event asks for: a container of this instance's
/// stacks that died, was removed or turned unhealthy. Containers of other
/// Magos instances sharing the engine are theirs to heal.
pub fn event_trigger(event: &ContainerEvent, instance: &str) -> Option<Reason> {
    let attrs = &event.attributes;
    if attrs.get(LABEL_MANAGED).is_none_or(|v| v != "true")
        || attrs.get(LABEL_INSTANCE).is_none_or(|v| v != instance)
    {
        return None;
    }
    match event.happened {
        Happened::Died { .. } | Happened::Removed | Happened::Health(Health::Unhealthy) => {}
        Happened::Health(_) => return None,
    }
    let stack = attrs.get(LABEL_PROJECT)?.clone();
    Some(Reason::Container {
        stack,
        container: event.name.clone(),
        event: event.happened.word().to_owned(),
    })
}
