//! `magos init`: a first configuration file, from flags or a few questions, then a
//! check of each piece it configured and what to run next.

use std::fmt::Write as _;
use std::io::{BufRead, IsTerminal, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, ValueEnum};

use super::Exit;
use crate::config::render::{self, Value};
use crate::config::{self, Config, Env, Overrides, Secret};
use crate::git::github::GithubApp;
use crate::podman::{Client, ClientOptions};
use crate::secrets::keys::KeySources;

const EXAMPLES: &str = "Examples:
  magos init                                   ask on the terminal
  magos init --repo-url git@github.com:me/homelab.git
  magos init --repo-url https://github.com/me/homelab.git --auth token --token-file ~/.magos-token
  magos init --repo-url https://github.com/me/homelab.git --auth github-app \\
             --app-id 123456 --app-key ~/.config/magos/app.pem
  magos init --repo-url /srv/git/homelab.git --no-check --config ./magos.yaml

It writes ~/.config/magos/magos.yaml (as root /etc/magos/magos.yaml; --config FILE
elsewhere) holding only the keys given; every other key keeps the default of the
reference, configs/magos.yaml. A file holding a token or a webhook secret is
readable by its owner only. An existing file is never replaced without --force
(except the untouched reference configuration that install.sh puts there).
Then it checks the Podman socket (the Docker Engine's with --runtime docker), the repository (reachable, readable, the branch
exists), the GitHub App, the age key and the webhook secret.

Exit codes: 0 written and every check passed, 1 written but a check failed,
2 nothing written (a missing flag, a bad value, an existing file).";

/// How long the repository may take to answer the probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// How Magos authenticates to the repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthKind {
    /// Nothing, or what your git setup provides (public repositories, local paths)
    None,
    /// An access token over HTTPS (GitHub, Gitea, Forgejo, GitLab), kept in repo.url
    Token,
    /// A GitHub App: its installation token pushes pins and opens pull requests
    GithubApp,
    /// Your ssh keys and agent (ssh:// and git@host:path URLs)
    Ssh,
}

/// `magos init` arguments.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct InitArgs {
    /// The GitOps repository: https://…, ssh://…, git@host:path, file://… or a
    /// local path
    #[arg(long, value_name = "URL")]
    pub repo_url: Option<String>,
    /// The branch Magos follows and pushes pins to [default: main]
    #[arg(long, value_name = "BRANCH")]
    pub branch: Option<String>,
    /// How Magos authenticates to the repository [default: ssh for ssh URLs,
    /// else none]
    #[arg(long, value_enum)]
    pub auth: Option<AuthKind>,
    /// With --auth token: a file whose first line is the access token (on a
    /// terminal it is asked for, without echo)
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// With --auth github-app: the App's id
    #[arg(long, value_name = "ID")]
    pub app_id: Option<u64>,
    /// With --auth github-app: the App's private key, a PEM file
    #[arg(long, value_name = "FILE")]
    pub app_key: Option<PathBuf>,
    /// With --auth github-app: the installation id [default: found from the
    /// repository]
    #[arg(long, value_name = "ID")]
    pub installation_id: Option<u64>,
    /// The age identities that decrypt the repository's SOPS files
    #[arg(long, value_name = "FILE")]
    pub age_key_file: Option<PathBuf>,
    /// A file whose first line is the secret forge webhooks are signed with
    #[arg(long, value_name = "FILE")]
    pub webhook_secret_file: Option<PathBuf>,
    /// The Podman API socket [default: $XDG_RUNTIME_DIR/podman/podman.sock, then
    /// /run/podman/podman.sock]
    #[arg(long, value_name = "PATH")]
    pub podman_socket: Option<String>,
    /// The container engine: podman (the libpod API), podman-compose (the
    /// compose CLI on Podman) or docker (the Docker Engine API on DOCKER_HOST)
    /// [default: podman]
    #[arg(long, value_name = "RUNTIME", value_parser = ["podman", "podman-compose", "docker"])]
    pub runtime: Option<String>,
    /// Replace an existing configuration file
    #[arg(long)]
    pub force: bool,
    /// Write the file and check nothing
    #[arg(long)]
    pub no_check: bool,
    /// Ask for missing values on standard input even when it is not a terminal
    #[arg(long)]
    pub interactive: bool,
}

