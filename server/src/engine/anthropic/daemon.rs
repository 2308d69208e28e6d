//! The host daemon for per-sandbox services, `sandbox __anthropic-proxy`: one per `~/.sandbox`,
//! in its own session. It serves the control socket (register / unregister / health / shutdown)
//! and, for each registered sandbox, sockets in that sandbox's directory: the Anthropic API
//! (`api.sock`, see forward.rs), Claude Code's hooks (`hooks.sock`, see agents/relay.rs) and, for
//! a sandbox behind the push gate, git (`git.sock`, see gate/endpoint.rs). It writes the token
//! counters (and the relays' lazy changes) to Incus at most every FLUSH_EVERY. Registrations are kept in `state/NAME.json`, so a daemon started
//! again (after a kill) serves the sandboxes that are still there; it ends by itself once no
//! sandbox is left.
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use tokio_util::sync::CancellationToken;

use super::control::{Health, Register, Release, control_socket};
use super::state::{Daemon, Entry, MAX_IN_FLIGHT};
use super::usage::{self, Usage};
use super::{endpoint_dir, hooks_socket_path, root, socket_path, upstream};
use crate::engine::validate;
use crate::incus::{Config, Devices, Incus};

const FLUSH_EVERY: Duration = Duration::from_secs(2);
/// How often registered sandboxes are checked to still exist (one removed behind our back).
const PRUNE_EVERY: Duration = Duration::from_secs(30);
/// With no sandbox left for this long, the daemon ends.
const IDLE_EXIT: Duration = Duration::from_secs(5);
type Shared = Arc<Daemon>;

fn state_file(name: &str) -> std::path::PathBuf {
    root().join("state").join(format!("{name}.json"))
}

/// The daemon's entry point. Returns when it is told to end, or when no sandbox is left.
pub async fn run() -> anyhow::Result<()> {
    // Its own session: a terminal closing (SIGHUP) or the sidecar ending does not end it.
    let _ = nix::unistd::setsid();
    let dir = root();
    crate::engine::creds::private_dir(&dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    crate::engine::creds::private_dir(&crate::engine::gate::root()).map_err(|e| anyhow::anyhow!("{e}"))?;
    crate::engine::gate::endpoint::write_hook()?;
    let lock = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(dir.join("daemon.lock"))?;
    let _lock = match nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        Ok(l) => l,
        Err(_) => return Ok(()), // another daemon serves this ~/.sandbox
    };
    let sock = control_socket();
    let _ = std::fs::remove_file(&sock);
    let listener = tokio::net::UnixListener::bind(&sock)?;
    set_mode(&sock, 0o600)?;
    std::fs::write(dir.join("daemon.pid"), format!("{}\n", std::process::id()))?;
    let d: Shared = Arc::new(Daemon {
        sandboxes: Mutex::new(HashMap::new()),
        http: super::state::upstream_client(),
        incus: Incus::local().ok(),
        shutdown: CancellationToken::new(),
        empty_since: Mutex::new(Some(Instant::now())),
    });
    restore(&d).await;
    tokio::spawn(flusher(d.clone()));
    {
        let d = d.clone();
        tokio::spawn(async move {
            if let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                term.recv().await;
                d.shutdown.cancel();
            }
        });
    }
    let app = axum::Router::new()
        .route("/health", get(health))
        .route("/sandboxes/{name}", put(register).delete(unregister))
        .route("/shutdown", post(shutdown))
        .with_state(d.clone());
    let stop = d.shutdown.clone();
    axum::serve(listener, app).with_graceful_shutdown(async move { stop.cancelled().await }).await?;
    // Everything registered goes, counters first.
    let names: Vec<String> = d.sandboxes.lock().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect();
    for n in names {
        close(&d, &n, Release::Stop).await;
    }
    let _ = std::fs::remove_file(&sock);
    let _ = std::fs::remove_file(dir.join("daemon.pid"));
    Ok(())
}

fn set_mode(p: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
}

