use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize};

use super::*;

/// Records every pass; `web` fails while `fail_web` is set; a pass can be held
/// open until released, to show triggers arriving meanwhile.
struct Recorder {
    passes: Arc<Mutex<Vec<PassRequest>>>,
    fail_web: Arc<AtomicBool>,
    hold: Option<Arc<tokio::sync::Notify>>,
    entered: Arc<tokio::sync::Notify>,
    reloads: Arc<AtomicUsize>,
}

impl Reconciler for Recorder {
    async fn pass(&mut self, request: PassRequest, liveness: &Liveness) -> PassReport {
        let _step = liveness.begin("test pass");
        let stacks = ["web", "media"]
            .into_iter()
            .filter(|s| !request.skip.contains(*s))
            .map(|s| StackOutcome {
                stack: s.to_owned(),
                error: (s == "web" && self.fail_web.load(Ordering::SeqCst))
                    .then(|| "boom".to_owned()),
                drifted: 0,
                ailing: 0,
                services: 1,
            })
            .collect();
        self.passes.lock().unwrap().push(request);
        self.entered.notify_one();
        if let Some(hold) = self.hold.take() {
            hold.notified().await;
        }
        PassReport {
            stacks,
            error: None,
            updates: 0,
            rolled_back: 0,
        }
    }

