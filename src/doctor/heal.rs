//! Healing: carries out the heals the core decides (`core::doctor::decide`)
//! within the rate limit, then examines again until the problems they should
//! fix are gone or the verify time runs out.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::core::doctor::{self as model, ContainerFacts, HealAction, HealOutcome, HealRecord};
use crate::core::plan::start_order;
use crate::core::spec::{
    ContainerImage, ContainerSpec, Dependency, DependencyCondition, StackSpec,
};
use crate::podman::Client;
use crate::server::metrics::{KindLabel, Metrics};

use super::{Doctor, DoctorError, DoctorOptions, Examination, Examined, examine};

/// Heals what the findings of `first` call for, each action logged and
/// counted in `metrics`' heals, and checks again until the healed problems
/// are gone or the verify time runs out. Returns what was done.
pub(super) async fn heal(
    client: &Client,
    doctor: &mut Doctor,
    metrics: Option<&Metrics>,
    first: &Examination,
) -> Vec<HealRecord> {
    let mut heals = Vec::new();
    let facts: Vec<ContainerFacts> = first.containers.iter().map(|c| c.facts.clone()).collect();
    let actions = model::decide(&first.checks, &facts);
    let mut done = Vec::new();
    for action in actions {
        if !doctor.limiter.allow(&action.limit_key(), Instant::now()) {
            tracing::warn!(
                action = action.kind(),
                target = %action.target(),
                reason = action.reason(),
                "heal skipped: rate limit reached"
            );
            count(metrics, "rate_limited");
            heals.push(HealRecord {
                detail: format!(
                    "not done: at most {} heals per hour for {}",
                    doctor.options.max_heals_per_hour,
                    action.target()
                ),
                action,
                outcome: HealOutcome::RateLimited,
            });
            continue;
        }
        tracing::info!(
            action = action.kind(),
            target = %action.target(),
            reason = action.reason(),
            "healing"
        );
        count(metrics, action.kind());
        match carry_out(client, &doctor.options, &action, &first.containers).await {
            Ok(()) => done.push(action),
            Err(err) => {
                tracing::error!(action = action.kind(), error = %err, "heal failed");
                count(metrics, "failed");
                heals.push(HealRecord {
                    action,
                    outcome: HealOutcome::Failed,
                    detail: err.to_string(),
                });
            }
        }
    }
    if done.is_empty() {
        return heals;
    }
    let deadline = Instant::now() + doctor.options.verify_timeout;
    let mut remaining: BTreeMap<usize, Vec<String>>;
    loop {
        let again = examine(client, &doctor.options).await;
        let facts: Vec<ContainerFacts> = again.containers.iter().map(|c| c.facts.clone()).collect();
        remaining = done
            .iter()
            .enumerate()
            .filter_map(|(i, action)| {
                let left = model::still_broken(action, &again.checks, &facts);
                (!left.is_empty()).then_some((i, left))
            })
            .collect();
        if remaining.is_empty() || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for (i, action) in done.into_iter().enumerate() {
        let left = remaining.remove(&i);
        match &left {
            None => tracing::info!(action = action.kind(), target = %action.target(), "healed"),
            Some(left) => {
                tracing::error!(
                    action = action.kind(),
                    target = %action.target(),
                    left = %left.join("; "),
                    "heal did not help"
                );
                count(metrics, "failed");
            }
        }
        heals.push(model::heal_result(action, left));
    }
    heals
}

pub(super) fn count(metrics: Option<&Metrics>, kind: &str) {
    if let Some(m) = metrics {
        m.heals
            .get_or_create(&KindLabel {
                kind: kind.to_owned(),
            })
            .inc();
    }
}

/// Carries out one heal.
async fn carry_out(
    client: &Client,
    options: &DoctorOptions,
    action: &HealAction,
    containers: &[Examined],
) -> Result<(), DoctorError> {
    match action {
        HealAction::RestartContainer { container, .. } => client
            .restart_container(container, options.stop_timeout)
            .await
            .map_err(|source| DoctorError::Podman {
                target: container.clone(),
                source: Box::new(source),
            }),
        HealAction::RestartStacks { stacks, .. } => {
            let mut order: Vec<String> = Vec::new();
            for stack in stacks {
                order.extend(stack_order(stack, containers)?);
            }
            for name in order.iter().rev() {
                tracing::info!(container = %name, "stopping for the rootless netns heal");
                client
                    .stop_container(name, Some(options.stop_timeout))
                    .await
                    .map_err(|source| DoctorError::Podman {
                        target: name.clone(),
                        source: Box::new(source),
                    })?;
            }
            for name in &order {
                tracing::info!(container = %name, "starting after the rootless netns heal");
                client
                    .start_container(name)
                    .await
                    .map_err(|source| DoctorError::Podman {
                        target: name.clone(),
                        source: Box::new(source),
                    })?;
            }
            Ok(())
        }
    }
}

/// The running containers of `stack` in start order (dependencies first), from
/// their compose service labels and the dependencies Podman records.
fn stack_order(stack: &str, containers: &[Examined]) -> Result<Vec<String>, DoctorError> {
    let members: Vec<&Examined> = containers
        .iter()
        .filter(|c| c.facts.running && c.facts.project.as_deref() == Some(stack))
        .collect();
    let service_of = |c: &Examined| c.service.clone().unwrap_or_else(|| c.facts.name.clone());
    let by_id: BTreeMap<&str, String> = members
        .iter()
        .flat_map(|c| {
            [
                (c.inspect.id.as_str(), service_of(c)),
                (c.facts.name.as_str(), service_of(c)),
            ]
        })
        .collect();
    let image = ContainerImage {
        reference: String::new(),
        qualified: String::new(),
        digest: None,
    };
    let mut spec = StackSpec {
        project: stack.to_owned(),
        instance: String::new(),
        working_dir: String::new(),
        config_files: Vec::new(),
        networks: Vec::new(),
        volumes: Vec::new(),
        services: Vec::new(),
    };
    let mut names = BTreeMap::new();
    for c in &members {
        let service = service_of(c);
        let mut s = ContainerSpec::new(stack, &service, image.clone());
        s.depends_on = c
            .inspect
            .dependencies
            .iter()
            .filter_map(|d| by_id.get(d.as_str()))
            .filter(|d| **d != service)
            .map(|d| Dependency {
                service: d.clone(),
                condition: DependencyCondition::ServiceStarted,
                restart: false,
            })
            .collect();
        names.insert(service, c.facts.name.clone());
        spec.services.push(s);
    }
    let order = start_order(&spec).map_err(|message| DoctorError::Order {
        stack: stack.to_owned(),
        message: message.to_string(),
    })?;
    Ok(order.iter().map(|s| names[*s].clone()).collect())
}
