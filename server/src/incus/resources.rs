//! Images, networks, storage pools and profiles.
use reqwest::Method;
use serde_json::{Value, json};

use super::client::{Incus, enc, name_taken, op_fingerprint, op_id};
use super::error::Result;
use super::types::*;

impl Incus {
    // ---- the server's hardware -------------------------------------------------------------

    /// CPU threads of the server (on a cluster: of `member`, or of the one answering).
    pub async fn cpu_total(&self, member: Option<&str>) -> Result<u64> {
        let path = match member {
            Some(m) => format!("/1.0/resources?target={}", enc(m)),
            None => "/1.0/resources".into(),
        };
        let v: Value = self.sync(Method::GET, &path, None, "server resources").await?;
        Ok(v.pointer("/cpu/total").and_then(Value::as_u64).unwrap_or(0))
    }

    // ---- images -----------------------------------------------------------------------------

    pub async fn image_alias(&self, alias: &str) -> Result<ImageAlias> {
        self.sync(Method::GET, &format!("/1.0/images/aliases/{}", enc(alias)), None, &format!("image '{alias}'")).await
    }

    pub async fn images(&self) -> Result<Vec<Image>> {
        self.sync(Method::GET, "/1.0/images?recursion=1", None, "images").await
    }

    pub async fn image(&self, fingerprint: &str) -> Result<Image> {
        self.sync(Method::GET, &format!("/1.0/images/{}", enc(fingerprint)), None, &format!("image '{fingerprint}'"))
            .await
    }

    pub async fn create_image_alias(&self, alias: &str, fingerprint: &str) -> Result<()> {
        let body = json!({ "name": alias, "target": fingerprint, "description": "" });
        let what = format!("image alias '{alias}'");
        self.call(Method::POST, "/1.0/images/aliases", Some(&body), &what)
            .await
            .map(|_| ())
            .map_err(|e| name_taken(e, &what))
    }

    pub async fn delete_image_alias(&self, alias: &str) -> Result<()> {
        self.call(
            Method::DELETE,
            &format!("/1.0/images/aliases/{}", enc(alias)),
            None,
            &format!("image alias '{alias}'"),
        )
        .await
        .map(|_| ())
    }

    /// Imports a unified image tarball (metadata.yaml + rootfs/), returns its fingerprint.
    pub async fn import_image(&self, tarball: Vec<u8>, alias: Option<&str>) -> Result<String> {
        let resp = self
            .http
            .post(format!("{}/1.0/images", self.base))
            .header("Content-Type", "application/octet-stream")
            .body(tarball)
            .send()
            .await
            .map_err(|e| self.map_transport(e))?;
        let env = self.envelope(resp, "image").await?;
        let op = self.wait_operation(&op_id(&env)?, "image import").await?;
        let fp = op_fingerprint(&op)?;
        if let Some(alias) = alias {
            self.create_image_alias(alias, &fp).await?;
        }
        Ok(fp)
    }

    /// Publishes `instance/snapshot` as an image under `alias`; returns its fingerprint. zstd
    /// (fast, small) where the server has it, else the server's own default.
    pub async fn publish_snapshot(&self, instance: &str, snapshot: &str, alias: &str) -> Result<String> {
        let mut body = json!({
            "source": { "type": "snapshot", "name": format!("{instance}/{snapshot}") },
            "compression_algorithm": "zstd",
            "properties": { "description": format!("Agent Sandboxes golden image from {instance}/{snapshot}") },
        });
        let what = format!("image from {instance}");
        let op = match self.run(Method::POST, "/1.0/images", Some(&body), &what).await {
            Err(e) if e.to_string().contains("isn't supported on this system") => {
                tracing::info!("publish {instance}: no zstd on the server, its default compression instead");
                body.as_object_mut().map(|b| b.remove("compression_algorithm"));
                self.run(Method::POST, "/1.0/images", Some(&body), &what).await?
            }
            r => r?,
        };
        let fp = op_fingerprint(&op)?;
        self.create_image_alias(alias, &fp).await?;
        Ok(fp)
    }

    pub async fn delete_image(&self, fingerprint: &str) -> Result<()> {
        self.run(Method::DELETE, &format!("/1.0/images/{}", enc(fingerprint)), None, &format!("image '{fingerprint}'"))
            .await
            .map(|_| ())
    }

    // ---- cluster ----------------------------------------------------------------------------

    pub async fn cluster_members(&self) -> Result<Vec<ClusterMember>> {
        self.sync(Method::GET, "/1.0/cluster/members?recursion=1", None, "cluster members").await
    }

    // ---- networks and storage ---------------------------------------------------------------

    pub async fn network(&self, name: &str) -> Result<Network> {
        self.sync(Method::GET, &format!("/1.0/networks/{}", enc(name)), None, &format!("network '{name}'")).await
    }

    pub async fn create_network(&self, name: &str, config: Config) -> Result<()> {
        let body = json!({ "name": name, "type": "bridge", "config": config });
        let what = format!("network '{name}'");
        self.call(Method::POST, "/1.0/networks", Some(&body), &what).await.map(|_| ()).map_err(|e| name_taken(e, &what))
    }

    pub async fn patch_network(&self, name: &str, config: Config) -> Result<()> {
        let body = json!({ "config": config });
        self.call(Method::PATCH, &format!("/1.0/networks/{}", enc(name)), Some(&body), &format!("network '{name}'"))
            .await
            .map(|_| ())
    }

    pub async fn storage_pool(&self, name: &str) -> Result<StoragePool> {
        self.sync(Method::GET, &format!("/1.0/storage-pools/{}", enc(name)), None, &format!("storage pool '{name}'"))
            .await
    }

    pub async fn create_storage_pool(&self, name: &str, driver: &str, config: Config) -> Result<()> {
        let body = json!({ "name": name, "driver": driver, "config": config });
        let what = format!("storage pool '{name}'");
        self.call(Method::POST, "/1.0/storage-pools", Some(&body), &what)
            .await
            .map(|_| ())
            .map_err(|e| name_taken(e, &what))
    }

    pub async fn profile(&self, name: &str) -> Result<Value> {
        self.sync(Method::GET, &format!("/1.0/profiles/{}", enc(name)), None, &format!("profile '{name}'")).await
    }

    pub async fn patch_profile(&self, name: &str, body: Value) -> Result<()> {
        self.call(Method::PATCH, &format!("/1.0/profiles/{}", enc(name)), Some(&body), &format!("profile '{name}'"))
            .await
            .map(|_| ())
    }
}
