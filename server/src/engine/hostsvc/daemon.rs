//! A service's daemon (`sandbox __SERVICE`): one per service and `~/.sandbox`, in its own session.
//! It serves the control socket (health / register / unregister / shutdown) and one socket per
//! registered sandbox (the service's `Endpoints::serve`), restores the registrations kept on disk
//! when it starts, forgets sandboxes whose instance is gone, and ends once none is left.
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use futures::future::BoxFuture;
use serde_json::Value;
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;

use super::{Health, Release, Service};
use crate::engine::validate;
use crate::incus::Incus;

/// With no sandbox left for this long, the daemon ends.
const IDLE_EXIT: Duration = Duration::from_secs(5);
/// How often registered sandboxes are checked to still exist (one removed behind our back).
const PRUNE_EVERY: Duration = Duration::from_secs(30);

/// What a service does with its sandboxes' sockets.
pub trait Endpoints: Send + Sync + 'static {
    /// The socket's file name in the sandbox's directory.
    fn socket_file(&self) -> &'static str;
    /// Checks a registration before its socket is opened (a stored one that fails is dropped).
    fn accept(&self, name: &str, reg: &Value) -> Result<(), String>;
    /// Serves the sandbox's socket until `stop` is cancelled.
    fn serve(
        self: Arc<Self>,
        name: String,
        reg: Value,
        listener: UnixListener,
        stop: CancellationToken,
    ) -> BoxFuture<'static, ()>;
    /// The sandbox left: stopped, or removed (then what was kept for it goes).
    fn release(&self, name: &str, how: Release);
}

struct Entry {
    reg: Value,
    stop: CancellationToken,
}

struct Daemon<E> {
    svc: Service,
    endpoints: Arc<E>,
    sandboxes: Mutex<HashMap<String, Entry>>,
    shutdown: CancellationToken,
    empty_since: Mutex<Option<Instant>>,
}

type Shared<E> = Arc<Daemon<E>>;

fn set_mode(p: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
}

/// The daemon's entry point. Returns when it is told to end, or when no sandbox is left.
pub async fn run<E: Endpoints>(svc: Service, endpoints: E) -> anyhow::Result<()> {
    // Its own session: a terminal closing (SIGHUP) or the sidecar ending does not end it.
    let _ = nix::unistd::setsid();
    let dir = svc.root();
    crate::engine::creds::private_dir(&dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    let lock = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(dir.join("daemon.lock"))?;
    let Ok(_lock) = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusiveNonblock) else {
        return Ok(()); // another daemon serves this ~/.sandbox
    };
    let sock = svc.control_socket();
    let _ = std::fs::remove_file(&sock);
    let listener = UnixListener::bind(&sock)?;
    set_mode(&sock, 0o600)?;
    std::fs::write(dir.join("daemon.pid"), format!("{}\n", std::process::id()))?;
    let d: Shared<E> = Arc::new(Daemon {
        svc,
        endpoints: Arc::new(endpoints),
        sandboxes: Mutex::new(HashMap::new()),
        shutdown: CancellationToken::new(),
        empty_since: Mutex::new(Some(Instant::now())),
    });
    restore(&d);
    tokio::spawn(janitor(d.clone()));
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
        .route("/health", get(health::<E>))
        .route("/sandboxes/{name}", put(register::<E>).delete(unregister::<E>))
        .route("/shutdown", post(shutdown::<E>))
        .with_state(d.clone());
    let stop = d.shutdown.clone();
    axum::serve(listener, app).with_graceful_shutdown(async move { stop.cancelled().await }).await?;
    let names: Vec<String> = d.sandboxes.lock().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect();
    for n in names {
        close(&d, &n, Release::Stop);
    }
    let _ = std::fs::remove_file(&sock);
    let _ = std::fs::remove_file(dir.join("daemon.pid"));
    Ok(())
}

