//! Remote URLs: taking credentials out of a configured URL, and naming the
//! local clone after it. Pure functions.

use crate::config::Secret;

/// A user name and password (or token) for HTTPS remotes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name; `x-access-token` for GitHub App installation tokens.
    pub username: String,
    /// The password or token.
    pub password: Secret,
}

impl Credentials {
    /// A token used the way GitHub (App installation tokens and personal access
    /// tokens) and most forges accept it: user `x-access-token`, the token as password.
    pub fn token(token: Secret) -> Self {
        Self {
            username: "x-access-token".to_owned(),
            password: token,
        }
    }
}

/// Splits a configured remote URL into the URL Magos stores on disk (without
/// any credentials) and the credentials that were embedded in it.
///
/// Only `http://` and `https://` URLs carry credentials: `https://user:pass@host/…`
/// gives `user`/`pass`, and a lone `https://TOKEN@host/…` is a token (user
/// `x-access-token`). The user part of `ssh://git@host/…` is kept: it is not a secret.
pub fn split_credentials(url: &str) -> (String, Option<Credentials>) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_owned(), None);
    };
    if !matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https") {
        return (url.to_owned(), None);
    }
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return (url.to_owned(), None);
    };
    let userinfo = &authority[..at];
    let stripped = format!("{scheme}://{}", &rest[at + 1..]);
    let credentials = match userinfo.split_once(':') {
        Some((user, pass)) => Credentials {
            username: percent_decode(user),
            password: Secret::new(percent_decode(pass)),
        },
        None => Credentials::token(Secret::new(percent_decode(userinfo))),
    };
    (stripped, Some(credentials))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The folder name of the clone of `url` (a URL without credentials, as
/// returned by [`split_credentials`]): the repository's name, then a short stable
/// hash of the whole URL so two remotes with the same name do not share a clone.
pub fn clone_dir_name(url: &str) -> String {
    let trimmed = url.trim_end_matches('/');
    let last = trimmed
        .rsplit(['/', ':', '\\'])
        .next()
        .unwrap_or(trimmed)
        .trim_end_matches(".git");
    let mut name: String = last
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() || name.starts_with('.') {
        name.insert_str(0, "repo");
    }
    format!("{name}-{:08x}", fnv1a(url.as_bytes()) as u32)
}

/// FNV-1a: stable across Rust releases, unlike `DefaultHasher`.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_and_password_are_taken_out() {
        let (url, creds) = split_credentials("https://bot:s3cr%40t@example.org/o/r.git");
        assert_eq!(url, "https://example.org/o/r.git");
        let creds = creds.unwrap();
        assert_eq!(creds.username, "bot");
        assert_eq!(creds.password.expose(), "s3cr@t");
    }

    #[test]
    fn a_lone_token_becomes_an_access_token() {
        let (url, creds) = split_credentials("https://ghp_abc@github.com/o/r");
        assert_eq!(url, "https://github.com/o/r");
        let creds = creds.unwrap();
        assert_eq!(creds.username, "x-access-token");
        assert_eq!(creds.password.expose(), "ghp_abc");
    }

    #[test]
    fn other_urls_are_left_alone() {
        for url in [
            "https://example.org/o/r.git",
            "ssh://git@example.org/o/r.git",
            "git@example.org:o/r.git",
            "file:///srv/git/r.git",
            "/srv/git/r.git",
            "https://example.org/path@with-at",
        ] {
            assert_eq!(split_credentials(url), (url.to_owned(), None), "{url}");
        }
    }

    #[test]
    fn clone_names_are_readable_and_distinct() {
        let a = clone_dir_name("https://example.org/me/homelab.git");
        let b = clone_dir_name("https://example.org/you/homelab.git");
        assert!(a.starts_with("homelab-"), "{a}");
        assert!(b.starts_with("homelab-"), "{b}");
        assert_ne!(a, b);
        assert_eq!(a, clone_dir_name("https://example.org/me/homelab.git"));
        assert!(clone_dir_name("git@host:stacks").starts_with("stacks-"));
        assert!(clone_dir_name("/srv/git/x y/").starts_with("x_y-"));
        assert!(clone_dir_name("/").starts_with("repo-"));
    }
}
