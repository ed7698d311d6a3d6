//! The `quadlet` runtime's plan: a stack's Quadlet unit files as the repository
//! generates them against the files on disk, which files to write, change or
//! remove, and which systemd units to (re)start or stop, in dependency order.
//!
//! Files are compared byte for byte; each starts with a [`header`] that names
//! the Magos instance, so one instance never removes another's units. The
//! systemd unit Quadlet makes of a file is [`service_of`] it; the container a
//! `.container` file runs is its `ContainerName=`.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::observed::Observed;
use super::spec::LABEL_PROJECT;

/// The label Podman puts on a container started by a systemd unit
/// (from the unit's `PODMAN_SYSTEMD_UNIT=%n`, which Quadlet sets).
pub const LABEL_SYSTEMD_UNIT: &str = "PODMAN_SYSTEMD_UNIT";

const HEADER_START: &str = "# Written by Magos (instance ";

/// The first line of every unit file Magos writes.
pub fn header(instance: &str, stack: &str) -> String {
    format!(
        "{HEADER_START}{instance}, stack {stack}) from the repository: an edit here is reported as drift and replaced by the next apply.\n"
    )
}

/// A unit file's text as written: the header, then the generated text.
pub fn with_header(instance: &str, stack: &str, contents: &str) -> String {
    header(instance, stack) + contents
}

/// The instance named in a unit file's header, if it has one.
pub fn instance_of(contents: &str) -> Option<&str> {
    let rest = contents.lines().next()?.strip_prefix(HEADER_START)?;
    rest.split_once(", stack ").map(|(i, _)| i)
}

/// The systemd unit Quadlet generates from a unit file, by its name
/// (`web.container` → `web.service`, `web.network` → `web-network.service`).
pub fn service_of(file: &str) -> Option<String> {
    let (stem, ext) = file.rsplit_once('.')?;
    let suffix = match ext {
        "container" | "kube" => "",
        "network" => "-network",
        "volume" => "-volume",
        "pod" => "-pod",
        "image" => "-image",
        "build" => "-build",
        _ => return None,
    };
    Some(format!("{stem}{suffix}.service"))
}

/// The `ContainerName=` of a `.container` file's `[Container]` section.
pub fn container_of(contents: &str) -> Option<&str> {
    let mut section = "";
    for line in contents.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            section = line;
        } else if section == "[Container]"
            && let Some(v) = line.strip_prefix("ContainerName=")
        {
            return Some(v.trim());
        }
    }
    None
}

/// The units a unit file orders itself after or requires: those its `[Unit]`
/// section names, and the `.network`/`.volume` units its `[Container]` uses
/// (Quadlet adds those dependencies when it generates the service).
fn dependencies(contents: &str) -> Vec<String> {
    let mut section = "";
    let mut out = Vec::new();
    for line in contents.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            section = line;
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        match (section, key.trim()) {
            ("[Unit]", "After" | "Requires" | "Wants" | "BindsTo" | "Requisite") => {
                out.extend(value.split_whitespace().map(str::to_owned));
            }
            ("[Container]", "Image") => {
                let image = value.trim();
                if image.ends_with(".build") || image.ends_with(".image") {
                    out.extend(service_of(image));
                }
            }
            ("[Container]", "Network" | "Volume" | "Mount" | "Pod") => {
                let source = value.split([':', ',']).find_map(|part| {
                    let part = part.trim().trim_start_matches("source=");
                    (part.ends_with(".network")
                        || part.ends_with(".volume")
                        || part.ends_with(".pod"))
                    .then_some(part)
                });
                out.extend(source.and_then(service_of));
            }
            _ => {}
        }
    }
    out
}

/// One file to write, change or remove.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileChange {
    /// The file name (`web_httpd_1.container`).
    pub file: String,
    /// What happens to it.
    pub change: Change,
}

/// What happens to a unit file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// A new file.
    Write,
    /// Its text differs from the repository's.
    Change,
    /// The repository no longer generates it.
    Remove,
}

impl std::fmt::Display for FileChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verb = match self.change {
            Change::Write => "write",
            Change::Change => "change",
            Change::Remove => "remove",
        };
        write!(f, "{verb} unit file {}", self.file)
    }
}

/// What the `quadlet` runtime does to one stack.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UnitPlan {
    /// The stack.
    pub stack: String,
    /// The unit files to write, change or remove.
    pub files: Vec<FileChange>,
    /// Units to stop before their files go (dependents first).
    pub stop: Vec<String>,
    /// Containers of the stack another runtime made (no unit started them),
    /// removed before the units start.
    pub replace: Vec<String>,
    /// Network and volume units to start (their one-shot create ignores an
    /// existing object; a restart would restart every container needing
    /// them), dependencies first, those whose file is new or changed.
    pub start: Vec<String>,
    /// Container units to restart (or start), in dependency order: those
    /// whose file is new or changed, and those whose container is missing or
    /// out of date.
    pub restart: Vec<String>,
    /// The containers the stopped units ran (their stop removes them).
    #[serde(skip)]
    pub gone: Vec<String>,
}

