//! Egress control. Every running sandbox gets the default policy (outbound 22/80/443 only, DNS
//! only to its own resolver, QUIC only when asked for, IPv4 only, no sandbox↔sandbox, nothing
//! inbound but the host's proxies); restricted sandboxes also get Squid (TLS SNI peek/splice,
//! HTTP Host) and their own filtering resolver, with per-sandbox lists, and port 22 only to the
//! addresses their resolver gave for allowed names. All of it is derived state: Incus holds each
//! sandbox's settings (`user.sandbox.*`), the runtime directory holds who is registered (`/run`,
//! so it goes with the rules at a reboot), and `sync` rebuilds rules, Squid's configuration and
//! the resolvers from both, under the host lock. `sandbox start` registers, stop and rm
//! unregister (and cut the sandbox's open connections, as `deny` does).
mod allow;
pub mod denials;
mod dns;
pub mod domains;
pub mod nft;
pub mod paths;
pub mod squid;
pub mod squid_acl;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use serde::Serialize;

use super::golden::BRIDGE;
use super::sandbox::is_restricted;
use super::validate::{self, instance_name, sandbox_of};
use super::{Engine, keys, lock};
use crate::error::{EngineError, Result};
use crate::incus::{Config, Devices, Instance};

pub const SQUID_TLS_PORT: u16 = 3129;
pub const SQUID_HTTP_PORT: u16 = 3130;

/// The port of a restricted sandbox's resolver on the bridge address.
pub fn dns_port(slot: u32) -> u16 {
    5300 + slot as u16
}

/// The bridge every sandbox is on.
#[derive(Debug, Clone)]
pub struct Net {
    pub bridge: String,
    pub gateway: Ipv4Addr,
    pub prefix: u32,
}

/// A registered sandbox as the rules see it.
#[derive(Debug, Clone)]
pub struct Member {
    pub name: String,
    pub ip: Ipv4Addr,
    pub mac: String,
    pub slot: u32,
    pub restricted: bool,
    /// UDP 443 allowed (open sandboxes started with --allow-quic).
    pub quic: bool,
    /// Its list has names allowed to private addresses (filled in at sync).
    pub has_private: bool,
    pub upstreams: Vec<Ipv4Addr>,
}

/// What `allow`/`deny` leave in force.
#[derive(Debug, Clone, Serialize, serde::Deserialize, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub struct Allowlist {
    pub name: String,
    /// The effective list (`.d` = d and its subdomains).
    pub domains: Vec<String>,
    /// The running sandbox uses it already (false: applied at its next start).
    pub live: bool,
}

fn member_of(inst: &Instance) -> Option<Member> {
    let name = sandbox_of(&inst.name)?.to_string();
    inst.setting(keys::CREATED_BY)?;
    let devices = if inst.expanded_devices.is_empty() { &inst.devices } else { &inst.expanded_devices };
    let nic = devices.get("eth0")?;
    let ip: Ipv4Addr = nic.get("ipv4.address")?.parse().ok()?;
    let mac = nic.get("hwaddr")?.to_ascii_lowercase();
    if mac.len() != 17 || !mac.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
        return None;
    }
    let slot = inst.setting(keys::SLOT)?.parse().ok()?;
    let upstreams =
        inst.setting(keys::DNS_UPSTREAM).unwrap_or("").split(',').filter_map(|u| u.trim().parse().ok()).collect();
    let restricted = is_restricted(inst);
    let quic = !restricted && inst.setting(keys::ALLOW_QUIC) == Some("yes");
    Some(Member { name, ip, mac, slot, restricted, quic, has_private: false, upstreams })
}

pub fn bridge_has_ipv6(bridge: &crate::incus::Network) -> bool {
    bridge.config.get("ipv6.address").is_some_and(|a| !a.is_empty() && a != "none")
}

/// What the egress rules do about IPv6 on the bridge (`sandbox setup` and `doctor` say it).
pub fn ipv6_note(bridge: &crate::incus::Network) -> String {
    match bridge.config.get("ipv6.address").map(String::as_str) {
        Some(a) if bridge_has_ipv6(bridge) => format!(
            "{BRIDGE} has IPv6 ({a}): sandboxes stay IPv4 only — the egress rules refuse their IPv6 \
             (neighbour discovery aside), for open and restricted sandboxes alike"
        ),
        _ => format!("{BRIDGE} has no IPv6: sandboxes are IPv4 only"),
    }
}

