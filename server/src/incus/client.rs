//! The Incus REST client: one reqwest client over the local unix socket or HTTPS with a client
//! certificate, typed calls for what the engine needs, operations waited on server side.
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::error::{IncusError, Result};
use super::tls::RemoteTls;
use super::types::*;

pub const DEFAULT_SOCKET: &str = "/var/lib/incus/unix.socket";

/// Where the daemon is.
#[derive(Debug, Clone)]
pub enum Endpoint {
    Unix(PathBuf),
    Https { url: String, tls: RemoteTls },
}

impl Endpoint {
    /// `INCUS_SOCKET`, else the standard socket path.
    pub fn local() -> Self {
        let path = std::env::var_os("INCUS_SOCKET").map(PathBuf::from).unwrap_or_else(|| DEFAULT_SOCKET.into());
        Endpoint::Unix(path)
    }
    pub fn describe(&self) -> String {
        match self {
            Endpoint::Unix(p) => p.display().to_string(),
            Endpoint::Https { url, .. } => url.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Incus {
    http: reqwest::Client,
    base: String,
    endpoint: Endpoint,
}

impl std::fmt::Debug for Incus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Incus({})", self.endpoint.describe())
    }
}

/// A file to write into an instance.
#[derive(Debug, Clone)]
pub struct FileWrite<'a> {
    pub path: &'a str,
    pub content: Vec<u8>,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

impl<'a> FileWrite<'a> {
    pub fn root(path: &'a str, content: impl Into<Vec<u8>>, mode: u32) -> Self {
        Self { path, content: content.into(), uid: 0, gid: 0, mode }
    }
}

fn enc(s: &str) -> String {
    urlencoding::encode(s).into_owned()
}

impl Incus {
    pub fn connect(endpoint: Endpoint) -> Result<Self> {
        crate::tls::install_crypto_provider();
        // No idle pooled connections: kept-alive idle connections to incusd were seen to stall its
        // LXC hooks, so starts and stops hung for exactly 60 s.
        let builder =
            reqwest::Client::builder().pool_idle_timeout(Duration::from_secs(30)).pool_max_idle_per_host(0).no_proxy();
        let (http, base) = match &endpoint {
            Endpoint::Unix(path) => (builder.unix_socket(path.as_path()).build()?, "http://incus".to_string()),
            Endpoint::Https { url, tls } => {
                let cfg = tls.client_config()?;
                (builder.tls_backend_preconfigured(cfg).build()?, url.trim_end_matches('/').to_string())
            }
        };
        Ok(Self { http, base, endpoint })
    }

    pub fn local() -> Result<Self> {
        Self::connect(Endpoint::local())
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    fn map_transport(&self, e: reqwest::Error) -> IncusError {
        match &self.endpoint {
            Endpoint::Unix(socket) => {
                let text = format!("{e:?}");
                if text.contains("PermissionDenied") || text.contains("ermission denied") {
                    IncusError::PermissionDenied { socket: socket.clone() }
                } else if e.is_connect() || !socket.exists() {
                    IncusError::NotRunning { socket: socket.clone() }
                } else {
                    IncusError::Transport(e)
                }
            }
            Endpoint::Https { url, .. } if e.is_connect() => IncusError::Unreachable { url: url.clone(), source: e },
            _ => IncusError::Transport(e),
        }
    }

    /// One API call; returns the envelope's metadata (sync) or the finished operation's (async).
    async fn call(&self, method: Method, path: &str, body: Option<&Value>, what: &str) -> Result<Envelope> {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(b) = body {
            req = req.json(b);
        }
        let t0 = std::time::Instant::now();
        let resp = req.send().await.map_err(|e| self.map_transport(e))?;
        let r = self.envelope(resp, what).await;
        tracing::debug!("incus {path}: {} ms", t0.elapsed().as_millis());
        r
    }

    async fn envelope(&self, resp: reqwest::Response, what: &str) -> Result<Envelope> {
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| self.map_transport(e))?;
        let env: Envelope = serde_json::from_slice(&bytes).map_err(|e| {
            IncusError::Decode(format!("{e}: {}", String::from_utf8_lossy(&bytes[..bytes.len().min(200)])))
        })?;
        if env.kind == "error" || !status.is_success() {
            return Err(classify(status.as_u16().max(env.error_code), &env.error, what));
        }
        Ok(env)
    }

    async fn sync<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        what: &str,
    ) -> Result<T> {
        let env = self.call(method, path, body, what).await?;
        serde_json::from_value(env.metadata).map_err(|e| IncusError::Decode(format!("{path}: {e}")))
    }

