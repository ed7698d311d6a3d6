use super::*;

const S: i64 = 1000;
const T0: i64 = 1_700_000_000_000;

fn health(start_period_s: u64, interval_s: u64, retries: u32) -> Option<HealthTiming> {
    Some(HealthTiming {
        start_period_ms: start_period_s * 1000,
        interval_ms: interval_s * 1000,
        retries,
    })
}

fn soak(health: Option<HealthTiming>, may_exit: bool, soak_s: u64) -> Soak {
    Soak::new(
        Rules {
            health,
            may_exit,
            soak_ms: soak_s * 1000,
        },
        T0,
    )
}

fn failed(v: Verdict) -> Option<Failure> {
    match v {
        Verdict::Failed { failure, .. } => Some(failure),
        _ => None,
    }
}

const MARGIN_S: i64 = MARGIN.as_secs() as i64;

#[test]
fn a_healthcheck_must_pass_within_start_period_plus_interval_times_retries_plus_margin() {
    // start_period 10s, interval 5s × 3 retries: healthy by 25s + margin.
    let s = soak(health(10, 5, 3), false, 5);
    let deadline = T0 + (25 + MARGIN_S) * S;
    assert_eq!(s.verdict(T0), Verdict::Pending);
    assert_eq!(s.verdict(deadline - 1), Verdict::Pending);
    assert_eq!(
        failed(s.verdict(deadline)),
        Some(Failure::NotHealthy {
            within_ms: (25 + MARGIN_S as u64) * 1000
        })
    );
    assert_eq!(s.decided_by(), deadline);
}

#[test]
fn healthy_in_time_and_still_healthy_at_the_end_of_the_soak_passes() {
    let mut s = soak(health(0, 1, 1), false, 30);
    s.observe(
        Fact::Health {
            health: Health::Starting,
        },
        T0 + S,
    );
    s.observe(
        Fact::Health {
            health: Health::Healthy,
        },
        T0 + 2 * S,
    );
    // Healthy, but the soak is not over: pending even past the health deadline.
    assert_eq!(s.verdict(T0 + 29 * S), Verdict::Pending);
    assert_eq!(s.verdict(T0 + 30 * S), Verdict::Passed);
    assert_eq!(s.decided_by(), T0 + 30 * S);
}

#[test]
fn turning_unhealthy_fails_at_once_even_after_being_healthy() {
    let mut s = soak(health(0, 1, 1), false, 30);
    s.observe(
        Fact::Health {
            health: Health::Healthy,
        },
        T0 + S,
    );
    s.observe(
        Fact::Health {
            health: Health::Unhealthy,
        },
        T0 + 5 * S,
    );
    assert_eq!(
        s.verdict(T0 + 5 * S),
        Verdict::Failed {
            failure: Failure::Unhealthy,
            at: T0 + 5 * S
        }
    );
    // Nothing after a failure changes it.
    s.observe(
        Fact::Health {
            health: Health::Healthy,
        },
        T0 + 6 * S,
    );
    assert_eq!(failed(s.verdict(T0 + 60 * S)), Some(Failure::Unhealthy));
}

#[test]
fn without_a_healthcheck_the_service_must_keep_running_for_the_soak() {
    let s = soak(None, false, 10);
    assert_eq!(s.verdict(T0 + 9 * S), Verdict::Pending);
    assert_eq!(s.verdict(T0 + 10 * S), Verdict::Passed);

    let mut died = soak(None, false, 10);
    died.observe(Fact::Died { exit_code: 0 }, T0 + 3 * S);
    assert_eq!(
        failed(died.verdict(T0 + 3 * S)),
        Some(Failure::Died { exit_code: 0 }),
        "under a restart policy even exit 0 is a death"
    );

    let mut restarted = soak(None, false, 10);
    restarted.observe(Fact::Restarted, T0 + 3 * S);
    assert_eq!(
        failed(restarted.verdict(T0 + 3 * S)),
        Some(Failure::Restarted)
    );
}

#[test]
fn restart_no_may_exit_zero_but_not_fail() {
    let mut ok = soak(None, true, 10);
    ok.observe(Fact::Died { exit_code: 0 }, T0 + S);
    assert_eq!(ok.verdict(T0 + 5 * S), Verdict::Pending);
    assert_eq!(ok.verdict(T0 + 10 * S), Verdict::Passed);

    let mut bad = soak(None, true, 10);
    bad.observe(Fact::Died { exit_code: 2 }, T0 + S);
    assert_eq!(
        failed(bad.verdict(T0 + S)),
        Some(Failure::Died { exit_code: 2 })
    );

    // A one-shot job with a healthcheck that exits 0 before it was healthy
    // is done, not unhealthy.
    let mut job = soak(health(0, 1, 1), true, 10);
    job.observe(Fact::Died { exit_code: 0 }, T0 + S);
    assert_eq!(job.verdict(T0 + 60 * S), Verdict::Passed);
}

#[test]
fn facts_from_before_the_start_and_removals() {
    let mut s = soak(None, false, 10);
    s.observe(Fact::Died { exit_code: 1 }, T0 - 1);
    assert_eq!(
        s.verdict(T0 + 10 * S),
        Verdict::Passed,
        "an old death is not this container's"
    );
    s.observe(Fact::Removed, T0 + 11 * S);
    assert_eq!(failed(s.verdict(T0 + 11 * S)), Some(Failure::Removed));
}

#[test]
fn rules_come_from_the_spec() {
    use crate::core::spec::{ContainerImage, ContainerSpec};
    let mut spec = ContainerSpec::new(
        "web",
        "app",
        ContainerImage {
            reference: "app:1".into(),
            qualified: "docker.io/library/app:1".into(),
            digest: None,
        },
    );
    let r = Rules::for_spec(&spec, Duration::from_secs(120));
    assert_eq!(r.health, None);
    assert!(r.may_exit, "compose's default restart policy is no");
    assert_eq!(r.soak_ms, 120_000);
    spec.restart = Some(RestartPolicy::UnlessStopped);
    spec.healthcheck = Some(HealthSpec {
        test: vec!["CMD".into(), "true".into()],
        interval: None,
        timeout: None,
        start_period: Some(Duration::from_secs(5)),
        retries: None,
        start_interval: None,
    });
    let r = Rules::for_spec(&spec, Duration::from_secs(1));
    assert!(!r.may_exit);
    assert_eq!(
        r.health,
        health(5, 30, 3),
        "Podman's defaults fill the gaps"
    );
    spec.healthcheck.as_mut().unwrap().test = vec!["NONE".into()];
    assert_eq!(Rules::for_spec(&spec, Duration::ZERO).health, None);
}

#[test]
fn a_soak_survives_a_round_trip_through_json() {
    let mut s = soak(health(0, 1, 2), true, 10);
    s.observe(
        Fact::Health {
            health: Health::Healthy,
        },
        T0 + S,
    );
    let text = serde_json::to_string(&s).unwrap();
    let back: Soak = serde_json::from_str(&text).unwrap();
    assert_eq!(back, s);
    assert_eq!(back.verdict(T0 + 10 * S), Verdict::Passed);
}
