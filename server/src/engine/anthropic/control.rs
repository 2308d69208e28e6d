//! Talking to the proxy daemon over its control socket (`~/.sandbox/anthropic/control.sock`,
//! 0600, HTTP): start it when nothing answers, register and unregister sandboxes, end it.
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::root;
use crate::error::{EngineError, Result};

pub fn control_socket() -> PathBuf {
    root().join("control.sock")
}

/// What `GET /health` answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Health {
    pub pid: u32,
    pub version: String,
    pub sandboxes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Register {
    pub upstream: String,
    /// The sandbox is about to boot: no Claude Code session of before is left.
    #[serde(default)]
    pub fresh: bool,
    /// Its repository's fetches and pushes go through the push gate (`git.sock`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<crate::engine::gate::Register>,
}

/// How a sandbox leaves the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Release {
    /// Stopped: the counters go to Incus first; the (empty) directory stays for the next start.
    Stop,
    /// Removed: the counters went with the instance; the directory goes too.
    Remove,
}

fn client(timeout: Duration) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .unix_socket(control_socket())
        .no_proxy()
        .timeout(timeout)
        .build()
        .map_err(|e| EngineError::failed(format!("cannot make the proxy's control client: {e}"), ""))
}

const BASE: &str = "http://anthropic-proxy";

/// The running daemon's health, or None when nothing answers.
pub async fn health() -> Option<Health> {
    let resp = client(Duration::from_secs(2)).ok()?.get(format!("{BASE}/health")).send().await.ok()?;
    resp.json().await.ok()
}

/// Starts a detached `sandbox __anthropic-proxy` (its own session: it outlives this process, the
/// terminal and the sidecar) and waits until it answers.
pub async fn ensure_running() -> Result<Health> {
    if let Some(h) = health().await {
        return Ok(h);
    }
    super::super::creds::private_dir(&root())?;
    let exe = std::env::current_exe()
        .map_err(|e| EngineError::failed(format!("cannot find this program to start the proxy: {e}"), ""))?;
    let log =
        std::fs::OpenOptions::new().create(true).append(true).open(root().join("daemon.log")).map_err(|e| {
            EngineError::failed(format!("cannot open the proxy's log: {e}"), "check ~/.sandbox/anthropic")
        })?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("__anthropic-proxy").stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null()).stderr(log);
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.spawn().map_err(|e| {
        EngineError::failed(format!("cannot start the Anthropic proxy: {e}"), "see ~/.sandbox/anthropic/daemon.log")
    })?;
    // Reaped by a thread so that a long-lived caller (the sidecar) leaves no zombie.
    let pid = child.id();
    std::thread::spawn(move || child.wait());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(h) = health().await {
            return Ok(h);
        }
        if tokio::time::Instant::now() > deadline {
            return Err(EngineError::failed(
                format!("the Anthropic proxy (pid {pid}) did not answer on {}", control_socket().display()),
                "see ~/.sandbox/anthropic/daemon.log",
            ));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn call(req: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder, what: &str) -> Result<()> {
    let c = client(Duration::from_secs(20))?;
    // A daemon that was just ending (its last sandbox left) is started again once.
    for attempt in 0..2 {
        ensure_running().await?;
        match req(&c).send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => {
                let status = r.status();
                let body = r.text().await.unwrap_or_default();
                return Err(EngineError::failed(
                    format!("the Anthropic proxy refused to {what}: {status} {}", body.trim()),
                    "see ~/.sandbox/anthropic/daemon.log",
                ));
            }
            Err(e) if attempt == 0 => tracing::debug!("proxy control: {e}; retrying"),
            Err(e) => {
                return Err(EngineError::failed(format!("cannot {what}: {e}"), "see ~/.sandbox/anthropic/daemon.log"));
            }
        }
    }
    unreachable!("the loop returns")
}

/// Makes sure the sandbox's sockets answer: the API forwarding to `upstream`, and the push gate
/// with `git` (none: no gate). `fresh`: the sandbox is about to boot (its hook relay forgets the
/// sessions it knew).
pub async fn register(
    name: &str,
    upstream: &url::Url,
    fresh: bool,
    git: Option<crate::engine::gate::Register>,
) -> Result<()> {
    let body = Register { upstream: upstream.to_string(), fresh, git };
    call(|c| c.put(format!("{BASE}/sandboxes/{name}")).json(&body), &format!("open the endpoint of '{name}'")).await
}

/// Closes the sandbox's endpoint (idempotent: nothing running means nothing to close).
pub async fn unregister(name: &str, how: Release) -> Result<()> {
    if health().await.is_none() {
        if how == Release::Remove {
            remove_leftovers(name);
        }
        return Ok(());
    }
    call(|c| c.delete(format!("{BASE}/sandboxes/{name}")).json(&how), &format!("close the endpoint of '{name}'")).await
}

/// What a daemon that is gone left of a removed sandbox.
fn remove_leftovers(name: &str) {
    let _ = std::fs::remove_dir_all(super::endpoint_dir(name));
    let _ = std::fs::remove_file(root().join("state").join(format!("{name}.json")));
    crate::engine::gate::endpoint::forget(name);
}

/// `nuke`: ends the daemon (it flushes and closes every endpoint first).
pub async fn shutdown() -> Result<()> {
    if health().await.is_none() {
        return Ok(());
    }
    let c = client(Duration::from_secs(20))?;
    c.post(format!("{BASE}/shutdown"))
        .send()
        .await
        .map_err(|e| EngineError::failed(format!("cannot end the Anthropic proxy: {e}"), ""))?;
    Ok(())
}
