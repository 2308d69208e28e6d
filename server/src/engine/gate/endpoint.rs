//! The gate's endpoint for a sandbox: `git.sock` in the sandbox's directory of the host daemon
//! (anthropic/daemon.rs — one daemon serves every per-sandbox service), opened and closed with
//! the sandbox's registration there. Each connection is one git request: a fetch refreshes the
//! mirror from the server, then `git upload-pack` serves it; a push goes into `git receive-pack`
//! on the mirror, whose pre-receive hook (`sandbox __git-gate-hook`, hook.rs) checks every ref
//! update and forwards the allowed ones to the server — the mirror's refs move only once the server
//! took them. One request at a time per sandbox (the mirror is shared).
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

use super::wire::{self, Service};
use super::{Register, SOCKET, mirror};
use crate::engine::creds::RepoRef;

/// Connections a sandbox may have open at once (more are refused).
const MAX_CONNECTIONS: usize = 8;
/// How long a client has to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// A git process serving one request ends after this long, whatever it is doing.
const SESSION_LIMIT: Duration = Duration::from_secs(3600);

pub const HOOK: &str = "#!/bin/sh\n# Written by Agent Sandboxes: the push gate's check (see `sandbox __git-gate-hook`).\nexec \"$SANDBOX_GATE_EXE\" __git-gate-hook\n";

/// An open endpoint: its registration (replaced in place when the sandbox registers again, say
/// once its branch is known), its end, and the one-request-at-a-time turn of its mirror.
struct Endpoint {
    reg: Arc<Mutex<Register>>,
    stop: CancellationToken,
    turn: Arc<tokio::sync::Mutex<()>>,
}

/// The daemon's open endpoints (one daemon per `~/.sandbox`).
static ENDPOINTS: LazyLock<Mutex<HashMap<String, Endpoint>>> = LazyLock::new(Default::default);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn socket_path(name: &str) -> PathBuf {
    crate::engine::anthropic::endpoint_dir(name).join(SOCKET)
}

/// Opens the sandbox's gate socket in its (existing) directory, or gives the open one this
/// registration; `None` closes it. It ends with `parent` (the sandbox's entry in the daemon).
pub fn open(name: &str, reg: Option<&Register>, parent: &CancellationToken) -> Result<(), String> {
    let Some(reg) = reg else {
        close(name, false);
        return Ok(());
    };
    reg.check()?;
    let sock = socket_path(name);
    let mut all = lock(&ENDPOINTS);
    if let Some(e) = all.get(name)
        && !e.stop.is_cancelled()
        && sock.exists()
    {
        *lock(&e.reg) = reg.clone();
        return Ok(());
    }
    if let Some(old) = all.remove(name) {
        old.stop.cancel();
    }
    let listener = crate::engine::anthropic::bind_socket(&sock)?;
    let e = Endpoint { reg: Arc::new(Mutex::new(reg.clone())), stop: parent.child_token(), turn: Default::default() };
    tokio::spawn(accept(name.to_string(), listener, e.reg.clone(), e.turn.clone(), e.stop.clone()));
    all.insert(name.to_string(), e);
    Ok(())
}

/// Closes the endpoint (stop: its mirror stays for the next start; removed: the mirror goes).
pub fn close(name: &str, removed: bool) {
    if let Some(e) = lock(&ENDPOINTS).remove(name) {
        e.stop.cancel();
    }
    let _ = std::fs::remove_file(socket_path(name));
    if removed {
        forget(name);
    }
}

/// What the gate kept for a removed sandbox (also when no daemon runs).
pub fn forget(name: &str) {
    let _ = std::fs::remove_dir_all(mirror::mirror_dir(name));
}

async fn accept(
    name: String,
    listener: UnixListener,
    reg: Arc<Mutex<Register>>,
    turn: Arc<tokio::sync::Mutex<()>>,
    stop: CancellationToken,
) {
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
        let reg = lock(&reg).clone();
        let (name, turn, stop) = (name.clone(), turn.clone(), stop.clone());
        tokio::spawn(async move {
            if let Err(e) = request(&name, &reg, &turn, stream, &stop).await {
                tracing::warn!("{name}: git gate: {e}");
            }
            drop(permit);
        });
    }
}

/// The paths a sandbox may ask for: `/OWNER/REPO` with or without `.git`.
fn path_ok(reg: &Register, path: &str) -> bool {
    let Ok(repo) = RepoRef::parse(&reg.url) else { return false };
    let p = path.strip_suffix(".git").unwrap_or(path);
    p == format!("/{}", repo.slug())
}

async fn request(
    name: &str,
    reg: &Register,
    turn: &tokio::sync::Mutex<()>,
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
    let mut cmd = git_for(name, reg, &dir, &req);
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
    let what = format!("{} {}", req.service.command(), req.path);
    match status {
        Some(s) if s.success() => Ok(()),
        Some(s) => Err(format!("{what} ended with {s}")),
        None => {
            let _ = child.kill().await;
            Err(format!("{what} cut (stopped, or past {}s)", SESSION_LIMIT.as_secs()))
        }
    }
}

/// `git upload-pack` or `git receive-pack` on the mirror, its hook told who pushes and where to.
fn git_for(name: &str, reg: &Register, dir: &Path, req: &wire::Request) -> tokio::process::Command {
    let mut cmd = mirror::git(reg);
    cmd.arg("-c").arg(format!("core.hooksPath={}", mirror::hooks_dir().display()));
    match req.service {
        Service::UploadPack => cmd.args(["upload-pack", "--strict", "--timeout=600"]),
        Service::ReceivePack => cmd.arg("receive-pack"),
    };
    cmd.arg(dir)
        .env("GIT_PROTOCOL", req.protocol.as_deref().unwrap_or(""))
        .env("SANDBOX_GATE_EXE", format!("/proc/{}/exe", std::process::id()))
        .env("SANDBOX_GATE_NAME", name)
        .env("SANDBOX_GATE_URL", &reg.url)
        .env("SANDBOX_GATE_BRANCH", reg.branch.as_deref().unwrap_or(""))
        .env("SANDBOX_HOME", crate::paths::sandbox_home())
        .kill_on_drop(true);
    cmd
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
