//! Magos's configuration: one schema, read from a YAML file, a `.env` file beside
//! it, the environment and command-line flags.
//!
//! Precedence, highest first: flag > environment > `.env` > file > default. Every
//! value is validated while it is read, so an error names where it came from: the
//! file, line, column and key path for YAML; the file, line and variable for `.env`;
//! the variable for the environment.
//!
//! The loader never reads the process environment itself: the caller passes a
//! snapshot ([`Env`]), which keeps it testable.

mod dotenv;
pub mod render;
mod schema;

pub use schema::*;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// A snapshot of environment variables.
pub type Env = BTreeMap<String, String>;

/// An environment snapshot from `KEY`/value pairs, for unit tests.
#[cfg(test)]
pub(crate) fn test_env(pairs: &[(&str, &str)]) -> Env {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Where a configuration value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The configuration file.
    File(PathBuf),
    /// A line of the `.env` file beside the configuration file.
    DotEnv(PathBuf, usize),
    /// An environment variable.
    Env(&'static str),
    /// A command-line flag.
    Flag(&'static str),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::File(p) => write!(f, "{}", p.display()),
            Source::DotEnv(p, line) => write!(f, "{}:{line}", p.display()),
            Source::Env(var) => write!(f, "environment variable {var}"),
            Source::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// Values given on the command line, the highest layer.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--repo`: the repository URL or local path.
    pub repo: Option<String>,
    /// `--log-format`.
    pub log_format: Option<LogFormat>,
}

/// The configuration as resolved from every layer, with the origin of each value
/// that did not come from the defaults.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The effective configuration.
    pub config: Config,
    /// The configuration file that was read, if any.
    pub file: Option<PathBuf>,
    /// The `.env` file that was read, if any.
    pub dotenv: Option<PathBuf>,
    /// Key path (e.g. `repo.url`) → where its value came from.
    pub sources: BTreeMap<&'static str, Source>,
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read configuration file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The YAML file is not valid, or a key or value in it is wrong.
    #[error("{}:{line}:{column}: {message}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// 1-based line (0 when unknown).
        line: usize,
        /// 1-based column (0 when unknown).
        column: usize,
        /// What is wrong, starting with the key path.
        message: String,
    },
    /// A line of the `.env` file is wrong.
    #[error("{}:{line}: {message}", path.display())]
    DotEnv {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong, naming the variable.
        message: String,
    },
    /// An environment variable holds a value that cannot be used.
    #[error("environment variable {var}: {message}")]
    Env {
        /// The variable.
        var: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// An environment variable Magos reads, the key it sets and whether it is secret.
#[derive(Debug, Clone, Copy)]
pub struct EnvVar {
    /// The variable's name.
    pub name: &'static str,
    /// The configuration key it sets.
    pub key: &'static str,
    /// What it is for, for `--help` and the README.
    pub doc: &'static str,
}

/// Every environment variable that sets a configuration key. The same names are
/// accepted in the `.env` file beside the configuration file.
pub const ENV_VARS: &[EnvVar] = &[
    EnvVar {
        name: "MD_REPO",
        key: "repo.url",
        doc: "git URL or local path of the GitOps repository",
    },
    EnvVar {
        name: "MD_BRANCH",
        key: "repo.branch",
        doc: "branch to follow",
    },
    EnvVar {
        name: "MD_REPO_TIMEOUT",
        key: "repo.timeout",
        doc: "time limit of every git operation (clone, fetch, push)",
    },
    EnvVar {
        name: "MD_REPO_SSH_KEY",
        key: "repo.ssh_key",
        doc: "private key for an ssh remote (the only one offered)",
    },
    EnvVar {
        name: "MD_REPO_KNOWN_HOSTS",
        key: "repo.known_hosts",
        doc: "known_hosts file for an ssh remote (its host key must be there)",
    },
    EnvVar {
        name: "MD_RUNTIME",
        key: "runtime",
        doc: "`podman` (the libpod API), `podman-compose` (the compose CLI) or `docker` (the Docker Engine API)",
    },
    EnvVar {
        name: "CONTAINER_HOST",
        key: "podman.socket",
        doc: "Podman API socket, as `unix:///path` (Podman's own variable)",
    },
    EnvVar {
        name: "MD_ALLOW_PRIVILEGED",
        key: "apply.allow.privileged",
        doc: "`false` refuses stacks with `privileged: true`",
    },
    EnvVar {
        name: "MD_ALLOW_HOST_NAMESPACES",
        key: "apply.allow.host_namespaces",
        doc: "`false` refuses host network, pid, ipc, userns, uts and cgroup namespaces",
    },
    EnvVar {
        name: "MD_ALLOW_DEVICES",
        key: "apply.allow.devices",
        doc: "`false` refuses `devices`, `device_cgroup_rules` and `gpus`",
    },
    EnvVar {
        name: "MD_ALLOW_PODMAN_SOCKET",
        key: "apply.allow.podman_socket",
        doc: "`false` refuses mounting the Podman or Docker socket",
    },
    EnvVar {
        name: "MD_ALLOW_BIND_PATHS",
        key: "apply.allow.bind_paths",
        doc: "host paths binds may use outside the repository: `any`, `none` or `/a:/b`",
    },
    EnvVar {
        name: "MD_ALLOW_SYMLINKS_OUTSIDE_REPO",
        key: "apply.allow.symlinks_outside_repo",
        doc: "`true` accepts symbolic links that lead out of the repository",
    },
    EnvVar {
        name: "COMPOSE_PROFILES",
        key: "apply.profiles",
        doc: "active compose profiles, separated by commas (compose's own variable)",
    },
    EnvVar {
        name: "REGISTRY_AUTH_FILE",
        key: "registries.auth_file",
        doc: "registry credentials file (Podman's own variable)",
    },
    EnvVar {
        name: "CONTAINERS_REGISTRIES_CONF",
        key: "registries.registries_conf",
        doc: "registries.conf for insecure registries (Podman's own variable)",
    },
    EnvVar {
        name: "SOPS_AGE_KEY_FILE",
        key: "secrets.age_key_file",
        doc: "age identities for SOPS files (sops's own variable)",
    },
    EnvVar {
        name: "GITHUB_APP_ID",
        key: "github.app_id",
        doc: "GitHub App id",
    },
    EnvVar {
        name: "GITHUB_APP_PRIVATE_KEY",
        key: "github.private_key",
        doc: "GitHub App private key: PEM text or a path to a PEM file",
    },
    EnvVar {
        name: "GITHUB_APP_INSTALLATION_ID",
        key: "github.installation_id",
        doc: "GitHub App installation id (discovered when unset)",
    },
    EnvVar {
        name: "GITHUB_API_URL",
        key: "github.api_url",
        doc: "GitHub REST API base URL (GitHub Enterprise Server)",
    },
    EnvVar {
        name: "MD_VERIFY_POLICY",
        key: "verify_policy",
        doc: "`write`: Podman's policy.json requires the `verify:` keys too; `off`",
    },
    EnvVar {
        name: "MD_STATE_DIR",
        key: "state_dir",
        doc: "where Magos keeps its clone and state",
    },
    EnvVar {
        name: "MD_LOG_FORMAT",
        key: "log.format",
        doc: "`text` or `json`",
    },
    EnvVar {
        name: "MD_LOG_LEVEL",
        key: "log.level",
        doc: "error, warn, info, debug or trace",
    },
    EnvVar {
        name: "MD_INTERVAL",
        key: "daemon.interval",
        doc: "time between reconcile passes",
    },
    EnvVar {
        name: "MD_LISTEN",
        key: "daemon.listen",
        doc: "address of the HTTP endpoint, or `off`",
    },
    EnvVar {
        name: "MD_WEBHOOK_SECRET",
        key: "daemon.webhook_secret",
        doc: "secret of git forge webhooks",
    },
    EnvVar {
        name: "MD_REGISTRY_WEBHOOK_SECRET",
        key: "daemon.registry_webhook_secret",
        doc: "secret of registry push notifications",
    },
    EnvVar {
        name: "MD_OBSERVE",
        key: "daemon.observe",
        doc: "`true`: monitor only, change nothing",
    },
    EnvVar {
        name: "MD_NOTIFY_REPEAT",
        key: "notify_repeat",
        doc: "how often a lasting failure is notified again",
    },
    EnvVar {
        name: "MD_ROLLBACK_ENABLED",
        key: "rollback.enabled",
        doc: "`false`: keep a changed service even when it fails its soak",
    },
    EnvVar {
        name: "MD_ROLLBACK_SOAK",
        key: "rollback.soak",
        doc: "how long a changed service is watched before it is trusted",
    },
];

/// The prefix of every environment variable of Magos's own: the variables of
/// the configuration keys ([`ENV_VARS`]) and [`OWN_VARS`].
pub const ENV_PREFIX: &str = "MD_";

/// The variables of Magos's own that set no configuration key: the name, the
/// older `MAGOS_` spelling still read as its alias, and what it is for.
pub const OWN_VARS: &[(&str, &str, &str)] = &[
    (
        "MD_CONFIG",
        "MAGOS_CONFIG",
        "the configuration file when --config is not given",
    ),
    (
        "MD_LOG",
        "MAGOS_LOG",
        "a log filter (magos=debug,hyper=info) that wins over log.level",
    ),
];

/// The value of one of Magos's own variables ([`OWN_VARS`]: `name` is its
/// `MD_` name), set and not empty: the `MD_` spelling, else its `MAGOS_`
/// alias. When both are set the `MD_` one wins.
pub fn own_var<'a>(env: &'a Env, name: &str) -> Option<&'a String> {
    let set = |k: &str| env.get(k).filter(|v| !v.is_empty());
    set(name).or_else(|| {
        OWN_VARS
            .iter()
            .find(|(n, _, _)| *n == name)
            .and_then(|(_, alias, _)| set(alias))
    })
}