/// `--allow-quic` is for open sandboxes only: QUIC would carry TLS past the SNI check.
pub fn check_quic(allow_quic: bool, restricted: bool) -> Result<()> {
    if allow_quic && restricted {
        return Err(EngineError::invalid(
            "options",
            "--allow-quic cannot go with restricted domains: QUIC (UDP 443) would skip the name check",
            "drop --allow-quic (HTTP/3 clients fall back to TCP), or start without --restrict-domains",
        ));
    }
    Ok(())
}

/// The resolver restricted sandboxes (and Squid) forward allowlisted names to:
/// `SANDBOX_DNS_UPSTREAM`, else the host's first IPv4 nameserver.
pub fn upstream() -> Result<Ipv4Addr> {
    if let Ok(v) = std::env::var("SANDBOX_DNS_UPSTREAM")
        && !v.is_empty()
    {
        return v.trim().parse().map_err(|_| {
            EngineError::invalid("SANDBOX_DNS_UPSTREAM", format!("'{v}' is not an IPv4 address"), "e.g. 192.0.2.53")
        });
    }
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    text.lines().filter_map(|l| l.trim().strip_prefix("nameserver")).find_map(|v| v.trim().parse().ok()).ok_or_else(
        || {
            EngineError::failed(
                "the host has no IPv4 nameserver in /etc/resolv.conf",
                "set SANDBOX_DNS_UPSTREAM=IP (the resolver restricted sandboxes' allowed names go to)",
            )
        },
    )
}

/// The effective list of a sandbox, read on the host: base (precedence) + allowed − denied.
pub fn effective_list(inst: &Instance) -> Result<domains::List> {
    let file = inst.setting(keys::DOMAINS_FILE).map(std::path::PathBuf::from);
    let base = domains::base_list(file.as_deref())?;
    let allowed = domains::split_stored(inst.setting(keys::DOMAINS_ALLOW));
    let denied = domains::split_stored(inst.setting(keys::DOMAINS_DENY));
    Ok(domains::effective(&base, &allowed, &denied))
}

/// Whether NAME has egress state on this host: its registration, its list or its resolver.
pub fn has_state(name: &str) -> bool {
    paths::marked().iter().any(|n| n == name)
        || paths::list_file(name).exists()
        || dns::known().iter().any(|n| n == name)
}

/// Every name with egress state on this host.
pub fn names_with_state() -> BTreeSet<String> {
    let lists = std::fs::read_dir(paths::run().join("lists"))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str()?.strip_suffix(".txt").map(str::to_owned))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    paths::marked().into_iter().chain(lists).chain(dns::known()).filter(|n| validate::sandbox_name(n).is_ok()).collect()
}

impl Engine {
    async fn egress_net(&self) -> Result<Net> {
        let net = self.incus.network(BRIDGE).await?;
        let cidr = net.config.get("ipv4.address").cloned().unwrap_or_default();
        let (addr, prefix) = cidr.split_once('/').unwrap_or((&cidr, "24"));
        let gateway = addr.parse().map_err(|_| {
            EngineError::failed(format!("bridge {BRIDGE} has no IPv4 address"), "sandbox setup creates it")
        })?;
        Ok(Net { bridge: BRIDGE.to_string(), gateway, prefix: prefix.parse().unwrap_or(24) })
    }

    /// What registering changes on the instance itself (the upstream a restricted sandbox's
    /// resolver asks), done before it starts: Incus refuses config changes during a start, and
    /// `egress_register` may then run while it boots.
    pub async fn egress_prepare(&self, name: &str) -> Result<()> {
        if self.host != super::host::Host::Local {
            return Ok(());
        }
        let inst = self.incus.instance(&instance_name(name)).await?;
        if is_restricted(&inst) && member_of(&inst).is_some() {
            self.record_upstream(&inst).await?;
        }
        Ok(())
    }

