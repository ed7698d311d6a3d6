//! The command line: parsing, dispatch, exit codes and printing.
//!
//! Every command returns an [`Exit`]; errors are printed once, as `error: …` with
//! their whole chain, and exit with code 2. A closed standard output (e.g. piping
//! into `head`) is not an error.

#[cfg(unix)]
mod apply;
pub mod check;
mod completions;
mod config_cmd;
#[cfg(target_os = "linux")]
pub mod doctor;
#[cfg(unix)]
mod export;
pub mod history;
#[cfg(unix)]
mod init;
mod lint;
mod policy;
mod rejected;
#[cfg(target_os = "linux")]
mod run;
mod secrets;
pub mod update;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{self, Env, LogFormat, Overrides};
use crate::logging::{self, LogSetup};

/// How a command ended. The numbers are documented in `magos --help`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: success, nothing to report.
    Success,
    /// 1: the command ran and found something (drift, diagnostics, no candidate),
    /// where the command defines it.
    Found,
    /// 2: an error.
    Error,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(match e {
            Exit::Success => 0,
            Exit::Found => 1,
            Exit::Error => 2,
        })
    }
}

const AFTER_HELP: &str = "\
Exit codes:
  0  success
  1  the command ran and found something it reports (e.g. drift), where it says so
  2  error (bad configuration, bad input, an unreachable service)

Configuration (highest first): flags > environment > .env beside the config file >
config file > defaults. `magos config check` shows the result. Reference:
configs/magos.yaml.";

/// Magos Dominus keeps a Podman host equal to a git repository of compose stacks:
/// it pins image updates allowed by policy as tag@sha256 digests, commits them,
/// and applies the stacks through Podman's API.
#[derive(Debug, Parser)]
#[command(name = "magos", version, about, long_about = None, after_help = AFTER_HELP, propagate_version = true)]
pub struct Cli {
    /// Configuration file [default: $MD_CONFIG (alias $MAGOS_CONFIG),
    /// ~/.config/magos/magos.yaml, /etc/magos/magos.yaml, else built-in
    /// defaults]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Log format
    #[arg(long, global = true, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,

