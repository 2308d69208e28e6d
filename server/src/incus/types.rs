//! The parts of Incus's REST objects the engine reads and writes (camelCase is not used by Incus:
//! field names follow its JSON exactly).
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub type Config = BTreeMap<String, String>;
pub type Devices = BTreeMap<String, BTreeMap<String, String>>;

/// `null` as the default: Incus sends `"config": null` (and the like) for an instance that is
/// being created or deleted while we list, and `#[serde(default)]` alone only covers absence.
fn null_default<'de, D: serde::Deserializer<'de>, T: Default + Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// The standard response envelope of every Incus API call.
#[derive(Debug, Default, Deserialize)]
pub struct Envelope {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub status_code: u16,
    #[serde(default)]
    pub error_code: u16,
    #[serde(default)]
    pub error: String,
    #[serde(default)]
    pub operation: String,
    #[serde(default)]
    pub metadata: Value,
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
pub struct Instance {
    pub name: String,
    #[serde(default, deserialize_with = "null_default")]
    pub status: String,
    #[serde(default, deserialize_with = "null_default")]
    pub config: Config,
    #[serde(default, deserialize_with = "null_default")]
    pub devices: Devices,
    #[serde(default, deserialize_with = "null_default")]
    pub expanded_devices: Devices,
    #[serde(default, deserialize_with = "null_default")]
    pub expanded_config: Config,
    #[serde(default, deserialize_with = "null_default")]
    pub profiles: Vec<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub location: String,
    #[serde(default, deserialize_with = "null_default")]
    pub created_at: String,
    #[serde(default, rename = "type")]
    pub kind: String,
    /// Present with recursion=2.
    #[serde(default)]
    pub state: Option<InstanceState>,
    /// Present with recursion=2.
    #[serde(default)]
    pub snapshots: Option<Vec<Snapshot>>,
}

impl Instance {
    pub fn is_running(&self) -> bool {
        self.status.eq_ignore_ascii_case("running")
    }
    /// A config value by its full key (`user.sandbox.*` keys: engine/keys.rs); empty = absent
    /// (Incus drops a key set to "").
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.config.get(key).map(String::as_str).filter(|v| !v.is_empty())
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
pub struct InstanceState {
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub pid: i64,
    #[serde(default)]
    pub network: Option<BTreeMap<String, NetworkState>>,
    #[serde(default)]
    pub memory: Option<Value>,
}

impl InstanceState {
    /// The first global IPv4 address of eth0 (or any interface but lo).
    pub fn ipv4(&self) -> Option<String> {
        let nets = self.network.as_ref()?;
        let mut names: Vec<&String> = nets.keys().filter(|n| *n != "lo").collect();
        names.sort_by_key(|n| (*n != "eth0", (*n).clone()));
        names.into_iter().find_map(|n| {
            nets[n].addresses.iter().find(|a| a.family == "inet" && a.scope == "global").map(|a| a.address.clone())
        })
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
pub struct NetworkState {
    #[serde(default)]
    pub addresses: Vec<NetworkAddress>,
    #[serde(default)]
    pub hwaddr: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
pub struct NetworkAddress {
    pub family: String,
    pub address: String,
    #[serde(default)]
    pub scope: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
pub struct Snapshot {
    pub name: String,
    #[serde(default)]
    pub created_at: String,
    #[serde(default, deserialize_with = "null_default")]
    pub config: Config,
}

/// Body of `POST /1.0/instances`.
#[derive(Debug, Clone, Serialize, Default)]
pub struct InstancesPost {
    pub name: String,
    pub source: InstanceSource,
    #[serde(skip_serializing_if = "Config::is_empty")]
    pub config: Config,
    #[serde(skip_serializing_if = "Devices::is_empty")]
    pub devices: Devices,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profiles: Option<Vec<String>>,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<bool>,
    /// Cluster member to place the instance on (a query parameter, not part of the body).
    #[serde(skip)]
    pub target: Option<String>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct InstanceSource {
    #[serde(rename = "type")]
    pub kind: String,
    /// `copy`: "golden-base/ready" style source (instance or instance/snapshot).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// copy: snapshots are not copied along (golden images keep theirs, sandboxes start clean).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_only: Option<bool>,
}

impl InstanceSource {
    pub fn copy(source: impl Into<String>) -> Self {
        Self { kind: "copy".into(), source: Some(source.into()), instance_only: Some(true), ..Default::default() }
    }
    pub fn image_alias(alias: impl Into<String>) -> Self {
        Self { kind: "image".into(), alias: Some(alias.into()), ..Default::default() }
    }
    pub fn remote_image(server: impl Into<String>, protocol: &str, alias: impl Into<String>) -> Self {
        Self {
            kind: "image".into(),
            alias: Some(alias.into()),
            server: Some(server.into()),
            protocol: Some(protocol.into()),
            mode: Some("pull".into()),
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
pub struct ImageAlias {
    pub name: String,
    #[serde(default)]
    pub target: String,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
pub struct Image {
    pub fingerprint: String,
    #[serde(default)]
    pub aliases: Vec<ImageAlias>,
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    #[serde(default)]
    pub size: u64,
}

/// A cluster member (`/1.0/cluster/members`).
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
pub struct ClusterMember {
    pub server_name: String,
    /// "Online", "Offline", "Evacuated", "Blocked".
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub url: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
pub struct Network {
    pub name: String,
    #[serde(default)]
    pub config: Config,
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub managed: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
pub struct StoragePool {
    pub name: String,
    #[serde(default)]
    pub driver: String,
    #[serde(default)]
    pub config: Config,
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
pub struct Operation {
    pub id: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub status_code: u16,
    #[serde(default)]
    pub err: String,
    #[serde(default)]
    pub metadata: Option<Value>,
    #[serde(default)]
    pub may_cancel: bool,
    /// What it works on, by kind: `{"instances": ["/1.0/instances/NAME"]}`.
    #[serde(default)]
    pub resources: Option<std::collections::BTreeMap<String, Vec<String>>>,
}

/// One message of the `/1.0/events` stream.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Event {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub timestamp: String,
    #[serde(default)]
    pub metadata: Value,
    #[serde(default)]
    pub project: String,
    #[serde(default)]
    pub location: String,
}

impl Event {
    /// For lifecycle events, whatever their source: "network-created", "instance-started", …
    pub fn lifecycle_action(&self) -> Option<&str> {
        if self.kind != "lifecycle" {
            return None;
        }
        self.metadata.get("action")?.as_str()
    }

    /// For lifecycle events: ("instance-started", "agent-x").
    pub fn lifecycle(&self) -> Option<(&str, &str)> {
        if self.kind != "lifecycle" {
            return None;
        }
        let action = self.metadata.get("action")?.as_str()?;
        let source = self.metadata.get("source")?.as_str()?;
        let name = source.strip_prefix("/1.0/instances/")?;
        let name = name.split(['/', '?']).next()?;
        Some((action, name))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_instance_half_created_or_deleted_decodes() {
        let i: super::Instance =
            serde_json::from_str(r#"{"name":"x","status":"Running","config":null,"devices":null,"expanded_devices":null,"expanded_config":null,"profiles":null}"#)
                .unwrap();
        assert!(i.config.is_empty() && i.devices.is_empty() && i.is_running());
    }
}
