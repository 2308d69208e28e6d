//! The gate's endpoint per sandbox: each connection on its socket is one git request. A fetch
//! refreshes the mirror from the server, then `git upload-pack` serves it; a push goes into
//! `git receive-pack` on the mirror, whose pre-receive hook (`sandbox __git-gate-hook`, hook.rs)
//! checks every ref update and forwards the allowed ones to the server — the mirror's refs move
//! only once the server took them. One request at a time per sandbox (the mirror is shared).
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

use super::wire::{self, Service};
use super::{Register, mirror};
use crate::engine::creds::RepoRef;
use crate::engine::hostsvc::Release;
use crate::engine::hostsvc::daemon::Endpoints;

/// Connections a sandbox may have open at once (more are refused).
const MAX_CONNECTIONS: usize = 8;
/// How long a client has to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// A git process serving one request ends after this long, whatever it is doing.
const SESSION_LIMIT: Duration = Duration::from_secs(3600);

#[derive(Default)]
pub struct Gate {
    /// One request at a time per sandbox's mirror.
    turns: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

pub const HOOK: &str = "#!/bin/sh\n# Written by Agent Sandboxes: the push gate's check (see `sandbox __git-gate-hook`).\nexec \"$SANDBOX_GATE_EXE\" __git-gate-hook\n";

impl Gate {
    fn turn(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.turns.lock().unwrap_or_else(|e| e.into_inner()).entry(name.to_string()).or_default().clone()
    }
}

/// The paths a sandbox may ask for: `/OWNER/REPO` with or without `.git`.
fn path_ok(reg: &Register, path: &str) -> bool {
    let Ok(repo) = RepoRef::parse(&reg.url) else { return false };
    let p = path.strip_suffix(".git").unwrap_or(path);
    p == format!("/{}", repo.slug())
}

impl Endpoints for Gate {
    fn socket_file(&self) -> &'static str {
        super::SOCKET
    }

    fn accept(&self, _name: &str, reg: &Value) -> Result<(), String> {
        let r: Register = serde_json::from_value(reg.clone()).map_err(|e| format!("registration: {e}"))?;
        r.check()
    }

    fn serve(
        self: Arc<Self>,
        name: String,
        reg: Value,
        listener: UnixListener,
        stop: CancellationToken,
    ) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let Ok(reg) = serde_json::from_value::<Register>(reg) else { return };
            let reg = Arc::new(reg);
            let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
            loop {
                let conn = tokio::select! {
                    c = listener.accept() => c,
                    _ = stop.cancelled() => return,
                };
                let Ok((mut stream, _)) = conn else { continue };
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    let _ = stream.write_all(&wire::err_packet("too many git connections at once")).await;
                    continue;
                };
                let (gate, name, reg, stop) = (self.clone(), name.clone(), reg.clone(), stop.clone());
                tokio::spawn(async move {
                    if let Err(e) = gate.request(&name, &reg, stream, &stop).await {
                        tracing::warn!("{name}: {e}");
                    }
                    drop(permit);
                });
            }
        })
    }

    fn release(&self, name: &str, how: Release) {
        self.turns.lock().unwrap_or_else(|e| e.into_inner()).remove(name);
        if how == Release::Remove {
            let _ = std::fs::remove_dir_all(mirror::mirror_dir(name));
        }
    }
}

impl Gate {
    async fn request(
        &self,
        name: &str,
        reg: &Register,
        mut stream: UnixStream,
        stop: &CancellationToken,
    ) -> Result<(), String> {
        let req = match tokio::time::timeout(REQUEST_TIMEOUT, wire::read_request(&mut stream)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return refuse(stream, &format!("the push gate speaks git only: {e}")).await,
            Err(_) => return Err("no request in time".into()),
        };
        if !path_ok(reg, &req.path) {
            let want = RepoRef::parse(&reg.url).map(|r| r.slug()).unwrap_or_default();
            return refuse(stream, &format!("this sandbox's gate serves {want} only")).await;
        }
        let turn = self.turn(name);
        let _turn = turn.lock().await;
        let dir = match mirror::ensure(name, reg).await {
            Ok(d) => d,
            Err(e) => return refuse(stream, &e).await,
        };
        if req.service == Service::UploadPack
            && let Err(e) = mirror::refresh(&dir, reg).await
        {
            return refuse(stream, &e).await;
        }
        let mut cmd = mirror::git(reg);
        cmd.arg("-c").arg(format!("core.hooksPath={}", mirror::hooks_dir().display()));
        match req.service {
            Service::UploadPack => cmd.args(["upload-pack", "--strict", "--timeout=600"]),
            Service::ReceivePack => cmd.arg("receive-pack"),
        };
        cmd.arg(&dir)
            .env("GIT_PROTOCOL", req.protocol.as_deref().unwrap_or(""))
            .env("SANDBOX_GATE_EXE", format!("/proc/{}/exe", std::process::id()))
            .env("SANDBOX_GATE_NAME", name)
            .env("SANDBOX_GATE_URL", &reg.url)
            .env("SANDBOX_GATE_BRANCH", reg.branch.as_deref().unwrap_or(""))
            .env("SANDBOX_HOME", crate::paths::sandbox_home())
            .kill_on_drop(true);
        let std = stream.into_std().map_err(|e| e.to_string())?;
        std.set_nonblocking(false).map_err(|e| e.to_string())?;
        let fd = OwnedFd::from(std);
        let out = fd.try_clone().map_err(|e| e.to_string())?;
        let mut child = cmd
            .stdin(Stdio::from(fd))
            .stdout(Stdio::from(out))
            .spawn()
            .map_err(|e| format!("cannot run git {}: {e}", req.service.command()))?;
        let status = tokio::select! {
            s = child.wait() => s.ok(),
            _ = tokio::time::sleep(SESSION_LIMIT) => None,
            _ = stop.cancelled() => None,
        };
        match status {
            Some(s) if s.success() => {
                tracing::info!("{name}: {} {} done", req.service.command(), req.path);
                Ok(())
            }
            Some(s) => Err(format!("{} {} ended with {s}", req.service.command(), req.path)),
            None => {
                let _ = child.kill().await;
                Err(format!(
                    "{} {} cut (stopped, or past {}s)",
                    req.service.command(),
                    req.path,
                    SESSION_LIMIT.as_secs()
                ))
            }
        }
    }
}

async fn refuse(mut stream: UnixStream, message: &str) -> Result<(), String> {
    let _ = stream.write_all(&wire::err_packet(message)).await;
    Err(message.to_string())
}

/// Writes the hook the gate's receive-pack runs (at every start of the daemon).
pub fn write_hook() -> std::io::Result<()> {
    crate::paths::write_atomic(&mirror::hooks_dir().join("pre-receive"), HOOK.as_bytes(), 0o700)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_sandboxs_own_repository_is_served() {
        let reg = Register { url: "git@github.com:acme/app.git".into(), branch: None, agent: String::new() };
        assert!(path_ok(&reg, "/acme/app.git") && path_ok(&reg, "/acme/app"));
        for bad in ["/acme/other.git", "/acme/app.git/../other", "acme/app", "/ACME/app", ""] {
            assert!(!path_ok(&reg, bad), "{bad}");
        }
    }
}