/// Runs `magos init`; `config_flag` is the global `--config`.
pub(super) fn run(args: &InitArgs, config_flag: Option<&Path>, env: &Env) -> anyhow::Result<Exit> {
    let path = match config_flag {
        Some(p) => p.to_owned(),
        None => render::init_path(env, running_as_root()).context(
            "cannot tell where the configuration goes (HOME is not set); pass --config FILE",
        )?,
    };
    // The reference configuration as scripts/install.sh puts it holds nothing of
    // the user's: it is replaced like a missing file.
    let skeleton = !args.force
        && std::fs::read_to_string(&path).is_ok_and(|t| render::is_untouched_reference(&t));
    if path.exists() && !args.force && !skeleton {
        anyhow::bail!(
            "{} already exists; pass --force to replace it (`magos config check` shows what it holds)",
            path.display()
        );
    }

    let stdin = std::io::stdin();
    let terminal = stdin.is_terminal();
    let mut ask = Prompter {
        input: stdin.lock(),
        enabled: args.interactive || terminal,
        terminal,
    };
    let values = gather(args, &mut ask)?;
    let private = values.iter().any(|(_, v)| matches!(v, Value::Secret(_)));
    let text = render::render(&values).map_err(|e| anyhow::anyhow!("{e}"))?;
    render::write_file(&path, &text, private, args.force || skeleton)?;

    let mut report = String::new();
    writeln!(
        report,
        "wrote {}{}{}",
        path.display(),
        if skeleton {
            " (in place of the untouched reference configuration)"
        } else {
            ""
        },
        if private {
            " (readable by you only: it holds a secret)"
        } else {
            ""
        }
    )?;
    let mut exit = Exit::Success;
    if !args.no_check {
        let loaded = config::load(Some(&path), env, &Overrides::default())?;
        let checks = check(&loaded.config, env)?;
        report.push('\n');
        for c in &checks {
            writeln!(
                report,
                "  {:<4}  {:<10}  {}",
                if c.ok { "ok" } else { "FAIL" },
                c.what,
                c.finding
            )?;
        }
        if checks.iter().any(|c| !c.ok) {
            exit = Exit::Found;
        }
    }
    report.push_str(&next_steps(&values, running_as_root()));
    super::out(&report)?;
    Ok(exit)
}

/// The keys to write, from the flags and, where they are missing, the answers.
fn gather(
    args: &InitArgs,
    ask: &mut Prompter<impl BufRead>,
) -> anyhow::Result<Vec<(&'static str, Value)>> {
    let asking = args.repo_url.is_none();
    let url = match &args.repo_url {
        Some(u) => u.clone(),
        None => ask.line(
            "--repo-url",
            "Repository URL (https://…, ssh://…, git@host:path or a local path)",
            None,
        )?,
    };
    let branch = match &args.branch {
        Some(b) => Some(b.clone()),
        None if asking => Some(ask.line("--branch", "Branch", Some("main"))?),
        None => None,
    };
    let guessed = if is_ssh_url(&url) {
        AuthKind::Ssh
    } else {
        AuthKind::None
    };
    let auth = match args.auth {
        Some(a) => a,
        None if asking => {
            let default = guessed.to_possible_value().expect("a value");
            let answer = ask.line(
                "--auth",
                "Authentication: none, token, github-app or ssh",
                Some(default.get_name()),
            )?;
            AuthKind::from_str(&answer, true).map_err(|_| {
                anyhow::anyhow!("`{answer}` is not one of none, token, github-app, ssh")
            })?
        }
        None => guessed,
    };

    let mut values = Vec::new();
    match auth {
        AuthKind::None => values.push(("repo.url", Value::Text(url))),
        AuthKind::Ssh => {
            if !is_ssh_url(&url) {
                anyhow::bail!(
                    "--auth ssh needs an ssh URL (ssh://git@host/owner/repo.git or git@host:owner/repo.git), not `{url}`"
                );
            }
            values.push(("repo.url", Value::Text(url)));
        }
        AuthKind::Token => {
            let token = match &args.token_file {
                Some(f) => first_line(f, "--token-file")?,
                None => ask.secret("--token-file", "Access token (not shown)")?,
            };
            values.push(("repo.url", Value::Secret(with_token(&url, &token)?)));
        }
        AuthKind::GithubApp => {
            if !url.starts_with("https://") {
                anyhow::bail!(
                    "--auth github-app needs the repository's https:// URL (https://github.com/OWNER/REPO.git), not `{url}`"
                );
            }
            values.push(("repo.url", Value::Text(url)));
            let app_id = match args.app_id {
                Some(id) => id,
                None => parse_id(&ask.line("--app-id", "GitHub App id", None)?, "--app-id")?,
            };
            let key = match &args.app_key {
                Some(k) => k.clone(),
                None => PathBuf::from(ask.line(
                    "--app-key",
                    "GitHub App private key (path of the PEM file)",
                    None,
                )?),
            };
            values.push(("github.app_id", Value::Number(app_id)));
            values.push(("github.private_key", Value::Text(absolute(&key)?)));
            if let Some(id) = args.installation_id {
                values.push(("github.installation_id", Value::Number(id)));
            }
        }
    }
    if let Some(b) = branch {
        values.push(("repo.branch", Value::Text(b)));
    }
    if let Some(socket) = &args.podman_socket {
        values.push(("podman.socket", Value::Text(socket.clone())));
    }
    if let Some(runtime) = &args.runtime {
        values.push(("runtime", Value::Text(runtime.clone())));
    }
    if let Some(key) = &args.age_key_file {
        values.push(("secrets.age_key_file", Value::Text(absolute(key)?)));
    }
    if let Some(f) = &args.webhook_secret_file {
        let secret = first_line(f, "--webhook-secret-file")?;
        values.push(("daemon.webhook_secret", Value::Secret(secret)));
    }
    Ok(values)
}

