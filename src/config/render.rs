//! Writing a configuration file (`magos init`): a file holding only the keys the
//! user gave, where the loader will look for it, written atomically and never
//! over an existing one unless asked.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::{Config, ConfigError, Env, Secret};

/// A value of a key in [`render`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Text (written double-quoted).
    Text(String),
    /// A secret (written double-quoted; the file is then private).
    Secret(Secret),
    /// A number (an id).
    Number(u64),
}

/// The least length of a webhook secret that [`webhook_secret_problem`] accepts.
pub const MIN_WEBHOOK_SECRET_LEN: usize = 16;

/// Renders a configuration file holding only `values` (key paths of
/// [`Config::KEYS`], in any order), nested under their sections in the
/// reference's order, after a header that points to the reference. The text is
/// parsed back before it is returned, so what is written is what the loader
/// accepts; an unknown key or a refused value is an error naming the key.
pub fn render(values: &[(&str, Value)]) -> Result<String, String> {
    let mut sorted = Vec::with_capacity(values.len());
    for (key, value) in values {
        let index = Config::KEYS
            .iter()
            .position(|k| k == key)
            .ok_or_else(|| format!("`{key}` is not a configuration key"))?;
        sorted.push((index, *key, value));
    }
    sorted.sort_by_key(|(i, _, _)| *i);
    sorted.dedup_by_key(|(i, _, _)| *i);

    let mut text = String::from(
        "# Magos Dominus configuration, written by `magos init`.\n\
         #\n\
         # Only the keys given are here; every other key keeps its default. The\n\
         # commented reference of every key, its default and its environment variable\n\
         # is configs/magos.yaml (docs/configuration.md). `magos config check` shows\n\
         # the configuration as Magos reads it, with secrets redacted.\n",
    );
    let mut open: Vec<&str> = Vec::new();
    for (_, key, value) in sorted {
        let parts: Vec<&str> = key.split('.').collect();
        let (leaf, sections) = parts.split_last().expect("a key has a name");
        let shared = open
            .iter()
            .zip(sections)
            .take_while(|(a, b)| a == b)
            .count();
        open.truncate(shared);
        if open.is_empty() {
            text.push('\n');
        }
        for section in &sections[shared..] {
            text.push_str(&format!("{}{section}:\n", "  ".repeat(open.len())));
            open.push(section);
        }
        let rendered = match value {
            Value::Text(t) => quote(t),
            Value::Secret(s) => quote(s.expose()),
            Value::Number(n) => n.to_string(),
        };
        text.push_str(&format!("{}{leaf}: {rendered}\n", "  ".repeat(open.len())));
    }
    super::parse_yaml(Path::new("magos.yaml"), &text).map_err(|e| match e {
        // Never echo the text: it may hold a secret.
        ConfigError::File { message, .. } => message,
        other => other.to_string(),
    })?;
    Ok(text)
}

/// A YAML double-quoted scalar (JSON's string syntax is a subset of it).
fn quote(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

/// Where `magos init` writes when `--config` is not given: `$MD_CONFIG` (or its
/// alias `$MAGOS_CONFIG`), else
/// `/etc/magos/magos.yaml` for root, else `$XDG_CONFIG_HOME/magos/magos.yaml`
/// (or `~/.config/magos/magos.yaml`): the first place the loader looks.
pub fn init_path(env: &Env, root: bool) -> Option<PathBuf> {
    let get = |k: &str| env.get(k).filter(|v| !v.is_empty());
    if let Some(p) = super::own_var(env, "MD_CONFIG") {
        return Some(PathBuf::from(p));
    }
    if root {
        return Some(PathBuf::from("/etc/magos/magos.yaml"));
    }
    if let Some(x) = get("XDG_CONFIG_HOME") {
        return Some(Path::new(x).join("magos/magos.yaml"));
    }
    get("HOME").map(|h| Path::new(h).join(".config/magos/magos.yaml"))
}

/// The reference configuration, `configs/magos.yaml`, as `scripts/install.sh`
/// copies it when there is no configuration yet.
const REFERENCE: &str = include_str!("../../configs/magos.yaml");

/// Whether `text` is the reference configuration, untouched: it holds nothing
/// of the user's, so `magos init` may replace it without `--force`.
pub fn is_untouched_reference(text: &str) -> bool {
    text == REFERENCE
}

/// Why a configuration file was not written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The file exists and overwriting was not asked for.
    #[error("{} already exists; pass --force to replace it", path.display())]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// The file or its folder could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Writes `text` to `path` atomically (a temporary file beside it, synced,
/// renamed into place), making its folder. An existing file is an error unless
/// `replace`. The file is readable by its owner only when `private`.
pub fn write_file(path: &Path, text: &str, private: bool, replace: bool) -> Result<(), WriteError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| WriteError::Io { path, source }
    };
    if !replace && path.exists() {
        return Err(WriteError::Exists {
            path: path.to_owned(),
        });
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".magos.yaml.")
        .tempfile_in(dir)
        .map_err(io(dir))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = if private { 0o600 } else { 0o644 };
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(io(tmp.path()))?;
    }
    #[cfg(not(unix))]
    let _ = private;
    tmp.write_all(text.as_bytes()).map_err(io(tmp.path()))?;
    tmp.as_file().sync_all().map_err(io(tmp.path()))?;
    let persisted = if replace {
        tmp.persist(path).map(|_| ())
    } else {
        tmp.persist_noclobber(path).map(|_| ())
    };
    persisted.map_err(|e| {
        if e.error.kind() == std::io::ErrorKind::AlreadyExists {
            WriteError::Exists {
                path: path.to_owned(),
            }
        } else {
            WriteError::Io {
                path: path.to_owned(),
                source: e.error,
            }
        }
    })
}