/// Sandboxes registered before this daemon started (it was killed, or the host rebooted).
async fn restore(d: &Shared) {
    let Ok(entries) = std::fs::read_dir(root().join("state")) else { return };
    for e in entries.flatten() {
        let path = e.path();
        let Some(name) = path.file_stem().and_then(|s| s.to_str()).map(str::to_owned) else { continue };
        let reg = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice::<Register>(&b).ok());
        match reg {
            Some(r) if validate::sandbox_name(&name).is_ok() => {
                if let Err(e) = open(d, &name, &r).await {
                    tracing::warn!("{name}: not restored: {e}");
                }
            }
            _ => {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
}

async fn health(State(d): State<Shared>) -> Json<Health> {
    let mut sandboxes: Vec<String> = d.sandboxes.lock().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect();
    sandboxes.sort();
    Json(Health { pid: std::process::id(), version: env!("CARGO_PKG_VERSION").into(), sandboxes })
}

async fn register(
    State(d): State<Shared>,
    UrlPath(name): UrlPath<String>,
    Json(r): Json<Register>,
) -> (StatusCode, String) {
    match open(&d, &name, &r).await {
        Ok(()) => (StatusCode::OK, String::new()),
        Err(e) => (StatusCode::BAD_REQUEST, e),
    }
}

async fn unregister(State(d): State<Shared>, UrlPath(name): UrlPath<String>, Json(how): Json<Release>) -> StatusCode {
    if validate::sandbox_name(&name).is_err() {
        return StatusCode::BAD_REQUEST;
    }
    close(&d, &name, how).await;
    StatusCode::OK
}

async fn shutdown(State(d): State<Shared>) -> StatusCode {
    d.shutdown.cancel();
    StatusCode::OK
}

/// Opens (or re-opens) a sandbox's sockets. An entry whose servers still run and whose socket
/// files are in place only gets the new upstream and gate registration (and, `fresh`, forgets
/// its agent sessions); its counters are kept.
async fn open(d: &Shared, name: &str, r: &Register) -> Result<(), String> {
    validate::sandbox_name(name).map_err(|e| e.to_string())?;
    let upstream = upstream::parse(&r.upstream).map_err(|e| e.to_string())?;
    let fresh = r.fresh;
    let (sock, hooks) = (socket_path(name), hooks_socket_path(name));
    let old = {
        let mut all = d.sandboxes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = all.get_mut(name)
            && !e.stop.is_cancelled()
            && sock.exists()
            && hooks.exists()
        {
            e.upstream = upstream;
            if fresh {
                e.agents.forget();
            }
            let stop = e.stop.clone();
            drop(all);
            crate::engine::gate::endpoint::open(name, r.git.as_ref(), &stop)?;
            return save_state(name, r);
        }
        all.remove(name)
    };
    if let Some(old) = old {
        old.stop.cancel();
        old.agents.close().await;
    }
    let dir = endpoint_dir(name);
    std::fs::create_dir_all(&dir).and_then(|_| set_mode(&dir, 0o755)).map_err(|e| format!("{}: {e}", dir.display()))?;
    let listener = bind(&sock)?;
    let hooks_listener = bind(&hooks)?;
    let stored = stored_config(d, name).await;
    let usage =
        Usage::from_config(stored.as_ref().and_then(|c| c.get(usage::KEY)).map(String::as_str)).unwrap_or_default();
    let agents = crate::engine::agents::relay::Relay::new(name, d.incus.clone(), stored.as_ref().filter(|_| !fresh));
    agents.serve(hooks_listener);
    let stop = CancellationToken::new();
    let entry = Entry {
        upstream,
        usage,
        dirty: false,
        stop: stop.clone(),
        limit: Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT)),
        agents,
    };
    d.sandboxes.lock().unwrap_or_else(|e| e.into_inner()).insert(name.to_string(), entry);
    *d.empty_since.lock().unwrap_or_else(|e| e.into_inner()) = None;
    crate::engine::gate::endpoint::open(name, r.git.as_ref(), &stop)?;
    let app = super::forward::router(d.clone(), name.to_string());
    tokio::spawn(async move {
        let served = axum::serve(listener, app).with_graceful_shutdown(async move { stop.cancelled().await });
        if let Err(e) = served.await {
            tracing::warn!("endpoint server ended: {e}");
        }
    });
    save_state(name, r)
}

/// A socket the sandbox connects to. Inside, ubuntu (an unmapped uid on the host) must be able
/// to: the directory, reachable only through the sandbox's own device and root's 0700 tree
/// here, is the boundary.
pub(crate) fn bind(path: &Path) -> Result<tokio::net::UnixListener, String> {
    let _ = std::fs::remove_file(path);
    let listener = tokio::net::UnixListener::bind(path).map_err(|e| format!("{}: {e}", path.display()))?;
    set_mode(path, 0o666).map_err(|e| e.to_string())?;
    Ok(listener)
}

