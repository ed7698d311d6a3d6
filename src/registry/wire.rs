//! Wire formats of the distribution API that Magos reads itself: tag lists, the
//! image config's creation time, and the `Link`, `Retry-After` and `RateLimit`
//! headers. Manifests are read with `oci-client`'s types.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// `GET /v2/<name>/tags/list`.
#[derive(Debug, Deserialize)]
pub struct TagList {
    /// The tags of this page; some registries send `null` for none.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
}

/// The part of an image config that Magos reads.
#[derive(Debug, Deserialize)]
pub struct ImageConfig {
    /// RFC 3339 creation time.
    #[serde(default)]
    pub created: Option<String>,
}

/// Reads an RFC 3339 time.
pub fn parse_time(s: &str) -> Option<SystemTime> {
    let t = chrono::DateTime::parse_from_rfc3339(s).ok()?;
    let secs = t.timestamp();
    let nanos = t.timestamp_subsec_nanos();
    if secs >= 0 {
        SystemTime::UNIX_EPOCH.checked_add(Duration::new(secs as u64, nanos))
    } else {
        SystemTime::UNIX_EPOCH.checked_sub(Duration::from_secs(secs.unsigned_abs()))
    }
}

/// The `rel="next"` target of a `Link` header, as written (often a path).
pub fn next_link(header: &str) -> Option<String> {
    for part in header.split(',') {
        let part = part.trim();
        let Some(rest) = part.strip_prefix('<') else {
            continue;
        };
        let Some((target, params)) = rest.split_once('>') else {
            continue;
        };
        let is_next = params.split(';').any(|p| {
            let p = p.trim().replace(' ', "");
            p.eq_ignore_ascii_case("rel=\"next\"") || p.eq_ignore_ascii_case("rel=next")
        });
        if is_next && !target.is_empty() {
            return Some(target.to_owned());
        }
    }
    None
}

/// How long a `Retry-After` asks to wait: delay seconds or an HTTP date
/// (relative to `now`). `None` when unreadable.
pub fn retry_after(header: &str, now: SystemTime) -> Option<Duration> {
    let h = header.trim();
    if let Ok(secs) = h.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(h).ok()?;
    let at = SystemTime::UNIX_EPOCH
        .checked_add(Duration::from_secs(u64::try_from(at.timestamp()).ok()?))?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A registry's rate-limit headers (`ratelimit-limit: 100;w=21600`,
/// `ratelimit-remaining: 76;w=21600`, or their `x-` forms).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RateLimit {
    /// Requests allowed per window.
    pub limit: Option<u64>,
    /// Requests left in the window.
    pub remaining: Option<u64>,
    /// The window, when given.
    pub window: Option<Duration>,
}

impl RateLimit {
    /// Reads the headers; `None` when there are none.
    pub fn from_headers(limit: Option<&str>, remaining: Option<&str>) -> Option<Self> {
        fn parse(v: &str) -> (Option<u64>, Option<Duration>) {
            let mut parts = v.split(';');
            let n = parts.next().and_then(|n| n.trim().parse().ok());
            let w = parts
                .filter_map(|p| p.trim().strip_prefix("w="))
                .find_map(|w| w.trim().parse().ok())
                .map(Duration::from_secs);
            (n, w)
        }
        if limit.is_none() && remaining.is_none() {
            return None;
        }
        let (limit, w1) = limit.map(parse).unwrap_or_default();
        let (remaining, w2) = remaining.map(parse).unwrap_or_default();
        Some(Self {
            limit,
            remaining,
            window: w2.or(w1),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_headers() {
        assert_eq!(
            next_link(r#"</v2/a/tags/list?last=1.0&n=50>; rel="next""#).as_deref(),
            Some("/v2/a/tags/list?last=1.0&n=50")
        );
        assert_eq!(
            next_link(r#"<https://x/prev>; rel="prev", <https://x/next>; rel=next"#).as_deref(),
            Some("https://x/next")
        );
        assert_eq!(next_link(r#"<https://x/p>; rel="prev""#), None);
        assert_eq!(next_link("garbage"), None);
        assert_eq!(next_link(""), None);
    }

    #[test]
    fn retry_after_values() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_470);
        assert_eq!(retry_after("7", now), Some(Duration::from_secs(7)));
        // Wed, 21 Oct 2015 07:28:00 GMT is 1445412480.
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon", now), None);
        assert_eq!(retry_after("-3", now), None);
    }

    #[test]
    fn rate_limit_headers() {
        assert_eq!(
            RateLimit::from_headers(Some("100;w=21600"), Some("76;w=21600")),
            Some(RateLimit {
                limit: Some(100),
                remaining: Some(76),
                window: Some(Duration::from_secs(21600))
            })
        );
        assert_eq!(
            RateLimit::from_headers(None, Some("5")),
            Some(RateLimit {
                limit: None,
                remaining: Some(5),
                window: None
            })
        );
        assert_eq!(RateLimit::from_headers(None, None), None);
        assert_eq!(
            RateLimit::from_headers(Some("x"), None),
            Some(RateLimit::default())
        );
    }

    #[test]
    fn times() {
        assert_eq!(
            parse_time("1970-01-01T00:01:40Z"),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(100))
        );
        assert!(parse_time("2024-05-01T10:00:00.123456789+02:00").is_some());
        assert!(parse_time("yesterday").is_none());
    }
}
