//! Live status: follows Incus's `/1.0/events` (lifecycle) and turns each event about a sandbox
//! into its new state — no polling. After a (re)connect every sandbox is re-sent, since events
//! may have been missed while the daemon was away.
use tokio::sync::mpsc;

use super::Changed;
use crate::engine::sandbox;
use crate::engine::validate::sandbox_of;
use crate::incus::{EventMsg, Incus};

pub fn follow(incus: Incus) -> mpsc::Receiver<Changed> {
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(async move {
        let mut events = incus.follow_events("lifecycle");
        let mut connected_before = false;
        while let Some(msg) = events.recv().await {
            match msg {
                EventMsg::Connected => {
                    if connected_before && let Ok(all) = sandbox::list(&incus).await {
                        for s in all {
                            if tx.send(Changed { name: s.name.clone(), sandbox: Some(s) }).await.is_err() {
                                return;
                            }
                        }
                    }
                    connected_before = true;
                }
                EventMsg::Disconnected(why) => tracing::info!("incus events: {why}; reconnecting"),
                EventMsg::Event(ev) => {
                    let Some((action, instance)) = ev.lifecycle() else { continue };
                    let Some(name) = sandbox_of(instance) else { continue };
                    // Intermediate steps (e.g. file pushes) are not state changes worth a message.
                    if action.starts_with("instance-file") || action.starts_with("instance-log") {
                        continue;
                    }
                    let s = match sandbox::get(&incus, name).await {
                        Ok(s) => s,
                        Err(e) => {
                            tracing::debug!("changed {name}: {e}");
                            continue;
                        }
                    };
                    if tx.send(Changed { name: name.to_string(), sandbox: s }).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    rx
}

/// Denials as they happen, for every restricted sandbox running on this host: the filters' logs
/// are read once a second and each refusal whose count grew is sent (what was refused before
/// the call is not replayed; `sandbox/denials` lists it).
pub fn follow_denials() -> mpsc::Receiver<super::Denied> {
    use std::collections::HashMap;

    use crate::engine::egress::{denials, paths};
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(async move {
        let mut seen: HashMap<(String, String, String), u32> = HashMap::new();
        let mut first = true;
        loop {
            let names: Vec<String> = paths::marked().into_iter().filter(|n| paths::list_file(n).exists()).collect();
            let found = tokio::task::spawn_blocking(move || {
                names.into_iter().map(|n| (denials::collect(&n, None, 0.0), n)).collect::<Vec<_>>()
            })
            .await
            .unwrap_or_default();
            for (list, name) in found {
                for d in list {
                    let key = (name.clone(), d.domain.clone(), d.kind.clone());
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