impl UnitPlan {
    /// Whether nothing is to be done.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
            && self.stop.is_empty()
            && self.replace.is_empty()
            && self.start.is_empty()
            && self.restart.is_empty()
    }

    /// One line per step, in the order they run.
    pub fn steps(&self) -> Vec<String> {
        let mut out: Vec<String> = self.stop.iter().map(|u| format!("stop {u}")).collect();
        out.extend(self.files.iter().map(ToString::to_string));
        out.extend(
            self.replace
                .iter()
                .map(|c| format!("remove container {c} (made by another runtime)")),
        );
        out.extend(self.start.iter().map(|u| format!("start {u}")));
        out.extend(self.restart.iter().map(|u| format!("restart {u}")));
        out
    }
}

/// The files to write, change and remove so that `disk` equals `desired`
/// (name → text both).
pub fn diff(
    desired: &BTreeMap<String, String>,
    disk: &BTreeMap<String, String>,
) -> Vec<FileChange> {
    let mut out = Vec::new();
    for (name, text) in desired {
        match disk.get(name) {
            None => out.push(FileChange {
                file: name.clone(),
                change: Change::Write,
            }),
            Some(have) if have != text => out.push(FileChange {
                file: name.clone(),
                change: Change::Change,
            }),
            Some(_) => {}
        }
    }
    for name in disk.keys().filter(|n| !desired.contains_key(*n)) {
        out.push(FileChange {
            file: name.clone(),
            change: Change::Remove,
        });
    }
    out
}

/// The systemd units of `files`, dependencies first (by the `After=`,
/// `Requires=`, `Wants=` … of their `[Unit]` sections; ties by name). A cycle
/// is broken by name order.
pub fn start_order(files: &BTreeMap<String, String>) -> Vec<String> {
    let units: BTreeMap<String, Vec<String>> = files
        .iter()
        .filter_map(|(name, text)| {
            let deps = dependencies(text);
            service_of(name).map(|u| (u, deps))
        })
        .collect();
    let mut done: Vec<String> = Vec::new();
    let mut left: BTreeSet<&String> = units.keys().collect();
    while !left.is_empty() {
        let ready = left
            .iter()
            .copied()
            .find(|u| {
                units[*u]
                    .iter()
                    .all(|d| !units.contains_key(d) || done.contains(d) || d == *u)
            })
            .or_else(|| left.iter().copied().next());
        let Some(next) = ready else { break };
        left.remove(next);
        done.push(next.clone());
    }
    done
}

/// Containers of `stack` that another runtime made (without the systemd unit
/// label), with the names of the containers `files` run.
pub fn made_elsewhere(
    stack: &str,
    files: &BTreeMap<String, String>,
    observed: &Observed,
) -> Vec<String> {
    let names: BTreeSet<&str> = files.values().filter_map(|t| container_of(t)).collect();
    observed
        .containers
        .iter()
        .filter(|c| names.contains(c.name.as_str()))
        .filter(|c| c.labels.get(LABEL_PROJECT).map(String::as_str) == Some(stack))
        .filter(|c| !c.labels.contains_key(LABEL_SYSTEMD_UNIT))
        .map(|c| c.name.clone())
        .collect()
}

/// The plan of one stack: `desired` and `disk` map file names to texts (both
/// with the header); `stale` holds the containers whose service the container
/// plan would create, start or replace; `elsewhere` the containers another
/// runtime made ([`made_elsewhere`]).
pub fn plan_stack(
    stack: &str,
    desired: &BTreeMap<String, String>,
    disk: &BTreeMap<String, String>,
    stale: &BTreeSet<String>,
    elsewhere: Vec<String>,
) -> UnitPlan {
    let files = diff(desired, disk);
    let changed: BTreeSet<&str> = files
        .iter()
        .filter(|f| f.change != Change::Remove)
        .map(|f| f.file.as_str())
        .collect();
    let gone: BTreeMap<String, String> = files
        .iter()
        .filter(|f| f.change == Change::Remove)
        .filter_map(|f| disk.get(&f.file).map(|t| (f.file.clone(), t.clone())))
        .collect();
    let mut stop = start_order(&gone);
    stop.reverse();
    let gone_containers = gone
        .values()
        .filter_map(|t| container_of(t))
        .map(str::to_owned)
        .collect();
    let moved: BTreeSet<&str> = elsewhere.iter().map(String::as_str).collect();
    let mut start = Vec::new();
    let mut restart = Vec::new();
    for unit in start_order(desired) {
        let Some((name, text)) = desired
            .iter()
            .find(|(name, _)| service_of(name).as_deref() == Some(unit.as_str()))
        else {
            continue;
        };
        let container = name.ends_with(".container");
        let due = changed.contains(name.as_str())
            || container_of(text).is_some_and(|c| stale.contains(c) || moved.contains(c));
        match (due, container) {
            (true, true) => restart.push(unit),
            (true, false) => start.push(unit),
            (false, _) => {}
        }
    }
    UnitPlan {
        stack: stack.to_owned(),
        files,
        stop,
        replace: elsewhere,
        start,
        restart,
        gone: gone_containers,
    }
}

/// The plan that removes every unit of a stack (`disk`): it left the
/// repository, or its runtime is no longer `quadlet`.
pub fn retire_stack(stack: &str, disk: &BTreeMap<String, String>) -> UnitPlan {
    plan_stack(stack, &BTreeMap::new(), disk, &BTreeSet::new(), Vec::new())
}

#[cfg(test)]
mod tests;
