//! Building a service's image (`build:`), the pure part: which files of a
//! build context are sent (`.containerignore` / `.dockerignore`), the digest of
//! the build's inputs that decides whether an image must be built again, the
//! tar archive sent to Podman's build endpoint, and the image name a build is
//! tagged with.
//!
//! The rebuild trigger: the digest covers every file sent (path, mode, content,
//! a symbolic link's target) and the build's parameters (Dockerfile, args,
//! target, labels, network, extra hosts, tags, pull, no-cache). It is set on
//! the built image as the label [`LABEL_BUILD_DIGEST`] and enters the service's
//! config hash: an image is built when no image of that name carries the
//! digest, and the container is recreated when the digest changes. A pass over
//! unchanged inputs builds nothing.

use globset::{GlobBuilder, GlobMatcher};
use sha2::{Digest as _, Sha256};

/// Label on an image Magos built: the digest of the build's inputs.
pub const LABEL_BUILD_DIGEST: &str = "io.magos.build-digest";

/// The names of a context's ignore file, in the order Podman looks for them.
pub const IGNORE_FILES: &[&str] = &[".containerignore", ".dockerignore"];

/// The Dockerfile names looked for when `dockerfile:` is not given, in
/// podman-compose's order.
pub const DEFAULT_DOCKERFILES: &[&str] = &[
    "Containerfile",
    "ContainerFile",
    "containerfile",
    "Dockerfile",
    "DockerFile",
    "dockerfile",
];

/// The parsed rules of an ignore file: docker's semantics (patterns as Go's
/// `filepath.Match` with `**`, a leading `/` ignored, `!` re-includes, the last
/// matching rule wins, a rule that matches a folder matches what is in it).
#[derive(Debug, Default)]
pub struct Ignore {
    rules: Vec<(GlobMatcher, bool)>,
}

impl Ignore {
    /// Reads an ignore file's text. A pattern that is not a valid glob is an
    /// error naming its line.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut rules = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (exclude, pattern) = match line.strip_prefix('!') {
                Some(p) => (false, p.trim()),
                None => (true, line),
            };
            let pattern = clean(pattern);
            if pattern.is_empty() {
                continue;
            }
            let glob = GlobBuilder::new(&pattern)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| format!("line {}: invalid pattern `{line}`: {e}", i + 1))?;
            rules.push((glob.compile_matcher(), exclude));
        }
        Ok(Self { rules })
    }

    /// Whether a path (relative to the context, `/`-separated) is left out.
    pub fn excluded(&self, path: &str) -> bool {
        let mut excluded = false;
        for (glob, exclude) in &self.rules {
            if excluded == *exclude {
                continue;
            }
            let hit = glob.is_match(path)
                || path
                    .match_indices('/')
                    .any(|(i, _)| glob.is_match(&path[..i]));
            if hit {
                excluded = *exclude;
            }
        }
        excluded
    }
}

/// A path as docker cleans a pattern: no leading `/` or `./`, no `.` parts,
/// `..` resolved where it can be.
fn clean(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join("/")
}

/// What one entry of a context is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A folder.
    Dir,
    /// A regular file with its content.
    File(Vec<u8>),
    /// A symbolic link with its target, sent as a link (never followed).
    Symlink(String),
}

/// One file, folder or link of a build context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Relative to the context, `/`-separated.
    pub path: String,
    /// The permission bits.
    pub mode: u32,
    /// What it is.
    pub kind: EntryKind,
}

/// The digest of a build's inputs: the parameters (canonical JSON, given by
/// the caller) and every entry, in path order. `sha256:<hex>`.
pub fn inputs_digest(params: &str, entries: &[Entry]) -> String {
    let mut sorted: Vec<&Entry> = entries.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    let mut h = Sha256::new();
    h.update(params.as_bytes());
    h.update([0]);
    for e in sorted {
        h.update(e.path.as_bytes());
        h.update([0]);
        h.update(e.mode.to_be_bytes());
        match &e.kind {
            EntryKind::Dir => h.update(b"d"),
            EntryKind::File(data) => {
                h.update(b"f");
                h.update((data.len() as u64).to_be_bytes());
                h.update(data);
            }
            EntryKind::Symlink(target) => {
                h.update(b"l");
                h.update(target.as_bytes());
                h.update([0]);
            }
        }
    }
    format!("sha256:{}", hex::encode(h.finalize()))
}