/// Where the configuration file is looked for when `--config` is not given:
/// `$MD_CONFIG` (or its alias `$MAGOS_CONFIG`), then `$XDG_CONFIG_HOME/magos/magos.yaml` (or
/// `~/.config/magos/magos.yaml`), then `/etc/magos/magos.yaml`. Only an existing file
/// counts; with none, the built-in defaults (those of `configs/magos.yaml`) apply.
pub fn default_config_path(env: &Env) -> Option<PathBuf> {
    if let Some(p) = own_var(env, "MD_CONFIG") {
        return Some(PathBuf::from(p));
    }
    let mut candidates = Vec::new();
    if let Some(x) = env.get("XDG_CONFIG_HOME").filter(|p| !p.is_empty()) {
        candidates.push(Path::new(x).join("magos/magos.yaml"));
    } else if let Some(h) = env.get("HOME").filter(|p| !p.is_empty()) {
        candidates.push(Path::new(h).join(".config/magos/magos.yaml"));
    }
    candidates.push(PathBuf::from("/etc/magos/magos.yaml"));
    candidates.into_iter().find(|p| p.is_file())
}

/// Where Magos keeps its clone and state: `state_dir` when set, else
/// `$XDG_STATE_HOME/magos`, else `~/.local/state/magos`.
pub fn state_dir(config: &Config, env: &Env) -> Option<PathBuf> {
    if let Some(dir) = &config.state_dir {
        return Some(dir.clone());
    }
    if let Some(x) = env.get("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        return Some(Path::new(x).join("magos"));
    }
    env.get("HOME")
        .filter(|v| !v.is_empty())
        .map(|h| Path::new(h).join(".local/state/magos"))
}

