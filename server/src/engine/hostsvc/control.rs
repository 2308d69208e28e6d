//! Talking to a service's daemon over its control socket (HTTP over a unix socket, 0600): start
//! it when nothing answers, register and unregister sandboxes, end it.
use std::time::Duration;

use serde::Serialize;

use super::{Health, Release, Service};
use crate::error::{EngineError, Result};

fn client(svc: &Service, timeout: Duration) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .unix_socket(svc.control_socket())
        .no_proxy()
        .timeout(timeout)
        .build()
        .map_err(|e| EngineError::failed(format!("cannot make the control client of {}: {e}", svc.title), ""))
}

fn url(svc: &Service, path: &str) -> String {
    format!("http://{}{path}", svc.dir)
}

fn see_log(svc: &Service) -> String {
    format!("see {}", svc.log_file().display())
}

/// The running daemon's health, or None when nothing answers.
pub async fn health(svc: &Service) -> Option<Health> {
    let resp = client(svc, Duration::from_secs(2)).ok()?.get(url(svc, "/health")).send().await.ok()?;
    resp.json().await.ok()
}

/// Starts a detached `sandbox __SERVICE` (its own session: it outlives this process, the
/// terminal and the sidecar) and waits until it answers.
pub async fn ensure_running(svc: &Service) -> Result<Health> {
    if let Some(h) = health(svc).await {
        return Ok(h);
    }
    crate::engine::creds::private_dir(&svc.root())?;
    let exe = std::env::current_exe()
        .map_err(|e| EngineError::failed(format!("cannot find this program to start {}: {e}", svc.title), ""))?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(svc.log_file())
        .map_err(|e| EngineError::failed(format!("cannot open the log of {}: {e}", svc.title), see_log(svc)))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg(svc.command).stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null()).stderr(log);
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child =
        cmd.spawn().map_err(|e| EngineError::failed(format!("cannot start {}: {e}", svc.title), see_log(svc)))?;
    // Reaped by a thread so that a long-lived caller (the sidecar) leaves no zombie.
    let pid = child.id();
    std::thread::spawn(move || child.wait());
    let answered = crate::poll::until(Duration::from_secs(10), Duration::from_millis(10), || health(svc)).await;
    answered.ok_or_else(|| {
        EngineError::failed(
            format!("{} (pid {pid}) did not answer on {}", svc.title, svc.control_socket().display()),
            see_log(svc),
        )
    })
}

async fn call(svc: &Service, req: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder, what: &str) -> Result<()> {
    let c = client(svc, Duration::from_secs(60))?;
    // A daemon that was just ending (its last sandbox left) is started again once.
    for attempt in 0..2 {
        ensure_running(svc).await?;
        match req(&c).send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => {
                let status = r.status();
                let body = r.text().await.unwrap_or_default();
                return Err(EngineError::failed(
                    format!("{} refused to {what}: {status} {}", svc.title, body.trim()),
                    see_log(svc),
                ));
            }
            Err(e) if attempt == 0 => tracing::debug!("{} control: {e}; retrying", svc.dir),
            Err(e) => return Err(EngineError::failed(format!("cannot {what}: {e}"), see_log(svc))),
        }
    }
    unreachable!("the loop returns")
}

/// Makes sure the sandbox's endpoint answers, with this registration.
pub async fn register<R: Serialize>(svc: &Service, name: &str, reg: &R) -> Result<()> {
    let what = format!("open the endpoint of '{name}'");
    call(svc, |c| c.put(url(svc, &format!("/sandboxes/{name}"))).json(reg), &what).await
}

/// Closes the sandbox's endpoint (idempotent: nothing running means nothing to close).
pub async fn unregister(svc: &Service, name: &str, how: Release) -> Result<()> {
    if health(svc).await.is_none() {
        if how == Release::Remove {
            let _ = std::fs::remove_dir_all(svc.endpoint_dir(name));
            let _ = std::fs::remove_file(svc.state_file(name));
        }
        return Ok(());
    }
    let what = format!("close the endpoint of '{name}'");
    call(svc, |c| c.delete(url(svc, &format!("/sandboxes/{name}"))).json(&how), &what).await
}

/// `nuke`: ends the daemon (it closes every endpoint first).
pub async fn shutdown(svc: &Service) -> Result<()> {
    if health(svc).await.is_none() {
        return Ok(());
    }
    let c = client(svc, Duration::from_secs(20))?;
    c.post(url(svc, "/shutdown"))
        .send()
        .await
        .map_err(|e| EngineError::failed(format!("cannot end {}: {e}", svc.title), ""))?;
    Ok(())
}
