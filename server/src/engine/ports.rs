//! Slots and host ports: which slot a new sandbox gets, its pinned address and MAC, and the Incus
//! proxy devices that forward 127.0.0.1 ports into it. Pure: what is held comes in as `Held`.
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use crate::error::{EngineError, Result};

pub const SSH_PORT_BASE: u32 = 2200;
pub const APP_PORT_BASE: u32 = 8000;
pub const ALT_PORT_BASE: u32 = 9000;
/// What a forwarded port is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub enum PortRole {
    /// The slot's SSH port (2200 + slot → 22).
    Ssh,
    /// The slot's app port (8000 + slot → 8080).
    App,
    /// The slot's alternative port (9000 + slot → 9090).
    Alt,
    /// One added with `expose`.
    Extra,
}

/// The slot's forwards (role, host port base, port in the sandbox): port base + slot → port.
pub const SLOT_PORTS: [(PortRole, u32, u16); 3] =
    [(PortRole::Ssh, SSH_PORT_BASE, 22), (PortRole::App, APP_PORT_BASE, 8080), (PortRole::Alt, ALT_PORT_BASE, 9090)];
/// Our sandboxes carry them in one multi-port proxy device; the seed's have one device each.
pub const SLOT_PORTS_DEVICE: &str = "ports";
pub const MAX_SLOT: u32 = 99;

/// What the existing sandboxes hold: slot → sandbox, host port → sandbox.
#[derive(Debug, Default)]
pub struct Held {
    pub slots: BTreeMap<u32, String>,
    pub ports: BTreeMap<u16, String>,
}

/// Whether nothing on this machine listens on 127.0.0.1:PORT (TCP) yet.
pub fn port_free(port: u32) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port as u16)).is_ok()
}

/// The slot for a new sandbox: the one asked for (refused, naming the holder, when taken), else
/// the first whose three host ports are free of sandboxes and of other programs (`free`).
pub fn allocate_slot(requested: Option<u32>, held: &Held, free: impl Fn(u32) -> bool) -> Result<u32> {
    let ports_of = |s: u32| SLOT_PORTS.map(|(_, base, _)| base + s);
    let Some(s) = requested else {
        return (1..=MAX_SLOT)
            .find(|s| {
                !held.slots.contains_key(s)
                    && ports_of(*s).iter().all(|p| !held.ports.contains_key(&(*p as u16)) && free(*p))
            })
            .ok_or_else(|| {
                EngineError::failed(
                    format!("all {MAX_SLOT} slots are in use"),
                    "remove sandboxes you no longer need (`sandbox rm NAME`)",
                )
            });
    };
    if let Some(holder) = held.slots.get(&s) {
        return Err(EngineError::invalid(
            "slot",
            format!("slot {s} is held by sandbox '{holder}'"),
            "omit --slot to get a free one",
        ));
    }
    for p in ports_of(s) {
        if let Some(holder) = held.ports.get(&(p as u16)) {
            return Err(EngineError::invalid("slot", format!("port {p} is held by sandbox '{holder}'"), "omit --slot"));
        }
        if !free(p) {
            return Err(EngineError::invalid(
                "slot",
                format!("host port {p} (slot {s}) is in use by another program"),
                "omit --slot to get a free one",
            ));
        }
    }
    Ok(s)
}

/// The slot's pinned address on the bridge (network + 100 + slot), its gateway and prefix.
pub fn slot_address(bridge: &str, cidr: &str, slot: u32) -> Result<(Ipv4Addr, Ipv4Addr, u32)> {
    let (addr, prefix) = cidr.split_once('/').unwrap_or((cidr, "24"));
    let gateway: Ipv4Addr = addr.parse().map_err(|_| {
        EngineError::needs_setup(format!("an IPv4 address on bridge {bridge} ({cidr})"), "sandbox setup creates it")
    })?;
    let prefix: u32 = prefix.parse().unwrap_or(24);
    if prefix > 24 {
        return Err(EngineError::failed(
            format!("bridge {bridge} subnet /{prefix} is too small"),
            "use a /24 or larger",
        ));
    }
    let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
    Ok((Ipv4Addr::from((u32::from(gateway) & mask) + 100 + slot), gateway, prefix))
}

/// The DHCP range of the bridge: network + 2 … network + 100, below the pinned sandbox addresses
/// (network + 101 … + 199), so a lease never lands where the egress rules refuse unregistered
/// sandboxes. None for an address that is not IPv4/prefix ≤ 24.
pub fn dhcp_range(cidr: &str) -> Option<String> {
    let (addr, prefix) = cidr.split_once('/')?;
    let (addr, prefix): (Ipv4Addr, u32) = (addr.parse().ok()?, prefix.parse().ok()?);
    if prefix > 24 || prefix == 0 {
        return None;
    }
    let base = u32::from(addr) & (u32::MAX << (32 - prefix));
    Some(format!("{}-{}", Ipv4Addr::from(base + 2), Ipv4Addr::from(base + 100)))
}