    /// Starts an async call and waits for its operation to finish.
    async fn run(&self, method: Method, path: &str, body: Option<&Value>, what: &str) -> Result<Operation> {
        let env = self.call(method, path, body, what).await?;
        if env.kind != "async" {
            return Ok(Operation { status: "Success".into(), status_code: 200, ..Default::default() });
        }
        let id = op_id(&env)?;
        self.wait_operation(&id, what).await
    }

    /// Waits for an operation (server-side wait, no polling loop on our side).
    pub async fn wait_operation(&self, id: &str, what: &str) -> Result<Operation> {
        loop {
            let op: Operation =
                self.sync(Method::GET, &format!("/1.0/operations/{}/wait?timeout=60", enc(id)), None, what).await?;
            match op.status.as_str() {
                "Success" => return Ok(op),
                "Failure" => return Err(classify(op.status_code, &op.err, what)),
                "Cancelled" => return Err(IncusError::Cancelled),
                _ => continue,
            }
        }
    }

    pub async fn cancel_operation(&self, id: &str) -> Result<()> {
        self.call(Method::DELETE, &format!("/1.0/operations/{}", enc(id)), None, "operation").await.map(|_| ())
    }

    // ---- server -----------------------------------------------------------------------------

    pub async fn server(&self) -> Result<Value> {
        self.sync(Method::GET, "/1.0", None, "server").await
    }

    pub async fn patch_server_config(&self, config: Value) -> Result<()> {
        self.call(Method::PATCH, "/1.0", Some(&json!({ "config": config })), "server").await.map(|_| ())
    }

    /// Trusts a client certificate (PEM) — used to let HTTPS remotes in.
    pub async fn add_trusted_certificate(&self, name: &str, cert_pem: &str) -> Result<()> {
        let body = json!({ "name": name, "type": "client", "certificate": pem_body(cert_pem) });
        self.call(Method::POST, "/1.0/certificates", Some(&body), &format!("certificate '{name}'")).await.map(|_| ())
    }

    /// Asks the server to trust the certificate this connection presents, with a trust token
    /// (`incus config trust add NAME`); works before we are trusted.
    pub async fn trust_with_token(&self, token: &str, name: &str) -> Result<()> {
        let body = json!({ "type": "client", "trust_token": token, "name": name });
        self.call(Method::POST, "/1.0/certificates", Some(&body), "the trust token").await.map(|_| ())
    }

    /// Names of the cluster's members.
    pub async fn cluster_members(&self) -> Result<Vec<String>> {
        let urls: Vec<String> = self.sync(Method::GET, "/1.0/cluster/members", None, "cluster members").await?;
        Ok(urls
            .iter()
            .filter_map(|u| u.rsplit('/').next())
            .map(|s| urlencoding::decode(s).map(|c| c.into_owned()).unwrap_or_default())
            .collect())
    }

    // ---- instances --------------------------------------------------------------------------

    /// All instances with state and snapshots, in one call.
    pub async fn instances_full(&self) -> Result<Vec<Instance>> {
        self.sync(Method::GET, "/1.0/instances?recursion=2", None, "instances").await
    }

    /// All instances with config and devices but without state (cheap).
    pub async fn instances(&self) -> Result<Vec<Instance>> {
        self.sync(Method::GET, "/1.0/instances?recursion=1", None, "instances").await
    }

    pub async fn instance(&self, name: &str) -> Result<Instance> {
        self.sync(Method::GET, &format!("/1.0/instances/{}", enc(name)), None, &format!("instance '{name}'")).await
    }

    pub async fn instance_state(&self, name: &str) -> Result<InstanceState> {
        self.sync(Method::GET, &format!("/1.0/instances/{}/state", enc(name)), None, &format!("instance '{name}'"))
            .await
    }

