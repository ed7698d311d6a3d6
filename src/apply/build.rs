//! Building a service's image (`build:`) through Podman's build endpoint: the
//! context folder read into entries (`.containerignore`/`.dockerignore`
//! respected, symbolic links sent as links and never followed, nothing read
//! outside the repository), the inputs digest that decides whether to build
//! ([`core::build`](crate::core::build)), and the build itself with its
//! progress, whose failure names the service and the Dockerfile line.

use std::path::{Component, Path, PathBuf};

use crate::core::build::{self, DEFAULT_DOCKERFILES, Entry, EntryKind, IGNORE_FILES, Ignore};
use crate::core::spec::{BuildSpec, ContainerSpec, StackSpec};
use crate::podman::{BuildOptions, Client, PodmanError};
use crate::server::Liveness;

use super::display::PullDisplay;

/// The largest build context sent, in bytes (the tar is held in memory).
pub const MAX_CONTEXT_BYTES: u64 = 512 * 1024 * 1024;

/// A build context as read from disk.
#[derive(Debug)]
pub struct Context {
    /// What is sent, in walk order.
    pub entries: Vec<Entry>,
    /// The Dockerfile's path inside the context.
    pub dockerfile: String,
    /// The Dockerfile's absolute path (for messages).
    pub dockerfile_path: PathBuf,
    /// Its text, when it is a readable file (to find a failed step's line).
    pub dockerfile_text: Option<String>,
}

/// Why a build context cannot be read. It renders as the sentence reported
/// for the stack (while preparing) or the build (when applying).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContextError {
    /// The context folder cannot be found or resolved.
    #[error("build context {}: {error}", .dir.display())]
    Unresolved {
        /// The context as written, resolved against the stack's folder.
        dir: PathBuf,
        /// What the system said.
        error: String,
    },
    /// The context is outside the repository (as written, or through a link).
    #[error(
        "build context {} is outside the repository ({}); Magos sends only the repository's files",
        .dir.display(),
        .root.display()
    )]
    Outside {
        /// The context.
        dir: PathBuf,
        /// The repository.
        root: PathBuf,
    },
    /// The context is not a folder.
    #[error("build context {} is not a folder", .0.display())]
    NotAFolder(PathBuf),
    /// `dockerfile:` leaves the context.
    #[error("`dockerfile: {dockerfile}` is not inside the build context {}", .dir.display())]
    DockerfileOutside {
        /// The `dockerfile:` value.
        dockerfile: String,
        /// The context.
        dir: PathBuf,
    },
    /// The Dockerfile named does not exist.
    #[error("Dockerfile {} not found", .0.display())]
    DockerfileMissing(PathBuf),
    /// No Dockerfile is named and none of the usual names exists.
    #[error(
        "no Containerfile or Dockerfile in the build context {} (set `build.dockerfile`)",
        .0.display()
    )]
    NoDockerfile(PathBuf),
    /// The context is larger than Magos sends.
    #[error(
        "the build context {} is larger than {} MiB; list what the build does not need in .dockerignore",
        .0.display(),
        MAX_CONTEXT_BYTES / 1024 / 1024
    )]
    TooLarge(PathBuf),
    /// A file of the context (or its ignore file) cannot be read.
    #[error("{}: {error}", .path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What the system (or the ignore file's reader) said.
        error: String,
    },
}

/// [`ContextError::Unreadable`] for `path`.
fn unreadable(path: &Path) -> impl FnOnce(std::io::Error) -> ContextError + '_ {
    move |e| ContextError::Unreadable {
        path: path.to_path_buf(),
        error: e.to_string(),
    }
}

/// A service whose build context cannot be read (while preparing its stack).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("service `{service}`: {error}")]
pub struct ServiceContextError {
    /// The service.
    pub service: String,
    /// Why its context cannot be read.
    pub error: ContextError,
}