/// A tar archive (POSIX ustar, with a PAX header for a name or link target too
/// long for it) of the entries, in the order given. Owner root, time zero: the
/// same entries give the same bytes.
pub fn tar(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let (flag, data, link): (u8, &[u8], &str) = match &e.kind {
            EntryKind::Dir => (b'5', &[], ""),
            EntryKind::File(d) => (b'0', d, ""),
            EntryKind::Symlink(t) => (b'2', &[], t),
        };
        let name = match e.kind {
            EntryKind::Dir => format!("{}/", e.path),
            _ => e.path.clone(),
        };
        if name.len() > 100 || link.len() > 100 {
            let mut pax = String::new();
            if name.len() > 100 {
                pax.push_str(&pax_record("path", &name));
            }
            if link.len() > 100 {
                pax.push_str(&pax_record("linkpath", link));
            }
            out.extend(header("././@PaxHeader", 0o644, pax.len() as u64, b'x', ""));
            pad(&mut out, pax.as_bytes());
        }
        out.extend(header(&name, e.mode, data.len() as u64, flag, link));
        pad(&mut out, data);
    }
    out.extend([0u8; 1024]);
    out
}

/// One PAX record: `<length> <key>=<value>\n`, the length counting itself.
fn pax_record(key: &str, value: &str) -> String {
    let body = format!(" {key}={value}\n");
    let mut len = body.len() + 1;
    while len.to_string().len() + body.len() != len {
        len = len.to_string().len() + body.len();
    }
    format!("{len}{body}")
}

fn pad(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(data);
    let rest = data.len() % 512;
    if rest != 0 {
        out.extend(std::iter::repeat_n(0u8, 512 - rest));
    }
}

/// A 512-byte ustar header. Names and link targets are cut to the field (a
/// longer one is in the PAX header before it).
fn header(name: &str, mode: u32, size: u64, flag: u8, link: &str) -> [u8; 512] {
    let mut h = [0u8; 512];
    let put = |h: &mut [u8; 512], at: usize, len: usize, bytes: &[u8]| {
        let n = bytes.len().min(len);
        h[at..at + n].copy_from_slice(&bytes[..n]);
    };
    let octal = |h: &mut [u8; 512], at: usize, len: usize, v: u64| {
        let s = format!("{v:0width$o}", width = len - 1);
        put(h, at, len - 1, s.as_bytes());
    };
    put(&mut h, 0, 100, name.as_bytes());
    octal(&mut h, 100, 8, u64::from(mode & 0o7777));
    octal(&mut h, 108, 8, 0);
    octal(&mut h, 116, 8, 0);
    octal(&mut h, 124, 12, size);
    octal(&mut h, 136, 12, 0);
    h[148..156].copy_from_slice(b"        ");
    h[156] = flag;
    put(&mut h, 157, 100, link.as_bytes());
    put(&mut h, 257, 6, b"ustar\0");
    put(&mut h, 263, 2, b"00");
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    h
}

/// The name a built image is tagged with, as Podman records it: the service's
/// `image:` when it has one, else `<project>_<service>` (podman-compose's
/// name), under `localhost/` when the name has no registry, `:latest` when it
/// has no tag.
pub fn image_name(project: &str, service: &str, image: Option<&str>) -> String {
    let name = image.map_or_else(|| format!("{project}_{service}"), str::to_owned);
    let first = name.split('/').next().unwrap_or_default();
    let has_registry =
        name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let mut qualified = if has_registry {
        name
    } else {
        format!("localhost/{name}")
    };
    let last = qualified.rsplit('/').next().unwrap_or_default();
    if !last.contains(':') {
        qualified.push_str(":latest");
    }
    qualified
}