    /// More log detail (repeat for more)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Less log detail (repeat for less)
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "verbose")]
    pub quiet: u8,

    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a first configuration file and check what it configured
    ///
    /// From flags, or from a few questions on a terminal: the repository URL,
    /// the branch and how to authenticate (token, GitHub App, ssh or none). Then
    /// checks the Podman socket, the repository (reachable, readable, the branch
    /// exists), the age key and the webhook secret, and prints what to run next.
    #[cfg(unix)]
    Init(init::InitArgs),
    /// Inspect the configuration
    #[command(subcommand)]
    Config(config_cmd::ConfigCommand),
    /// Try an image policy annotation against tags, with no registry
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Report a repository's stacks, services, policies and mistakes
    ///
    /// Reads every stack (compose file, override, .env) of a local checkout,
    /// reports each service's image, its policy and whether its image line can be
    /// pinned, and lists every diagnostic with file, line and column.
    Lint(lint::LintArgs),
    /// Check SOPS-encrypted secrets
    #[command(subcommand)]
    Secrets(secrets::SecretsCommand),
    /// Show what `apply` would do, without changing anything
    #[cfg(unix)]
    Plan(apply::PlanArgs),
    /// Make Podman run the repository's stacks, through its API
    ///
    /// Converges every stack (or one, with --stack), removes orphans of managed
    /// stacks, and hands stacks using keys Magos does not apply natively to
    /// podman-compose.
    #[cfg(unix)]
    Apply(apply::ApplyArgs),
    /// Compare every service of every stack with what runs
    #[cfg(unix)]
    Drift(apply::DriftArgs),
    /// Write the repository's stacks in another tool's format (Quadlet units)
    #[cfg(unix)]
    #[command(subcommand)]
    Export(export::ExportCommand),
    /// Report which annotated images have an update their policy allows
    ///
    /// For every service with a policy annotation: the reference written, the
    /// tag and digest the policy chooses among the registry's tags, and whether
    /// that is an update. Nothing is written.
    Check(check::CheckArgs),
    /// Pin the updates the policies allow and write them back
    ///
    /// Rewrites each chosen service's image line as name:tag@sha256:digest: as a
    /// diff (--dry-run), in a folder (--no-commit), or as one commit on Magos's
    /// clone of repo.url, pushed (or proposed as pull requests, repo.mode).
    Update(update::UpdateArgs),
    /// List the digests that failed a soak, or allow one again
    ///
    /// The daemon rolls back a changed service that fails its soak and rejects
    /// its digest: no policy pins it again until a newer digest appears, or
    /// until `--clear IMAGE@DIGEST`.
    Rejected(rejected::RejectedArgs),
    /// Check rootless Podman networking (pasta, ports, DNS) and heal it
    ///
    /// Checks the Podman socket, pasta, /dev/net/tun, subordinate ids, lingering,
    /// the rootless netns, and for every managed container its pasta process,
    /// published ports and DNS; each failure says whose problem it is and what to
    /// do. `--heal` restarts what a restart heals and checks again.
    #[cfg(target_os = "linux")]
    Doctor(doctor::DoctorArgs),
    /// Keep this host equal to the repository: the daemon
    ///
    /// Each pass syncs the repository, pins the updates the policies allow (a
    /// commit pushed, or pull requests), applies every stack through Podman,
    /// heals rootless networking and reports drift. Passes run on the interval,
    /// on webhooks, when a managed container dies, and on SIGHUP (which also
    /// reloads the configuration). Under systemd it reports readiness, status and
    /// pets the watchdog while it makes progress. `--once` runs one pass.
    #[cfg(target_os = "linux")]
    Run(run::RunArgs),
    /// Show what Magos did and told its owner: pins, applies, failures
    ///
    /// Prints the events of the journal in the state folder, oldest first:
    /// pins and pull requests, applies, failed soaks and rollbacks, drift,
    /// network heals and failed passes, each with its stack, service, image,
    /// digests, commit and reason. The same events go to the `notify:`
    /// receivers.
    History(history::HistoryArgs),
    /// Print shell completions: bash, zsh, fish, elvish or powershell
    ///
    /// For example `magos completions bash >~/.local/share/bash-completion/completions/magos`;
    /// zsh reads `_magos` from a folder in its $fpath, fish from
    /// ~/.config/fish/completions/magos.fish. scripts/install.sh installs them.
    Completions(completions::CompletionsArgs),
    /// Print the man page, or write every page (one per subcommand) with --out DIR
    Man(completions::ManArgs),
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    #[cfg(unix)]
    if may_run_git(&cli.command) {
        end_git_children_on_signal();
    }
    let env: Env = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let exit = run(cli, &env);
    // A signal's git children were killed under the command, which may have
    // failed of it and returned first: the signal's code still wins.
    #[cfg(unix)]
    if let code @ 1.. = SIGNALLED.load(std::sync::atomic::Ordering::Acquire) {
        std::process::exit(code);
    }
    exit.into()
}

/// The exit code of the SIGTERM or SIGINT being handled (0: none).
#[cfg(unix)]
static SIGNALLED: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// Whether the command may sync or push Magos's clone (the daemon handles its
/// signals itself).
#[cfg(unix)]
fn may_run_git(command: &Command) -> bool {
    match command {
        Command::Check(_) | Command::Update(_) => true,
        Command::Plan(_) | Command::Apply(_) | Command::Drift(_) | Command::Export(_) => true,
        #[cfg(target_os = "linux")]
        Command::Run(args) => args.once,
        _ => false,
    }
}

/// Each `git` child leads a process group of its own (so that a time limit
/// kills its helpers too), which a terminal's Ctrl-C no longer reaches: on
/// SIGINT or SIGTERM, every `git` child's group is killed, then Magos exits as
/// the signal would have made it (130, 143).
#[cfg(unix)]
fn end_git_children_on_signal() {
    let watcher = std::thread::Builder::new()
        .name("signals".to_owned())
        .spawn(|| {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                use tokio::signal::unix::{SignalKind, signal};
                let (Ok(mut term), Ok(mut int)) = (
                    signal(SignalKind::terminate()),
                    signal(SignalKind::interrupt()),
                ) else {
                    return;
                };
                let code = tokio::select! {
                    _ = term.recv() => 143,
                    _ = int.recv() => 130,
                };
                SIGNALLED.store(code, std::sync::atomic::Ordering::Release);
                crate::git::stop_all();
                std::process::exit(code);
            });
        });
    if let Err(e) = watcher {
        tracing::debug!(error = %e, "cannot watch for signals");
    }
}