/// Reads a service's build context. `repo` is the repository's folder: a
/// context outside it is refused.
pub fn read_context(b: &BuildSpec, repo: &Path) -> Result<Context, ContextError> {
    let dir = PathBuf::from(&b.context);
    let real = std::fs::canonicalize(&dir).map_err(|e| ContextError::Unresolved {
        dir: dir.clone(),
        error: e.to_string(),
    })?;
    let root = std::fs::canonicalize(repo).unwrap_or_else(|_| repo.to_path_buf());
    if !real.starts_with(&root) {
        return Err(ContextError::Outside { dir, root });
    }
    if !real.is_dir() {
        return Err(ContextError::NotAFolder(dir));
    }
    let dockerfile = match &b.dockerfile {
        Some(d) => {
            let clean = inside(d).ok_or_else(|| ContextError::DockerfileOutside {
                dockerfile: d.clone(),
                dir: dir.clone(),
            })?;
            if std::fs::symlink_metadata(real.join(&clean)).is_err() {
                return Err(ContextError::DockerfileMissing(dir.join(&clean)));
            }
            clean
        }
        None => DEFAULT_DOCKERFILES
            .iter()
            .find(|n| real.join(n).is_file())
            .map(|n| (*n).to_owned())
            .ok_or_else(|| ContextError::NoDockerfile(dir.clone()))?,
    };
    let ignore = match IGNORE_FILES
        .iter()
        .map(|n| real.join(n))
        .find(|p| p.is_file())
    {
        Some(p) => {
            let text = std::fs::read_to_string(&p).map_err(unreadable(&p))?;
            Ignore::parse(&text).map_err(|e| ContextError::Unreadable {
                path: p.clone(),
                error: e.to_string(),
            })?
        }
        None => Ignore::default(),
    };
    let mut entries = Vec::new();
    let mut total = 0u64;
    walk(&real, "", &ignore, &dockerfile, &mut entries, &mut total)?;
    let dockerfile_text = entries.iter().find_map(|e| match &e.kind {
        EntryKind::File(d) if e.path == dockerfile => String::from_utf8(d.clone()).ok(),
        _ => None,
    });
    Ok(Context {
        entries,
        dockerfile_path: dir.join(&dockerfile),
        dockerfile,
        dockerfile_text,
    })
}

/// A relative path that stays inside its folder, cleaned; `None` otherwise.
fn inside(p: &str) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    for c in Path::new(p).components() {
        match c {
            Component::Normal(n) => parts.push(n.to_string_lossy().into_owned()),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            _ => return None,
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

fn walk(
    dir: &Path,
    rel: &str,
    ignore: &Ignore,
    dockerfile: &str,
    out: &mut Vec<Entry>,
    total: &mut u64,
) -> Result<(), ContextError> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .map_err(unreadable(dir))?
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .collect();
    names.sort();
    for name in names {
        let name = name.to_string_lossy().into_owned();
        let path = dir.join(&name);
        let rel = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        // The Dockerfile and the ignore file are always sent, as docker does.
        let always = rel == dockerfile || IGNORE_FILES.contains(&rel.as_str());
        let excluded = !always && ignore.excluded(&rel);
        // Never followed: a link is sent as a link.
        let meta = std::fs::symlink_metadata(&path).map_err(unreadable(&path))?;
        let mode = mode_of(&meta);
        let ft = meta.file_type();
        if ft.is_dir() {
            if !excluded {
                out.push(Entry {
                    path: rel.clone(),
                    mode,
                    kind: EntryKind::Dir,
                });
            }
            walk(&path, &rel, ignore, dockerfile, out, total)?;
        } else if excluded {
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&path).map_err(unreadable(&path))?;
            out.push(Entry {
                path: rel,
                mode,
                kind: EntryKind::Symlink(target.to_string_lossy().into_owned()),
            });
        } else if ft.is_file() {
            *total += meta.len();
            if *total > MAX_CONTEXT_BYTES {
                return Err(ContextError::TooLarge(dir.to_path_buf()));
            }
            let data = std::fs::read(&path).map_err(unreadable(&path))?;
            out.push(Entry {
                path: rel,
                mode,
                kind: EntryKind::File(data),
            });
        }
        // Sockets, fifos and devices are not sent.
    }
    Ok(())
}

#[cfg(unix)]
fn mode_of(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o7777
}

