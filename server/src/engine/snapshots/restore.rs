//! `sandbox restore NAME LABEL`: the sandbox's disk goes back to the snapshot — files, installed
//! packages, everything — while what makes it this sandbox stays as it is now: identity (host key,
//! machine-id, hostname), slot, address and ports, deploy key and agent, egress policy and allowlist
//! changes, forwards, token counters, the records of every snapshot. A running sandbox is stopped
//! for it and started again (egress policy, agent and ssh entry back in place, as on any start).
//!
//! Incus restores a snapshot's config and devices along with its disk, so ours are put back right
//! after, from a journal written on the host before anything changes: a restore interrupted at any
//! point (Ctrl-C, a kill, a crash) is finished by the next `restore` or `start` of that sandbox.
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::{is_volatile, settings, snapshot_not_found};
use crate::engine::create::CreateOptions;
use crate::engine::creds::Token;
use crate::engine::sandbox::{self, Sandbox, SandboxState};
use crate::engine::{Engine, keys, validate};
use crate::error::{EngineError, Result};
use crate::incus::{Config, Devices};
use crate::progress::Progress;

/// What the sandbox was before the restore (its settings and devices), and whether it ran.
#[derive(Debug, Serialize, Deserialize)]
struct Journal {
    /// The instance's `volatile.uuid`: a journal never applies to another sandbox of that name.
    uuid: String,
    label: String,
    config: Config,
    devices: Devices,
}

fn journal_path(name: &str) -> PathBuf {
    crate::paths::sandbox_home().join("restores").join(format!("{name}.json"))
}

fn read_journal(name: &str) -> Option<Journal> {
    serde_json::from_slice(&std::fs::read(journal_path(name)).ok()?).ok()
}

fn remove_journal(name: &str) -> Result<()> {
    match std::fs::remove_file(journal_path(name)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(EngineError::failed(format!("cannot remove {}: {e}", journal_path(name).display()), "check ~/.sandbox"))
        }
        _ => Ok(()),
    }
}

impl Engine {
    pub async fn restore(
        &self,
        name: &str,
        label: &str,
        progress: &dyn Progress,
        cancel: &CancellationToken,
    ) -> Result<Sandbox> {
        validate::snapshot_label(label, true)?;
        self.existing(name).await?;
        self.finish_restore(name).await?;
        let s = self.existing(name).await?;
        if !self.incus.snapshots(&s.instance).await?.iter().any(|r| r.name == label) {
            return Err(snapshot_not_found(name, label));
        }
        if cancel.is_cancelled() {
            return Err(EngineError::Cancelled);
        }
        let running = matches!(s.state, SandboxState::Running | SandboxState::Starting | SandboxState::Frozen);
        if running {
            progress.step(&format!("Stopping {name}"));
            self.stop_for_restore(name).await?;
        }
        // The journal is taken after the stop (which can take seconds): a pin, a counter or an
        // agent-state write made meanwhile is in it, not overwritten by an older copy.
        let inst = self.incus.instance(&s.instance).await?;
        let journal = Journal {
            uuid: inst.config.get("volatile.uuid").cloned().unwrap_or_default(),
            label: label.to_string(),
            config: settings(&inst.config),
            devices: inst.devices.clone(),
        };
        let bytes = serde_json::to_vec(&journal).map_err(|e| EngineError::failed(e.to_string(), ""))?;
        crate::paths::write(&journal_path(name), &bytes, 0o600)?;
        // From here on the restore runs to its end: a cancel would leave the disk half-way.
        progress.step(&format!("Restoring {name} to snapshot {label}"));
        let restored = self.incus.restore_snapshot(&s.instance, label).await;
        // Tests: a kill right here (the journal must finish it at the next start).
        self.fail_at("restore-after-restore")?;
        self.finish_restore(name).await?;
        if running {
            let o = CreateOptions { name: name.to_string(), ..Default::default() };
            self.start(&o, progress, &CancellationToken::new()).await?;
        }
        restored?;
        sandbox::get(&self.incus, name).await?.ok_or_else(|| EngineError::sandbox_not_found(name))
    }

    /// Stops NAME; Incus refuses while a config update runs (the host daemon writing the agent
    /// state or counters at that moment): tried again, for a few seconds.
    async fn stop_for_restore(&self, name: &str) -> Result<()> {
        let mut tries = 0;
        loop {
            let (_, stopped) = self.stop(&[name.to_string()], false, &Token::default()).await.remove(0);
            match stopped {
                Err(e) if tries < 10 && e.to_string().contains("busy") => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                }
                r => return r.map(|_| ()),
            }
        }
    }

    /// Puts back what a restore (maybe interrupted) took from the sandbox's settings and devices.
    /// True when there was one to finish.
    pub(crate) async fn finish_restore(&self, name: &str) -> Result<bool> {
        let Some(j) = read_journal(name) else { return Ok(false) };
        let instance = validate::instance_name(name);
        let inst = match self.incus.instance(&instance).await {
            Ok(i) => i,
            Err(e) if e.is_not_found() => {
                remove_journal(name)?;
                return Ok(false);
            }
            Err(e) => return Err(e.into()),
        };
        if inst.config.get("volatile.uuid").map(String::as_str).unwrap_or_default() != j.uuid {
            remove_journal(name)?;
            return Ok(false);
        }
        tracing::debug!("restore of {name} to {}: putting its settings back", j.label);
        self.incus
            .modify_instance(&instance, |i| {
                i.config.retain(|k, _| is_volatile(k));
                i.config.extend(j.config.iter().map(|(k, v)| (k.clone(), v.clone())));
                // The environment file on disk is the snapshot's: the next start writes it again.
                i.config.remove(keys::ENV_DIGEST);
                i.devices = j.devices.clone();
            })
            .await?;
        remove_journal(name)?;
        Ok(true)
    }
}