/// An ssh remote: `ssh://…` or scp-like `user@host:path`.
fn is_ssh_url(url: &str) -> bool {
    if let Some((scheme, _)) = url.split_once("://") {
        return scheme == "ssh" || scheme == "git+ssh";
    }
    match url.split_once(':') {
        Some((host, _)) => host.contains('@') && !host.contains('/'),
        None => false,
    }
}

/// `https://host/…` with the token as its user: the form the git edge takes
/// the token out of (user `x-access-token`).
fn with_token(url: &str, token: &Secret) -> anyhow::Result<Secret> {
    let Some(rest) = url.strip_prefix("https://") else {
        anyhow::bail!(
            "--auth token needs an https:// URL (a token is never sent over plain http), not `{url}`"
        );
    };
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    if authority.contains('@') {
        anyhow::bail!(
            "the URL already holds credentials; give it without them and the token with --token-file"
        );
    }
    let mut encoded = String::new();
    for b in token.expose().bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    Ok(Secret::new(format!("https://{encoded}@{rest}")))
}

/// The first line of `file`, trimmed: a token or a secret, never shown.
fn first_line(file: &Path, flag: &str) -> anyhow::Result<Secret> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("{flag}: cannot read {}", file.display()))?;
    let line = text.lines().next().unwrap_or("").trim();
    if line.is_empty() {
        anyhow::bail!("{flag}: the first line of {} is empty", file.display());
    }
    Ok(Secret::new(line))
}

fn parse_id(s: &str, flag: &str) -> anyhow::Result<u64> {
    s.trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("{flag}: `{s}` is not a number"))
}

/// The path as an absolute one (the service does not run in this folder).
fn absolute(p: &Path) -> anyhow::Result<String> {
    let abs = std::path::absolute(p).with_context(|| format!("cannot resolve {}", p.display()))?;
    abs.to_str()
        .map(str::to_owned)
        .with_context(|| format!("{} is not valid UTF-8", abs.display()))
}

