//! Snapshots of whole sandboxes (btrfs: nearly free): files, installed packages, everything on
//! disk. `snapshot` and `snapshots` here, `restore` in restore.rs, the per-turn checkpoints in
//! checkpoint.rs. A snapshot is Incus's own (`agent-NAME/LABEL`); what else we know of it is a
//! config key on the instance (meta.rs).
mod checkpoint;
pub mod meta;
mod records;
mod restore;
pub mod turns;

use std::collections::BTreeMap;

pub use checkpoint::{DEFAULT_KEEP, validate_keep};
use meta::Meta;
pub use meta::{SnapshotInfo, SnapshotKind};

use super::sandbox::{self, Sandbox};
use super::{Engine, validate};
use crate::error::{EngineError, Result};
use crate::incus::{Config, Devices, IncusError};

impl Engine {
    /// The sandbox, or a not-found error that says what exists.
    pub(crate) async fn existing(&self, name: &str) -> Result<Sandbox> {
        validate::sandbox_name(name)?;
        sandbox::get(&self.incus, name).await?.ok_or_else(|| EngineError::sandbox_not_found(name))
    }

    /// `sandbox snapshots NAME`: every snapshot Incus has of it (with our records), oldest first.
    pub async fn snapshots(&self, name: &str) -> Result<Vec<SnapshotInfo>> {
        let s = self.existing(name).await?;
        let (inst, real) =
            futures::future::try_join(self.incus.instance(&s.instance), self.incus.snapshots(&s.instance)).await?;
        let real: Vec<(String, String)> = real.into_iter().map(|r| (r.name, r.created_at)).collect();
        Ok(meta::merged(&inst.config, &real))
    }

    /// `sandbox snapshot NAME [LABEL]`: a snapshot of the sandbox as it is now, running or not
    /// (a running one's disk as it is at this instant). Default label: `snap-N`.
    pub async fn snapshot(&self, name: &str, label: Option<&str>) -> Result<SnapshotInfo> {
        if let Some(l) = label {
            validate::snapshot_label(l, false)?;
        }
        let s = self.existing(name).await?;
        let have = self.snapshots(name).await?;
        let label = match label {
            Some(l) => l.to_string(),
            None => next_label(&have),
        };
        self.take(&s, &label, Meta::manual()).await
    }

    /// Our record, then the Incus snapshot (the record removed again if that fails): whoever sees
    /// the snapshot sees its record, so a pin right after a checkpoint appeared is never lost to
    /// the record being written after it. A record without its snapshot lists nowhere but the
    /// instance's keys, for the moment the snapshot takes.
    async fn take(&self, s: &Sandbox, label: &str, meta: Meta) -> Result<SnapshotInfo> {
        if self.incus.snapshots(&s.instance).await?.iter().any(|r| r.name == label) {
            return Err(taken(&s.name, label));
        }
        self.set_meta(&s.instance, label, Some(&meta)).await?;
        let guard = crate::engine::lock::instance(&s.instance).await?;
        let made = self.incus.create_snapshot(&s.instance, label).await;
        drop(guard);
        if let Err(e) = made {
            if let Err(e2) = self.set_meta(&s.instance, label, None).await {
                tracing::warn!("the record of {}/{label} stayed: {e2}", s.instance);
            }
            return Err(match e {
                IncusError::AlreadyExists { .. } => taken(&s.name, label),
                e if e.to_string().contains("already exists") => taken(&s.name, label),
                e => e.into(),
            });
        }
        let created = self.incus.snapshots(&s.instance).await?.into_iter().find(|r| r.name == label);
        let all = meta::merged(
            &[(meta::key(label), meta.to_json())].into_iter().collect(),
            &[(label.to_string(), created.map(|r| r.created_at).unwrap_or_else(|| meta.at.clone()))],
        );
        all.into_iter().next().ok_or_else(|| EngineError::failed("snapshot vanished", ""))
    }