/// A fixed MAC per slot, like the fixed address: the host's neighbour cache still maps the slot's
/// address to the MAC of the sandbox that held the slot before, and a new random MAC would leave
/// the forwarded ports silent until that entry expires. (The egress rules key on this prefix.)
pub fn slot_mac(slot: u32) -> String {
    format!("0a:5b:5a:00:00:{slot:02x}")
}

/// A proxy device from 127.0.0.1:HOST_PORT to PORT in the sandbox: NAT to its address when it
/// has a pinned one (nftables DNAT: no forkproxy process, no start-time cost), else forkproxy.
pub fn proxy(listen_proto: &str, host_port: u32, ip: Option<&str>, port: u32) -> BTreeMap<String, String> {
    let (connect, nat) = match ip {
        Some(ip) => (format!("{listen_proto}:{ip}:{port}"), true),
        None => (format!("{listen_proto}:127.0.0.1:{port}"), false),
    };
    let mut d = device([("type", "proxy".into()), ("listen", format!("{listen_proto}:127.0.0.1:{host_port}"))]);
    d.insert("connect".into(), connect);
    if nat {
        d.insert("nat".into(), "true".into());
    }
    d
}

/// The slot's ssh/app/alt forwards as one NAT proxy device (Incus applies and clears each proxy
/// device's rules separately: three devices cost ~60 ms more per start and ~130 ms per stop).
pub fn slot_device(slot: u32, ip: &str) -> BTreeMap<String, String> {
    let listen: Vec<String> = SLOT_PORTS.iter().map(|(_, base, _)| (base + slot).to_string()).collect();
    let connect: Vec<String> = SLOT_PORTS.iter().map(|(_, _, port)| port.to_string()).collect();
    device([
        ("type", "proxy".to_string()),
        ("listen", format!("tcp:127.0.0.1:{}", listen.join(","))),
        ("connect", format!("tcp:{ip}:{}", connect.join(","))),
        ("nat", "true".into()),
    ])
}

fn device<const N: usize>(pairs: [(&str, String); N]) -> BTreeMap<String, String> {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(slots: &[(u32, &str)], ports: &[(u16, &str)]) -> Held {
        Held {
            slots: slots.iter().map(|(s, n)| (*s, n.to_string())).collect(),
            ports: ports.iter().map(|(p, n)| (*p, n.to_string())).collect(),
        }
    }

    #[test]
    fn the_first_slot_free_of_sandboxes_and_programs() {
        let h = held(&[(1, "a")], &[(8002, "b")]);
        assert_eq!(allocate_slot(None, &h, |_| true).unwrap(), 3);
        assert_eq!(allocate_slot(None, &h, |p| p != 2203).unwrap(), 4);
        let full = held(&(1..=MAX_SLOT).map(|s| (s, "x")).collect::<Vec<_>>(), &[]);
        assert!(allocate_slot(None, &full, |_| true).unwrap_err().to_string().contains("all 99 slots"));
    }

    #[test]
    fn a_requested_slot_names_what_holds_it() {
        let h = held(&[(5, "five")], &[(9007, "seven")]);
        assert_eq!(allocate_slot(Some(6), &h, |_| true).unwrap(), 6);
        assert!(allocate_slot(Some(5), &h, |_| true).unwrap_err().to_string().contains("'five'"));
        assert!(allocate_slot(Some(7), &h, |_| true).unwrap_err().to_string().contains("'seven'"));
        assert!(allocate_slot(Some(8), &h, |p| p != 8008).unwrap_err().to_string().contains("another program"));
    }

    #[test]
    fn addresses_macs_and_devices() {
        let (ip, gw, prefix) = slot_address("br", "10.100.0.1/24", 7).unwrap();
        assert_eq!((ip.to_string(), gw.to_string(), prefix), ("10.100.0.107".into(), "10.100.0.1".into(), 24));
        assert!(slot_address("br", "10.100.0.1/28", 1).is_err());
        assert!(slot_address("br", "", 1).is_err());
        assert_eq!(slot_mac(10), "0a:5b:5a:00:00:0a");
        assert_eq!(dhcp_range("10.100.0.1/24").as_deref(), Some("10.100.0.2-10.100.0.100"));
        assert_eq!(dhcp_range("10.8.0.1/16").as_deref(), Some("10.8.0.2-10.8.0.100"));
        assert_eq!(dhcp_range("10.8.0.1/28"), None);
        assert_eq!(dhcp_range("none"), None);
        let d = slot_device(3, "10.0.0.103");
        assert_eq!(d["listen"], "tcp:127.0.0.1:2203,8003,9003");
        assert_eq!(d["connect"], "tcp:10.0.0.103:22,8080,9090");
        let p = proxy("udp", 7001, None, 7000);
        assert_eq!((p["connect"].as_str(), p.get("nat")), ("udp:127.0.0.1:7000", None));
        assert_eq!(proxy("tcp", 7001, Some("10.0.0.1"), 7000)["nat"], "true");
    }
}
