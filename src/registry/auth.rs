//! Registry authentication: reading `WWW-Authenticate` challenges, the bearer
//! token response, and a cache that keeps each token for its lifetime.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::config::Secret;

/// What a registry asked for in its `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// A token from `realm`, for `service`.
    Bearer {
        /// The token endpoint URL.
        realm: String,
        /// The `service` parameter to pass back.
        service: Option<String>,
    },
    /// HTTP Basic credentials on every request.
    Basic,
}

/// Reads the first usable challenge of a `WWW-Authenticate` value; Bearer is
/// preferred when both are offered. `None` for anything else.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let mut basic = false;
    for challenge in http_auth::ChallengeParser::new(header).flatten() {
        if challenge.scheme.eq_ignore_ascii_case("bearer") {
            let param = |name: &str| {
                challenge
                    .params
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.to_unescaped())
            };
            let realm = param("realm").filter(|r| !r.is_empty())?;
            return Some(Challenge::Bearer {
                realm,
                service: param("service"),
            });
        }
        if challenge.scheme.eq_ignore_ascii_case("basic") {
            basic = true;
        }
    }
    basic.then_some(Challenge::Basic)
}

/// The token endpoint's answer.
#[derive(Deserialize)]
struct TokenWire {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// A token with how long it may be used.
#[derive(Debug, Clone)]
pub struct Token {
    /// The bearer token.
    pub value: Secret,
    /// Its lifetime as granted.
    pub lifetime: Duration,
}

/// The lifetime assumed when the token endpoint gives none (the distribution
/// specification's minimum).
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);

/// Reads a token response body. `None` when it holds no token; the body is
/// never quoted back, since it may hold one.
pub fn parse_token(body: &[u8]) -> Option<Token> {
    let wire: TokenWire = serde_json::from_slice(body).ok()?;
    let value = wire.token.or(wire.access_token).filter(|t| !t.is_empty())?;
    let lifetime = wire
        .expires_in
        .filter(|s| *s > 0)
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_TOKEN_LIFETIME);
    Some(Token {
        value: Secret::new(value),
        lifetime,
    })
}

/// Bearer tokens of one registry by scope, each dropped when its lifetime (less
/// a margin for the request in flight) has passed.
#[derive(Debug, Default)]
pub struct TokenCache {
    tokens: HashMap<String, (Secret, Instant)>,
}

/// How long before its end a token stops being used.
const EXPIRY_MARGIN: Duration = Duration::from_secs(10);

impl TokenCache {
    /// The token for `scope`, if it is still valid at `now`.
    pub fn get(&self, scope: &str, now: Instant) -> Option<Secret> {
        self.tokens
            .get(scope)
            .filter(|(_, until)| now < *until)
            .map(|(t, _)| t.clone())
    }

    /// Keeps a token obtained at `now`.
    pub fn insert(&mut self, scope: &str, token: Token, now: Instant) {
        let usable = token
            .lifetime
            .saturating_sub(EXPIRY_MARGIN)
            .max(token.lifetime / 2);
        self.tokens
            .insert(scope.to_owned(), (token.value, now + usable));
    }

    /// Forgets a token the registry refused.
    pub fn remove(&mut self, scope: &str) {
        self.tokens.remove(scope);
    }
}

/// The pull scope of a repository.
pub fn pull_scope(repository: &str) -> String {
    format!("repository:{repository}:pull")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="x", Bearer realm="https://t/token""#),
            Some(Challenge::Bearer {
                realm: "https://t/token".into(),
                service: None
            })
        );
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(parse_challenge(r#"Bearer service="x""#), None);
        assert_eq!(parse_challenge("\u{0}garbage=\"\""), None);
    }

    #[test]
    fn token_bodies() {
        let t = parse_token(br#"{"token":"abc","expires_in":300}"#).unwrap();
        assert_eq!(t.value.expose(), "abc");
        assert_eq!(t.lifetime, Duration::from_secs(300));
        let t = parse_token(br#"{"access_token":"xyz"}"#).unwrap();
        assert_eq!(t.value.expose(), "xyz");
        assert_eq!(t.lifetime, DEFAULT_TOKEN_LIFETIME);
        assert!(parse_token(br#"{"token":""}"#).is_none());
        assert!(parse_token(b"<html>").is_none());
        assert!(!format!("{t:?}").contains("xyz"));
    }

    #[test]
    fn tokens_live_for_their_lifetime() {
        let mut cache = TokenCache::default();
        let t0 = Instant::now();
        let token = Token {
            value: Secret::new("t"),
            lifetime: Duration::from_secs(300),
        };
        cache.insert("repository:a:pull", token, t0);
        assert!(cache.get("repository:a:pull", t0).is_some());
        assert!(
            cache
                .get("repository:a:pull", t0 + Duration::from_secs(289))
                .is_some()
        );
        assert!(
            cache
                .get("repository:a:pull", t0 + Duration::from_secs(291))
                .is_none()
        );
        assert!(cache.get("repository:b:pull", t0).is_none());
        let short = Token {
            value: Secret::new("s"),
            lifetime: Duration::from_secs(4),
        };
        cache.insert("s", short, t0);
        assert!(cache.get("s", t0 + Duration::from_secs(1)).is_some());
        assert!(cache.get("s", t0 + Duration::from_secs(3)).is_none());
        cache.remove("repository:a:pull");
        assert!(cache.get("repository:a:pull", t0).is_none());
    }
}