/// Loads the configuration: `file` (when given it must exist), the `.env` beside it,
/// `env`, then `flags`.
pub fn load(file: Option<&Path>, env: &Env, flags: &Overrides) -> Result<Loaded, ConfigError> {
    let mut sources = BTreeMap::new();
    let (mut config, file) = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?;
            let config = parse_yaml(path, &text)?;
            for key in keys_in_file(&text) {
                sources.insert(key, Source::File(path.to_owned()));
            }
            (config, Some(path.to_owned()))
        }
        None => (Config::default(), None),
    };

    let mut dotenv_path = None;
    if let Some(path) = &file {
        let candidate = path.parent().unwrap_or(Path::new(".")).join(".env");
        if candidate.is_file() {
            let text = std::fs::read_to_string(&candidate).map_err(|source| ConfigError::Read {
                path: candidate.clone(),
                source,
            })?;
            for entry in dotenv::parse(&text).map_err(|(line, message)| ConfigError::DotEnv {
                path: candidate.clone(),
                line,
                message,
            })? {
                let Some(var) = ENV_VARS.iter().find(|v| v.name == entry.key) else {
                    return Err(ConfigError::DotEnv {
                        path: candidate.clone(),
                        line: entry.line,
                        message: format!(
                            "unknown variable `{}`; known: {}",
                            entry.key,
                            known_vars()
                        ),
                    });
                };
                config
                    .set(var.key, &entry.value)
                    .map_err(|message| ConfigError::DotEnv {
                        path: candidate.clone(),
                        line: entry.line,
                        message: format!("{}: {message}", var.name),
                    })?;
                sources.insert(var.key, Source::DotEnv(candidate.clone(), entry.line));
            }
            dotenv_path = Some(candidate);
        }
    }

    for var in ENV_VARS {
        if let Some(value) = env.get(var.name).filter(|v| !v.is_empty()) {
            config
                .set(var.key, value)
                .map_err(|message| ConfigError::Env {
                    var: var.name,
                    message,
                })?;
            sources.insert(var.key, Source::Env(var.name));
        }
    }

    if let Some(repo) = &flags.repo {
        config
            .set("repo.url", repo)
            .map_err(|message| ConfigError::Env {
                var: "--repo",
                message,
            })?;
        sources.insert("repo.url", Source::Flag("--repo"));
    }
    if let Some(format) = flags.log_format {
        config.log.format = format;
        sources.insert("log.format", Source::Flag("--log-format"));
    }

    Ok(Loaded {
        config,
        file,
        dotenv: dotenv_path,
        sources,
    })
}

