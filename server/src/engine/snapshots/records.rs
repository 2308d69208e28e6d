//! Conditional writes of what the instance's config records of its snapshots (meta.rs), the
//! checkpoint counter and the limit's removals. Several writers change one instance's config at
//! once — the host daemon (agent state, counters, checkpoints), a CLI pinning, another trimming —
//! and a decision made on an old read must never be written over a newer one: each change is
//! decided on a fresh read (Incus's snapshots, then the config with its ETag) and written only if
//! nobody wrote in between (If-Match); else read and decided again.
use std::time::Duration;

use rand::Rng;

use super::Engine;
use super::meta::{self, Meta};
use crate::error::{EngineError, Result};
use crate::incus::Config;

/// Reads and decisions before giving up (each lost race means another writer made progress).
const TRIES: u32 = 40;

/// Incus's snapshots of an instance: (label, created_at).
pub(super) type Real = Vec<(String, String)>;

impl Engine {
    pub(super) async fn real_snapshots(&self, instance: &str) -> Result<Real> {
        Ok(self.incus.snapshots(instance).await?.into_iter().map(|r| (r.name, r.created_at)).collect())
    }

    /// `decide` sees the config and the snapshots as they are now and says what to set ("" removes
    /// a key; nothing: no write) and what to answer; written only if the config is still as read.
    pub(super) async fn update_records<T>(
        &self,
        instance: &str,
        mut decide: impl FnMut(&Config, &Real) -> (Config, T),
    ) -> Result<T> {
        for _ in 0..TRIES {
            // The config with its ETag first, then Incus's snapshots: any record change after the
            // read (the limit marking a checkpoint going, or removing its record once deleted)
            // fails the write below. Listing first let a pin read a snapshot, then a config the
            // limit had meanwhile finished with (record gone, so "not going"): it wrote a record
            // for a deleted snapshot and answered success.
            let (inst, etag) = self.incus.instance_tagged(instance).await?;
            let real = self.real_snapshots(instance).await?;
            let (change, out) = decide(&inst.config, &real);
            if change.is_empty() || self.incus.patch_config_if(instance, change, etag.as_deref()).await? {
                return Ok(out);
            }
            let pause = rand::thread_rng().gen_range(5..50);
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
        Err(EngineError::failed(
            format!("the records of {instance} kept changing while being updated"),
            "try again in a moment",
        ))
    }

    /// The checkpoints beyond the limit (decided on the records as they are: a pin that came first
    /// keeps its checkpoint, one that comes later finds it going), marked going in one write, then
    /// removed with their records — and any an interrupted removal left marked.
    pub(super) async fn trim(&self, instance: &str, keep: usize) -> Result<Vec<String>> {
        let going = self
            .update_records(instance, |config, real| {
                let beyond = meta::beyond_limit(&meta::merged(config, real), keep);
                let mut c = Config::new();
                for label in &beyond {
                    let at = real.iter().find(|(l, _)| l == label).map(|(_, at)| at.as_str()).unwrap_or_default();
                    let m = Meta { going: true, ..meta::of(config, label, at) };
                    c.insert(meta::key(label), m.to_json());
                }
                let mut all = meta::going(config);
                all.extend(beyond);
                (c, all)
            })
            .await?;
        for label in &going {
            self.delete_snapshot(instance, label).await?;
            self.set_meta(instance, label, None).await?;
        }
        Ok(going)
    }

    /// Deletes a snapshot another process may be deleting at the same moment (the daemon's limit
    /// and `snapshot keep`, two `rm`s): Incus answers the later delete with an error of its own
    /// ("A matching non-reusable operation has now succeeded", or busy) — gone is gone, busy is
    /// tried again. False when it was not there.
    pub(super) async fn delete_snapshot(&self, instance: &str, label: &str) -> Result<bool> {
        let mut tries = 0;
        loop {
            match self.incus.delete_snapshot(instance, label).await {
                Ok(()) => return Ok(true),
                Err(e) if e.is_not_found() => return Ok(false),
                Err(e) => {
                    if !self.incus.snapshots(instance).await?.iter().any(|s| s.name == label) {
                        return Ok(false);
                    }
                    tries += 1;
                    if tries == 5 {
                        return Err(e.into());
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(200 * tries)).await;
                }
            }
        }
    }
}
