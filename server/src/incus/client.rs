//! The Incus REST client: one reqwest client over the local unix socket or HTTPS with a client
//! certificate, typed calls for what the engine needs, operations waited on server side.
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::Method;
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
    pub(super) http: reqwest::Client,
    pub(super) base: String,
    endpoint: Endpoint,
}

impl std::fmt::Debug for Incus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Incus({})", self.endpoint.describe())
    }
}

pub(super) fn enc(s: &str) -> String {
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

    pub(super) fn map_transport(&self, e: reqwest::Error) -> IncusError {
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
    pub(super) async fn call(&self, method: Method, path: &str, body: Option<&Value>, what: &str) -> Result<Envelope> {
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

    pub(super) async fn envelope(&self, resp: reqwest::Response, what: &str) -> Result<Envelope> {
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

    pub(super) async fn sync<T: DeserializeOwned>(
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
    pub(super) async fn run(&self, method: Method, path: &str, body: Option<&Value>, what: &str) -> Result<Operation> {
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

    /// Operations still running on an instance whose name `on` accepts: a create whose client
    /// was killed goes on in Incus, and its instance appears when it ends.
    pub async fn running_operations_on(&self, on: impl Fn(&str) -> bool) -> Result<Vec<Operation>> {
        let all: Value = self.sync(Method::GET, "/1.0/operations?recursion=1", None, "operations").await?;
        let running: Vec<Operation> =
            all.get("running").cloned().map(|v| serde_json::from_value(v).unwrap_or_default()).unwrap_or_default();
        let on_one = |op: &Operation| {
            op.resources.as_ref().is_some_and(|r| {
                r.values().flatten().any(|p| {
                    let path = p.split('?').next().unwrap_or_default();
                    path.strip_prefix("/1.0/instances/")
                        .is_some_and(|n| !n.contains('/') && on(&urlencoding::decode(n).unwrap_or_default()))
                })
            })
        };
        Ok(running.into_iter().filter(on_one).collect())
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
        let what = format!("certificate '{name}'");
        self.call(Method::POST, "/1.0/certificates", Some(&body), &what)
            .await
            .map(|_| ())
            .map_err(|e| name_taken(e, &what))
    }

    /// Asks the server to trust the certificate this connection presents, with a trust token
    /// (`incus config trust add NAME`); works before we are trusted.
    pub async fn trust_with_token(&self, token: &str, name: &str) -> Result<()> {
        let body = json!({ "type": "client", "trust_token": token, "name": name });
        self.call(Method::POST, "/1.0/certificates", Some(&body), "the trust token").await.map(|_| ())
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

    /// The first `max` bytes of a file the daemon serves, and whether there was more.
    pub(crate) async fn get_bytes_capped(&self, path: &str, max: usize) -> Result<(Vec<u8>, bool)> {
        let mut resp =
            self.http.get(format!("{}{}", self.base, path)).send().await.map_err(|e| self.map_transport(e))?;
        if !resp.status().is_success() {
            return Err(self.envelope(resp, path).await.err().unwrap_or(IncusError::Decode(path.into())));
        }
        let mut out = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.map_transport(e))? {
            let room = max - out.len();
            if chunk.len() > room {
                out.extend_from_slice(&chunk[..room]);
                return Ok((out, true));
            }
            out.extend_from_slice(&chunk);
        }
        Ok((out, false))
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }
    pub(crate) fn base(&self) -> &str {
        &self.base
    }
}

/// The id in `/1.0/operations/ID` — a cluster member that forwarded the request adds
/// `?project=NAME`, which is not part of the id.
pub(crate) fn op_id(env: &Envelope) -> Result<String> {
    let path = env.operation.split('?').next().unwrap_or_default();
    path.rsplit('/')
        .next()
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| IncusError::Decode("async response without an operation".into()))
}

/// Incus's answer as a typed error. A 409 keeps Incus's own message: it also means a NIC address
/// held by another instance, an instance busy with another operation, … — only a create call
/// turns it into "already exists" (`name_taken`).
fn classify(status: u16, message: &str, what: &str) -> IncusError {
    let lower = message.to_ascii_lowercase();
    // How Incus ends an exec whose command exited 127 or 126 (never about the instance).
    match message {
        "Command not found" => return IncusError::CommandExited { status: 127 },
        "Command not executable" => return IncusError::CommandExited { status: 126 },
        _ => {}
    }
    if status == 404 || lower.contains("not found") {
        IncusError::NotFound { what: what.to_string() }
    } else if status == 0 {
        IncusError::Operation { message: message.to_string() }
    } else {
        IncusError::Api { status, message: message.to_string() }
    }
}

/// On a call that creates something under a name: Incus's conflict means the name is taken.
pub(super) fn name_taken(e: IncusError, what: &str) -> IncusError {
    match e {
        IncusError::Api { status: 409, .. } => IncusError::AlreadyExists { what: what.to_string() },
        IncusError::Api { message, .. } | IncusError::Operation { message }
            if message.to_ascii_lowercase().contains("already exists")
                || message.to_ascii_lowercase().contains("unique constraint failed") =>
        {
            IncusError::AlreadyExists { what: what.to_string() }
        }
        e => e,
    }
}

/// Incus wants the base64 body of a PEM certificate.
fn pem_body(pem: &str) -> String {
    pem.lines().filter(|l| !l.starts_with("-----")).collect::<Vec<_>>().join("")
}

/// The image fingerprint an import or publish operation reports.
pub(super) fn op_fingerprint(op: &Operation) -> Result<String> {
    op.metadata
        .as_ref()
        .and_then(|m| m.get("fingerprint"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| IncusError::Decode("the image operation returned no fingerprint".into()))
}

/// Is this a path to an existing unix socket?
pub fn socket_exists(p: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(p).map(|m| m.file_type().is_socket()).unwrap_or(false)
}

#[cfg(test)]
mod classify_tests {
    use super::{IncusError, classify};

    /// A member that forwarded the request (a cluster) answers `/1.0/operations/ID?project=default`.
    #[test]
    fn an_operation_id_leaves_the_project_out() {
        let env = |op: &str| super::Envelope { operation: op.into(), ..Default::default() };
        assert_eq!(super::op_id(&env("/1.0/operations/ab-12?project=default")).unwrap(), "ab-12");
        assert_eq!(super::op_id(&env("/1.0/operations/ab-12")).unwrap(), "ab-12");
        assert!(super::op_id(&env("")).is_err());
    }

    /// Incus ends the wait for an exec whose command exited 127 with a 400 "Command not found".
    #[test]
    fn an_exec_exit_status_is_not_a_missing_instance() {
        assert!(matches!(
            classify(400, "Command not found", "instance 'agent-x'"),
            IncusError::CommandExited { status: 127 }
        ));
        assert!(matches!(classify(400, "Command not executable", "x"), IncusError::CommandExited { status: 126 }));
        assert!(classify(404, "Instance not found", "instance 'agent-x'").is_not_found());
    }
}
