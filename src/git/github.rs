//! GitHub App authentication and pull requests, through GitHub's REST API
//! (octocrab as the authenticated client, with this module's own wire types).
//!
//! The App signs a JWT (RS256) with its private key; with it Magos finds the
//! installation for the repository (or uses the configured one) and mints an
//! installation token, which serves both HTTPS git (`x-access-token`) and the
//! API. The token is cached and minted again shortly before it expires.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use octocrab::Octocrab;
use serde::{Deserialize, Serialize};

use crate::config::{PrivateKey, Secret};

use super::{Auth, Credentials};

/// A token is minted again when less than this is left of its life.
const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// What can go wrong with the GitHub API. Messages never contain a key or token.
#[derive(Debug, thiserror::Error)]
pub enum GithubError {
    /// The private key file could not be read.
    #[error("cannot read the GitHub App private key {}", path.display())]
    ReadKey {
        /// The key file.
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The private key is not an RSA key in PEM form.
    #[error("the GitHub App private key is not a valid RSA PEM key")]
    BadKey {
        /// The parser's error (it never quotes the key).
        #[source]
        source: jsonwebtoken::errors::Error,
    },
    /// An App id is configured without its private key.
    #[error("github.app_id is set but github.private_key (GITHUB_APP_PRIVATE_KEY) is not")]
    MissingKey,
    /// The API URL is not valid.
    #[error("`{url}` is not a valid GitHub API URL")]
    BadApiUrl {
        /// The URL.
        url: String,
    },
    /// The repository URL does not name a GitHub repository.
    #[error("`{url}` does not name a repository as `owner/name`")]
    NotAGithubRepo {
        /// The URL, without credentials.
        url: String,
    },
    /// A request to the API failed.
    #[error("GitHub API: cannot {action}")]
    Api {
        /// What was being done.
        action: String,
        /// octocrab's error.
        #[source]
        source: octocrab::Error,
    },
    /// The API answered something unusable.
    #[error("GitHub API: {action}: {problem}")]
    Answer {
        /// What was being done.
        action: String,
        /// What is wrong with the answer.
        problem: String,
    },
}

/// A repository on GitHub: `owner/name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoSlug {
    /// The owner (user or organisation).
    pub owner: String,
    /// The repository's name.
    pub name: String,
}

impl RepoSlug {
    /// The `owner/name` of a remote URL without credentials:
    /// `https://host/owner/name(.git)`, `ssh://git@host/owner/name`, `git@host:owner/name`.
    pub fn from_url(url: &str) -> Result<Self, GithubError> {
        let bad = || GithubError::NotAGithubRepo {
            url: url.to_owned(),
        };
        let path = if let Some((_, rest)) = url.split_once("://") {
            rest.split_once('/').map(|(_, p)| p).ok_or_else(bad)?
        } else {
            url.split_once(':').map(|(_, p)| p).ok_or_else(bad)?
        };
        let mut parts = path.trim_matches('/').split('/');
        let (Some(owner), Some(name), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad());
        };
        let name = name.strip_suffix(".git").unwrap_or(name);
        if owner.is_empty() || name.is_empty() {
            return Err(bad());
        }
        Ok(Self {
            owner: owner.to_owned(),
            name: name.to_owned(),
        })
    }
}

/// The PEM text of the configured key (read from its file when it is a path).
pub fn load_private_key(key: &PrivateKey) -> Result<Secret, GithubError> {
    match key {
        PrivateKey::Pem(pem) => Ok(pem.clone()),
        PrivateKey::Path(path) => {
            std::fs::read_to_string(path)
                .map(Secret::new)
                .map_err(|source| GithubError::ReadKey {
                    path: path.clone(),
                    source,
                })
        }
    }
}

#[derive(Deserialize)]
struct InstallationWire {
    id: u64,
}

#[derive(Deserialize)]
struct AccessTokenWire {
    token: String,
    expires_at: String,
}

struct CachedToken {
    token: Secret,
    expires: SystemTime,
}