    async fn record_upstream(&self, inst: &crate::incus::Instance) -> Result<()> {
        let up = upstream()?.to_string();
        if inst.setting(keys::DNS_UPSTREAM) != Some(up.as_str()) {
            let mut c = Config::new();
            c.insert(keys::DNS_UPSTREAM.into(), up);
            self.incus.patch_instance(&inst.name, c, Devices::new()).await?;
        }
        Ok(())
    }

    /// Puts NAME's policy in place: its list, resolver, Squid rules and nft rules. Until then the
    /// nft rules let a sandbox address open nothing, so it may run while the sandbox boots (after
    /// `egress_prepare`).
    pub async fn egress_register(&self, name: &str) -> Result<()> {
        let inst = self.incus.instance(&instance_name(name)).await?;
        if self.host != super::host::Host::Local {
            // Squid, the resolvers and their files live on this machine only so far; elsewhere
            // the default policy (ports, isolation) is what can be put in place.
            if is_restricted(&inst) {
                return Err(EngineError::failed(
                    format!("'{name}' restricts its domains, which works only where Incus runs on this machine"),
                    "run `sandbox` on the Incus host itself, or start it without --restrict-domains",
                ));
            }
            return self.egress_default_elsewhere(Some(name), None).await;
        }
        let Some(member) = member_of(&inst) else {
            // Made by the seed's scripts (no pinned address): nothing to key rules on.
            tracing::info!("egress: {name} has no pinned address; not registered");
            return Ok(());
        };
        let list = if is_restricted(&inst) {
            // Already there when prepared; a sandbox found running gets it now.
            self.record_upstream(&inst).await?;
            Some(effective_list(&inst)?)
        } else {
            None
        };
        let _g = lock::acquire().await?;
        // Under the lock: another sync removes the lists of sandboxes it does not know yet.
        if let Some(list) = &list {
            paths::write_list(name, list)?;
        }
        paths::mark(name, Some(member.ip))?;
        self.egress_sync().await
    }

    /// Removes every rule, list and resolver NAME owned, and ends the connections it still has
    /// through Squid. Idempotent.
    pub async fn egress_unregister(&self, name: &str) -> Result<()> {
        if self.host != super::host::Host::Local {
            return self.egress_default_elsewhere(None, Some(name)).await;
        }
        let _g = lock::acquire().await?;
        let ip = paths::marked_ip(name);
        paths::mark(name, None)?;
        self.egress_sync().await?;
        // Best effort here: the sandbox is stopped or gone either way (a deny reports it).
        if let Some(ip) = ip
            && let Err(e) = squid::cut(&self.host, ip).await
        {
            tracing::warn!("egress: {name}'s connections through Squid were not closed: {e}");
        }
        Ok(())
    }

    /// The default policy where Incus runs elsewhere but we can run `nft` there (the OrbStack
    /// machine): members are derived from Incus alone — every running sandbox, plus the one
    /// starting, minus the one stopping. A bare HTTPS remote cannot run anything: its own
    /// `sandbox` does this on the server, so here it is a warning, not a failure.
    async fn egress_default_elsewhere(&self, starting: Option<&str>, stopping: Option<&str>) -> Result<()> {
        if !self.host.is_available() {
            tracing::warn!("egress: rules are put in place by `sandbox` running on the Incus server");
            return Ok(());
        }
        let _g = lock::acquire().await?;
        let net = self.egress_net().await?;
        let members: Vec<Member> = self
            .incus
            .instances()
            .await?
            .iter()
            .filter(|i| {
                let n = sandbox_of(&i.name);
                n.is_some() && n != stopping && (i.is_running() || n == starting)
            })
            .filter_map(member_of)
            .map(|m| Member { restricted: false, ..m })
            .collect();
        self.install_rules(&net, &members).await
    }

    /// The registered sandboxes that still exist (the others are forgotten).
    async fn members(&self) -> Result<Vec<Member>> {
        let insts = self.incus.instances().await?;
        let mut members = Vec::new();
        for name in paths::marked() {
            match insts.iter().find(|i| i.name == instance_name(&name)).and_then(member_of) {
                Some(m) => members.push(m),
                None => paths::mark(&name, None)?,
            }
        }
        Ok(members)
    }

