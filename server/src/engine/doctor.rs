//! `sandbox doctor`: every piece the product needs, each missing one with the command that fixes it.
use serde::Serialize;

use super::golden::{self, BRIDGE, STORAGE_POOL};
use super::host::Host;
use crate::incus::{Endpoint, Incus};

#[derive(Debug, Clone, Serialize, serde::Deserialize, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    pub name: String,
    pub ok: bool,
    /// Required for sandboxes to work at all (a failed optional check is a warning).
    pub required: bool,
    pub detail: String,
    /// The exact command that fixes it.
    pub fix: Option<String>,
}

fn check(name: &str, ok: bool, required: bool, detail: impl Into<String>, fix: Option<&str>) -> Check {
    Check {
        name: name.into(),
        ok,
        required,
        detail: detail.into(),
        fix: if ok { None } else { fix.map(str::to_owned) },
    }
}

const INSTALL: &str = "sudo scripts/install-host.sh";

pub async fn run(incus: &Incus, host: &Host) -> Vec<Check> {
    let mut out = Vec::new();
    let local = matches!(incus.endpoint(), Endpoint::Unix(_));
    if local {
        let installed = host.which("incus").is_some() || std::path::Path::new("/usr/libexec/incus/incusd").exists();
        out.push(check(
            "incus installed",
            installed,
            true,
            if installed { "found" } else { "incus is not installed" },
            Some(INSTALL),
        ));
    }
    let server = incus.server().await;
    match &server {
        Ok(info) => {
            let version = info.pointer("/environment/server_version").and_then(|v| v.as_str()).unwrap_or("?");
            out.push(check(
                "incus running",
                true,
                true,
                format!("Incus {version} at {}", incus.endpoint().describe()),
                None,
            ));
        }
        Err(e) => {
            out.push(check("incus running", false, true, e.to_string(), Some(INSTALL)));
            return out;
        }
    }
    match incus.storage_pool(STORAGE_POOL).await {
        Ok(p) if p.driver == "btrfs" => {
            out.push(check("storage pool", true, true, "btrfs pool 'default' (copy-on-write clones)", None))
        }
        Ok(p) => out.push(check(
            "storage pool",
            false,
            false,
            format!("pool 'default' uses {} — clones are full copies, not btrfs snapshots", p.driver),
            Some("incus storage create sandbox btrfs size=20GiB  # then point the default profile's root disk at it"),
        )),
        Err(e) => out.push(check("storage pool", false, true, e.to_string(), Some("sandbox setup"))),
    }
    match incus.network(BRIDGE).await {
        Ok(n) => {
            let nat = n.config.get("ipv4.nat").map(String::as_str).unwrap_or("true");
            let addr = n.config.get("ipv4.address").cloned().unwrap_or_default();
            out.push(check("bridge", true, true, format!("{BRIDGE} {addr} (NAT {nat})"), None));
        }
        Err(e) => out.push(check("bridge", false, true, e.to_string(), Some("sandbox setup"))),
    }
    match golden::list(incus).await {
        Ok(list) => {
            let built: Vec<&str> = list.iter().filter(|g| g.built).map(|g| g.stack.as_str()).collect();
            let stale: Vec<&str> = list.iter().filter(|g| g.built && g.stale).map(|g| g.stack.as_str()).collect();
            out.push(check(
                "golden images",
                !built.is_empty(),
                true,
                if built.is_empty() { "none built".to_string() } else { format!("built: {}", built.join(", ")) },
                Some(
                    "sandbox setup --base-image debootstrap:bookworm --stack minimal   # or --stack base with internet",
                ),
            ));
            if !stale.is_empty() {
                let cmd = format!("sandbox setup --rebuild {}", stale.join(" --rebuild "));
                out.push(Check {
                    name: "golden images current".into(),
                    ok: false,
                    required: false,
                    detail: format!("stack scripts changed since build: {}", stale.join(", ")),
                    fix: Some(cmd),
                });
            }
        }
        Err(e) => out.push(check("golden images", false, true, e.to_string(), Some("sandbox setup"))),
    }
    if local {
        let squid = host.which("squid");
        let squid_ok = match &squid {
            Some(p) => std::process::Command::new(p)
                .arg("-v")
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).contains("--with-openssl"))
                .unwrap_or(false),
            None => false,
        };
        out.push(check(
            "squid (openssl build)",
            squid_ok,
            false,
            if squid_ok {
                "found".to_string()
            } else if squid.is_some() {
                "squid lacks OpenSSL (ssl-bump)".to_string()
            } else {
                "not installed".to_string()
            },
            Some("sudo apt-get install squid-openssl"),
        ));
        for (tool, pkg) in
            [("ssh-agent", "openssh-client"), ("ssh", "openssh-client"), ("nft", "nftables"), ("tmux", "tmux")]
        {
            let ok = host.which(tool).is_some();
            out.push(check(
                tool,
                ok,
                tool == "ssh",
                if ok { "found" } else { "not installed" },
                Some(&format!("sudo apt-get install {pkg}")),
            ));
        }
    }
    out
}