#[cfg(not(unix))]
fn mode_of(meta: &std::fs::Metadata) -> u32 {
    if meta.is_dir() { 0o755 } else { 0o644 }
}

/// The inputs digest of a context read for a build spec: its parameters and
/// the Dockerfile's path, and every entry.
pub fn digest(b: &BuildSpec, ctx: &Context) -> String {
    let params = BuildSpec {
        digest: String::new(),
        ..b.clone()
    };
    let params = format!(
        "{}\n{}",
        serde_json::to_string(&params).unwrap_or_default(),
        ctx.dockerfile
    );
    build::inputs_digest(&params, &ctx.entries)
}

/// Fills in the inputs digest of every service of a stack that builds its
/// image. An unreadable context fails the stack, naming the service.
pub fn fill_digests(stack: &mut StackSpec, repo: &Path) -> Result<(), ServiceContextError> {
    for spec in &mut stack.services {
        let service = spec.service.clone();
        if let Some(b) = spec.build.as_mut() {
            b.repository = repo.to_string_lossy().into_owned();
            let ctx =
                read_context(b, repo).map_err(|error| ServiceContextError { service, error })?;
            b.digest = digest(b, &ctx);
        }
    }
    Ok(())
}

/// A failed build, naming the service and where in the Dockerfile.
#[derive(Debug, thiserror::Error)]
#[error("service `{service}`: building {image} failed{at}: {message}")]
pub struct BuildError {
    /// The service.
    pub service: String,
    /// The image name.
    pub image: String,
    /// ` at <Dockerfile>:<line> (<step>)`, or empty when unknown.
    pub at: String,
    /// Podman's message, or why the context could not be read.
    pub message: String,
}

