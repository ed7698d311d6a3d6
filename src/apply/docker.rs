//! The Docker Engine as a [`Backend`]: the same plan, executor and pruning as
//! Podman's, through the docker edge's client. Containers are named and
//! labelled as `docker compose` names and labels them ([`route`] renames a
//! stack's containers `<project>-<service>-<n>`), so `docker compose ps` lists
//! them and a stack moves between Magos and `docker compose` without
//! duplicates. A stack the Docker mapping cannot express goes to `docker
//! compose` (or `docker-compose`), pointed at the same socket.

use std::collections::BTreeMap;
use std::path::Path;

use crate::config::Env;
use crate::core::build::LABEL_BUILD_DIGEST;
use crate::core::convert::Route;
use crate::core::observed::{Observed, ObservedContainer, ObservedImage, ObservedObject, RunState};
use crate::core::plan::Action;
use crate::core::reference::ImageRef;
use crate::core::spec::{
    ContainerSpec, LABEL_PROJECT, LABEL_SERVICE, NetworkSpec, StackSpec, VolumeSpec,
};
use crate::docker::{Client, DockerError, create};
use crate::server::Liveness;

use super::backend::{Backend, Health, State};
use super::compose_cli::{self, ComposeCommand, ComposeError};
use super::display::PullDisplay;
use super::error::ApplyError;
use super::prepared::Prepared;
use super::sealed::Unsealed;

/// Where a podman-compose extension Docker ignores is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// Under a service.
    Service(String),
    /// Under a top-level network (its key in the file).
    Network(String),
}

/// The podman-compose extensions `stack` uses, which Docker ignores as
/// `docker compose` does ([`create::ignored`]): where, and the key.
pub fn ignored(stack: &StackSpec) -> Vec<(Place, String)> {
    let mut out = Vec::new();
    for spec in stack.services.iter().filter(|s| s.number == 1) {
        for key in create::ignored(spec) {
            out.push((Place::Service(spec.service.clone()), key));
        }
    }
    for net in stack.networks.iter().filter(|n| !n.external) {
        let key = create::key_of(&stack.project, &net.name);
        let used = [
            ("x-podman.disable_dns", net.disable_dns),
            ("x-podman.dns", !net.dns.is_empty()),
            ("x-podman.routes", !net.routes.is_empty()),
        ];
        for (k, _) in used.iter().filter(|(_, on)| *on) {
            out.push((Place::Network(key.to_owned()), (*k).to_owned()));
        }
    }
    out
}

