//! Checkpoints taken by the host daemon when an agent's turn ends: the hook relay (agents/relay.rs)
//! hears Claude Code's Stop hook and calls `turn_ended`; one task per sandbox takes the checkpoint
//! (checkpoint.rs), so a slow snapshot never holds the relay up. What the sandbox sends is
//! untrusted: a burst of Stop events is coalesced into one checkpoint (the newest message) and at
//! most one is taken per MIN_GAP, so a hostile sandbox cannot turn its hook budget into a flood of
//! snapshots; the retention limit bounds the disk.
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::engine::{Engine, host::Host};
use crate::incus::Incus;

/// At most one checkpoint per sandbox in this time (real turns are seconds apart at least).
const MIN_GAP: Duration = Duration::from_millis(1000);

pub struct TurnCheckpoints {
    name: String,
    engine: Engine,
    /// The last assistant message of the newest turn not checkpointed yet.
    pending: Mutex<Option<String>>,
    wake: Notify,
    stop: CancellationToken,
}

impl TurnCheckpoints {
    /// Starts the sandbox's checkpoint task (ended by `close`).
    pub fn start(name: &str, incus: Incus) -> Arc<TurnCheckpoints> {
        let engine = Engine { incus, host: Host::local(), remote: crate::remotes::LOCAL.to_string() };
        let me = Arc::new(TurnCheckpoints {
            name: name.to_string(),
            engine,
            pending: Mutex::new(None),
            wake: Notify::new(),
            stop: CancellationToken::new(),
        });
        tokio::spawn(me.clone().run());
        me
    }

    /// An agent's turn ended with `message` (its last answer, already one sanitised line).
    pub fn turn_ended(&self, message: &str) {
        *self.pending.lock().unwrap_or_else(|e| e.into_inner()) = Some(message.to_string());
        self.wake.notify_one();
    }

    /// No more checkpoints (one being taken finishes).
    pub fn close(&self) {
        self.stop.cancel();
    }

    async fn run(self: Arc<Self>) {
        loop {
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = self.stop.cancelled() => return,
            }
            let Some(message) = self.pending.lock().unwrap_or_else(|e| e.into_inner()).take() else { continue };
            let started = std::time::Instant::now();
            match self.engine.checkpoint(&self.name, &message).await {
                Ok(Some(s)) => tracing::info!("{}: checkpoint {} in {:?}", self.name, s.label, started.elapsed()),
                Ok(None) => {}
                Err(e) => tracing::warn!("{}: no checkpoint taken: {e}", self.name),
            }
            tokio::select! {
                _ = tokio::time::sleep(MIN_GAP) => {}
                _ = self.stop.cancelled() => return,
            }
        }
    }
}
