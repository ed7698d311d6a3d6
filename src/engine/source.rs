//! Where a command's repository is: a local folder used in place, or Magos's
//! own clone of a git remote.

use std::path::{Path, PathBuf};

use crate::config::{self, Config, Env};
use crate::git::{Auth, Checkout, Remote, SshOptions};

/// Where the repository of a command is.
#[derive(Debug)]
pub enum Location {
    /// A local folder with the stacks (a work tree or a plain folder), used in
    /// place.
    Folder(PathBuf),
    /// A git remote (or a local bare repository), reached through Magos's own
    /// clone in the state folder.
    Remote(Checkout),
}

impl Location {
    /// `repo.url`: an existing local folder that is not a bare repository is a
    /// folder; anything else is a remote.
    pub fn of(config: &Config, env: &Env) -> anyhow::Result<Self> {
        let Some(url) = &config.repo.url else {
            anyhow::bail!("no repository: pass --repo DIR|URL or set repo.url (MD_REPO)");
        };
        let raw = url.expose();
        let path = Path::new(raw);
        if !raw.contains("://") && path.is_dir() && !is_bare(path) {
            return Ok(Location::Folder(path.to_owned()));
        }
        if !raw.contains("://") && !is_scp_like(raw) && !path.exists() {
            anyhow::bail!(
                "cannot read the folder {raw}: no such file or directory (nor is it a git URL); pass --repo DIR|URL"
            );
        }
        let Some(state) = config::state_dir(config, env) else {
            anyhow::bail!(
                "no state folder for Magos's clone of {url}: set state_dir (MD_STATE_DIR) or HOME"
            );
        };
        let remote = Remote::new(url, &config.repo.branch, Auth::Ambient)
            .with_timeout(config.repo.timeout.0)
            .with_ssh(SshOptions {
                key: config.repo.ssh_key.clone(),
                known_hosts: config.repo.known_hosts.clone(),
            });
        Ok(Location::Remote(Checkout::in_state_dir(&state, remote)))
    }
}

/// `git@host:path`: a host before a colon, no slash before it.
fn is_scp_like(raw: &str) -> bool {
    raw.split_once(':')
        .is_some_and(|(host, _)| !host.is_empty() && !host.contains('/'))
}

/// A bare git repository: `HEAD`, `objects/` and `refs/` at its top.
fn is_bare(dir: &Path) -> bool {
    dir.join("HEAD").is_file() && dir.join("objects").is_dir() && dir.join("refs").is_dir()
}

impl super::Engine {
    /// Where the configured repository is.
    pub fn location(&self) -> anyhow::Result<Location> {
        Location::of(&self.config, &self.env)
    }

    /// The folder holding the configured repository as the remote has it now:
    /// a local folder as it is, else Magos's clone, synced (with the GitHub
    /// App's token when one is configured). Blocking.
    pub fn checkout(&self) -> anyhow::Result<PathBuf> {
        match self.location()? {
            Location::Folder(dir) => Ok(dir),
            Location::Remote(checkout) => {
                let checkout = self.authed(checkout)?.0;
                checkout.sync()?;
                Ok(checkout.workdir().to_owned())
            }
        }
    }
}
