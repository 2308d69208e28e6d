//! Host-side networking the product owns: loopback port forwarding into sandboxes through
//! nftables DNAT (Incus `nat=true` proxy devices, ~0 ms at start instead of ~1 s per forkproxy),
//! which needs `route_localnet` on the bridge and a masquerade of loopback-sourced traffic; and,
//! because `route_localnet` would otherwise let a container reach the host's 127.0.0.1 services,
//! a drop of anything arriving from the bridge for 127.0.0.0/8.
use super::host::Host;
use crate::error::{EngineError, Result};

pub const NFT_TABLE: &str = "agent_sandboxes";

fn ruleset(bridge: &str) -> String {
    format!(
        "table ip {NFT_TABLE} {{\n\
         \tchain loopback_guard {{\n\
         \t\ttype filter hook prerouting priority raw; policy accept;\n\
         \t\tiifname \"{bridge}\" ip daddr 127.0.0.0/8 drop\n\
         \t}}\n\
         \tchain loopback_masq {{\n\
         \t\ttype nat hook postrouting priority srcnat; policy accept;\n\
         \t\toifname \"{bridge}\" ip saddr 127.0.0.0/8 masquerade\n\
         \t}}\n\
         }}\n"
    )
}

/// Idempotent; cheap when already in place (one `nft list`).
pub async fn ensure(host: &Host, bridge: &str) -> Result<()> {
    if !bridge.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.') {
        return Err(EngineError::invalid("bridge", format!("'{bridge}' is not an interface name"), ""));
    }
    if !host.is_available() {
        // A bare HTTPS remote: `sandbox setup`, run on that server, put these in place there.
        return Ok(());
    }
    let sysctl = format!("/proc/sys/net/ipv4/conf/{bridge}/route_localnet");
    if host.read_file(&sysctl).await.map(|v| v.trim() != "1").unwrap_or(true) {
        host.write_file(&sysctl, b"1").await.map_err(|e| {
            EngineError::failed(format!("cannot enable route_localnet on {bridge}: {e}"), "run sandbox as root (sudo)")
        })?;
    }
    // A sandbox is probed for SSH while it boots; the first ARP for it goes unanswered, and the
    // kernel's default 1 s before asking again would add a second to every create.
    let retrans = format!("/proc/sys/net/ipv4/neigh/{bridge}/retrans_time_ms");
    if host.read_file(&retrans).await.map(|v| v.trim() != "50").unwrap_or(false) {
        let _ = host.write_file(&retrans, b"50").await;
    }
    // Each sandbox's systemd takes inotify instances from one per-user budget (default 128).
    let inotify = "/proc/sys/fs/inotify/max_user_instances";
    if host.read_file(inotify).await.ok().and_then(|v| v.trim().parse::<u64>().ok()).is_some_and(|v| v < 8192) {
        let _ = host.write_file(inotify, b"1048576").await;
    }
    let listed =
        host.run(&["nft".into(), "list".into(), "table".into(), "ip".into(), NFT_TABLE.into()], None, |_| {}).await?;
    if listed.status == 0 && listed.stdout.contains("loopback_masq") && listed.stdout.contains(bridge) {
        return Ok(());
    }
    let rules = ruleset(bridge);
    let out = host.run(&["nft".into(), "-f".into(), "-".into()], Some(rules.as_bytes()), |_| {}).await?;
    if out.status != 0 {
        return Err(EngineError::failed(
            format!("cannot install the port-forwarding rules: {}", out.tail.join(" ")),
            "run sandbox as root, with nftables installed (apt-get install nftables)",
        ));
    }
    Ok(())
}
