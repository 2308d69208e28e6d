//! Live state, pushed: follows Incus's `/1.0/events` (lifecycle) and turns each event about a
//! sandbox into its new state, and each change of the daemon's reachability or of the golden
//! images into a new server status — no polling. After a (re)connect every sandbox is re-sent,
//! since events may have been missed while the daemon was away. Each follower ends as soon as its
//! receiver is dropped (a subscriber that vanished), closing its Incus event socket: nothing is
//! kept for it.
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::Changed;
use super::status::{self, ServerStatus};
use crate::engine::validate::sandbox_of;
use crate::engine::{Engine, sandbox};
use crate::incus::EventMsg;

/// What the event stream tells a client.
#[derive(Debug, Clone)]
pub enum Push {
    Changed(Box<Changed>),
    Status(ServerStatus),
}

/// Lifecycle actions on golden images (or their builds) that change which are built.
const GOLDEN_ACTIONS: [&str; 5] = [
    "instance-created",
    "instance-deleted",
    "instance-renamed",
    "instance-snapshot-created",
    "instance-snapshot-deleted",
];

/// Lifecycle actions that change whether Incus is set up for sandboxes (pool and bridge).
const SETUP_ACTIONS: [&str; 4] = ["storage-pool-created", "storage-pool-deleted", "network-created", "network-deleted"];

pub fn follow(engine: Engine) -> mpsc::Receiver<Push> {
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(async move {
        let mut events = engine.incus.follow_events("lifecycle");
        let mut connected_before = false;
        let mut last: Option<ServerStatus> = None;
        let healths = Healths::default();
        loop {
            // Waiting for the next event must not outlive the receiver: a subscriber that left
            // ends this follower (and its event socket) at once, not at the next event.
            let msg = tokio::select! {
                _ = tx.closed() => return,
                msg = events.recv() => match msg {
                    Some(m) => m,
                    None => return,
                },
            };
            let sent = match msg {
                EventMsg::Connected => {
                    let resent = !connected_before || resend_all(&engine, &tx, &healths).await;
                    connected_before = true;
                    resent && push_status(&engine, &tx, &mut last).await
                }
                EventMsg::Disconnected(why) => {
                    tracing::info!("incus events: {why}; reconnecting");
                    push_status(&engine, &tx, &mut last).await
                }
                EventMsg::Event(ev) => {
                    // The storage pool or bridge made or removed (`sandbox host install`, setup).
                    if ev.lifecycle_action().is_some_and(|a| SETUP_ACTIONS.contains(&a)) {
                        if !push_status(&engine, &tx, &mut last).await {
                            return;
                        }
                        continue;
                    }
                    let Some((action, instance)) = ev.lifecycle() else { continue };
                    let golden = ["golden-", "tmp-golden-", "tmp-old-golden-"].iter().any(|p| instance.starts_with(p));
                    if golden && GOLDEN_ACTIONS.contains(&action) && !push_status(&engine, &tx, &mut last).await {
                        return;
                    }
                    let Some(name) = sandbox_of(instance) else { continue };
                    // Intermediate steps (e.g. file pushes) are not state changes worth a message.
                    if action.starts_with("instance-file") || action.starts_with("instance-log") {
                        continue;
                    }
                    match sandbox::get(&engine.incus, name).await {
                        Ok(s) => healths.send(&engine, &tx, Changed { name: name.to_string(), sandbox: s }).await,
                        Err(e) => {
                            tracing::debug!("changed {name}: {e}");
                            true
                        }
                    }
                }
            };
            if !sent {
                return;
            }
        }
    });
    rx
}

/// Every sandbox again (after the daemon came back); false when the client is gone.
async fn resend_all(engine: &Engine, tx: &mpsc::Sender<Push>, healths: &Healths) -> bool {
    let Ok(all) = sandbox::list(&engine.incus).await else { return true };
    for s in all {
        if !healths.send(engine, tx, Changed { name: s.name.clone(), sandbox: Some(s) }).await {
            return false;
        }
    }
    true
}

/// How long after a change its health is probed: a create or start sends several events in a
/// row, and only the last one's probe runs.
const PROBE_AFTER: Duration = Duration::from_millis(300);

/// A sandbox whose sshd (port 22 inside) is not listening yet is still booting: probed again
/// this often, this many times at most (a sandbox whose sshd never comes is not probed for ever).
const BOOT_PROBE_EVERY: Duration = Duration::from_secs(1);
const BOOT_PROBES: u32 = 30;
const SSH_PORT: u16 = 22;

