//! Egress control. Every running sandbox gets the default policy (outbound DNS/22/80/443 only,
//! no sandbox↔sandbox, nothing inbound but the host's proxies); restricted sandboxes also get
//! Squid (TLS SNI peek/splice, HTTP Host) and their own filtering resolver, with per-sandbox
//! lists. All of it is derived state: Incus holds each sandbox's settings (`user.sandbox.*`), the
//! runtime directory holds who is registered (`/run`, so it goes with the rules at a reboot),
//! and `sync` rebuilds rules, Squid's configuration and the resolvers from both, under the host
//! lock. `sandbox start` registers, stop and rm unregister.
pub mod denials;
mod dns;
pub mod domains;
pub mod nft;
pub mod paths;
pub mod squid;

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
    Some(Member { name, ip, mac, slot, restricted: is_restricted(inst), upstreams })
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
pub fn effective_list(inst: &Instance) -> Result<BTreeSet<String>> {
    let file = inst.setting(keys::DOMAINS_FILE).map(std::path::PathBuf::from);
    let base = domains::base_list(file.as_deref())?;
    let allowed = domains::split_stored(inst.setting(keys::DOMAINS_ALLOW));
    let denied = domains::split_stored(inst.setting(keys::DOMAINS_DENY));
    Ok(domains::effective(&base, &allowed, &denied))
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
        if member_of(&inst).is_none() {
            // Made by the seed's scripts (no pinned address): nothing to key rules on.
            tracing::info!("egress: {name} has no pinned address; not registered");
            return Ok(());
        }
        if is_restricted(&inst) {
            // Already there when prepared; a sandbox found running gets it now.
            self.record_upstream(&inst).await?;
            let list = effective_list(&inst)?;
            paths::write_list(name, &list)?;
        }
        let _g = lock::acquire().await?;
        paths::mark(name, true)?;
        self.egress_sync().await
    }

    /// Removes every rule, list and resolver NAME owned. Idempotent.
    pub async fn egress_unregister(&self, name: &str) -> Result<()> {
        if self.host != super::host::Host::Local {
            return self.egress_default_elsewhere(None, Some(name)).await;
        }
        let _g = lock::acquire().await?;
        paths::mark(name, false)?;
        self.egress_sync().await
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

    /// Rebuilds everything from the registered sandboxes. Call with the host lock held.
    async fn egress_sync(&self) -> Result<()> {
        let active = paths::marked();
        if active.is_empty() && dns::known().is_empty() && !paths::rules_present(&self.host).await {
            return Ok(());
        }
        let net = self.egress_net().await?;
        let insts = self.incus.instances().await?;
        let mut members = Vec::new();
        for name in &active {
            match insts.iter().find(|i| i.name == instance_name(name)).and_then(member_of) {
                Some(m) => members.push(m),
                None => paths::mark(name, false)?,
            }
        }
        let restricted: Vec<&Member> = members.iter().filter(|m| m.restricted).collect();
        for m in &restricted {
            let list = paths::read_list(&m.name);
            dns::apply(&self.host, &net, m, &list).await?;
        }
        for name in dns::known() {
            if !restricted.iter().any(|m| m.name == name) {
                dns::stop(&self.host, &name).await?;
            }
        }
        paths::remove_stale_lists(&restricted.iter().map(|m| m.name.clone()).collect::<Vec<_>>());
        squid::apply(&self.host, &net, &members).await?;
        self.install_rules(&net, &members).await
    }

    /// Swaps in the nft tables for these members (one `nft -f` transaction, where Incus runs).
    async fn install_rules(&self, net: &Net, members: &[Member]) -> Result<()> {
        let script = nft::script(net, members);
        let out = self.host.run(&["nft".into(), "-f".into(), "-".into()], Some(script.as_bytes()), |_| {}).await?;
        if out.status != 0 {
            return Err(EngineError::failed(
                format!("cannot install the egress rules: {}", out.tail.join(" ")),
                "run sandbox as root where Incus runs, with nftables installed (apt-get install nftables)",
            ));
        }
        Ok(())
    }

    /// `sandbox allow` (add = true) and `sandbox deny`: stored in Incus, applied live when running.
    pub async fn change_allowlist(&self, name: &str, entries: &[String], add: bool) -> Result<Allowlist> {
        validate::sandbox_name(name)?;
        if entries.is_empty() {
            return Err(EngineError::invalid("domains", "no domain given", "e.g. sandbox allow NAME api.example.com"));
        }
        let entries: Vec<String> = entries.iter().map(|d| domains::domain(d)).collect::<Result<_>>()?;
        let inst = match self.incus.instance(&instance_name(name)).await {
            Ok(i) => i,
            Err(e) if e.is_not_found() => return Err(EngineError::sandbox_not_found(name)),
            Err(e) => return Err(e.into()),
        };
        if !is_restricted(&inst) {
            return Err(EngineError::invalid(
                "sandbox",
                format!("'{name}' has open egress: every domain is reachable already"),
                format!("restrict it: sandbox stop {name} && sandbox start {name} --restrict-domains"),
            ));
        }
        let mut allowed = domains::split_stored(inst.setting(keys::DOMAINS_ALLOW));
        let mut denied = domains::split_stored(inst.setting(keys::DOMAINS_DENY));
        for d in &entries {
            allowed.retain(|x| x != d);
            denied.retain(|x| x != d);
            if add { allowed.push(d.clone()) } else { denied.push(d.clone()) }
        }
        let mut c = Config::new();
        c.insert(keys::DOMAINS_ALLOW.into(), allowed.join(","));
        c.insert(keys::DOMAINS_DENY.into(), denied.join(","));
        self.incus.patch_instance(&inst.name, c, Devices::new()).await?;
        let inst = self.incus.instance(&inst.name).await?;
        let list = effective_list(&inst)?;
        let live = inst.status.eq_ignore_ascii_case("running") && paths::marked().iter().any(|n| n == name);
        if live {
            paths::write_list(name, &list)?;
            let _g = lock::acquire().await?;
            self.egress_sync().await?;
        }
        Ok(Allowlist { name: name.to_string(), domains: list.into_iter().collect(), live })
    }
}

impl Engine {
    /// What NAME was refused since it was created.
    pub async fn denials(&self, name: &str) -> Result<Vec<denials::Denial>> {
        validate::sandbox_name(name)?;
        let s = super::sandbox::get(&self.incus, name).await?.ok_or_else(|| EngineError::sandbox_not_found(name))?;
        let since = time::OffsetDateTime::parse(&s.created_at, &time::format_description::well_known::Rfc3339)
            .map(|t| t.unix_timestamp() as f64)
            .unwrap_or(0.0);
        Ok(denials::collect(name, s.ip.as_deref(), since))
    }
}
