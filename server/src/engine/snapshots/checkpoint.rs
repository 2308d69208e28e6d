//! Checkpoints: a snapshot at the end of every agent turn (`turn-N`, with the first line of the
//! agent's last message), so a bad turn can be undone with Rewind to This Turn. A sandbox keeps
//! its last `checkpoint-keep` (default 20; 0 takes none) plus any pinned; older ones go as new ones
//! are taken. A btrfs snapshot of a running container costs a few tens of milliseconds and only
//! the blocks that change afterwards (tests/bench/snapshots.py measures both).
use super::meta::{Meta, SnapshotInfo};
use crate::engine::{Engine, keys, validate};
use crate::error::{EngineError, Result};
use crate::incus::{Config, Devices, Instance};

/// How many checkpoints a sandbox keeps unless told otherwise.
pub const DEFAULT_KEEP: u32 = 20;
/// The most a sandbox may be told to keep.
pub const MAX_KEEP: u32 = 1000;

/// The sandbox's limit.
fn keep_of(inst: &Instance) -> u32 {
    inst.setting(keys::CHECKPOINT_KEEP).and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_KEEP).min(MAX_KEEP)
}

/// The limit as given by a user: 0 (no checkpoints) to MAX_KEEP.
pub fn validate_keep(n: u32) -> Result<u32> {
    if n > MAX_KEEP {
        return Err(EngineError::invalid(
            "checkpoints",
            format!("{n} is more than {MAX_KEEP}"),
            format!("keep 0 (none) to {MAX_KEEP} checkpoints"),
        ));
    }
    Ok(n)
}

impl Engine {
    /// At the end of an agent's turn: `turn-N` (N one past the last turn, never reused) labelled
    /// with the first line of `message`, then the oldest unpinned checkpoints beyond the limit go.
    /// None when the sandbox keeps no checkpoints.
    pub async fn checkpoint(&self, name: &str, message: &str) -> Result<Option<SnapshotInfo>> {
        let s = self.existing(name).await?;
        let inst = self.incus.instance(&s.instance).await?;
        let keep = keep_of(&inst);
        if keep == 0 {
            return Ok(None);
        }
        // The turn number, counted up where no other writer can count it twice.
        let turn = self
            .update_records(&s.instance, |config, real| {
                let last = config.get(keys::CHECKPOINT_TURNS).and_then(|v| v.parse::<u32>().ok()).unwrap_or(0);
                let turn = real.iter().filter_map(|(l, _)| validate::turn_of(l)).chain([last]).max().unwrap_or(0) + 1;
                ([(keys::CHECKPOINT_TURNS.to_string(), turn.to_string())].into_iter().collect(), turn)
            })
            .await?;
        let info = self.take(&s, &format!("turn-{turn}"), Meta::checkpoint(turn, message)).await?;
        // The limit as it is now, not as read before the snapshot: a `snapshot keep` written
        // meanwhile trimmed before this checkpoint existed, so this trim must use its value.
        let keep = keep_of(&self.incus.instance(&s.instance).await?);
        if let Err(e) = self.trim(&s.instance, keep as usize).await {
            tracing::warn!("checkpoints of {name} beyond the limit not removed: {e}");
        }
        Ok(Some(info))
    }

    /// `sandbox snapshot keep NAME N`: how many checkpoints NAME keeps (0: none are taken); the
    /// ones beyond it go now.
    pub async fn set_checkpoint_keep(&self, name: &str, keep: u32) -> Result<Vec<SnapshotInfo>> {
        let keep = validate_keep(keep)?;
        let s = self.existing(name).await?;
        let mut c = Config::new();
        c.insert(keys::CHECKPOINT_KEEP.into(), keep.to_string());
        self.incus.patch_instance(&s.instance, c, Devices::new()).await?;
        self.trim(&s.instance, keep as usize).await?;
        self.snapshots(name).await
    }
}