/// Builds a service's image: reads the context again, sends it as a tar, and
/// tags the image with its name and `tags:`, labelled with the inputs digest.
pub async fn build(
    client: &Client,
    spec: &ContainerSpec,
    liveness: Option<&Liveness>,
    display: PullDisplay,
) -> Result<(), BuildError> {
    let image = spec.image.qualified.clone();
    let fail = |at: String, message: String| BuildError {
        service: spec.service.clone(),
        image: image.clone(),
        at,
        message,
    };
    let Some(b) = &spec.build else {
        return Err(fail(
            String::new(),
            "the service has no `build:`".to_owned(),
        ));
    };
    // Reading the context and making the tar are file work: off the async
    // workers (the daemon runs on one thread).
    let owned = b.clone();
    let read = tokio::task::spawn_blocking(move || {
        let ctx = read_context(&owned, Path::new(&owned.repository)).map_err(|e| e.to_string())?;
        let digest = digest(&owned, &ctx);
        let tar = build::tar(&ctx.entries);
        Ok::<_, String>((ctx, digest, tar))
    })
    .await
    .unwrap_or_else(|e| Err(format!("reading the build context failed: {e}")));
    let (mut ctx, digest, tar) = read.map_err(|e| fail(String::new(), e))?;
    ctx.entries = Vec::new();
    let mut labels = b.labels.clone();
    labels.insert(build::LABEL_BUILD_DIGEST.to_owned(), digest);
    let options = BuildOptions {
        dockerfile: ctx.dockerfile.clone(),
        tags: std::iter::once(image.clone())
            .chain(b.tags.iter().cloned())
            .collect(),
        args: b.args.clone(),
        labels,
        target: b.target.clone(),
        network: b.network.clone(),
        extra_hosts: b.extra_hosts.clone(),
        pull: b.pull,
        no_cache: b.no_cache,
    };
    tracing::info!(service = %spec.service, image = %image, dockerfile = %ctx.dockerfile_path.display(), "building");
    let mut progress = |line: &str| {
        if let Some(l) = liveness {
            l.progress();
        }
        match display {
            PullDisplay::Log => tracing::info!(service = %spec.service, "{line}"),
            PullDisplay::Terminal => PullDisplay::rewrite(&spec.service, line),
        }
    };
    let result = client.build_image(tar, &options, &mut progress).await;
    display.end();
    match result {
        Ok(_) => Ok(()),
        Err(PodmanError::Build { message, step, .. }) => {
            let line = ctx
                .dockerfile_text
                .as_deref()
                .and_then(|t| build::failed_line(t, &message, step.as_deref()));
            let path = ctx.dockerfile_path.display();
            let at = match (line, &step) {
                (Some(n), Some(s)) => format!(" at {path}:{n} ({s})"),
                (Some(n), None) => format!(" at {path}:{n}"),
                (None, Some(s)) => format!(" in {path} ({s})"),
                (None, None) => format!(" ({path})"),
            };
            Err(fail(at, message))
        }
        Err(e) => Err(fail(
            format!(" ({})", ctx.dockerfile_path.display()),
            e.to_string(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(context: &Path) -> BuildSpec {
        BuildSpec {
            context: context.to_string_lossy().into_owned(),
            ..Default::default()
        }
    }

    #[test]
    fn a_context_is_read_without_following_links_and_stays_in_the_repository() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "outside").unwrap();
        let repo = tempfile::tempdir().unwrap();
        let ctx = repo.path().join("web/app");
        std::fs::create_dir_all(ctx.join("sub")).unwrap();
        std::fs::write(ctx.join("Dockerfile"), "FROM x\n").unwrap();
        std::fs::write(ctx.join("sub/a.txt"), "a").unwrap();
        std::fs::write(ctx.join("debug.log"), "no").unwrap();
        std::fs::write(ctx.join(".dockerignore"), "*.log\nDockerfile\n").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), ctx.join("link")).unwrap();
        let c = read_context(&spec(&ctx), repo.path()).unwrap();
        let paths: Vec<&str> = c.entries.iter().map(|e| e.path.as_str()).collect();
        // The Dockerfile and the ignore file are sent even when listed.
        assert_eq!(
            paths,
            [".dockerignore", "Dockerfile", "link", "sub", "sub/a.txt"]
        );
        assert_eq!(c.dockerfile, "Dockerfile");
        let link = c.entries.iter().find(|e| e.path == "link").unwrap();
        assert_eq!(
            link.kind,
            EntryKind::Symlink(outside.path().join("secret").to_string_lossy().into_owned())
        );
        assert!(
            !c.entries
                .iter()
                .any(|e| matches!(&e.kind, EntryKind::File(d) if d == b"outside")),
            "a link was followed"
        );
        // The digest changes with a file and not with a second read.
        let d1 = digest(&spec(&ctx), &c);
        assert_eq!(
            d1,
            digest(
                &spec(&ctx),
                &read_context(&spec(&ctx), repo.path()).unwrap()
            )
        );
        std::fs::write(ctx.join("sub/a.txt"), "b").unwrap();
        let c2 = read_context(&spec(&ctx), repo.path()).unwrap();
        assert_ne!(d1, digest(&spec(&ctx), &c2));
        // An ignored file does not count.
        std::fs::write(ctx.join("debug.log"), "changed").unwrap();
        let c3 = read_context(&spec(&ctx), repo.path()).unwrap();
        assert_eq!(digest(&spec(&ctx), &c2), digest(&spec(&ctx), &c3));

        // A context outside the repository, as written or through a link.
        let e = read_context(&spec(outside.path()), repo.path())
            .unwrap_err()
            .to_string();
        assert!(e.contains("outside the repository"), "{e}");
        std::os::unix::fs::symlink(outside.path(), repo.path().join("out")).unwrap();
        let e = read_context(&spec(&repo.path().join("out")), repo.path())
            .unwrap_err()
            .to_string();
        assert!(e.contains("outside the repository"), "{e}");
        // A Dockerfile that leaves the context, or none at all.
        let mut s = spec(&ctx);
        s.dockerfile = Some("../../x/Dockerfile".into());
        let e = read_context(&s, repo.path()).unwrap_err().to_string();
        assert!(e.contains("not inside the build context"), "{e}");
        std::fs::remove_file(ctx.join("Dockerfile")).unwrap();
        let e = read_context(&spec(&ctx), repo.path())
            .unwrap_err()
            .to_string();
        assert!(e.contains("no Containerfile or Dockerfile"), "{e}");
    }
}