    async fn reload(&mut self) -> Result<(), String> {
        self.reloads.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

#[derive(Default)]
struct Events(Mutex<Vec<String>>);

impl Reporter for Events {
    fn ready(&self, status: &str) {
        self.0.lock().unwrap().push(format!("ready: {status}"));
    }
    fn status(&self, status: &str) {
        self.0.lock().unwrap().push(format!("status: {status}"));
    }
    fn reloading(&self) {
        self.0.lock().unwrap().push("reloading".into());
    }
    fn stopping(&self) {
        self.0.lock().unwrap().push("stopping".into());
    }
}

fn settings() -> LoopSettings {
    LoopSettings {
        interval: Duration::from_secs(300),
        jitter: 0.0,
        backoff: Backoff {
            base: Duration::from_secs(10),
            max: Duration::from_secs(60),
        },
    }
}

fn shared() -> Shared {
    Shared {
        liveness: Arc::new(Liveness::new(Duration::from_secs(60))),
        ready: Arc::new(AtomicBool::new(false)),
        status: Arc::default(),
    }
}

fn recorder() -> Recorder {
    Recorder {
        passes: Arc::default(),
        fail_web: Arc::default(),
        hold: None,
        entered: Arc::default(),
        reloads: Arc::default(),
    }
}

async fn wait_for_passes(
    passes: &Arc<Mutex<Vec<PassRequest>>>,
    entered: &tokio::sync::Notify,
    n: usize,
) {
    while passes.lock().unwrap().len() < n {
        entered.notified().await;
    }
}

#[tokio::test(start_paused = true)]
async fn startup_then_interval_then_shutdown() {
    let mut r = recorder();
    let (passes, entered) = (r.passes.clone(), r.entered.clone());
    let (tx, rx) = mpsc::channel(8);
    let events = Events::default();
    let sh = shared();
    let task = async {
        let mut random = || 0.5;
        run_loop(&mut r, settings(), rx, &events, &sh, &mut random).await
    };
    let driver = async {
        wait_for_passes(&passes, &entered, 2).await;
        tx.send(Control::Shutdown).await.unwrap();
    };
    let (report, ()) = tokio::join!(task, driver);
    assert!(report.ok());
    let passes = passes.lock().unwrap();
    assert_eq!(passes[0].reasons, [Reason::Startup]);
    assert_eq!(passes[1].reasons, [Reason::Interval]);
    assert!(sh.ready.load(Ordering::SeqCst));
    let events = events.0.lock().unwrap();
    assert_eq!(events[0], "ready: 2/2 stacks in sync");
    assert_eq!(events.last().unwrap(), "stopping");
}

#[tokio::test(start_paused = true)]
async fn triggers_during_a_pass_coalesce_into_one_follow_up() {
    let mut r = recorder();
    let hold = Arc::new(tokio::sync::Notify::new());
    r.hold = Some(hold.clone());
    let (passes, entered) = (r.passes.clone(), r.entered.clone());
    let (tx, rx) = mpsc::channel(8);
    let events = Events::default();
    let sh = shared();
    let task = async {
        let mut random = || 0.5;
        run_loop(&mut r, settings(), rx, &events, &sh, &mut random).await
    };
    let driver = async {
        wait_for_passes(&passes, &entered, 1).await;
        // The first pass is held open: three triggers arrive meanwhile.
        tx.send(Control::Trigger(Reason::GitPush)).await.unwrap();
        tx.send(Control::Trigger(Reason::RegistryPush))
            .await
            .unwrap();
        tx.send(Control::Trigger(Reason::GitPush)).await.unwrap();
        hold.notify_one();
        wait_for_passes(&passes, &entered, 2).await;
        tx.send(Control::Shutdown).await.unwrap();
    };
    tokio::join!(task, driver);
    let passes = passes.lock().unwrap();
    assert_eq!(passes.len(), 2, "exactly one follow-up pass");
    assert_eq!(passes[1].reasons, [Reason::GitPush, Reason::RegistryPush]);
}

#[tokio::test(start_paused = true)]
async fn a_failing_stack_backs_off_while_the_others_converge() {
    let mut r = recorder();
    r.fail_web.store(true, Ordering::SeqCst);
    let fail_web = r.fail_web.clone();
    let (passes, entered) = (r.passes.clone(), r.entered.clone());
    let (tx, rx) = mpsc::channel(8);
    let events = Events::default();
    let sh = shared();
    let task = async {
        let mut random = || 0.5;
        run_loop(&mut r, settings(), rx, &events, &sh, &mut random).await
    };
    let driver = async {
        wait_for_passes(&passes, &entered, 1).await;
        // A push right away: `web` is inside its 10 s backoff and is skipped.
        tx.send(Control::Trigger(Reason::GitPush)).await.unwrap();
        wait_for_passes(&passes, &entered, 2).await;
        fail_web.store(false, Ordering::SeqCst);
        // Then the backoff runs out and `web` is retried on its own schedule.
        wait_for_passes(&passes, &entered, 3).await;
        tx.send(Control::Shutdown).await.unwrap();
    };
    tokio::join!(task, driver);
    let passes = passes.lock().unwrap();
    assert!(passes[1].skip.contains("web"), "{:?}", passes[1]);
    assert!(!passes[1].skip.contains("media"));
    assert_eq!(passes[2].reasons, [Reason::Retry]);
    assert!(passes[2].skip.is_empty());
    let events = events.0.lock().unwrap();
    assert!(
        events[0].contains("failing: web (last error: boom)"),
        "{events:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn reload_rereads_configuration_then_runs_a_pass() {
    let mut r = recorder();
    let (passes, entered, reloads) = (r.passes.clone(), r.entered.clone(), r.reloads.clone());
    let (tx, rx) = mpsc::channel(8);
    let events = Events::default();
    let sh = shared();
    let task = async {
        let mut random = || 0.5;
        run_loop(&mut r, settings(), rx, &events, &sh, &mut random).await
    };
    let driver = async {
        wait_for_passes(&passes, &entered, 1).await;
        tx.send(Control::Reload).await.unwrap();
        wait_for_passes(&passes, &entered, 2).await;
        tx.send(Control::Shutdown).await.unwrap();
    };
    tokio::join!(task, driver);
    assert_eq!(reloads.load(Ordering::SeqCst), 1);
    assert_eq!(passes.lock().unwrap()[1].reasons, [Reason::Reload]);
    assert!(events.0.lock().unwrap().contains(&"reloading".to_owned()));
}

#[tokio::test(start_paused = true)]
async fn the_watchdog_is_petted_only_while_the_loop_progresses() {
    let liveness = Arc::new(Liveness::new(Duration::from_secs(30)));
    let pets = Arc::new(AtomicUsize::new(0));
    let counter = pets.clone();
    let dog = tokio::spawn(watchdog(
        Duration::from_secs(5),
        liveness.clone(),
        move || {
            counter.fetch_add(1, Ordering::SeqCst);
        },
    ));
    tokio::time::sleep(Duration::from_secs(21)).await;
    let healthy = pets.load(Ordering::SeqCst);
    assert!(healthy >= 4, "{healthy}");
    // A step that never finishes: once past its allowance, no more pets.
    let step = liveness.begin("hung registry");
    tokio::time::sleep(Duration::from_secs(40)).await;
    let at_hang = pets.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(
        pets.load(Ordering::SeqCst),
        at_hang,
        "pets continued while stuck"
    );
    drop(step);
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(
        pets.load(Ordering::SeqCst) > at_hang,
        "pets resume with progress"
    );
    dog.abort();
}

#[cfg(unix)]
#[test]
fn only_this_instances_containers_trigger_a_pass() {
    use crate::core::observed::Health;
    use crate::engine::containers::{ContainerEvent, Happened};
    use service::event_trigger;
    let event = |happened: Happened, labels: &[(&str, &str)]| ContainerEvent {
        happened,
        name: "web_app_1".into(),
        attributes: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        at_ms: 0,
    };
    let died = Happened::Died { exit_code: 1 };
    let ours = [
        ("io.magos.managed", "true"),
        ("io.magos.instance", "home"),
        ("com.docker.compose.project", "web"),
        ("name", "web_app_1"),
    ];
    assert_eq!(
        event_trigger(&event(died, &ours), "home"),
        Some(Reason::Container {
            stack: "web".into(),
            container: "web_app_1".into(),
            event: "died".into(),
        })
    );
    assert!(event_trigger(&event(Happened::Removed, &ours), "home").is_some());
    assert!(matches!(
        event_trigger(&event(Happened::Health(Health::Unhealthy), &ours), "home"),
        Some(Reason::Container { event, .. }) if event == "unhealthy"
    ));
    assert!(event_trigger(&event(Happened::Health(Health::Healthy), &ours), "home").is_none());
    assert!(event_trigger(&event(Happened::Health(Health::Starting), &ours), "home").is_none());
    // Another Magos instance on the same engine, or no Magos at all.
    assert!(event_trigger(&event(died, &ours), "lab").is_none());
    assert!(event_trigger(&event(died, &ours[1..]), "home").is_none());
    assert!(event_trigger(&event(died, &[("name", "x")]), "home").is_none());
}

#[test]
fn the_status_line_counts_unhealthy_services_apart_from_drift() {
    let mut web = StackOutcome::new("web".to_owned());
    web.ailing = 1;
    web.services = 2;
    let media = StackOutcome::new("media".to_owned());
    let report = PassReport {
        stacks: vec![web, media],
        error: None,
        updates: 0,
        rolled_back: 1,
    };
    assert!(report.drifted());
    assert_eq!(
        report.summary(),
        "1/2 stacks in sync, 1 services unhealthy or restarting, 1 rolled back"
    );
}
