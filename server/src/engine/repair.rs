//! What every `start` of an existing sandbox makes sure of, since anything may have changed
//! behind its back after its create: no secret left in its Incus config, its host ports not taken
//! by another program (a NAT forward would hijack them), its ports device as its slot says, and
//! the managed client key among its authorized keys (a deleted ~/.sandbox makes a new one).
use super::sandbox::{Sandbox, parse_addr_ports};
use super::validate::Proto;
use super::{Engine, identity, keys, ports, sshcfg};
use crate::error::{EngineError, Result};
use crate::incus::{Config, Devices, FileWrite, Instance};
use crate::progress::Progress;

const AUTHORIZED_KEYS: &str = "/home/ubuntu/.ssh/authorized_keys";

impl Engine {
    /// The named steps, in order (each cheap when there is nothing to do).
    pub(super) async fn repair(&self, s: &Sandbox, inst: &Instance, progress: &dyn Progress) -> Result<()> {
        self.scrub_secrets(inst).await?;
        check_host_ports(s, inst)?;
        self.ensure_ports_device(s, inst, progress).await?;
        self.ensure_client_key(s, inst, progress).await?;
        if inst.devices.get("root").is_some_and(|d| d.contains_key("size")) {
            super::quota::ensure_enforced(&self.host, super::golden::STORAGE_POOL, progress).await?;
        }
        Ok(())
    }

    /// An interrupted create (or an older version) may have left the secrets the identity
    /// templates were rendered from. Once the sandbox has started they are not needed; before its
    /// first start they are (it renders them), and they go after that start.
    async fn scrub_secrets(&self, inst: &Instance) -> Result<()> {
        let rendered = inst.config.get("volatile.apply_template").is_none_or(|v| v.is_empty());
        if rendered && identity::holds_secrets(&inst.config) {
            identity::scrub(&self.incus, &inst.name, false).await?;
        }
        Ok(())
    }

    /// Our sandboxes forward their slot's ports through one NAT device; it is put back when it
    /// was removed or changed.
    async fn ensure_ports_device(&self, s: &Sandbox, inst: &Instance, progress: &dyn Progress) -> Result<()> {
        let (true, Some(slot), Some(ip)) = (s.managed, s.slot, s.ip.as_deref()) else { return Ok(()) };
        let want = ports::slot_device(slot, ip);
        if inst.devices.get(ports::SLOT_PORTS_DEVICE) == Some(&want) {
            return Ok(());
        }
        progress.step(&format!("Putting back the forwards of slot {slot}"));
        let mut d = Devices::new();
        d.insert(ports::SLOT_PORTS_DEVICE.into(), want);
        Ok(self.incus.patch_instance(&inst.name, Config::new(), d).await?)
    }

    /// The managed client key is let in (appended; keys the user added stay) when the sandbox
    /// does not have this one yet.
    async fn ensure_client_key(&self, s: &Sandbox, inst: &Instance, progress: &dyn Progress) -> Result<()> {
        let fingerprint = sshcfg::fingerprint(&sshcfg::ensure_client_key()?);
        if inst.setting(keys::CLIENT_KEY) == Some(fingerprint.as_str()) {
            return Ok(());
        }
        progress.step("Letting the managed SSH key in");
        let mut current = self.incus.pull_file(&s.instance, AUTHORIZED_KEYS).await.unwrap_or_default();
        let have = String::from_utf8_lossy(&current).to_string();
        if !current.is_empty() && !current.ends_with(b"\n") {
            current.push(b'\n');
        }
        for line in sshcfg::authorized_keys()?.lines().filter(|l| !have.contains(*l)) {
            current.extend_from_slice(format!("{line}\n").as_bytes());
        }
        self.incus.push_dir(&s.instance, "/home/ubuntu/.ssh", 1000, 1000, 0o700).await?;
        let f = FileWrite { path: AUTHORIZED_KEYS, content: current, uid: 1000, gid: 1000, mode: 0o600 };
        self.incus.push_file(&s.instance, &f).await?;
        let mut c = Config::new();
        c.insert(keys::CLIENT_KEY.into(), fingerprint);
        Ok(self.incus.patch_instance(&s.instance, c, Devices::new()).await?)
    }
}

/// Each host port the sandbox forwards must be free of other programs on 127.0.0.1: a NAT
/// forward would take connections meant for them. A running sandbox's forkproxy devices hold
/// their ports themselves, so only its NAT ones are checked.
fn check_host_ports(s: &Sandbox, inst: &Instance) -> Result<()> {
    let running = s.is_running();
    for (dev, cfg) in &inst.devices {
        if cfg.get("type").map(String::as_str) != Some("proxy") {
            continue;
        }
        let nat = cfg.get("nat").is_some_and(|v| v == "true");
        if running && !nat {
            continue;
        }
        let Some((proto, listen)) = cfg.get("listen").and_then(|l| parse_addr_ports(l)) else { continue };
        for port in listen {
            let free = match proto {
                Proto::Udp => std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok(),
                Proto::Tcp => ports::port_free(u32::from(port)),
            };
            let proto = proto.as_str();
            if !free {
                return Err(EngineError::failed(
                    format!(
                        "host port {port}/{proto} of '{}' (device {dev}) is in use by another program on 127.0.0.1",
                        s.name
                    ),
                    if dev.starts_with("port-") {
                        format!(
                            "stop that program, or `sandbox unexpose {} PORT` and expose it on another host port",
                            s.name
                        )
                    } else {
                        "stop that program: the sandbox's slot ports are 2200+slot, 8000+slot and 9000+slot".to_string()
                    },
                ));
            }
        }
    }
    Ok(())
}