/// Runs a parsed command line against an environment snapshot.
pub fn run(cli: Cli, env: &Env) -> Exit {
    let verbosity = cli.verbose as i8 - cli.quiet as i8;
    let overrides = Overrides {
        log_format: cli.log_format,
        ..Overrides::default()
    };
    let config_file = cli
        .config
        .clone()
        .or_else(|| config::default_config_path(env));
    let result = match &cli.command {
        #[cfg(unix)]
        Command::Init(args) => init::run(args, cli.config.as_deref(), env),
        Command::Config(cmd) => {
            config_cmd::run(cmd, config_file.as_deref(), env, &overrides, verbosity)
        }
        Command::Policy(cmd) => policy::run(cmd),
        Command::Lint(args) => lint::run(args, config_file.as_deref(), env),
        Command::Secrets(cmd) => {
            secrets::run(cmd, config_file.as_deref(), env, &overrides, verbosity)
        }
        #[cfg(unix)]
        Command::Plan(a) => apply::run(
            apply::Which::Plan(a),
            config_file.as_deref(),
            env,
            &overrides,
            verbosity,
        ),
        #[cfg(unix)]
        Command::Apply(a) => apply::run(
            apply::Which::Apply(a),
            config_file.as_deref(),
            env,
            &overrides,
            verbosity,
        ),
        #[cfg(unix)]
        Command::Drift(a) => apply::run(
            apply::Which::Drift(a),
            config_file.as_deref(),
            env,
            &overrides,
            verbosity,
        ),
        #[cfg(unix)]
        Command::Export(cmd) => {
            export::run(cmd, config_file.as_deref(), env, &overrides, verbosity)
        }
        Command::Check(args) => {
            check::run(args, config_file.as_deref(), env, &overrides, verbosity)
        }
        Command::Update(args) => {
            update::run(args, config_file.as_deref(), env, &overrides, verbosity)
        }
        Command::Rejected(args) => {
            rejected::run(args, config_file.as_deref(), env, &overrides, verbosity)
        }
        #[cfg(target_os = "linux")]
        Command::Run(args) => run::run(args, config_file.as_deref(), env, &overrides, verbosity),
        #[cfg(target_os = "linux")]
        Command::Doctor(args) => {
            doctor::run(args, config_file.as_deref(), env, &overrides, verbosity)
        }
        Command::History(args) => {
            history::run(args, config_file.as_deref(), env, &overrides, verbosity)
        }
        Command::Completions(args) => completions::completions(args),
        Command::Man(args) => completions::man(args),
    };
    match result {
        Ok(exit) => exit,
        Err(err) => {
            if is_broken_pipe(&err) {
                return Exit::Success;
            }
            eprintln!("error: {err:#}");
            Exit::Error
        }
    }
}

/// Takes the engine instance's lock (`engine`: its name for messages) and, for
/// `run` (`state`), the state folder's ([`crate::lock`]), or fails naming the
/// holder. `apply` works on a folder it is given, not on the state folder's
/// clone, so it takes only the first.
#[cfg(unix)]
pub(crate) fn lock_instance(
    config: &config::Config,
    env: &Env,
    socket: &std::path::Path,
    engine: &str,
    state: bool,
) -> anyhow::Result<crate::lock::InstanceLock> {
    let state_dir = config::state_dir(config, env);
    let runtime = env
        .get("XDG_RUNTIME_DIR")
        .filter(|v| v.starts_with('/'))
        .map(std::path::PathBuf::from);
    Ok(crate::lock::acquire(crate::lock::LockTarget {
        state_dir: state_dir.as_deref(),
        lock_state: state,
        runtime_dir: runtime.as_deref(),
        socket,
        engine,
        instance: config.apply.instance.as_str(),
    })?)
}

/// Loads the configuration and installs logging: the first step of every command
/// that needs a configuration.
pub fn load_config(
    file: Option<&std::path::Path>,
    env: &Env,
    overrides: &Overrides,
    verbosity: i8,
) -> anyhow::Result<config::Loaded> {
    let loaded = config::load(file, env, overrides)?;
    let c = &loaded.config;
    LogSetup::new(
        c.log.format,
        c.log.level,
        verbosity,
        env,
        logging::stderr_is_terminal(),
    )
    .install();
    Ok(loaded)
}

/// Writes to standard output; a closed pipe surfaces as an error that [`run`]
/// turns into a quiet exit.
pub fn out(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
