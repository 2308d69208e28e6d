//! What the proxy daemon holds: the registered sandboxes (upstream, counters, in-flight bound,
//! hook relay) and the HTTP client to the upstreams. Shared by the control side (daemon.rs) and the
//! endpoints (forward.rs).
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::usage::{Seen, Usage};
use crate::incus::Incus;

/// Requests in flight per sandbox (more wait).
pub(super) const MAX_IN_FLIGHT: usize = 32;

pub(super) struct Entry {
    pub upstream: url::Url,
    pub usage: Usage,
    pub dirty: bool,
    pub stop: CancellationToken,
    pub limit: Arc<tokio::sync::Semaphore>,
    /// The sandbox's hook relay (agent state), on its own socket in the same directory.
    pub agents: Arc<crate::engine::agents::relay::Relay>,
}

pub(super) struct Daemon {
    pub sandboxes: Mutex<HashMap<String, Entry>>,
    pub http: reqwest::Client,
    pub incus: Option<Incus>,
    pub shutdown: CancellationToken,
    /// Since when no sandbox is registered (the daemon ends after IDLE_EXIT).
    pub empty_since: Mutex<Option<Instant>>,
}

impl Daemon {
    /// Adds one answer's counts to the sandbox's totals (written to Incus by the flusher).
    pub fn record(&self, name: &str, seen: &Seen) {
        let mut all = self.sandboxes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = all.get_mut(name) {
            e.usage.record(&seen.model, &seen.tokens);
            e.dirty = true;
        }
    }
}

/// The client for every upstream: no redirects (never anywhere but the upstream), no proxy.
pub(super) fn upstream_client() -> reqwest::Client {
    crate::tls::install_crypto_provider();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(600))
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .build()
        .expect("an HTTP client")
}