/// A GitHub App installed on one repository: mints and caches its
/// installation token.
pub struct GithubApp {
    app: Octocrab,
    api_url: String,
    repo: RepoSlug,
    installation: tokio::sync::Mutex<Option<u64>>,
    cached: tokio::sync::Mutex<Option<CachedToken>>,
}

impl std::fmt::Debug for GithubApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GithubApp")
            .field("api_url", &self.api_url)
            .field("repo", &self.repo)
            .finish_non_exhaustive()
    }
}

impl GithubApp {
    /// The App `app_id` with its PEM private key, for `repo`, talking to
    /// `api_url` (`https://api.github.com`, or a GitHub Enterprise API URL). The
    /// installation is discovered from the repository unless given. Call it
    /// inside a Tokio runtime: the HTTP client starts a worker task on it.
    pub fn new(
        app_id: u64,
        private_key: &Secret,
        installation_id: Option<u64>,
        repo: RepoSlug,
        api_url: &str,
    ) -> Result<Self, GithubError> {
        super::install_crypto_provider();
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(private_key.expose().as_bytes())
            .map_err(|source| GithubError::BadKey { source })?;
        let app = Octocrab::builder()
            .base_uri(api_url)
            .map_err(|_| GithubError::BadApiUrl {
                url: api_url.to_owned(),
            })?
            .app(app_id.into(), key)
            .build()
            .map_err(|source| GithubError::Api {
                action: "set up the HTTP client".to_owned(),
                source,
            })?;
        Ok(Self {
            app,
            api_url: api_url.to_owned(),
            repo,
            installation: tokio::sync::Mutex::new(installation_id),
            cached: tokio::sync::Mutex::new(None),
        })
    }

    /// The App configured under `github:` for the repository at `repo_url` (a
    /// URL without credentials), or `None` when no App is configured.
    pub fn from_config(
        config: &crate::config::GithubConfig,
        repo_url: &str,
    ) -> Result<Option<Self>, GithubError> {
        let Some(app_id) = config.app_id else {
            return Ok(None);
        };
        let key = config.private_key.as_ref().ok_or(GithubError::MissingKey)?;
        let pem = load_private_key(key)?;
        let repo = RepoSlug::from_url(repo_url)?;
        Self::new(
            app_id,
            &pem,
            config.installation_id,
            repo,
            config.api_url.as_str(),
        )
        .map(Some)
    }

    /// The repository.
    pub fn repo(&self) -> &RepoSlug {
        &self.repo
    }

    async fn installation_id(&self) -> Result<u64, GithubError> {
        let mut known = self.installation.lock().await;
        if let Some(id) = *known {
            return Ok(id);
        }
        let action = format!(
            "find the App's installation on {}/{}",
            self.repo.owner, self.repo.name
        );
        let route = format!("/repos/{}/{}/installation", self.repo.owner, self.repo.name);
        let found: InstallationWire = self
            .app
            .get(route, None::<&()>)
            .await
            .map_err(|source| GithubError::Api { action, source })?;
        *known = Some(found.id);
        Ok(found.id)
    }

