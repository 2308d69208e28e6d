//! Golden images (`golden-STACK` with a `ready` snapshot): built under a temporary name and
//! swapped in only on success, so a failed or interrupted build never leaves a half-built image
//! holding `ready`, and the previous image stays intact.
pub mod build;

use std::collections::BTreeMap;

use serde::Serialize;

use super::{keys, stacks};
use crate::error::Result;
use crate::incus::{Config, Incus};
use crate::progress::Progress;

pub const READY: &str = "ready";
pub const STORAGE_POOL: &str = "default";
pub const BRIDGE: &str = "incusbr0";

pub fn golden_name(stack: &str) -> String {
    format!("golden-{stack}")
}

/// On a cluster, sandboxes are created from an image rather than by copying the golden instance:
/// instance names are cluster-wide, so the golden lives on one member and a copy to any other
/// member is a full migration; an image is cached by each member on first use (a btrfs image
/// volume) and every later sandbox there is a copy-on-write clone of it.
pub fn cluster_alias(stack: &str) -> String {
    format!("{CLUSTER_ALIAS_PREFIX}{stack}")
}
pub const CLUSTER_ALIAS_PREFIX: &str = "sandbox-golden/";

pub async fn is_clustered(incus: &Incus) -> Result<bool> {
    Ok(incus.server().await?["environment"]["server_clustered"] == true)
}

/// (Re)publishes `golden-STACK/ready` as the cluster image `sandbox-golden/STACK`; the previous
/// image stays in place until the new one exists.
pub async fn publish_for_cluster(incus: &Incus, stack: &str, progress: &dyn Progress) -> Result<()> {
    let alias = cluster_alias(stack);
    progress.step(&format!("Publishing {}/{READY} as image {alias} for every cluster member", golden_name(stack)));
    let old = incus.image_alias(&alias).await.ok().map(|a| a.target);
    if old.is_some() {
        incus.delete_image_alias(&alias).await?;
    }
    match incus.publish_snapshot(&golden_name(stack), READY, &alias).await {
        Ok(new) => {
            if let Some(fp) = old.filter(|fp| *fp != new) {
                let _ = incus.delete_image(&fp).await;
            }
            Ok(())
        }
        Err(e) => {
            if let Some(fp) = old {
                let _ = incus.create_image_alias(&alias, &fp).await;
            }
            Err(e.into())
        }
    }
}

/// Where a stack's golden image stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub enum GoldenState {
    /// Has a `ready` snapshot, from the stack script as it is now.
    Built,
    /// Built, but the stack script changed since: rebuild it.
    Stale,
    /// No `ready` snapshot.
    Missing,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub struct GoldenInfo {
    pub stack: String,
    pub instance: String,
    pub description: String,
    pub state: GoldenState,
    /// Has a `ready` snapshot (built or stale).
    pub built: bool,
    /// The stack script changed since the image was built.
    pub stale: bool,
    pub built_at: Option<String>,
    pub base_image: Option<String>,
    /// Built by this product (false for golden images made by the seed's scripts).
    pub managed: bool,
}

impl GoldenInfo {
    fn missing(stack: &str, description: String) -> Self {
        GoldenInfo {
            stack: stack.to_string(),
            instance: golden_name(stack),
            description,
            state: GoldenState::Missing,
            built: false,
            stale: false,
            built_at: None,
            base_image: None,
            managed: false,
        }
    }
}

