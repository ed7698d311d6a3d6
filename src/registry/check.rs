//! One check pass over many images: every answer is memoised for the pass, so a
//! repository's tags are listed once however many services use it, a digest is
//! asked once per reference, and a registry that is down is not asked again.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio::sync::OnceCell;

use super::client::RegistryClient;
use super::manifest::Manifest;
use super::reference::{Digest, ImageRef, Platform, api_host};
use super::{RateLimit, RegistryError};

type Memo<K, V> = Mutex<HashMap<K, Arc<OnceCell<Result<V, RegistryError>>>>>;

/// The registry answers of one check pass. Concurrent asks for the same thing
/// share one request.
pub struct Check {
    client: RegistryClient,
    tags: Memo<String, Arc<Vec<String>>>,
    digests: Memo<String, Digest>,
    manifests: Memo<String, Arc<Manifest>>,
    created: Memo<(String, Option<Platform>), Option<SystemTime>>,
    down: Mutex<HashMap<String, RegistryError>>,
}

impl RegistryClient {
    /// Starts a check pass.
    pub fn check(&self) -> Check {
        Check {
            client: self.clone(),
            tags: Mutex::default(),
            digests: Mutex::default(),
            manifests: Mutex::default(),
            created: Mutex::default(),
            down: Mutex::default(),
        }
    }
}

impl Check {
    /// Every tag of the image's repository (listed once per pass).
    pub async fn tags(&self, image: &ImageRef) -> Result<Arc<Vec<String>>, RegistryError> {
        self.memo(&self.tags, image.repository_key(), image, async {
            self.client.tags(image).await.map(Arc::new)
        })
        .await
    }

    /// The digest `image` points to now, by `HEAD` (once per reference per pass).
    /// For a multi-arch image, the index digest.
    pub async fn digest(&self, image: &ImageRef) -> Result<Digest, RegistryError> {
        self.memo(&self.digests, image.to_string(), image, async {
            self.client.digest(image).await
        })
        .await
    }

    /// The manifest `image` points to (once per reference per pass).
    pub async fn manifest(&self, image: &ImageRef) -> Result<Arc<Manifest>, RegistryError> {
        self.memo(&self.manifests, image.to_string(), image, async {
            self.client.manifest(image).await.map(Arc::new)
        })
        .await
    }

    /// The digest of the platform manifest for `platform` (the reference's own
    /// digest when it is a single image). Reads the manifest (memoised).
    pub async fn platform_digest(
        &self,
        image: &ImageRef,
        platform: &Platform,
    ) -> Result<Digest, RegistryError> {
        self.manifest(image).await?.platform_digest(image, platform)
    }

    /// When the image was built (see [`RegistryClient::created`]).
    pub async fn created(
        &self,
        image: &ImageRef,
        platform: Option<&Platform>,
    ) -> Result<Option<SystemTime>, RegistryError> {
        let key = (image.to_string(), platform.cloned());
        self.memo(&self.created, key, image, async {
            self.client.created(image, platform).await
        })
        .await
    }

    /// The last rate-limit headers seen from a registry.
    pub fn rate_limit(&self, registry: &str) -> Option<RateLimit> {
        self.client.rate_limit(registry)
    }

    /// The client this pass uses.
    pub fn client(&self) -> &RegistryClient {
        &self.client
    }

    async fn memo<K, V>(
        &self,
        map: &Memo<K, V>,
        key: K,
        image: &ImageRef,
        ask: impl Future<Output = Result<V, RegistryError>>,
    ) -> Result<V, RegistryError>
    where
        K: Eq + Hash,
        V: Clone,
    {
        let cell = map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_default()
            .clone();
        cell.get_or_init(|| async {
            if let Some(err) = self.down_error(image) {
                return Err(err);
            }
            let result = ask.await;
            if let Err(err) = &result
                && err.registry_down()
            {
                self.down
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry(api_host(&image.registry).to_owned())
                    .or_insert_with(|| err.clone());
            }
            result
        })
        .await
        .clone()
    }

    fn down_error(&self, image: &ImageRef) -> Option<RegistryError> {
        self.down
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(api_host(&image.registry))
            .cloned()
    }
}
