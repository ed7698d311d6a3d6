//! The shape of a stack before it is converted: which of its services run.
//!
//! `profiles:` (compose specification, "Using profiles with Compose"): a service
//! without profiles always runs; a service with profiles runs only when one of
//! them is active (`*` activates every profile). A running service that depends
//! on one that does not (`depends_on`, `network_mode: service:…`) is an error
//! naming both, as compose reports it, and fails the stack.

use std::collections::BTreeSet;

use super::compose::{DependsOn, Loaded};
use super::diag::{Diagnostic, Pos};

/// Keeps the services of `loaded` that the `active` profiles enable and returns
/// the names of the others, in file order. A service whose `profiles:` cannot
/// be read, or an enabled service depending on a disabled one, fails the stack
/// ([`Loaded::fail`]).
pub fn select_profiles(loaded: &mut Loaded, active: &[String]) -> Vec<String> {
    let every = active.iter().any(|p| p == "*");
    let mut disabled = Vec::new();
    let mut errors = Vec::new();
    for ls in &loaded.services {
        let Some(service) = &ls.service else { continue };
        match service.profiles() {
            Ok(profiles) => {
                if !profiles.is_empty() && !every && !profiles.iter().any(|p| active.contains(p)) {
                    disabled.push((ls.name.clone(), profiles));
                }
            }
            Err(e) => errors.push((ls.name.clone(), e)),
        }
    }
    for (name, e) in errors {
        let (file, pos) = at(loaded, &name);
        loaded.fail(Diagnostic::error(
            &file,
            pos,
            format!("service `{name}`: {e}"),
        ));
    }
    let off: BTreeSet<&str> = disabled.iter().map(|(n, _)| n.as_str()).collect();
    let mut wrong = Vec::new();
    for ls in loaded
        .services
        .iter()
        .filter(|s| !off.contains(s.name.as_str()))
    {
        let Some(service) = &ls.service else { continue };
        let deps: Vec<&str> = match &service.depends_on {
            None => Vec::new(),
            Some(DependsOn::List(l)) => l.iter().map(String::as_str).collect(),
            Some(DependsOn::Map(m)) => m.keys().map(String::as_str).collect(),
        };
        let network = service
            .network_mode
            .as_deref()
            .and_then(|m| m.strip_prefix("service:"));
        for dep in deps.into_iter().chain(network) {
            if let Some((_, profiles)) = disabled.iter().find(|(n, _)| n == dep) {
                wrong.push((ls.name.clone(), dep.to_owned(), profiles.clone()));
            }
        }
    }
    for (name, dep, profiles) in wrong {
        let (file, pos) = at(loaded, &name);
        loaded.fail(Diagnostic::error(
            &file,
            pos,
            format!(
                "service `{name}` depends on service `{dep}`, which is not enabled: none of its profiles ({}) is active; give both services a common profile, or activate one (`COMPOSE_PROFILES`, `apply.profiles`)",
                profiles
                    .iter()
                    .map(|p| format!("`{p}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    loaded.services.retain(|s| !off.contains(s.name.as_str()));
    disabled.into_iter().map(|(n, _)| n).collect()
}

/// The `active` profiles by name, `*` replaced by every profile the stack's
/// services name (for tools that do not know `*`).
pub fn named_profiles(loaded: &Loaded, active: &[String]) -> Vec<String> {
    if !active.iter().any(|p| p == "*") {
        return active.to_vec();
    }
    let mut all: BTreeSet<String> = active.iter().filter(|p| *p != "*").cloned().collect();
    for s in loaded.services.iter().filter_map(|s| s.service.as_ref()) {
        all.extend(s.profiles().unwrap_or_default());
    }
    all.into_iter().collect()
}

fn at(loaded: &Loaded, service: &str) -> (String, Pos) {
    loaded
        .positions
        .get(service)
        .cloned()
        .unwrap_or_else(|| (String::new(), Pos::START))
}

#[cfg(test)]
mod tests;