/// Every known stack with the state of its golden image (also golden images without a script).
pub async fn list(incus: &Incus) -> Result<Vec<GoldenInfo>> {
    let instances = incus.instances_full().await?;
    let all = stacks::all();
    let shared = stacks::shared();
    let mut out: BTreeMap<String, GoldenInfo> =
        all.iter().map(|(name, s)| (name.clone(), GoldenInfo::missing(name, s.description.clone()))).collect();
    for inst in instances {
        let Some(stack) = inst.name.strip_prefix("golden-") else {
            continue;
        };
        let entry = out.entry(stack.to_string()).or_insert_with(|| GoldenInfo::missing(stack, String::new()));
        entry.built = inst.snapshots.as_ref().is_some_and(|s| s.iter().any(|s| s.name == READY));
        entry.managed = inst.setting(keys::GOLDEN_INPUTS).is_some();
        entry.built_at = inst.setting(keys::GOLDEN_BUILT_AT).map(str::to_owned);
        entry.base_image = inst.setting(keys::GOLDEN_BASE_IMAGE).map(str::to_owned);
        if let (Some(s), Some(inputs)) = (all.get(stack), inst.setting(keys::GOLDEN_INPUTS)) {
            entry.stale = s.inputs_hash(&shared) != inputs;
        }
        entry.state = match (entry.built, entry.stale) {
            (false, _) => GoldenState::Missing,
            (true, true) => GoldenState::Stale,
            (true, false) => GoldenState::Built,
        };
    }
    Ok(out.into_values().collect())
}

/// Creates the storage pool, bridge and default-profile devices when missing.
pub async fn ensure_initialised(incus: &Incus, progress: &dyn Progress) -> Result<()> {
    incus.server().await?;
    if let Err(e) = incus.storage_pool(STORAGE_POOL).await {
        if !e.is_not_found() {
            return Err(e.into());
        }
        progress.step("Creating the btrfs storage pool 'default'");
        let cfg: Config = [("size".to_string(), "20GiB".to_string())].into();
        incus.create_storage_pool(STORAGE_POOL, "btrfs", cfg).await?;
    }
    match incus.network(BRIDGE).await {
        Err(e) if e.is_not_found() => {
            progress.step(&format!("Creating the bridge '{BRIDGE}' (no NAT)"));
            let cfg: Config = [
                ("ipv4.address".to_string(), "10.100.0.1/24".to_string()),
                ("ipv4.nat".to_string(), "false".to_string()),
                ("ipv6.address".to_string(), "none".to_string()),
                ("ipv4.dhcp.ranges".to_string(), crate::engine::ports::dhcp_range("10.100.0.1/24").unwrap_or_default()),
            ]
            .into();
            incus.create_network(BRIDGE, cfg).await?;
        }
        Err(e) => return Err(e.into()),
        Ok(net) => {
            // Leases only below the sandboxes' pinned addresses: an instance on the default profile's
            // NIC (a stack build, a prepare) must never get one, where the egress rules refuse it.
            let cidr = net.config.get("ipv4.address").cloned().unwrap_or_default();
            if let (None, Some(range)) = (net.config.get("ipv4.dhcp.ranges"), crate::engine::ports::dhcp_range(&cidr)) {
                progress.step(&format!("Keeping DHCP leases on '{BRIDGE}' below the sandboxes' addresses ({range})"));
                incus.patch_network(BRIDGE, [("ipv4.dhcp.ranges".to_string(), range)].into()).await?;
            }
        }
    }
    let profile = incus.profile("default").await?;
    let devices = profile.get("devices").cloned().unwrap_or_default();
    let mut add = serde_json::Map::new();
    if devices.get("root").is_none() {
        add.insert("root".into(), serde_json::json!({"type": "disk", "path": "/", "pool": STORAGE_POOL}));
    }
    if devices.get("eth0").is_none() {
        add.insert("eth0".into(), serde_json::json!({"type": "nic", "network": BRIDGE, "name": "eth0"}));
    }
    if !add.is_empty() {
        progress.step("Adding root disk and network to the default profile");
        let mut all = devices.as_object().cloned().unwrap_or_default();
        all.extend(add);
        incus.patch_profile("default", serde_json::json!({ "devices": all })).await?;
    }
    Ok(())
}

pub async fn has_ready(incus: &Incus, instance: &str) -> Result<bool> {
    Ok(ready_config(incus, instance).await?.is_some())
}

/// The `ready` snapshot's config (what copies start from), if there is one.
pub async fn ready_config(incus: &Incus, instance: &str) -> Result<Option<Config>> {
    match incus.snapshots(instance).await {
        Ok(snaps) => Ok(snaps.into_iter().find(|s| s.name == READY).map(|s| s.config)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}
