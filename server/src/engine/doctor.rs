//! `sandbox doctor`: every piece the product needs, each missing one with the command that fixes it.
use serde::Serialize;

use super::golden::{self, BRIDGE, STORAGE_POOL};
use super::host::Host;
use crate::incus::{Endpoint, Incus};

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub enum CheckStatus {
    Ok,
    /// An optional piece is missing: a feature will not work.
    Warning,
    /// A required piece is missing: sandboxes do not work at all.
    Failed,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    pub name: String,
    pub status: CheckStatus,
    pub ok: bool,
    /// Required for sandboxes to work at all (a failed optional check is a warning).
    pub required: bool,
    pub detail: String,
    /// The exact command that fixes it.
    pub fix: Option<String>,
}

pub(crate) fn check(name: &str, ok: bool, required: bool, detail: impl Into<String>, fix: Option<&str>) -> Check {
    let status = match (ok, required) {
        (true, _) => CheckStatus::Ok,
        (false, true) => CheckStatus::Failed,
        (false, false) => CheckStatus::Warning,
    };
    Check {
        name: name.into(),
        status,
        ok,
        required,
        detail: detail.into(),
        fix: if ok { None } else { fix.map(str::to_owned) },
    }
}

/// Installs and starts Incus (the binary carries the steps); goes through sudo when not root.
pub const INSTALL: &str = "sandbox host install";

pub async fn run(incus: &Incus, host: &Host) -> Vec<Check> {
    let local = matches!(incus.endpoint(), Endpoint::Unix(_));
    let mut out = Vec::new();
    if local {
        let installed = host.which("incus").is_some() || std::path::Path::new("/usr/libexec/incus/incusd").exists();
        let detail = if installed { "found" } else { "incus is not installed" };
        out.push(check("incus installed", installed, true, detail, Some(INSTALL)));
    }
    match incus.server().await {
        Ok(info) => {
            let version = info.pointer("/environment/server_version").and_then(|v| v.as_str()).unwrap_or("?");
            let detail = format!("Incus {version} at {}", incus.endpoint().describe());
            out.push(check("incus running", true, true, detail, None));
        }
        Err(e) => {
            out.push(check("incus running", false, true, e.to_string(), Some(INSTALL)));
            return out;
        }
    }
    out.extend(storage_and_bridge(incus).await);
    out.extend(golden_images(incus).await);
    if local {
        out.extend(host_tools(host));
    }
    out
}

async fn storage_and_bridge(incus: &Incus) -> Vec<Check> {
    let pool = match incus.storage_pool(STORAGE_POOL).await {
        Ok(p) if p.driver == "btrfs" => {
            check("storage pool", true, true, "btrfs pool 'default' (copy-on-write clones)", None)
        }
        Ok(p) => check(
            "storage pool",
            false,
            false,
            format!("pool 'default' uses {} — clones are full copies, not btrfs snapshots", p.driver),
            Some("incus storage create sandbox btrfs size=20GiB  # then point the default profile's root disk at it"),
        ),
        Err(e) => check("storage pool", false, true, e.to_string(), Some("sandbox setup")),
    };
    let mut out = vec![pool];
    match incus.network(BRIDGE).await {
        Ok(n) => {
            let nat = n.config.get("ipv4.nat").map(String::as_str).unwrap_or("true");
            let addr = n.config.get("ipv4.address").cloned().unwrap_or_default();
            out.push(check("bridge", true, true, format!("{BRIDGE} {addr} (NAT {nat})"), None));
            // What the egress rules do about IPv6 on it.
            out.push(check("bridge IPv6", true, false, super::egress::ipv6_note(&n), None));
        }
        Err(e) => out.push(check("bridge", false, true, e.to_string(), Some("sandbox setup"))),
    }
    out
}

async fn golden_images(incus: &Incus) -> Vec<Check> {
    let list = match golden::list(incus).await {
        Ok(l) => l,
        Err(e) => return vec![check("golden images", false, true, e.to_string(), Some("sandbox setup"))],
    };
    let built: Vec<&str> = list.iter().filter(|g| g.built).map(|g| g.stack.as_str()).collect();
    let stale: Vec<&str> = list.iter().filter(|g| g.built && g.stale).map(|g| g.stack.as_str()).collect();
    let detail = if built.is_empty() { "none built".to_string() } else { format!("built: {}", built.join(", ")) };
    let fix = "sandbox setup --base-image debootstrap:bookworm --stack minimal   # or --stack base with internet";
    let mut out = vec![check("golden images", !built.is_empty(), true, detail, Some(fix))];
    if !stale.is_empty() {
        let cmd = format!("sandbox setup --rebuild {}", stale.join(" --rebuild "));
        let detail = format!("stack scripts changed since build: {}", stale.join(", "));
        out.push(check("golden images current", false, false, detail, Some(&cmd)));
    }
    out
}

fn host_tools(host: &Host) -> Vec<Check> {
    let squid = host.which("squid");
    let squid_ok = squid.as_ref().is_some_and(|p| {
        std::process::Command::new(p)
            .arg("-v")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("--with-openssl"))
    });
    let detail = match (squid_ok, squid.is_some()) {
        (true, _) => "found",
        (false, true) => "squid lacks OpenSSL (ssl-bump)",
        (false, false) => "not installed",
    };
    let mut out = vec![check("squid (openssl build)", squid_ok, false, detail, Some("apt-get install squid-openssl"))];
    for (tool, pkg) in
        [("ssh-agent", "openssh-client"), ("ssh", "openssh-client"), ("nft", "nftables"), ("tmux", "tmux")]
    {
        let ok = host.which(tool).is_some();
        let fix = format!("apt-get install {pkg}");
        out.push(check(tool, ok, tool == "ssh", if ok { "found" } else { "not installed" }, Some(&fix)));
    }
    out
}