    /// A valid installation token: the cached one while more than five minutes
    /// of its life are left, else a new one.
    pub async fn token(&self) -> Result<Secret, GithubError> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref()
            && c.expires > SystemTime::now() + REFRESH_MARGIN
        {
            return Ok(c.token.clone());
        }
        let id = self.installation_id().await?;
        let action = format!("create an access token for installation {id}");
        let wire: AccessTokenWire = self
            .app
            .post(
                format!("/app/installations/{id}/access_tokens"),
                None::<&()>,
            )
            .await
            .map_err(|source| GithubError::Api {
                action: action.clone(),
                source,
            })?;
        let expires = parse_timestamp(&wire.expires_at).ok_or_else(|| GithubError::Answer {
            action,
            problem: format!("`{}` is not a timestamp", wire.expires_at),
        })?;
        let token = Secret::new(wire.token);
        tracing::debug!(installation = id, "minted a GitHub installation token");
        *cached = Some(CachedToken {
            token: token.clone(),
            expires,
        });
        Ok(token)
    }

    /// Drops the cached token, so the next [`GithubApp::token`] mints a new one
    /// (after the remote or the API refused the current one, e.g. revoked).
    pub async fn forget_token(&self) {
        *self.cached.lock().await = None;
    }

    /// Credentials for HTTPS git with the current installation token.
    pub async fn git_auth(&self) -> Result<Auth, GithubError> {
        Ok(Auth::Basic(Credentials::token(self.token().await?)))
    }

    /// An API client authenticated as the installation (build a new one after
    /// a refresh: it holds the token it was made with).
    pub async fn client(&self) -> Result<Octocrab, GithubError> {
        let token = self.token().await?;
        Octocrab::builder()
            .base_uri(self.api_url.as_str())
            .map_err(|_| GithubError::BadApiUrl {
                url: self.api_url.clone(),
            })?
            .personal_token(token.expose().to_owned())
            .build()
            .map_err(|source| GithubError::Api {
                action: "set up the HTTP client".to_owned(),
                source,
            })
    }
}

/// Parses `YYYY-MM-DDTHH:MM:SSZ` (what GitHub returns) into a time.
fn parse_timestamp(s: &str) -> Option<SystemTime> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let time = time.split('.').next()?;
    let mut t = time.split(':').map(|p| p.parse::<i64>().ok());
    let (hh, mm, ss) = (t.next()??, t.next()??, t.next()??);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    u64::try_from(secs)
        .ok()
        .map(|s| UNIX_EPOCH + Duration::from_secs(s))
}

/// The branch of a pull request for one service's update:
/// `magos/<stack>-<service>-<version>`, with characters git refuses replaced.
pub fn pull_request_branch(stack: &str, service: &str, version: &str) -> String {
    format!(
        "{}{}",
        pull_request_prefix(stack, service),
        ref_safe(version)
    )
}

/// The branch prefix shared by every pull request of one service, used to find
/// the ones a newer version supersedes.
pub fn pull_request_prefix(stack: &str, service: &str) -> String {
    format!("magos/{}-{}-", ref_safe(stack), ref_safe(service))
}

fn ref_safe(s: &str) -> String {
    let out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    out.replace("..", "-").trim_matches(['.', '-']).to_owned()
}

#[derive(Deserialize)]
struct PullWire {
    number: u64,
    head: PullRefWire,
}

#[derive(Deserialize)]
struct PullRefWire {
    #[serde(rename = "ref")]
    name: String,
}

#[derive(Serialize)]
struct CreatePullWire<'a> {
    title: &'a str,
    head: &'a str,
    base: &'a str,
    body: &'a str,
}

#[derive(Serialize)]
struct EditPullWire<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<&'a str>,
}

/// What [`ensure_pull_request`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullRequest {
    /// A new pull request was opened.
    Opened(u64),
    /// The open pull request of the branch was updated.
    Updated(u64),
}

/// Every open pull request (of `head`, when given), page by page.
async fn open_pulls(
    client: &Octocrab,
    repo: &RepoSlug,
    head: Option<&str>,
) -> Result<Vec<PullWire>, GithubError> {
    const PER_PAGE: usize = 100;
    let mut all = Vec::new();
    for page in 1.. {
        let mut route = format!(
            "/repos/{}/{}/pulls?state=open&per_page={PER_PAGE}&page={page}",
            repo.owner, repo.name
        );
        if let Some(head) = head {
            route.push_str(&format!("&head={}:{head}", repo.owner));
        }
        let batch: Vec<PullWire> =
            client
                .get(route, None::<&()>)
                .await
                .map_err(|source| GithubError::Api {
                    action: format!("list the pull requests of {}/{}", repo.owner, repo.name),
                    source,
                })?;
        let last = batch.len() < PER_PAGE;
        all.extend(batch);
        if last {
            break;
        }
    }
    Ok(all)
}