/// What is wrong with a webhook secret, if anything: forges sign with HMAC, and
/// a short secret can be guessed.
pub fn webhook_secret_problem(secret: &Secret) -> Option<String> {
    let len = secret.expose().chars().count();
    (len < MIN_WEBHOOK_SECRET_LEN).then(|| {
        format!(
            "only {len} characters; use at least {MIN_WEBHOOK_SECRET_LEN} (e.g. `openssl rand -hex 32`)"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_given_keys_nested_in_the_reference_order() {
        let text = render(&[
            (
                "daemon.webhook_secret",
                Value::Secret(Secret::new("s3cr3t-s3cr3t-s3")),
            ),
            ("repo.branch", Value::Text("live".into())),
            ("github.app_id", Value::Number(42)),
            (
                "repo.url",
                Value::Text("https://git.example/o/r.git".into()),
            ),
            ("repo.commit.author_name", Value::Text("Bot \"B\"".into())),
            ("secrets.age_key_file", Value::Text("/k/keys.txt".into())),
        ])
        .unwrap();
        let body: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            body,
            [
                "",
                "repo:",
                "  url: \"https://git.example/o/r.git\"",
                "  branch: \"live\"",
                "  commit:",
                "    author_name: \"Bot \\\"B\\\"\"",
                "",
                "secrets:",
                "  age_key_file: \"/k/keys.txt\"",
                "",
                "github:",
                "  app_id: 42",
                "",
                "daemon:",
                "  webhook_secret: \"s3cr3t-s3cr3t-s3\"",
            ]
        );
        let config = super::super::parse_yaml(Path::new("x"), &text).unwrap();
        assert_eq!(config.repo.branch.as_str(), "live");
        assert_eq!(config.repo.commit.author_name.as_str(), "Bot \"B\"");
        assert_eq!(config.github.app_id, Some(42));
        assert_eq!(
            config.daemon.webhook_secret.unwrap().expose(),
            "s3cr3t-s3cr3t-s3"
        );
        assert!(text.contains("configs/magos.yaml"));
    }

    #[test]
    fn an_unknown_key_or_a_bad_value_is_refused_without_the_value() {
        let err = render(&[("repo.brnach", Value::Text("main".into()))]).unwrap_err();
        assert!(err.contains("repo.brnach"), "{err}");
        let err = render(&[("repo.branch", Value::Text("bad..name".into()))]).unwrap_err();
        assert!(err.contains("repo.branch"), "{err}");
        let err = render(&[("repo.url", Value::Text("ftp://x/y".into()))]).unwrap_err();
        assert!(err.contains("ftp"), "{err}");
    }

    #[test]
    fn init_writes_where_the_loader_looks_first() {
        let env = crate::config::test_env(&[("HOME", "/home/u")]);
        assert_eq!(
            init_path(&env, false).unwrap(),
            Path::new("/home/u/.config/magos/magos.yaml")
        );
        assert_eq!(
            init_path(&env, true).unwrap(),
            Path::new("/etc/magos/magos.yaml")
        );
        let env = crate::config::test_env(&[("HOME", "/home/u"), ("XDG_CONFIG_HOME", "/x")]);
        assert_eq!(
            init_path(&env, false).unwrap(),
            Path::new("/x/magos/magos.yaml")
        );
        let env = crate::config::test_env(&[("MAGOS_CONFIG", "/c.yaml")]);
        assert_eq!(init_path(&env, true).unwrap(), Path::new("/c.yaml"));
    }

    #[test]
    fn writing_never_replaces_unless_asked_and_keeps_secrets_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/magos.yaml");
        write_file(&path, "one\n", true, false).unwrap();
        let err = write_file(&path, "two\n", false, false).unwrap_err();
        assert!(err.to_string().contains("--force"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\n");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            write_file(&path, "two\n", false, true).unwrap();
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o644);
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two\n");
        let leftovers = std::fs::read_dir(path.parent().unwrap()).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary file is left behind");
    }

    #[test]
    fn only_the_reference_itself_counts_as_untouched() {
        assert!(is_untouched_reference(REFERENCE));
        assert!(!is_untouched_reference(
            &REFERENCE.replace("url: null", "url: /srv/git/h")
        ));
        assert!(!is_untouched_reference(""));
    }

    #[test]
    fn short_webhook_secrets_are_named_without_their_value() {
        let problem = webhook_secret_problem(&Secret::new("hunter2")).unwrap();
        assert!(problem.contains("7 characters"), "{problem}");
        assert!(!problem.contains("hunter2"));
        assert!(webhook_secret_problem(&Secret::new("a".repeat(16))).is_none());
    }
}