/// The schema keys a (valid) configuration text sets.
fn keys_in_file(text: &str) -> Vec<&'static str> {
    fn walk(value: &serde_yaml_ng::Value, prefix: &str, out: &mut Vec<&'static str>) {
        if let Some(&key) = Config::KEYS.iter().find(|k| **k == prefix) {
            out.push(key);
            return;
        }
        if let serde_yaml_ng::Value::Mapping(map) = value {
            for (k, v) in map {
                if let Some(k) = k.as_str() {
                    let path = if prefix.is_empty() {
                        k.to_owned()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(v, &path, out);
                }
            }
        }
    }
    let mut out = Vec::new();
    if let Ok(value) = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text) {
        walk(&value, "", &mut out);
    }
    out
}

fn known_vars() -> String {
    ENV_VARS
        .iter()
        .map(|v| v.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Parses a configuration file's text. An empty file is the default configuration.
pub fn parse_yaml(path: &Path, text: &str) -> Result<Config, ConfigError> {
    if text.trim().is_empty()
        || text
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        return Ok(Config::default());
    }
    serde_yaml_ng::from_str::<Config>(text).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((0, 0));
        let message = clean_yaml_message(&e.to_string());
        let (line, column) = refine_location(&message, text, line, column);
        let message = name_the_key(&message, text, line);
        ConfigError::File {
            path: path.to_owned(),
            line,
            column,
            message,
        }
    })
}

/// Inside a sequence, serde_yaml_ng points a value's own error at the start of the
/// sequence. When the message quotes the refused value, point at the line that
/// holds it instead.
fn refine_location(message: &str, text: &str, line: usize, column: usize) -> (usize, usize) {
    let quoted = message.split('`').nth(1).filter(|q| !q.is_empty());
    let Some(quoted) = quoted else {
        return (line, column);
    };
    for (i, l) in text.lines().enumerate().skip(line.saturating_sub(1)) {
        if let Some(c) = l.find(quoted) {
            if i + 1 == line {
                return (line, column);
            }
            return (i + 1, c + 1);
        }
    }
    (line, column)
}

/// serde_yaml_ng prefixes a message with the key path of the mapping it was in,
/// but leaves out the key itself for a value refused by its own parser (and says
/// nothing at the top level). Complete the path from the key on the error's line.
fn name_the_key(message: &str, text: &str, line: usize) -> String {
    let (path, reason) = match message.split_once(": ") {
        Some((head, rest))
            if !head.is_empty()
                && head
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.[]".contains(c)) =>
        {
            (head.to_owned(), rest)
        }
        _ => (String::new(), message),
    };
    let key = text
        .lines()
        .nth(line.wrapping_sub(1))
        .and_then(|l| l.trim_start().split_once(':'))
        .map(|(k, _)| k.trim())
        .filter(|k| !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    let full = match key {
        Some(key) if path.is_empty() => key.to_owned(),
        Some(key)
            if path.rsplit('.').next() != Some(key) && !reason.contains(&format!("`{key}`")) =>
        {
            format!("{path}.{key}")
        }
        _ => path,
    };
    if full.is_empty() {
        reason.to_owned()
    } else {
        format!("{full}: {reason}")
    }
}

/// serde_yaml_ng appends " at line L column C" to its messages; the location is
/// already in front of ours.
fn clean_yaml_message(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) if message[i..].contains(" column ") => message[..i].to_owned(),
        _ => message.to_owned(),
    }
}

#[cfg(test)]
mod tests;
