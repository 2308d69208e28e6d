//! `sandbox/status`, pushed: whether the sidecar's Incus answers (and why not), its version, the
//! remote in use, and which golden images are built — as rust-analyzer's `serverStatus`. The
//! extension's status bar and welcome views follow it.
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use super::ApiError;
use crate::engine::Engine;
use crate::engine::golden::{self, GoldenState};
use crate::error::EngineError;

/// Server → client notification: the status changed (also sent once after `initialized`).
pub const STATUS: &str = "sandbox/status";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub enum StatusHealth {
    /// Incus answers and a golden image is built.
    Ok,
    /// Incus answers, but no golden image is built: run setup.
    Warning,
    /// Incus does not answer.
    Error,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct ServerStatus {
    pub health: StatusHealth,
    /// One line for people.
    pub message: String,
    /// The Incus remote in use (`local`, or a name from `sandbox remote list`).
    pub remote: String,
    /// Where it is: the unix socket, or the HTTPS URL.
    pub endpoint: String,
    pub incus_reachable: bool,
    pub incus_version: Option<String>,
    /// Why Incus does not answer, and what to do.
    pub incus_error: Option<ApiError>,
    /// Stacks whose golden image is built (stale ones included).
    pub golden_built: Vec<String>,
    /// Known stacks without a golden image.
    pub golden_missing: Vec<String>,
}

/// The status now (a few Incus calls).
pub async fn current(engine: &Engine) -> ServerStatus {
    let endpoint = engine.incus.endpoint().describe();
    let mut s = ServerStatus {
        health: StatusHealth::Error,
        message: String::new(),
        remote: engine.remote.clone(),
        endpoint: endpoint.clone(),
        incus_reachable: false,
        incus_version: None,
        incus_error: None,
        golden_built: Vec::new(),
        golden_missing: Vec::new(),
    };
    let info = match engine.incus.server().await {
        Ok(info) => info,
        Err(e) => {
            let e = ApiError::from(EngineError::from(e));
            s.message = format!("Incus at {endpoint} does not answer: {}", e.message);
            s.incus_error = Some(e);
            return s;
        }
    };
    s.incus_reachable = true;
    s.incus_version = info.pointer("/environment/server_version").and_then(|v| v.as_str()).map(str::to_owned);
    for g in golden::list(&engine.incus).await.unwrap_or_default() {
        match g.state {
            GoldenState::Built | GoldenState::Stale => s.golden_built.push(g.stack),
            GoldenState::Missing => s.golden_missing.push(g.stack),
        }
    }
    let version = s.incus_version.as_deref().unwrap_or("?");
    let (health, images) = if s.golden_built.is_empty() {
        (StatusHealth::Warning, "no golden image built: run setup".to_string())
    } else {
        (StatusHealth::Ok, format!("golden images: {}", s.golden_built.join(", ")))
    };
    s.health = health;
    s.message = format!("Incus {version} at {endpoint} (remote {}); {images}", s.remote);
    s
}