    /// `sandbox snapshot rm NAME LABEL`: the snapshot and our record of it.
    pub async fn snapshot_rm(&self, name: &str, label: &str) -> Result<()> {
        validate::snapshot_label(label, true)?;
        let s = self.existing(name).await?;
        if !self.delete_snapshot(&s.instance, label).await? {
            let inst = self.incus.instance(&s.instance).await?;
            if meta::stored(&inst.config, label).is_none() {
                return Err(snapshot_not_found(name, label));
            }
        }
        self.set_meta(&s.instance, label, None).await
    }

    /// `sandbox snapshot pin|unpin NAME LABEL`: a pinned checkpoint is kept whatever the limit.
    /// Decided on the record as it is when written (records.rs): one the limit is removing is
    /// not found, and the limit never removes one pinned before it decided.
    pub async fn snapshot_pin(&self, name: &str, label: &str, pinned: bool) -> Result<SnapshotInfo> {
        validate::snapshot_label(label, true)?;
        let s = self.existing(name).await?;
        let info = self
            .update_records(&s.instance, |config, real| {
                let Some((_, at)) = real.iter().find(|(l, _)| l == label) else { return (Config::new(), None) };
                let m = meta::of(config, label, at);
                if m.going {
                    return (Config::new(), None);
                }
                let m = Meta { pinned, ..m };
                let c = config_of(label, &m);
                let info = meta::merged(&c, &[(label.into(), at.clone())]).into_iter().next();
                (c, info)
            })
            .await?;
        info.ok_or_else(|| snapshot_not_found(name, label))
    }

    /// Writes (or, with None, removes) one snapshot's record: one key, so concurrent writers of
    /// other keys (the token counter, other snapshots) are never overwritten.
    async fn set_meta(&self, instance: &str, label: &str, meta: Option<&Meta>) -> Result<()> {
        let mut c = Config::new();
        c.insert(meta::key(label), meta.map(Meta::to_json).unwrap_or_default());
        Ok(self.incus.patch_instance(instance, c, Devices::new()).await?)
    }
}

/// The one key of a snapshot's record.
fn config_of(label: &str, m: &Meta) -> Config {
    [(meta::key(label), m.to_json())].into_iter().collect()
}

/// `snap-N`, one past the highest in use.
fn next_label(have: &[SnapshotInfo]) -> String {
    let n = have.iter().filter_map(|s| s.label.strip_prefix("snap-")?.parse::<u32>().ok()).max().unwrap_or(0);
    format!("snap-{}", n + 1)
}

fn taken(name: &str, label: &str) -> EngineError {
    EngineError::Conflict {
        what: format!("snapshot '{label}' of '{name}'"),
        hint: format!("pick another label, or remove it first: sandbox snapshot rm {name} {label}"),
    }
}

pub(crate) fn snapshot_not_found(name: &str, label: &str) -> EngineError {
    EngineError::not_found(
        format!("snapshot '{label}' of sandbox '{name}'"),
        format!("`sandbox snapshots {name}` lists its snapshots"),
    )
}

/// Config keys that are Incus's own bookkeeping, not settings (kept as Incus has them).
pub(crate) fn is_volatile(key: &str) -> bool {
    key.starts_with("volatile.")
}

/// An instance's settings without Incus's bookkeeping.
pub(crate) fn settings(config: &Config) -> BTreeMap<String, String> {
    config.iter().filter(|(k, _)| !is_volatile(k)).map(|(k, v)| (k.clone(), v.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_labels_count_up() {
        let s = |l: &str| SnapshotInfo {
            label: l.into(),
            kind: SnapshotKind::Manual,
            title: l.into(),
            turn: None,
            message: None,
            pinned: false,
            created_at: String::new(),
        };
        assert_eq!(next_label(&[]), "snap-1");
        assert_eq!(next_label(&[s("snap-2"), s("snap-x"), s("turn-9"), s("snap-10")]), "snap-11");
    }
}
