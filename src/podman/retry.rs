//! When a failed request is tried again, and how long to wait before it.
//!
//! A socket-activated Podman service starts on the first connection and exits when
//! idle; while it (re)starts, a connection can be refused, reset or cut. The rule:
//!
//! - the connection could not be made for a passing reason (refused, socket file
//!   missing, backlog full): nothing reached Podman, so every request is retried;
//!   a lasting reason (permission denied) is final at once;
//! - the connection broke after it was made (reset, broken pipe, closed before the
//!   answer): only idempotent requests are retried, because Podman may have acted on
//!   the request already;
//! - anything else (an answer with an error status, bad JSON, a timeout) is final.

use std::io;
use std::time::Duration;

/// Bounded exponential backoff: `initial`, doubling, at most `max_delay` between
/// attempts, and no new attempt once `budget` has been spent waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first wait.
    pub initial: Duration,
    /// The longest single wait.
    pub max_delay: Duration,
    /// The total waiting time after which the last error is returned.
    pub budget: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(50),
            max_delay: Duration::from_secs(2),
            budget: Duration::from_secs(20),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (0-based), or `None` when waiting that
    /// long would exceed the budget, given `waited` so far.
    pub fn delay(&self, retry: u32, waited: Duration) -> Option<Duration> {
        let factor = 2u32.saturating_pow(retry.min(16));
        let delay = self
            .initial
            .checked_mul(factor)
            .unwrap_or(self.max_delay)
            .min(self.max_delay);
        (waited + delay <= self.budget).then_some(delay)
    }
}

/// How a request failed at the connection level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The connection could not be made, for a reason that passes when the
    /// service is up (refused, no socket file yet); the request never left.
    Connect,
    /// The connection could not be made and trying again will not help
    /// (permission denied, not a socket).
    ConnectDenied,
    /// The connection broke while the request or its answer was under way.
    Broken,
    /// Any other failure.
    Other,
}

/// Whether a failure of this kind is retried for a request that is (or is not)
/// idempotent.
pub fn should_retry(failure: Failure, idempotent: bool) -> bool {
    match failure {
        Failure::Connect => true,
        Failure::Broken => idempotent,
        Failure::ConnectDenied | Failure::Other => false,
    }
}

/// Sorts an I/O error kind seen after connecting.
pub fn broken_io(kind: io::ErrorKind) -> bool {
    matches!(
        kind,
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
            | io::ErrorKind::NotConnected
    )
}

/// Sorts an I/O error kind seen while connecting: does it pass once the service
/// is up?
pub fn transient_connect(kind: io::ErrorKind) -> bool {
    matches!(
        kind,
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::NotFound
            | io::ErrorKind::WouldBlock
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::TimedOut
            | io::ErrorKind::Interrupted
    )
}

/// The first I/O error in a source chain.
fn io_source<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a io::Error> {
    let mut source = Some(err);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            return Some(io);
        }
        source = e.source();
    }
    None
}

/// Classifies a client error by walking its source chain.
pub fn classify(err: &hyper_util::client::legacy::Error) -> Failure {
    if err.is_connect() {
        return match io_source(err).map(io::Error::kind) {
            Some(kind) if !transient_connect(kind) => Failure::ConnectDenied,
            _ => Failure::Connect,
        };
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(err);
    while let Some(e) = source {
        if let Some(h) = e.downcast_ref::<hyper::Error>()
            && (h.is_incomplete_message() || h.is_closed() || h.is_canceled())
        {
            return Failure::Broken;
        }
        if let Some(io) = e.downcast_ref::<io::Error>()
            && broken_io(io.kind())
        {
            return Failure::Broken;
        }
        source = e.source();
    }
    Failure::Other
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap() {
        let p = RetryPolicy {
            initial: Duration::from_millis(100),
            max_delay: Duration::from_millis(500),
            budget: Duration::from_secs(60),
        };
        let d: Vec<_> = (0..5)
            .map(|i| p.delay(i, Duration::ZERO).unwrap().as_millis())
            .collect();
        assert_eq!(d, vec![100, 200, 400, 500, 500]);
        assert_eq!(
            p.delay(1000, Duration::ZERO),
            Some(Duration::from_millis(500))
        );
    }

    #[test]
    fn the_budget_ends_the_retries() {
        let p = RetryPolicy {
            initial: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            budget: Duration::from_millis(350),
        };
        assert!(p.delay(0, Duration::ZERO).is_some());
        assert!(p.delay(1, Duration::from_millis(100)).is_some());
        assert_eq!(p.delay(2, Duration::from_millis(300)), None);
    }

    #[test]
    fn connect_failures_are_always_retried_broken_ones_only_when_idempotent() {
        assert!(should_retry(Failure::Connect, false));
        assert!(should_retry(Failure::Connect, true));
        assert!(should_retry(Failure::Broken, true));
        assert!(!should_retry(Failure::Broken, false));
        assert!(!should_retry(Failure::ConnectDenied, true));
        assert!(!should_retry(Failure::Other, true));
    }

    #[test]
    fn passing_and_lasting_connect_failures() {
        assert!(transient_connect(io::ErrorKind::ConnectionRefused));
        assert!(transient_connect(io::ErrorKind::NotFound));
        assert!(!transient_connect(io::ErrorKind::PermissionDenied));
    }

    #[test]
    fn broken_connection_kinds() {
        assert!(broken_io(io::ErrorKind::ConnectionReset));
        assert!(broken_io(io::ErrorKind::BrokenPipe));
        assert!(!broken_io(io::ErrorKind::PermissionDenied));
    }
}