fn save_state(name: &str, r: &Register) -> Result<(), String> {
    let body = serde_json::to_vec(&Register { fresh: false, ..r.clone() }).expect("serialisable");
    crate::paths::write_atomic(&state_file(name), &body, 0o600).map_err(|e| e.to_string())
}

/// Counting (and the agent sessions) go on from what Incus holds: a daemon started again loses
/// nothing written. None before the instance exists (a create registers first).
async fn stored_config(d: &Shared, name: &str) -> Option<Config> {
    d.incus.as_ref()?.instance(&validate::instance_name(name)).await.ok().map(|inst| inst.config)
}

/// Closes a sandbox's endpoint: no new connection, the socket file gone; counters flushed on stop.
async fn close(d: &Shared, name: &str, how: Release) {
    let entry = d.sandboxes.lock().unwrap_or_else(|e| e.into_inner()).remove(name);
    let _ = std::fs::remove_file(socket_path(name));
    let _ = std::fs::remove_file(hooks_socket_path(name));
    let _ = std::fs::remove_file(state_file(name));
    crate::engine::gate::endpoint::close(name, how == Release::Remove);
    if how == Release::Remove {
        let _ = std::fs::remove_dir_all(endpoint_dir(name));
    }
    if let Some(e) = entry {
        e.stop.cancel();
        // Returns once the relay will write nothing more (the engine resets the state next).
        e.agents.close().await;
        if how == Release::Stop && e.dirty {
            let _ = write_usage(d, name, &e.usage).await;
        }
    }
    if d.sandboxes.lock().unwrap_or_else(|e| e.into_inner()).is_empty() {
        d.empty_since.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert_with(Instant::now);
    }
}

/// Ok(false): the instance is gone.
async fn write_usage(d: &Shared, name: &str, u: &Usage) -> Result<bool, String> {
    let Some(incus) = &d.incus else { return Ok(true) };
    let mut c = Config::new();
    c.insert(usage::KEY.into(), u.to_config());
    match incus.patch_instance(&validate::instance_name(name), c, Devices::new()).await {
        Ok(()) => Ok(true),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e.to_string()),
    }
}

/// Writes changed counters (at most every FLUSH_EVERY), forgets sandboxes whose instance is gone,
/// and ends the daemon when nothing has been registered for IDLE_EXIT.
async fn flusher(d: Shared) {
    let mut last_prune = Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(FLUSH_EVERY) => {}
            _ = d.shutdown.cancelled() => return,
        }
        let dirty: Vec<(String, Usage)> = {
            let mut all = d.sandboxes.lock().unwrap_or_else(|e| e.into_inner());
            all.values().for_each(|e| e.agents.flush());
            all.iter_mut()
                .filter(|(_, e)| e.dirty)
                .map(|(n, e)| {
                    e.dirty = false;
                    (n.clone(), e.usage.clone())
                })
                .collect()
        };
        for (name, u) in dirty {
            match write_usage(&d, &name, &u).await {
                Ok(true) => {}
                Ok(false) => close(&d, &name, Release::Remove).await,
                Err(e) => {
                    tracing::warn!("{name}: counters not written: {e}");
                    if let Some(entry) = d.sandboxes.lock().unwrap_or_else(|e| e.into_inner()).get_mut(&name) {
                        entry.dirty = true;
                    }
                }
            }
        }
        if last_prune.elapsed() > PRUNE_EVERY {
            last_prune = Instant::now();
            prune(&d).await;
        }
        let idle = d.empty_since.lock().unwrap_or_else(|e| e.into_inner()).is_some_and(|t| t.elapsed() > IDLE_EXIT);
        if idle && d.sandboxes.lock().unwrap_or_else(|e| e.into_inner()).is_empty() {
            d.shutdown.cancel();
            return;
        }
    }
}

async fn prune(d: &Shared) {
    let Some(incus) = &d.incus else { return };
    let names: Vec<String> = d.sandboxes.lock().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect();
    for n in names {
        if let Err(e) = incus.instance(&validate::instance_name(&n)).await
            && e.is_not_found()
        {
            close(d, &n, Release::Remove).await;
        }
    }
}
