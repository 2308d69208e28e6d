//! `sandbox/status`, pushed: whether the sidecar's Incus answers (and why not), its version, the
//! remote in use, and which golden images are built — as rust-analyzer's `serverStatus`. The
//! extension's status bar and welcome views follow it.
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use super::ApiError;
use crate::engine::Engine;
use crate::engine::golden::{self, BRIDGE, GoldenState, STORAGE_POOL};
use crate::engine::host::Host;
use crate::error::EngineError;
use crate::incus::{Endpoint, IncusError};

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

/// Whether Incus is there and set up for sandboxes: what the welcome view offers follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub enum IncusState {
    /// It answers, with the storage pool and bridge sandboxes use.
    Ready,
    /// No Incus on this machine: `sandbox host install`.
    NotInstalled,
    /// Installed, but no daemon answers on its socket: `sandbox host install` starts it.
    NotRunning,
    /// The daemon runs, but this user may not use its socket (the incus-admin group).
    NoPermission,
    /// It answers, but has no storage pool or no bridge for sandboxes yet.
    NotInitialised,
    /// A remote server (HTTPS) does not answer.
    Unreachable,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct ServerStatus {
    pub health: StatusHealth,
    pub incus: IncusState,
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

/// Why Incus does not answer, as a state (the local daemon: is it installed at all?).
fn unreachable_state(e: &IncusError, local: bool, installed: impl FnOnce() -> bool) -> IncusState {
    match e {
        IncusError::PermissionDenied { .. } => IncusState::NoPermission,
        _ if !local => IncusState::Unreachable,
        _ if installed() => IncusState::NotRunning,
        _ => IncusState::NotInstalled,
    }
}

/// Is Incus installed on this machine (the client, or the daemon where Debian puts it)?
fn incus_installed() -> bool {
    Host::local().which("incus").is_some() || std::path::Path::new(INCUSD).exists()
}

const INCUSD: &str = "/usr/libexec/incus/incusd";

/// The status now (a few Incus calls).
pub async fn current(engine: &Engine) -> ServerStatus {
    let endpoint = engine.incus.endpoint().describe();
    let mut s = ServerStatus {
        health: StatusHealth::Error,
        incus: IncusState::Unreachable,
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
            let local = matches!(engine.incus.endpoint(), Endpoint::Unix(_));
            s.incus = unreachable_state(&e, local, incus_installed);
            let e = ApiError::from(EngineError::from(e));
            s.message = match s.incus {
                IncusState::NotInstalled => {
                    format!("Incus is not installed on this machine ({endpoint}): `sandbox host install` sets it up")
                }
                _ => format!("Incus at {endpoint} does not answer: {}", e.message),
            };
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
    let missing = missing_pieces(engine).await;
    if !missing.is_empty() {
        s.incus = IncusState::NotInitialised;
        s.health = StatusHealth::Warning;
        s.message = format!(
            "Incus {version} at {endpoint} has no {} for sandboxes: `sandbox host install` (or `sandbox setup`) makes it",
            missing.join(" and ")
        );
        return s;
    }
    s.incus = IncusState::Ready;
    let (health, images) = if s.golden_built.is_empty() {
        (StatusHealth::Warning, "no golden image built: run setup".to_string())
    } else {
        (StatusHealth::Ok, format!("golden images: {}", s.golden_built.join(", ")))
    };
    s.health = health;
    s.message = format!("Incus {version} at {endpoint} (remote {}); {images}", s.remote);
    s
}

/// What sandboxes need from Incus that is not there: its storage pool, its bridge.
async fn missing_pieces(engine: &Engine) -> Vec<String> {
    let (pool, bridge) = tokio::join!(engine.incus.storage_pool(STORAGE_POOL), engine.incus.network(BRIDGE));
    let mut out = Vec::new();
    if pool.as_ref().is_err_and(IncusError::is_not_found) {
        out.push(format!("storage pool '{STORAGE_POOL}'"));
    }
    if bridge.as_ref().is_err_and(IncusError::is_not_found) {
        out.push(format!("bridge {BRIDGE}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn why_incus_does_not_answer() {
        let sock = || PathBuf::from("/var/lib/incus/unix.socket");
        let not_running = IncusError::NotRunning { socket: sock() };
        assert_eq!(unreachable_state(&not_running, true, || true), IncusState::NotRunning);
        assert_eq!(unreachable_state(&not_running, true, || false), IncusState::NotInstalled);
        assert_eq!(unreachable_state(&not_running, false, || false), IncusState::Unreachable);
        let denied = IncusError::PermissionDenied { socket: sock() };
        assert_eq!(unreachable_state(&denied, true, || true), IncusState::NoPermission);
    }
}
