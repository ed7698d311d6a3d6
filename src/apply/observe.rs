//! What Podman reports, read into [`crate::core::observed::Observed`].

use std::collections::{BTreeMap, BTreeSet};

use crate::core::build::LABEL_BUILD_DIGEST;
use crate::core::observed::{
    Health, Observed, ObservedContainer, ObservedImage, ObservedObject, RunState, Vitals,
};
use crate::podman::{Client, ContainerFilters, PodmanError};

/// Lists containers (running or not), images, networks and volumes.
pub async fn observe(client: &Client) -> Result<Observed, PodmanError> {
    let filters = ContainerFilters {
        all: true,
        ..ContainerFilters::default()
    };
    let none = BTreeMap::new();
    let (containers, images, networks, volumes) = tokio::try_join!(
        client.list_containers(&filters),
        client.list_images(),
        client.list_networks(&none),
        client.list_volumes(&none),
    )?;
    // The digest each image was pulled by: the index's for a multi-arch pin.
    let pulled_by: BTreeMap<String, String> = images
        .iter()
        .filter(|i| !i.digest.is_empty())
        .map(|i| (i.id.clone(), i.digest.clone()))
        .collect();
    let images: Vec<ObservedImage> = images
        .into_iter()
        .map(|i| {
            let mut digests: BTreeSet<String> = i
                .repo_digests
                .iter()
                .filter_map(|r| r.split_once('@').map(|(_, d)| d.to_owned()))
                .collect();
            if !i.digest.is_empty() {
                digests.insert(i.digest.clone());
            }
            ObservedImage {
                id: i.id,
                digests,
                tags: i.repo_tags.into_iter().collect(),
                repo_digests: i.repo_digests.into_iter().collect(),
                build_digest: i.labels.get(LABEL_BUILD_DIGEST).cloned(),
            }
        })
        .collect();
    let containers = containers
        .into_iter()
        .map(|c| ObservedContainer {
            image_digest: pulled_by.get(&c.image_id).cloned(),
            name: c.names.first().cloned().unwrap_or_else(|| c.id.clone()),
            id: c.id,
            labels: c.labels,
            state: RunState::from_libpod(&c.state),
            image_id: c.image_id,
            // libpod's list puts the health status in `Status`.
            vitals: Vitals {
                health: Health::from_libpod(&c.status),
                restarts: c.restarts,
            },
        })
        .collect();
    Ok(Observed {
        containers,
        images,
        networks: networks
            .into_iter()
            .map(|n| ObservedObject {
                name: n.name,
                labels: n.labels,
                subnets: n.subnets.into_iter().map(|s| s.subnet).collect(),
            })
            .collect(),
        volumes: volumes
            .into_iter()
            .map(|v| ObservedObject {
                name: v.name,
                labels: v.labels,
                subnets: Vec::new(),
            })
            .collect(),
    })
}