fn running_as_root() -> bool {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::MetadataExt as _;
        std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

/// Asks on standard error, reads standard input; when asking is not possible,
/// a missing value is an error naming its flag.
struct Prompter<R> {
    input: R,
    enabled: bool,
    terminal: bool,
}

impl<R: BufRead> Prompter<R> {
    fn line(
        &mut self,
        flag: &str,
        question: &str,
        default: Option<&str>,
    ) -> anyhow::Result<String> {
        if !self.enabled {
            anyhow::bail!(
                "missing {flag}: standard input is not a terminal, so nothing can be asked (or pass --interactive)"
            );
        }
        let mut err = std::io::stderr().lock();
        match default {
            Some(d) => write!(err, "{question} [{d}]: ")?,
            None => write!(err, "{question}: ")?,
        }
        err.flush()?;
        let answer = self.read(flag)?;
        match (answer.trim(), default) {
            ("", Some(d)) => Ok(d.to_owned()),
            ("", None) => anyhow::bail!("{flag}: an answer is needed"),
            (a, _) => Ok(a.to_owned()),
        }
    }

    fn secret(&mut self, flag: &str, question: &str) -> anyhow::Result<Secret> {
        if !self.enabled {
            anyhow::bail!(
                "missing {flag}: standard input is not a terminal, so the token cannot be asked for"
            );
        }
        eprint!("{question}: ");
        let echo_off = self.terminal && stty("-echo");
        let answer = self.read(flag);
        if echo_off {
            stty("echo");
            eprintln!();
        }
        let answer = Secret::new(answer?.trim());
        if answer.expose().is_empty() {
            anyhow::bail!("{flag}: an answer is needed");
        }
        Ok(answer)
    }

    fn read(&mut self, flag: &str) -> anyhow::Result<String> {
        let mut line = String::new();
        if self.input.read_line(&mut line)? == 0 {
            anyhow::bail!("missing {flag}: standard input ended before the answer");
        }
        Ok(line)
    }
}

/// Sets the terminal's mode with `stty` (echo off for a token).
fn stty(mode: &str) -> bool {
    std::process::Command::new("stty")
        .arg(mode)
        .stdin(std::process::Stdio::inherit())
        .status()
        .is_ok_and(|s| s.success())
}

/// One check's result.
struct Checked {
    what: &'static str,
    ok: bool,
    finding: String,
}

impl Checked {
    fn new<E: Into<anyhow::Error>>(what: &'static str, result: Result<String, E>) -> Self {
        match result {
            Ok(finding) => Self {
                what,
                ok: true,
                finding,
            },
            Err(e) => Self {
                what,
                ok: false,
                // One line: some errors (git's credential context) span several.
                finding: format!("{:#}", e.into())
                    .split('\n')
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect::<Vec<_>>()
                    .join(" "),
            },
        }
    }
}

/// Checks each piece of `config` that Magos needs or that was configured.
fn check(config: &Config, env: &Env) -> anyhow::Result<Vec<Checked>> {
    crate::registry::install_crypto_provider();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut checks = Vec::new();

    let socket = config.podman.socket.as_ref().map(|s| s.path());
    if config.runtime == crate::config::Runtime::Docker {
        checks.push(Checked::new(
            "docker",
            runtime.block_on(async {
                let (client, version) =
                    crate::docker::Client::connect(env, crate::docker::ClientOptions::default())
                        .await?;
                Ok::<_, crate::docker::DockerError>(format!(
                    "Docker {} (API {}) answers on {}",
                    version.version,
                    client.api_version(),
                    client.socket().display()
                ))
            }),
        ));
    } else {
        checks.push(Checked::new(
            "podman",
            runtime.block_on(async {
                let (client, version) =
                    Client::connect(socket, env, ClientOptions::default()).await?;
                Ok::<_, crate::podman::PodmanError>(format!(
                    "Podman {} answers on {}",
                    version.version,
                    client.socket().display()
                ))
            }),
        ));
    }

    checks.push(Checked::new(
        "repository",
        check_repository(config, env, &runtime),
    ));

    if let Some(file) = &config.secrets.age_key_file {
        let sources = KeySources {
            age_key_file: Some(file.clone()),
            ..KeySources::default()
        };
        checks.push(Checked::new(
            "age key",
            sources.load(None).map(|(ids, _)| {
                format!(
                    "{}: {} identit{}",
                    file.display(),
                    ids.len(),
                    if ids.len() == 1 { "y" } else { "ies" }
                )
            }),
        ));
    }

    if let Some(secret) = &config.daemon.webhook_secret {
        checks.push(Checked::new(
            "webhook",
            match render::webhook_secret_problem(secret) {
                None => Ok(format!(
                    "a secret of {} characters; give the forge the same one",
                    secret.expose().chars().count()
                )),
                Some(problem) => Err(anyhow::anyhow!("the secret has {problem}")),
            },
        ));
    }
    Ok(checks)
}

/// The repository: a local folder is read in place; a remote is probed with
/// the configured authentication (the GitHub App's installation token when one
/// is configured).
fn check_repository(
    config: &Config,
    env: &Env,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<String> {
    let location = crate::engine::Location::of(config, env)?;
    let checkout = match location {
        crate::engine::Location::Folder(dir) => {
            return Ok(format!("{}: a local folder, read in place", dir.display()));
        }
        crate::engine::Location::Remote(checkout) => checkout,
    };
    let mut remote = checkout.remote().clone();
    let mut via = "";
    if let Some(app) = GithubApp::from_config(&config.github, remote.url())? {
        remote = remote.with_auth(
            runtime
                .block_on(app.git_auth())
                .context("the GitHub App has no installation token for this repository")?,
        );
        via = ", through the GitHub App";
    }
    let probed = remote.probe(PROBE_TIMEOUT).map_err(|e| {
        let reason = format!("{:#}", anyhow::Error::from(e));
        if reason.contains("credentials") {
            anyhow::anyhow!(
                "{reason} (the repository wants credentials: pass --auth token, github-app or ssh)"
            )
        } else {
            anyhow::anyhow!(reason)
        }
    })?;
    Ok(format!(
        "{}: branch `{}` at {}{via}",
        remote.url(),
        remote.branch(),
        &probed.head[..probed.head.len().min(12)]
    ))
}

/// What to run next.
fn next_steps(values: &[(&str, Value)], root: bool) -> String {
    let local = values.iter().find_map(|(k, v)| match (k, v) {
        (&"repo.url", Value::Text(u)) if !u.contains("://") && Path::new(u).is_dir() => {
            Some(u.clone())
        }
        _ => None,
    });
    let plan = match &local {
        Some(dir) if !Path::new(dir).join("HEAD").is_file() => format!("magos plan --repo {dir}"),
        _ => "magos plan --repo DIR".to_owned(),
    };
    let (install, enable) = if root {
        (
            "scripts/install.sh --system --now",
            "systemctl enable --now magos-dominus",
        )
    } else {
        (
            "scripts/install.sh --now",
            "systemctl --user enable --now magos-dominus",
        )
    };
    let rows = [
        ("magos config check", "the configuration as Magos reads it"),
        (
            "magos check",
            "the updates your policies allow (reads the repository and registries)",
        ),
        (
            plan.as_str(),
            "what `magos apply` would change (DIR: your checkout)",
        ),
        ("magos run --once", "one full pass: sync, pin, apply, drift"),
        (
            install,
            "run Magos as a service (from a clone or an unpacked release)",
        ),
        (enable, "start it, when it is installed already"),
    ];
    let width = rows.iter().map(|(c, _)| c.len()).max().unwrap_or(0);
    let mut text = String::from("\nNext:\n");
    for (command, why) in rows {
        let _ = writeln!(text, "  {command:<width$}  # {why}");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_urls_are_told_from_paths_and_https() {
        assert!(is_ssh_url("git@github.com:me/homelab.git"));
        assert!(is_ssh_url("ssh://git@host:2222/me/homelab.git"));
        assert!(!is_ssh_url("https://github.com/me/homelab.git"));
        assert!(!is_ssh_url("/srv/git/homelab.git"));
        assert!(!is_ssh_url("./a:b/c"));
    }

    #[test]
    fn a_token_goes_into_the_https_url_encoded() {
        let url = with_token("https://git.example/o/r.git", &Secret::new("ab+c/d")).unwrap();
        assert_eq!(url.expose(), "https://ab%2Bc%2Fd@git.example/o/r.git");
        let (clean, creds) = crate::git::url::split_credentials(url.expose());
        assert_eq!(clean, "https://git.example/o/r.git");
        assert_eq!(creds.unwrap().password.expose(), "ab+c/d");
        let err = with_token("http://git.example/o/r.git", &Secret::new("t")).unwrap_err();
        assert!(err.to_string().contains("https://"), "{err}");
        assert!(with_token("https://u:p@git.example/o/r.git", &Secret::new("t")).is_err());
    }

    #[test]
    fn answers_fill_what_the_flags_left_out() {
        let args = InitArgs {
            repo_url: None,
            branch: None,
            auth: None,
            token_file: None,
            app_id: None,
            app_key: None,
            installation_id: None,
            age_key_file: None,
            webhook_secret_file: None,
            podman_socket: None,
            runtime: None,
            force: false,
            no_check: true,
            interactive: true,
        };
        let mut ask = Prompter {
            input: "https://git.example/o/r.git\n\ntoken\ns3cret\n".as_bytes(),
            enabled: true,
            terminal: false,
        };
        let values = gather(&args, &mut ask).unwrap();
        assert_eq!(values.len(), 2);
        assert_eq!(values[0].0, "repo.url");
        let Value::Secret(url) = &values[0].1 else {
            panic!("the URL holds a token: {values:?}");
        };
        assert_eq!(url.expose(), "https://s3cret@git.example/o/r.git");
        assert_eq!(values[1], ("repo.branch", Value::Text("main".into())));

        let mut closed = Prompter {
            input: "".as_bytes(),
            enabled: false,
            terminal: false,
        };
        let err = gather(&args, &mut closed).unwrap_err();
        assert!(err.to_string().contains("--repo-url"), "{err}");
    }
}