/// A stack as Docker runs it: its containers renamed as `docker compose` names
/// them, and the compose CLI's route when a service uses what the Docker
/// mapping does not apply ([`create::unsupported`]).
pub fn route(stack: &mut StackSpec, route: Route) -> Route {
    create::compose_names(stack);
    if route != Route::Native {
        return route;
    }
    let mut keys: Vec<String> = Vec::new();
    for spec in &stack.services {
        for key in create::unsupported(spec) {
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
    }
    if keys.is_empty() {
        Route::Native
    } else {
        Route::ComposeCli {
            keys,
            explicit: false,
        }
    }
}

/// A name as Docker shortens it (`nginx:1.27`, `nginx@sha256:…`) in the fully
/// qualified form the core compares (`docker.io/library/nginx:1.27`).
fn qualified(name: &str) -> String {
    ImageRef::parse(name).map_or_else(|_| name.to_owned(), |r| r.normalized())
}

/// Lists containers (running or not), images, networks and volumes.
pub async fn observe(client: &Client) -> Result<Observed, DockerError> {
    let (containers, images, networks, volumes) = tokio::try_join!(
        client.list_containers(&[]),
        client.list_images(),
        client.list_networks(),
        client.list_volumes(),
    )?;
    let images: Vec<ObservedImage> = images
        .into_iter()
        .map(|i| ObservedImage {
            digests: i
                .repo_digests
                .iter()
                .filter_map(|r| r.split_once('@').map(|(_, d)| d.to_owned()))
                .collect(),
            tags: i.repo_tags.iter().map(|t| qualified(t)).collect(),
            repo_digests: i.repo_digests.iter().map(|r| qualified(r)).collect(),
            build_digest: i.labels.get(LABEL_BUILD_DIGEST).cloned(),
            id: i.id,
        })
        .collect();
    // The digest a container's image was pulled by (an index's for a
    // multi-arch pin), when the image has one.
    let pulled_by: BTreeMap<&str, &String> = images
        .iter()
        .filter_map(|i| i.digests.iter().next().map(|d| (i.id.as_str(), d)))
        .collect();
    let containers = containers
        .iter()
        .map(|c| ObservedContainer {
            id: c.id.clone(),
            name: c.name().to_owned(),
            labels: c.labels.clone(),
            state: RunState::from_libpod(&c.state),
            image_digest: pulled_by.get(c.image_id.as_str()).map(|d| (*d).clone()),
            image_id: c.image_id.clone(),
            // Docker's list says the health in `Status`; restarts are counted
            // only by inspect, so a crash loop shows as `restarting` while the
            // engine restarts the container.
            vitals: crate::core::observed::Vitals {
                health: crate::core::observed::Health::from_docker_status(&c.status),
                restarts: 0,
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
                subnets: n.ipam.config.into_iter().map(|c| c.subnet).collect(),
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

/// After `docker compose up -d`: every service of the stack has a container
/// that runs or ran to completion (exit 0).
async fn verify(client: &Client, stack: &Prepared) -> Result<(), ComposeError> {
    let fail = |source: DockerError| ComposeError::Failed {
        command: format!("list the containers of stack `{}`", stack.project),
        status: "error".to_owned(),
        stderr: source.to_string(),
    };
    let containers = client
        .list_containers(&[format!("{LABEL_PROJECT}={}", stack.project)])
        .await
        .map_err(fail)?;
    let mut services = Vec::new();
    for spec in &stack.spec.services {
        let mine: Vec<_> = containers
            .iter()
            .filter(|c| c.labels.get(LABEL_SERVICE) == Some(&spec.service))
            .collect();
        if mine.iter().any(|c| c.state == "running") {
            continue;
        }
        let Some(c) = mine.first() else {
            services.push(format!("service `{}` has no container", spec.service));
            continue;
        };
        let state = client.inspect_container(&c.id).await.map_err(fail)?.state;
        if state.status == "exited" && state.exit_code == 0 {
            continue;
        }
        services.push(format!(
            "service `{}`: container `{}` is {} (exit code {})",
            spec.service,
            c.name(),
            state.status,
            state.exit_code
        ));
    }
    if services.is_empty() {
        Ok(())
    } else {
        Err(ComposeError::NotUp { services })
    }
}

impl Backend for Client {
    type Error = DockerError;

    fn failed(action: String, source: DockerError) -> ApplyError {
        ApplyError::Docker { action, source }
    }

    fn not_found(e: &DockerError) -> bool {
        e.is_not_found()
    }

    fn conflict(e: &DockerError) -> bool {
        e.is_conflict()
    }

    fn socket(&self) -> &Path {
        Client::socket(self)
    }

    async fn observe(&self) -> Result<Observed, DockerError> {
        observe(self).await
    }

    async fn pull(
        &self,
        image: &str,
        platform: Option<&str>,
        progress: &mut (dyn FnMut(&str) + Send),
    ) -> Result<(), DockerError> {
        self.pull_image(image, platform, progress).await
    }

    async fn build(
        &self,
        spec: &ContainerSpec,
        _liveness: Option<&Liveness>,
        _display: PullDisplay,
    ) -> Result<(), ApplyError> {
        // `route` hands stacks with `build:` to `docker compose`.
        Err(ApplyError::DockerSpec(format!(
            "service `{}`: `build:` is applied with `docker compose` on Docker",
            spec.service
        )))
    }

    async fn create_network(
        &self,
        stack: &StackSpec,
        net: &NetworkSpec,
    ) -> Result<(), DockerError> {
        self.create_network(&create::network(stack, net)).await
    }

    async fn create_volume(&self, stack: &StackSpec, vol: &VolumeSpec) -> Result<(), DockerError> {
        self.create_volume(&create::volume(stack, vol)).await
    }

    async fn prepare(&self, _stack: &StackSpec, _spec: &ContainerSpec) -> Result<(), ApplyError> {
        // Docker has no secrets outside Swarm: a `file:` secret is a bind, and
        // `route` sends stacks with other secrets to `docker compose`.
        Ok(())
    }

    async fn create(
        &self,
        stack: &StackSpec,
        spec: &ContainerSpec,
        name: &str,
        secrets: &Unsealed,
        action: &Action,
    ) -> Result<(), ApplyError> {
        if !secrets.vars.is_empty() {
            return Err(ApplyError::DockerSpec(format!(
                "service `{}`: an encrypted .env is not applied natively on Docker yet",
                spec.service
            )));
        }
        let none = BTreeMap::new();
        let env = secrets.env.get(&spec.service).unwrap_or(&none);
        let mut body = create::container(stack, spec, env).map_err(ApplyError::DockerSpec)?;
        create::inline_seccomp(&spec.service, &mut body, |p| std::fs::read_to_string(p))
            .map_err(ApplyError::DockerSpec)?;
        // Docker would make a missing bind string's source a folder; the
        // mount API, which Magos sends every other bind through, refuses it
        // (the folders Magos may create are made before).
        if let Some(missing) = create::bind_string_sources(&body)
            .into_iter()
            .find(|p| Path::new(p).symlink_metadata().is_err())
        {
            return Err(ApplyError::DockerSpec(format!(
                "service `{}`: bind source path does not exist: {missing}",
                spec.service
            )));
        }
        self.create_container(name, spec.run.platform.as_deref(), &body)
            .await
            .map(drop)
            .map_err(|e| Self::failed(action.to_string(), e))
    }

    async fn start(&self, name: &str) -> Result<(), DockerError> {
        self.start_container(name).await.map(drop)
    }

    async fn rename(&self, name: &str, new_name: &str) -> Result<(), DockerError> {
        self.rename_container(name, new_name).await
    }

    async fn restart(&self, name: &str, timeout: u64) -> Result<(), DockerError> {
        self.restart_container(name, timeout).await
    }

    async fn labels(&self, name: &str) -> Result<BTreeMap<String, String>, DockerError> {
        Ok(self.inspect_container(name).await?.config.labels)
    }

    async fn stop(&self, name: &str, timeout: u64) -> Result<(), DockerError> {
        self.stop_container(name, timeout).await.map(drop)
    }

    async fn remove(&self, name: &str, timeout: u64) -> Result<(), DockerError> {
        let _ = self.stop_container(name, timeout).await;
        self.remove_container(name, true, false).await
    }

    async fn state(&self, name: &str) -> Result<State, DockerError> {
        let s = self.inspect_container(name).await?.state;
        Ok(State {
            running: s.running,
            restarting: s.restarting,
            status: s.status,
            exit_code: s.exit_code,
        })
    }

    async fn health(&self, name: &str) -> Result<Health, DockerError> {
        Ok(match self.inspect_container(name).await?.state.health {
            None => Health::NoCheck,
            Some(h) if h.status == "healthy" => Health::Healthy,
            Some(_) => Health::NotYet,
        })
    }

    fn compose_command(env: &Env) -> Option<ComposeCommand> {
        ComposeCommand::find_docker(env)
    }

    async fn compose_up(
        &self,
        cmd: &ComposeCommand,
        stack: &Prepared,
        env: &Env,
    ) -> Result<(), ComposeError> {
        compose_cli::up_docker(cmd, self.socket(), stack, env).await?;
        verify(self, stack).await
    }

    fn compose_name() -> &'static str {
        "docker compose"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::spec::ContainerImage as SpecImage;

    fn stack(userns: Option<&str>) -> StackSpec {
        let mut spec = ContainerSpec::new(
            "web",
            "app",
            SpecImage {
                reference: "nginx:1.27".into(),
                qualified: "docker.io/library/nginx:1.27".into(),
                digest: None,
            },
        );
        spec.run.userns = userns.map(str::to_owned);
        spec.run.memory = Some(64 << 20);
        StackSpec {
            project: "web".into(),
            instance: "default".into(),
            working_dir: "/repo/web".into(),
            config_files: vec![],
            networks: vec![],
            volumes: vec![],
            services: vec![spec],
        }
    }

    #[test]
    fn docker_s_short_names_are_read_fully_qualified() {
        assert_eq!(qualified("nginx:1.27"), "docker.io/library/nginx:1.27");
        assert_eq!(
            qualified(
                "nginx@sha256:0000000000000000000000000000000000000000000000000000000000000000"
            ),
            "docker.io/library/nginx@sha256:0000000000000000000000000000000000000000000000000000000000000000"
        );
        assert_eq!(
            qualified("127.0.0.1:5000/magos/httpd:1"),
            "127.0.0.1:5000/magos/httpd:1"
        );
    }

    #[test]
    fn a_stack_is_renamed_and_routed_to_docker_compose_only_for_what_docker_cannot_express() {
        let mut native = stack(None);
        assert_eq!(route(&mut native, Route::Native), Route::Native);
        assert_eq!(native.services[0].name, "web-app-1");
        let mut keep_id = stack(Some("keep-id"));
        match route(&mut keep_id, Route::Native) {
            Route::ComposeCli { keys, explicit } => {
                assert!(!explicit);
                assert_eq!(keys, ["userns_mode: keep-id"]);
            }
            Route::Native => panic!("`userns_mode: keep-id` is Podman's"),
        }
        assert_eq!(keep_id.services[0].name, "web-app-1");
    }

    #[test]
    fn podman_compose_extensions_are_named_where_they_are_written() {
        let mut s = stack(None);
        s.services[0].uidmaps = vec!["0:1:1".into()];
        s.networks.push(NetworkSpec {
            name: "web_back".into(),
            dns: vec!["10.0.0.1".into()],
            disable_dns: false,
            ..NetworkSpec::default()
        });
        assert_eq!(
            ignored(&s),
            [
                (Place::Service("app".into()), "x-podman.uidmaps".into()),
                (Place::Network("back".into()), "x-podman.dns".into()),
            ]
        );
        assert_eq!(route(&mut s, Route::Native), Route::Native);
    }
}