    /// Rebuilds everything from the registered sandboxes. Call with the host lock held. The
    /// rules go first: they hold the sets the resolvers fill.
    async fn egress_sync(&self) -> Result<()> {
        if paths::marked().is_empty() && dns::known().is_empty() && !paths::rules_present(&self.host).await {
            return Ok(());
        }
        let net = self.egress_net().await?;
        let mut members = self.members().await?;
        let mut lists = Vec::new();
        for m in members.iter_mut().filter(|m| m.restricted) {
            let list = paths::read_list(&m.name);
            m.has_private = !list.private.is_empty();
            lists.push((m.clone(), list));
        }
        self.install_rules(&net, &members).await?;
        let host_addrs = dns::host_addresses();
        let mut union = domains::List::default();
        for (m, list) in &lists {
            let set = nft::addr_set(&m.name);
            let r = dns::Resolver {
                id: &m.name,
                listen: net.gateway,
                port: dns_port(m.slot),
                upstreams: &m.upstreams,
                list,
                addr_set: Some(set),
                host_addrs: &host_addrs,
            };
            dns::apply(&self.host, &r).await?;
            union.union(list);
        }
        let keep: Vec<String> = lists.iter().map(|(m, _)| m.name.clone()).collect();
        for id in dns::known() {
            if !keep.contains(&id) && (id != dns::SQUID_ID || keep.is_empty()) {
                dns::stop(&self.host, &id).await?;
            }
        }
        if !keep.is_empty() {
            let mut upstreams: Vec<Ipv4Addr> = lists.iter().flat_map(|(m, _)| m.upstreams.clone()).collect();
            upstreams.sort();
            upstreams.dedup();
            let r = dns::Resolver {
                id: dns::SQUID_ID,
                listen: dns::SQUID_RESOLVER,
                port: 53,
                upstreams: &upstreams,
                list: &union,
                addr_set: None,
                host_addrs: &host_addrs,
            };
            dns::apply(&self.host, &r).await?;
        }
        paths::remove_stale_lists(&keep);
        squid::apply(&self.host, &net, &members, &host_addrs).await
    }

    /// Puts the nft tables for these members in place (one `nft -f` transaction, where Incus
    /// runs), dropping the address sets of sandboxes no longer registered.
    async fn install_rules(&self, net: &Net, members: &[Member]) -> Result<()> {
        let listed = ["nft", "list", "table", "inet", nft::TABLE].map(String::from);
        let listing = self.host.run(&listed, None, |_| {}).await?;
        let current: Vec<String> = members.iter().filter(|m| m.restricted).map(|m| nft::addr_set(&m.name)).collect();
        let stale: Vec<String> =
            nft::addr_sets_in(&listing.stdout).into_iter().filter(|s| !current.contains(s)).collect();
        let script = nft::script(net, members, &stale);
        let argv = ["nft", "-f", "-"].map(String::from);
        let mut out = self.host.run(&argv, Some(script.as_bytes()), |_| {}).await?;
        if out.status != 0 && listing.status == 0 {
            // A table of another layout (an upgrade) cannot be updated in place: start afresh.
            tracing::warn!("egress: replacing the nft table ({})", out.tail.join(" "));
            let fresh = format!("{}{}", nft::reset_prefix(), nft::script(net, members, &[]));
            out = self.host.run(&argv, Some(fresh.as_bytes()), |_| {}).await?;
        }
        if out.status != 0 {
            return Err(EngineError::failed(
                format!("cannot install the egress rules: {}", out.tail.join(" ")),
                "run sandbox as root where Incus runs, with nftables installed (apt-get install nftables)",
            ));
        }
        Ok(())
    }

    /// Ends what restricted sandbox M opened while names now denied were allowed: port-22
    /// connections (its address set is emptied; allowed names fill it again at their next look-up)
    /// and everything it has through Squid.
    async fn cut(&self, m: &Member) -> Result<()> {
        let argv = ["nft", "flush", "set", "inet", nft::TABLE, &nft::addr_set(&m.name)].map(String::from);
        let out = self.host.run(&argv, None, |_| {}).await?;
        if out.status != 0 {
            return Err(EngineError::failed(format!("cannot empty the address set: {}", out.tail.join(" ")), ""));
        }
        squid::cut(&self.host, m.ip).await
    }
}
