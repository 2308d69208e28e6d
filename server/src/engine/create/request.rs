//! The instance a create asks Incus for: its `user.sandbox.*` record, limits, pinned address
//! (LXC sets it before init), NIC with anti-spoofing, and the slot's port forwards. Pure.
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use super::plan::{Plan, Source};
use crate::engine::golden::{self, BRIDGE};
use crate::engine::{gate, keys, ports};
use crate::incus::{Config, Devices, InstanceSource, InstancesPost};

/// Where the sandbox sits: its slot and the address pinned to it.
pub(super) struct Slot {
    pub slot: u32,
    pub ip: Ipv4Addr,
    pub gateway: Ipv4Addr,
    pub prefix: u32,
}

impl Slot {
    pub fn ssh_port(&self) -> u16 {
        (ports::SSH_PORT_BASE + self.slot) as u16
    }
}

/// The sandbox's record in Incus (plus the credentials' keys and, when the golden image has
/// templates, the identity values they render).
pub(super) fn config(
    plan: &Plan,
    slot: &Slot,
    host_public: &str,
    env_digest: &str,
    extra: &[(String, String)],
) -> Config {
    let mut c = Config::new();
    let mut set = |k: &str, v: String| {
        c.insert(k.to_string(), v);
    };
    set(keys::CREATED_BY, "agent-sandboxes".into());
    // When it was asked for (a spare's instance was made earlier).
    let now = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339);
    set(keys::CREATED_AT, now.unwrap_or_default());
    // Incus restarts whatever was running when the daemon stopped (a host reboot); a sandbox must
    // only ever start through `sandbox start`, which puts its egress policy and agent first.
    set("boot.autostart", "false".into());
    set(keys::SLOT, slot.slot.to_string());
    // LXC configures the pinned address before init runs: the sandbox answers the host's ARP (and
    // so SSH) ~0.1 s sooner than when its own boot applies it. eth0 is the only NIC: lxc.net.0.
    let (ip, gw, prefix) = (slot.ip, slot.gateway, slot.prefix);
    set("raw.lxc", format!("lxc.net.0.ipv4.address = {ip}/{prefix}\nlxc.net.0.ipv4.gateway = {gw}\n"));
    set(keys::STACK, plan.stack.clone());
    set(keys::SSH_HOST_KEY, host_public.to_string());
    set(keys::ENV, serde_json::to_string(&plan.env).unwrap_or_default());
    set(keys::ENV_DIGEST, env_digest.to_string());
    let optional = [
        (keys::REPO, plan.repo_url.clone()),
        (keys::BRANCH, plan.branch.clone()),
        (keys::FROM, plan.from.clone()),
        (
            keys::PREPARED_FROM,
            match &plan.source {
                Source::Prepared { image } => Some(image.clone()),
                _ => None,
            },
        ),
        (keys::RESTRICT_DOMAINS, plan.restrict.then(|| "yes".into())),
        (keys::DOMAINS_FILE, plan.domains_file.clone()),
        (keys::ALLOW_QUIC, plan.allow_quic.then(|| "yes".into())),
        (keys::SSH_KEY, plan.ssh_key.as_ref().map(|k| k.display().to_string())),
        (keys::AGENT, plan.uses_agent().then(|| "yes".into())),
        (keys::CHECKPOINT_KEEP, plan.checkpoints.map(|n| n.to_string())),
        (keys::PUSH, plan.repo.as_ref().map(|_| if plan.gated { gate::PUSH_GATE } else { gate::PUSH_ANY }.into())),
        ("limits.cpu", plan.cpu.map(|c| c.to_string())),
        ("limits.memory", plan.memory.clone()),
    ];
    for (k, v) in optional {
        if let Some(v) = v {
            set(k, v);
        }
    }
    for (k, v) in extra {
        set(k, v.clone());
    }
    c
}

/// eth0 on the bridge with the slot's fixed address and MAC, IP and MAC spoofing refused; the
/// slot's ssh/app/alt forwards; the root disk with its size.
pub(super) fn devices(slot: &Slot, disk: Option<&str>) -> Devices {
    let (ip, mac) = (slot.ip.to_string(), ports::slot_mac(slot.slot));
    let nic: BTreeMap<String, String> = [
        ("type", "nic"),
        ("hwaddr", mac.as_str()),
        ("network", BRIDGE),
        ("name", "eth0"),
        ("ipv4.address", ip.as_str()),
        ("security.ipv4_filtering", "true"),
        ("security.mac_filtering", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut devices = Devices::new();
    devices.insert("eth0".into(), nic);
    devices.insert(ports::SLOT_PORTS_DEVICE.into(), ports::slot_device(slot.slot, &ip));
    if let Some(size) = disk {
        devices.insert("root".into(), root_disk(size));
    }
    devices
}

/// The root disk with a size (the default profile's, made the instance's own).
pub fn root_disk(size: &str) -> BTreeMap<String, String> {
    [("type", "disk"), ("path", "/"), ("pool", golden::STORAGE_POOL), ("size", size)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The create request: a copy of the source (the golden snapshot; on a cluster its published image).
pub(super) fn instance(plan: &Plan, config: Config, devices: Devices, clustered: bool) -> InstancesPost {
    let source = if clustered && plan.source == Source::Golden {
        InstanceSource::image_alias(golden::cluster_alias(&plan.stack))
    } else {
        InstanceSource::copy(plan.source_label())
    };
    InstancesPost {
        name: plan.instance.clone(),
        source,
        config,
        devices,
        kind: "container".into(),
        target: plan.target.clone(),
        ..Default::default()
    }
}
