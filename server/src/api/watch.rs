//! Live state, pushed: follows Incus's `/1.0/events` (lifecycle) and turns each event about a
//! sandbox into its new state, and each change of the daemon's reachability or of the golden
//! images into a new server status — no polling. After a (re)connect every sandbox is re-sent,
//! since events may have been missed while the daemon was away.
use tokio::sync::mpsc;

use super::Changed;
use super::status::{self, ServerStatus};
use crate::engine::validate::sandbox_of;
use crate::engine::{Engine, sandbox};
use crate::incus::{EventMsg, Incus};

/// What the event stream tells a client.
#[derive(Debug, Clone)]
pub enum Push {
    Changed(Changed),
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

pub fn follow(engine: Engine) -> mpsc::Receiver<Push> {
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(async move {
        let mut events = engine.incus.follow_events("lifecycle");
        let mut connected_before = false;
        let mut last: Option<ServerStatus> = None;
        while let Some(msg) = events.recv().await {
            let sent = match msg {
                EventMsg::Connected => {
                    let resent = !connected_before || resend_all(&engine.incus, &tx).await;
                    connected_before = true;
                    resent && push_status(&engine, &tx, &mut last).await
                }
                EventMsg::Disconnected(why) => {
                    tracing::info!("incus events: {why}; reconnecting");
                    push_status(&engine, &tx, &mut last).await
                }
                EventMsg::Event(ev) => {
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
                        Ok(s) => tx.send(Push::Changed(Changed { name: name.to_string(), sandbox: s })).await.is_ok(),
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
async fn resend_all(incus: &Incus, tx: &mpsc::Sender<Push>) -> bool {
    let Ok(all) = sandbox::list(incus).await else { return true };
    for s in all {
        if tx.send(Push::Changed(Changed { name: s.name.clone(), sandbox: Some(s) })).await.is_err() {
            return false;
        }
    }
    true
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
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    });
    rx
}