    pub async fn exists(&self, name: &str) -> Result<bool> {
        match self.instance(name).await {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub async fn create_instance(&self, req: &InstancesPost) -> Result<()> {
        let body = serde_json::to_value(req).map_err(|e| IncusError::Decode(e.to_string()))?;
        let path = match &req.target {
            Some(t) => format!("/1.0/instances?target={}", enc(t)),
            None => "/1.0/instances".into(),
        };
        self.run(Method::POST, &path, Some(&body), &format!("instance '{}'", req.name)).await.map(|_| ())
    }

    /// start | stop | restart | freeze | unfreeze
    pub async fn set_state(&self, name: &str, action: &str, force: bool, timeout_s: i64) -> Result<()> {
        let body = json!({ "action": action, "force": force, "timeout": timeout_s });
        self.run(
            Method::PUT,
            &format!("/1.0/instances/{}/state", enc(name)),
            Some(&body),
            &format!("instance '{name}'"),
        )
        .await
        .map(|_| ())
    }

    pub async fn start(&self, name: &str) -> Result<()> {
        self.set_state(name, "start", false, -1).await
    }

    /// Stops; `force` kills at once, otherwise a clean shutdown with a timeout then a kill.
    pub async fn stop(&self, name: &str, force: bool) -> Result<()> {
        self.set_state(name, "stop", force, if force { -1 } else { 30 }).await
    }

    pub async fn delete_instance(&self, name: &str) -> Result<()> {
        self.run(Method::DELETE, &format!("/1.0/instances/{}", enc(name)), None, &format!("instance '{name}'"))
            .await
            .map(|_| ())
    }

    pub async fn rename_instance(&self, name: &str, new_name: &str) -> Result<()> {
        let body = json!({ "name": new_name });
        self.run(Method::POST, &format!("/1.0/instances/{}", enc(name)), Some(&body), &format!("instance '{new_name}'"))
            .await
            .map(|_| ())
    }

    /// Merges config keys and devices (PATCH semantics: keys given are set, others kept).
    /// A config value of "" removes the key.
    pub async fn patch_instance(&self, name: &str, config: Config, devices: Devices) -> Result<()> {
        let mut body = serde_json::Map::new();
        if !config.is_empty() {
            body.insert("config".into(), serde_json::to_value(config).unwrap_or_default());
        }
        if !devices.is_empty() {
            body.insert("devices".into(), serde_json::to_value(devices).unwrap_or_default());
        }
        self.run(
            Method::PATCH,
            &format!("/1.0/instances/{}", enc(name)),
            Some(&Value::Object(body)),
            &format!("instance '{name}'"),
        )
        .await
        .map(|_| ())
    }

    /// Removes devices by name (PATCH cannot delete, so this is a read-modify-PUT guarded by ETag).
    pub async fn remove_devices(&self, name: &str, device_names: &[&str]) -> Result<()> {
        self.modify_instance(name, |inst| {
            for d in device_names {
                inst.devices.remove(*d);
            }
        })
        .await
    }

    /// Read-modify-write of an instance's config and devices with ETag protection (retried on a race).
    pub async fn modify_instance(&self, name: &str, f: impl Fn(&mut Instance)) -> Result<()> {
        let path = format!("/1.0/instances/{}", enc(name));
        let what = format!("instance '{name}'");
        for _ in 0..5 {
            let resp =
                self.http.get(format!("{}{}", self.base, path)).send().await.map_err(|e| self.map_transport(e))?;
            let etag = resp.headers().get("etag").and_then(|v| v.to_str().ok()).map(str::to_owned);
            let env = self.envelope(resp, &what).await?;
            let mut inst: Instance =
                serde_json::from_value(env.metadata).map_err(|e| IncusError::Decode(e.to_string()))?;
            f(&mut inst);
            let body = json!({ "config": inst.config, "devices": inst.devices, "profiles": inst.profiles });
            let mut req = self.http.put(format!("{}{}", self.base, path)).json(&body);
            if let Some(etag) = &etag {
                req = req.header("If-Match", etag);
            }
            let resp = req.send().await.map_err(|e| self.map_transport(e))?;
            if resp.status() == StatusCode::PRECONDITION_FAILED {
                continue;
            }
            let env = self.envelope(resp, &what).await?;
            if env.kind == "async" {
                self.wait_operation(&op_id(&env)?, &what).await?;
            }
            return Ok(());
        }
        Err(IncusError::Operation { message: format!("{what} kept changing while being updated; retry") })
    }

    // ---- snapshots --------------------------------------------------------------------------

    pub async fn create_snapshot(&self, name: &str, snapshot: &str) -> Result<()> {
        let body = json!({ "name": snapshot, "stateful": false });
        self.run(
            Method::POST,
            &format!("/1.0/instances/{}/snapshots", enc(name)),
            Some(&body),
            &format!("snapshot '{name}/{snapshot}'"),
        )
        .await
        .map(|_| ())
    }

    pub async fn snapshots(&self, name: &str) -> Result<Vec<Snapshot>> {
        self.sync(
            Method::GET,
            &format!("/1.0/instances/{}/snapshots?recursion=1", enc(name)),
            None,
            &format!("instance '{name}'"),
        )
        .await
    }

    pub async fn delete_snapshot(&self, name: &str, snapshot: &str) -> Result<()> {
        self.run(
            Method::DELETE,
            &format!("/1.0/instances/{}/snapshots/{}", enc(name), enc(snapshot)),
            None,
            &format!("snapshot '{name}/{snapshot}'"),
        )
        .await
        .map(|_| ())
    }

    // ---- metadata templates (written by Incus on create/copy/start) --------------------------

    pub async fn instance_metadata(&self, name: &str) -> Result<Value> {
        self.sync(Method::GET, &format!("/1.0/instances/{}/metadata", enc(name)), None, "instance metadata").await
    }

    pub async fn put_instance_metadata(&self, name: &str, metadata: &Value) -> Result<()> {
        let path = format!("/1.0/instances/{}/metadata", enc(name));
        self.run(Method::PUT, &path, Some(metadata), "instance metadata").await.map(|_| ())
    }

    /// Creates or replaces a template file (`templates/FILE` of the instance).
    pub async fn put_instance_template(&self, name: &str, file: &str, content: Vec<u8>) -> Result<()> {
        let url = format!("{}/1.0/instances/{}/metadata/templates?path={}", self.base, enc(name), enc(file));
        let resp = self
            .http
            .post(url)
            .header("Content-Type", "application/octet-stream")
            .body(content)
            .send()
            .await
            .map_err(|e| self.map_transport(e))?;
        self.envelope(resp, &format!("template '{file}' of '{name}'")).await.map(|_| ())
    }

    // ---- files ------------------------------------------------------------------------------

    /// Writes a file (works on stopped containers too). Content never passes through a shell.
    pub async fn push_file(&self, name: &str, file: &FileWrite<'_>) -> Result<()> {
        let what = format!("file '{}' in '{name}'", file.path);
        let owner = (file.uid, file.gid, file.mode);
        self.files_post(name, file.path, owner, "file", Some(file.content.clone()), &what).await
    }

    /// Creates a directory (parents must exist); an existing one is fine.
    pub async fn push_dir(&self, name: &str, path: &str, uid: u32, gid: u32, mode: u32) -> Result<()> {
        let what = format!("directory '{path}' in '{name}'");
        match self.files_post(name, path, (uid, gid, mode), "directory", None, &what).await {
            Ok(()) | Err(IncusError::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// One upload to the files API: owner, mode and type travel as headers, content as the body.
    async fn files_post(
        &self,
        name: &str,
        path: &str,
        (uid, gid, mode): (u32, u32, u32),
        kind: &str,
        content: Option<Vec<u8>>,
        what: &str,
    ) -> Result<()> {
        let url = format!("{}/1.0/instances/{}/files?path={}", self.base, enc(name), enc(path));
        let mut req = self
            .http
            .post(url)
            .header("X-Incus-uid", uid.to_string())
            .header("X-Incus-gid", gid.to_string())
            .header("X-Incus-mode", format!("{mode:04o}"))
            .header("X-Incus-type", kind);
        if let Some(body) = content {
            req = req.header("X-Incus-write", "overwrite").body(body);
        }
        let t0 = std::time::Instant::now();
        let resp = req.send().await.map_err(|e| self.map_transport(e))?;
        let r = self.envelope(resp, what).await.map(|_| ());
        tracing::debug!("incus files {path}: {} ms", t0.elapsed().as_millis());
        r
    }

    /// Reads a file's bytes.
    pub async fn pull_file(&self, name: &str, path: &str) -> Result<Vec<u8>> {
        let url = format!("{}/1.0/instances/{}/files?path={}", self.base, enc(name), enc(path));
        let resp = self.http.get(url).send().await.map_err(|e| self.map_transport(e))?;
        let status = resp.status();
        let is_json = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if !status.is_success() || (is_json && resp.headers().get("x-incus-type").is_none()) {
            return Err(self
                .envelope(resp, &format!("file '{path}' in '{name}'"))
                .await
                .err()
                .unwrap_or_else(|| IncusError::Decode(format!("'{path}' in '{name}' is not a regular file"))));
        }
        Ok(resp.bytes().await.map_err(|e| self.map_transport(e))?.to_vec())
    }

    pub async fn delete_file(&self, name: &str, path: &str) -> Result<()> {
        self.call(
            Method::DELETE,
            &format!("/1.0/instances/{}/files?path={}", enc(name), enc(path)),
            None,
            &format!("file '{path}' in '{name}'"),
        )
        .await
        .map(|_| ())
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
        self.call(Method::POST, "/1.0/images/aliases", Some(&body), &format!("image alias '{alias}'")).await.map(|_| ())
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

    /// Publishes `instance/snapshot` as an image (zstd) under `alias`; returns its fingerprint.
    pub async fn publish_snapshot(&self, instance: &str, snapshot: &str, alias: &str) -> Result<String> {
        let body = json!({
            "source": { "type": "snapshot", "name": format!("{instance}/{snapshot}") },
            "compression_algorithm": "zstd",
            "properties": { "description": format!("Agent Sandboxes golden image from {instance}/{snapshot}") },
        });
        let op = self.run(Method::POST, "/1.0/images", Some(&body), &format!("image from {instance}")).await?;
        let fp = op_fingerprint(&op)?;
        self.create_image_alias(alias, &fp).await?;
        Ok(fp)
    }

    pub async fn delete_image(&self, fingerprint: &str) -> Result<()> {
        self.run(Method::DELETE, &format!("/1.0/images/{}", enc(fingerprint)), None, &format!("image '{fingerprint}'"))
            .await
            .map(|_| ())
    }

    // ---- networks and storage ---------------------------------------------------------------

    pub async fn network(&self, name: &str) -> Result<Network> {
        self.sync(Method::GET, &format!("/1.0/networks/{}", enc(name)), None, &format!("network '{name}'")).await
    }

    pub async fn create_network(&self, name: &str, config: Config) -> Result<()> {
        let body = json!({ "name": name, "type": "bridge", "config": config });
        self.call(Method::POST, "/1.0/networks", Some(&body), &format!("network '{name}'")).await.map(|_| ())
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
        self.call(Method::POST, "/1.0/storage-pools", Some(&body), &format!("storage pool '{name}'")).await.map(|_| ())
    }

    pub async fn profile(&self, name: &str) -> Result<Value> {
        self.sync(Method::GET, &format!("/1.0/profiles/{}", enc(name)), None, &format!("profile '{name}'")).await
    }

    pub async fn patch_profile(&self, name: &str, body: Value) -> Result<()> {
        self.call(Method::PATCH, &format!("/1.0/profiles/{}", enc(name)), Some(&body), &format!("profile '{name}'"))
            .await
            .map(|_| ())
    }

    // ---- raw access for exec/events ---------------------------------------------------------

    pub(crate) async fn post_json(&self, path: &str, body: &Value, what: &str) -> Result<Envelope> {
        self.call(Method::POST, path, Some(body), what).await
    }

    pub(crate) async fn get_bytes(&self, path: &str) -> Result<Vec<u8>> {
        let resp = self.http.get(format!("{}{}", self.base, path)).send().await.map_err(|e| self.map_transport(e))?;
        if !resp.status().is_success() {
            return Err(self.envelope(resp, path).await.err().unwrap_or(IncusError::Decode(path.into())));
        }
        Ok(resp.bytes().await.map_err(|e| self.map_transport(e))?.to_vec())
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }
    pub(crate) fn base(&self) -> &str {
        &self.base
    }
}

pub(crate) fn op_id(env: &Envelope) -> Result<String> {
    env.operation
        .rsplit('/')
        .next()
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| IncusError::Decode("async response without an operation".into()))
}

fn classify(status: u16, message: &str, what: &str) -> IncusError {
    let lower = message.to_ascii_lowercase();
    if status == 404 || lower.contains("not found") {
        IncusError::NotFound { what: what.to_string() }
    } else if status == 409 || lower.contains("already exists") || lower.contains("unique constraint failed") {
        IncusError::AlreadyExists { what: what.to_string() }
    } else if status == 0 {
        IncusError::Operation { message: message.to_string() }
    } else {
        IncusError::Api { status, message: message.to_string() }
    }
}

/// Incus wants the base64 body of a PEM certificate.
fn pem_body(pem: &str) -> String {
    pem.lines().filter(|l| !l.starts_with("-----")).collect::<Vec<_>>().join("")
}

/// Is this a path to an existing unix socket?
/// The image fingerprint an import or publish operation reports.
fn op_fingerprint(op: &Operation) -> Result<String> {
    op.metadata
        .as_ref()
        .and_then(|m| m.get("fingerprint"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| IncusError::Decode("the image operation returned no fingerprint".into()))
}

pub fn socket_exists(p: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(p).map(|m| m.file_type().is_socket()).unwrap_or(false)
}

#[allow(dead_code)]
fn _assert_serialize<T: Serialize>() {}
