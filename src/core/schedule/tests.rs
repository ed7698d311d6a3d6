//! The schedule's rules under arbitrary instants (a clock reading is only a
//! starting point here; the rules never read the clock).

use super::*;

#[test]
fn jitter_stays_within_bounds() {
    let i = Duration::from_secs(300);
    assert_eq!(jittered(i, 0.1, 0.5), i);
    assert_eq!(jittered(i, 0.1, 0.0), Duration::from_secs(270));
    assert!(jittered(i, 0.1, 0.999) <= Duration::from_secs(330));
    assert_eq!(jittered(i, 0.0, 0.9), i);
}

#[test]
fn backoff_doubles_up_to_the_cap() {
    let b = Backoff {
        base: Duration::from_secs(10),
        max: Duration::from_secs(300),
    };
    let delays: Vec<u64> = (1..=7).map(|n| b.delay(n).as_secs()).collect();
    assert_eq!(delays, [10, 20, 40, 80, 160, 300, 300]);
    assert_eq!(b.delay(u32::MAX), Duration::from_secs(300));
}

#[test]
fn a_failing_stack_waits_and_a_success_clears_it() {
    let mut s = StackBackoff::new(Backoff {
        base: Duration::from_secs(10),
        max: Duration::from_secs(60),
    });
    let t0 = Instant::now();
    s.record("web", false, t0);
    assert!(s.waiting("web", t0 + Duration::from_secs(5)));
    assert!(!s.waiting("web", t0 + Duration::from_secs(10)));
    assert!(!s.waiting("media", t0));
    s.record("web", false, t0 + Duration::from_secs(10));
    assert_eq!(s.get("web").unwrap().failures, 2);
    assert_eq!(s.next_retry(), Some(t0 + Duration::from_secs(30)));
    s.record("web", true, t0 + Duration::from_secs(30));
    assert_eq!(s.next_retry(), None);
}

#[test]
fn the_restart_limit_holds_within_its_window() {
    let mut l = RestartLimiter::new(3, Duration::from_secs(600));
    let t0 = Instant::now();
    for i in 0..3 {
        assert!(l.allow("web_app_1", t0 + Duration::from_secs(i)));
    }
    assert!(
        !l.allow("web_app_1", t0 + Duration::from_secs(4)),
        "a crash loop is not restarted forever"
    );
    assert!(
        l.allow("web_db_1", t0 + Duration::from_secs(4)),
        "limits are per container"
    );
    assert!(
        l.allow("web_app_1", t0 + Duration::from_secs(601)),
        "the window slides"
    );
}