/// Sandboxes registered before this daemon started (it was killed, or the host rebooted).
fn restore<E: Endpoints>(d: &Shared<E>) {
    let Ok(entries) = std::fs::read_dir(d.svc.root().join("state")) else { return };
    for e in entries.flatten() {
        let path = e.path();
        let Some(name) = path.file_stem().and_then(|s| s.to_str()).map(str::to_owned) else { continue };
        let reg = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice::<Value>(&b).ok());
        match reg {
            Some(r) if validate::sandbox_name(&name).is_ok() => {
                if let Err(e) = open(d, &name, r) {
                    tracing::warn!("{name}: not restored: {e}");
                    let _ = std::fs::remove_file(&path);
                }
            }
            _ => {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
}

async fn health<E: Endpoints>(State(d): State<Shared<E>>) -> Json<Health> {
    let mut sandboxes: Vec<String> = d.sandboxes.lock().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect();
    sandboxes.sort();
    Json(Health { pid: std::process::id(), version: env!("CARGO_PKG_VERSION").into(), sandboxes })
}

async fn register<E: Endpoints>(
    State(d): State<Shared<E>>,
    UrlPath(name): UrlPath<String>,
    Json(reg): Json<Value>,
) -> (StatusCode, String) {
    match open(&d, &name, reg) {
        Ok(()) => (StatusCode::OK, String::new()),
        Err(e) => (StatusCode::BAD_REQUEST, e),
    }
}

async fn unregister<E: Endpoints>(
    State(d): State<Shared<E>>,
    UrlPath(name): UrlPath<String>,
    Json(how): Json<Release>,
) -> StatusCode {
    if validate::sandbox_name(&name).is_err() {
        return StatusCode::BAD_REQUEST;
    }
    close(&d, &name, how);
    StatusCode::OK
}

async fn shutdown<E: Endpoints>(State(d): State<Shared<E>>) -> StatusCode {
    d.shutdown.cancel();
    StatusCode::OK
}

/// Opens (or re-opens) a sandbox's socket. One still served with the same registration is left
/// as it is (its open connections go on).
fn open<E: Endpoints>(d: &Shared<E>, name: &str, reg: Value) -> Result<(), String> {
    validate::sandbox_name(name).map_err(|e| e.to_string())?;
    d.endpoints.accept(name, &reg)?;
    let sock = d.svc.socket_path(name, d.endpoints.socket_file()).map_err(|e| e.to_string())?;
    {
        let mut all = d.sandboxes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = all.get(name)
            && !e.stop.is_cancelled()
            && e.reg == reg
            && sock.exists()
        {
            return Ok(());
        }
        if let Some(old) = all.remove(name) {
            old.stop.cancel();
        }
    }
    let dir = d.svc.endpoint_dir(name);
    std::fs::create_dir_all(&dir).and_then(|_| set_mode(&dir, 0o755)).map_err(|e| format!("{}: {e}", dir.display()))?;
    let _ = std::fs::remove_file(&sock);
    let listener = UnixListener::bind(&sock).map_err(|e| format!("{}: {e}", sock.display()))?;
    // Inside, an unprivileged user (an unmapped uid here) must be able to connect: the directory,
    // reachable only through the sandbox's own device and the 0700 tree here, is the boundary.
    set_mode(&sock, 0o666).map_err(|e| e.to_string())?;
    let body = serde_json::to_vec(&reg).expect("serialisable");
    crate::paths::write_atomic(&d.svc.state_file(name), &body, 0o600).map_err(|e| e.to_string())?;
    let stop = CancellationToken::new();
    let served = d.endpoints.clone().serve(name.to_string(), reg.clone(), listener, stop.clone());
    d.sandboxes.lock().unwrap_or_else(|e| e.into_inner()).insert(name.to_string(), Entry { reg, stop });
    *d.empty_since.lock().unwrap_or_else(|e| e.into_inner()) = None;
    tokio::spawn(served);
    Ok(())
}

/// Closes a sandbox's endpoint: no new connection, the socket file gone; on removal its
/// directory and what the service kept go too.
fn close<E: Endpoints>(d: &Shared<E>, name: &str, how: Release) {
    let entry = d.sandboxes.lock().unwrap_or_else(|e| e.into_inner()).remove(name);
    if let Some(e) = entry {
        e.stop.cancel();
    }
    let _ = std::fs::remove_file(d.svc.endpoint_dir(name).join(d.endpoints.socket_file()));
    let _ = std::fs::remove_file(d.svc.state_file(name));
    if how == Release::Remove {
        let _ = std::fs::remove_dir_all(d.svc.endpoint_dir(name));
    }
    d.endpoints.release(name, how);
    if d.sandboxes.lock().unwrap_or_else(|e| e.into_inner()).is_empty() {
        d.empty_since.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert_with(Instant::now);
    }
}

/// Forgets sandboxes whose instance is gone, and ends the daemon once nothing is registered.
async fn janitor<E: Endpoints>(d: Shared<E>) {
    let incus = Incus::local().ok();
    let mut last_prune = Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = d.shutdown.cancelled() => return,
        }
        if let Some(incus) = incus.as_ref().filter(|_| last_prune.elapsed() > PRUNE_EVERY) {
            last_prune = Instant::now();
            let names: Vec<String> = d.sandboxes.lock().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect();
            for n in names {
                if let Err(e) = incus.instance(&validate::instance_name(&n)).await
                    && e.is_not_found()
                {
                    close(&d, &n, Release::Remove);
                }
            }
        }
        let idle = d.empty_since.lock().unwrap_or_else(|e| e.into_inner()).is_some_and(|t| t.elapsed() > IDLE_EXIT);
        if idle && d.sandboxes.lock().unwrap_or_else(|e| e.into_inner()).is_empty() {
            d.shutdown.cancel();
            return;
        }
    }
}