/// Opens the pull request of `branch` into `base`, or updates its title and
/// body if one is already open: there is never more than one per branch.
pub async fn ensure_pull_request(
    client: &Octocrab,
    repo: &RepoSlug,
    branch: &str,
    base: &str,
    title: &str,
    body: &str,
) -> Result<PullRequest, GithubError> {
    let existing = open_pulls(client, repo, Some(branch)).await?;
    if let Some(pull) = existing.iter().find(|p| p.head.name == branch) {
        let number = pull.number;
        let _: serde_json::Value = client
            .patch(
                format!("/repos/{}/{}/pulls/{number}", repo.owner, repo.name),
                Some(&EditPullWire {
                    title: Some(title),
                    body: Some(body),
                    state: None,
                }),
            )
            .await
            .map_err(|source| GithubError::Api {
                action: format!("update pull request #{number}"),
                source,
            })?;
        return Ok(PullRequest::Updated(number));
    }
    let created: PullWire = client
        .post(
            format!("/repos/{}/{}/pulls", repo.owner, repo.name),
            Some(&CreatePullWire {
                title,
                head: branch,
                base,
                body,
            }),
        )
        .await
        .map_err(|source| GithubError::Api {
            action: format!("open a pull request for branch `{branch}`"),
            source,
        })?;
    Ok(PullRequest::Opened(created.number))
}

/// Closes every open pull request whose branch starts with `prefix` (see
/// [`pull_request_prefix`]) other than `current`: older versions of the same
/// service's update. Returns their numbers.
pub async fn close_superseded(
    client: &Octocrab,
    repo: &RepoSlug,
    prefix: &str,
    current: &str,
) -> Result<Vec<u64>, GithubError> {
    let mut closed = Vec::new();
    for pull in open_pulls(client, repo, None).await? {
        if pull.head.name.starts_with(prefix) && pull.head.name != current {
            let number = pull.number;
            let _: serde_json::Value = client
                .patch(
                    format!("/repos/{}/{}/pulls/{number}", repo.owner, repo.name),
                    Some(&EditPullWire {
                        title: None,
                        body: None,
                        state: Some("closed"),
                    }),
                )
                .await
                .map_err(|source| GithubError::Api {
                    action: format!("close superseded pull request #{number}"),
                    source,
                })?;
            closed.push(number);
        }
    }
    Ok(closed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_slugs_come_from_every_url_form() {
        for url in [
            "https://github.com/me/homelab.git",
            "https://github.com/me/homelab",
            "ssh://git@github.com/me/homelab.git",
            "git@github.com:me/homelab.git",
        ] {
            assert_eq!(
                RepoSlug::from_url(url).unwrap(),
                RepoSlug {
                    owner: "me".into(),
                    name: "homelab".into()
                },
                "{url}"
            );
        }
        for bad in ["https://github.com/me", "/srv/git/x.git", "https://h/a/b/c"] {
            assert!(RepoSlug::from_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn timestamps_parse_as_github_writes_them() {
        assert_eq!(
            parse_timestamp("2016-07-11T22:14:10Z"),
            Some(UNIX_EPOCH + Duration::from_secs(1_468_275_250))
        );
        assert_eq!(
            parse_timestamp("2000-02-29T00:00:00Z"),
            Some(UNIX_EPOCH + Duration::from_secs(951_782_400))
        );
        for bad in ["2016-07-11 22:14:10", "2016-13-01T00:00:00Z", "soon"] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
    }

    #[test]
    fn branch_names_are_valid_refs() {
        assert_eq!(
            pull_request_branch("web", "app", "1.2.3"),
            "magos/web-app-1.2.3"
        );
        assert_eq!(
            pull_request_branch("w b", "a:p", "v1..2~"),
            "magos/w-b-a-p-v1-2"
        );
        assert!(
            pull_request_branch("web", "app", "1.2.3")
                .starts_with(&pull_request_prefix("web", "app"))
        );
    }
}