/// Health, pushed once known: each change goes out at once (without a probe), and for a running
/// sandbox a probe follows and is sent as a second `sandbox/changed` — unless a newer change of
/// that sandbox came meanwhile. Sends happen under one lock, so a late probe never overtakes a
/// newer state.
#[derive(Clone, Default)]
struct Healths {
    generations: Arc<tokio::sync::Mutex<HashMap<String, u64>>>,
}

impl Healths {
    /// Sends a change; false when the client is gone.
    async fn send(&self, engine: &Engine, tx: &mpsc::Sender<Push>, c: Changed) -> bool {
        let mut gens = self.generations.lock().await;
        let running = c.sandbox.as_ref().is_some_and(sandbox::Sandbox::is_running);
        let generation = match &c.sandbox {
            Some(_) => {
                let g = gens.entry(c.name.clone()).or_default();
                *g += 1;
                *g
            }
            None => {
                gens.remove(&c.name);
                0
            }
        };
        let sent = tx.send(Push::Changed(Box::new(c.clone()))).await.is_ok();
        drop(gens);
        if sent && running {
            self.probe_later(engine.clone(), tx.clone(), c, generation);
        }
        sent
    }

    fn probe_later(&self, engine: Engine, tx: mpsc::Sender<Push>, c: Changed, generation: u64) {
        let this = self.clone();
        tokio::spawn(async move {
            // A subscriber that left gets no probe (each one execs into the sandbox).
            tokio::select! {
                _ = tx.closed() => return,
                _ = tokio::time::sleep(PROBE_AFTER) => {}
            }
            let current = |gens: &HashMap<String, u64>| gens.get(&c.name) == Some(&generation);
            let Some(template) = c.sandbox else { return };
            // A sandbox still booting (its sshd not listening yet) sends no further event when
            // its boot ends: it is probed again until it has, and what the boot ended in is sent
            // (or the last probe's result, when its sshd never listens).
            for attempt in 0..BOOT_PROBES {
                if attempt > 0 {
                    tokio::select! {
                        _ = tx.closed() => return,
                        _ = tokio::time::sleep(BOOT_PROBE_EVERY) => {}
                    }
                }
                if !current(&*this.generations.lock().await) {
                    return;
                }
                let mut s = template.clone();
                sandbox::probe_health(&engine.incus, std::slice::from_mut(&mut s)).await;
                let booted = s.health.as_ref().is_some_and(|h| h.listening.iter().any(|l| l.port == SSH_PORT));
                let gens = this.generations.lock().await;
                if s.health.is_none() || !current(&gens) {
                    return;
                }
                if booted || attempt + 1 == BOOT_PROBES {
                    let _ = tx.send(Push::Changed(Box::new(Changed { name: c.name.clone(), sandbox: Some(s) }))).await;
                    return;
                }
            }
        });
    }
}

/// The status, when it differs from the last one sent; false when the client is gone.
async fn push_status(engine: &Engine, tx: &mpsc::Sender<Push>, last: &mut Option<ServerStatus>) -> bool {
    let now = status::current(engine).await;
    if last.as_ref() == Some(&now) {
        return true;
    }
    *last = Some(now.clone());
    tx.send(Push::Status(now)).await.is_ok()
}

/// Denials as they happen, for every restricted sandbox running on this host: the filters' logs
/// are read once a second and each refusal whose count grew is sent (what was refused before
/// the call is not replayed; `sandbox/denials` lists it). Started per subscriber, and ends with it.
pub fn follow_denials() -> mpsc::Receiver<super::Denied> {
    use std::collections::HashMap;

    use crate::engine::egress::{denials, paths};
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(async move {
        let mut seen: HashMap<(String, String, denials::DenialKind), u32> = HashMap::new();
        let mut first = true;
        while !tx.is_closed() {
            let names: Vec<String> = paths::marked().into_iter().filter(|n| paths::list_file(n).exists()).collect();
            let found = tokio::task::spawn_blocking(move || {
                names.into_iter().map(|n| (denials::collect(&n, None, 0.0), n)).collect::<Vec<_>>()
            })
            .await
            .unwrap_or_default();
            for (list, name) in found {
                for d in list {
                    let key = (name.clone(), d.domain.clone(), d.kind);
                    let before = seen.insert(key, d.count).unwrap_or(0);
                    if !first
                        && d.count > before
                        && tx.send(super::Denied { name: name.clone(), denial: d }).await.is_err()
                    {
                        return;
                    }
                }
            }
            first = false;
            tokio::select! {
                _ = tx.closed() => return,
                _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            }
        }
    });
    rx
}