/// Where a Dockerfile line is, from what Podman said: `line N` in its message,
/// else the line of the step it was at (`STEP 2/3: RUN false`), found in the
/// Dockerfile's text.
pub fn failed_line(dockerfile: &str, message: &str, last_step: Option<&str>) -> Option<usize> {
    if let Some(i) = message.find("line ") {
        let digits: String = message[i + 5..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        if let Ok(n) = digits.parse() {
            return Some(n);
        }
    }
    let step = last_step?;
    let instruction = step.split_once(": ").map_or(step, |(_, i)| i).trim();
    let lines: Vec<&str> = dockerfile.lines().collect();
    lines
        .iter()
        .position(|l| l.trim() == instruction)
        .or_else(|| {
            let first = instruction.lines().next()?.trim();
            lines.iter().position(|l| l.trim().starts_with(first))
        })
        .map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignore_rules_follow_docker() {
        let ig = Ignore::parse(
            "# comment\n/secret\n*.log\n!keep.log\nnode_modules\n**/*.tmp\ndocs/*\n!docs/README.md\n",
        )
        .unwrap();
        assert!(ig.excluded("secret"));
        assert!(ig.excluded("secret/a/b"));
        assert!(ig.excluded("a.log"));
        assert!(!ig.excluded("keep.log"));
        assert!(!ig.excluded("sub/a.log"), "`*` stays within one folder");
        assert!(ig.excluded("node_modules/x/y.js"));
        assert!(ig.excluded("a/b/c.tmp"));
        assert!(ig.excluded("docs/guide.md"));
        assert!(!ig.excluded("docs/README.md"));
        assert!(!ig.excluded("src/main.rs"));
        assert!(Ignore::parse("[").is_err());
    }

    fn file(path: &str, data: &str) -> Entry {
        Entry {
            path: path.into(),
            mode: 0o644,
            kind: EntryKind::File(data.as_bytes().to_vec()),
        }
    }

    #[test]
    fn the_digest_changes_with_any_input_and_not_with_order() {
        let a = vec![file("Dockerfile", "FROM x\n"), file("app.sh", "echo\n")];
        let d = inputs_digest("{}", &a);
        let reordered = vec![a[1].clone(), a[0].clone()];
        assert_eq!(d, inputs_digest("{}", &reordered));
        assert_ne!(d, inputs_digest("{\"target\":\"x\"}", &a));
        let mut changed = a.clone();
        changed[1] = file("app.sh", "echo hi\n");
        assert_ne!(d, inputs_digest("{}", &changed));
        let mut moded = a.clone();
        moded[1].mode = 0o755;
        assert_ne!(d, inputs_digest("{}", &moded));
    }

    #[test]
    fn tar_has_headers_data_and_long_names() {
        let long = format!("{}/file", "d".repeat(120));
        let t = tar(&[
            Entry {
                path: "d".into(),
                mode: 0o755,
                kind: EntryKind::Dir,
            },
            file("d/a", "hello"),
            file(&long, "x"),
            Entry {
                path: "l".into(),
                mode: 0o777,
                kind: EntryKind::Symlink("d/a".into()),
            },
        ]);
        assert_eq!(t.len() % 512, 0);
        assert_eq!(&t[0..2], b"d/");
        assert_eq!(t[156], b'5');
        assert_eq!(&t[257..263], b"ustar\0");
        assert_eq!(&t[512..515], b"d/a");
        assert_eq!(&t[1024..1029], b"hello");
        // The PAX header carries the long name.
        let pax = String::from_utf8_lossy(&t[1536 + 512..1536 + 1024]);
        assert!(pax.contains(&format!("path={long}\n")), "{pax}");
        let rec = pax_record("path", &long);
        let n: usize = rec.split(' ').next().unwrap().parse().unwrap();
        assert_eq!(n, rec.len());
        // Checksum: the sum of the header with the field as spaces.
        let h = &t[512..1024];
        let mut blank = h.to_vec();
        blank[148..156].copy_from_slice(b"        ");
        let sum: u32 = blank.iter().map(|b| u32::from(*b)).sum();
        let field = std::str::from_utf8(&h[148..154]).unwrap();
        assert_eq!(u32::from_str_radix(field, 8).unwrap(), sum);
        assert!(t.ends_with(&[0u8; 1024]));
    }

    #[test]
    fn built_images_are_named_as_podman_records_the_tag() {
        assert_eq!(image_name("web", "app", None), "localhost/web_app:latest");
        assert_eq!(
            image_name("web", "app", Some("me/app:2")),
            "localhost/me/app:2"
        );
        assert_eq!(
            image_name("web", "app", Some("127.0.0.1:5000/x/app")),
            "127.0.0.1:5000/x/app:latest"
        );
        assert_eq!(
            image_name("web", "app", Some("ghcr.io/o/a:1")),
            "ghcr.io/o/a:1"
        );
    }

    #[test]
    fn the_failed_line_comes_from_the_message_or_the_step() {
        let df = "FROM x\nCOPY a /a\nRUN false\n";
        assert_eq!(
            failed_line(df, "dockerfile parse error on line 7: unknown", None),
            Some(7)
        );
        assert_eq!(
            failed_line(df, "exit status 1", Some("STEP 3/3: RUN false")),
            Some(3)
        );
        assert_eq!(failed_line(df, "exit status 1", None), None);
    }
}
