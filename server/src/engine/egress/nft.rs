//! The nftables rules of egress control: a `bridge` table (layer 2: sandbox↔sandbox, ethertypes,
//! IPv6 towards sandboxes) and an `inet` table (everything routed, IPv4 and IPv6). Each sync
//! rewrites them in one `nft -f` transaction, so a failure leaves the previous rules in place.
//! The inet table is flushed rather than deleted: its `addrs_NAME` sets — the addresses a
//! restricted sandbox's resolver gave for allowed names, the only ones it may reach on port 22
//! and plain HTTP — are filled at run time (dnsmasq `nftset=`) and must outlive other syncs.
//! Hooks run at priority `filter - 10` / `dstnat - 10`, before Incus's own chains; an accept here
//! still passes through Incus's, a drop or reject is final.
//!
//! Sandboxes are IPv4-only: IPv6 from a sandbox MAC gets neighbour discovery with the host and
//! nothing else (rejected at once, so clients fall back to IPv4 fast); only IPv4, ARP and IPv6
//! frames leave a sandbox's port at all.
use std::fmt::Write;
use std::net::Ipv4Addr;

use super::{Member, Net, SQUID_HTTP_PORT, SQUID_TLS_PORT, dns_port};

pub const TABLE: &str = "agent_sandboxes_egress";
/// Every sandbox NIC has the MAC 0a:5b:5a:00:00:SLOT (and MAC filtering on, so it is trustworthy).
const MAC_PREFIX: &str = "0a:5b:5a:00:00:00";
const MAC_MASK: &str = "ff:ff:ff:ff:ff:00";
const SANDBOX_MAC: &str = "ether saddr & ff:ff:ff:ff:ff:00 == 0a:5b:5a:00:00:00";
/// How long an address a restricted sandbox's resolver answered stays reachable without traffic
/// (every packet of a port-22 connection renews it; every look-up of the name too).
pub const ADDR_TIMEOUT: &str = "1h";

/// The set of addresses restricted sandbox NAME may reach on port 22 and plain HTTP.
pub fn addr_set(name: &str) -> String {
    format!("addrs_{name}")
}

/// `nft -f` input for these members; `stale` are address sets of sandboxes no longer registered.
pub fn script(net: &Net, members: &[Member], stale: &[String]) -> String {
    // The first version's IPv4-only table goes; the bridge table has no run-time state.
    let mut s = format!(
        "table ip {TABLE}\ndelete table ip {TABLE}\ntable bridge {TABLE}\ndelete table bridge {TABLE}\n\
         table inet {TABLE}\nflush table inet {TABLE}\n"
    );
    s.push_str(&bridge_table(members));
    s.push_str(&inet_table(net, members));
    let ips = |f: &dyn Fn(&Member) -> bool| members.iter().filter(|m| f(m)).map(|m| m.ip.to_string()).collect();
    let sets: [(&str, Vec<String>); 3] =
        [("sandboxes", ips(&|_| true)), ("restricted", ips(&|m| m.restricted)), ("quic", ips(&|m| m.quic))];
    for (set, v) in sets {
        let _ = writeln!(s, "flush set inet {TABLE} {set}");
        if !v.is_empty() {
            let _ = writeln!(s, "add element inet {TABLE} {set} {{ {} }}", v.join(", "));
        }
    }
    for set in stale {
        let _ = writeln!(s, "delete set inet {TABLE} {set}");
    }
    s
}

/// Tables that failed to update in place (an older layout): removed first, at the cost of the
/// address sets' contents (sandboxes resolve again).
pub fn reset_prefix() -> String {
    format!("table inet {TABLE}\ndelete table inet {TABLE}\n")
}

/// The address sets an `nft list table inet …` shows.
pub fn addr_sets_in(listing: &str) -> Vec<String> {
    listing
        .lines()
        .filter_map(|l| l.trim().strip_prefix("set ")?.strip_suffix(" {"))
        .filter(|n| n.starts_with("addrs_"))
        .map(str::to_owned)
        .collect()
}

/// Layer 2. Frames between two ports of the bridge never reach the inet hooks (no
/// br_netfilter here), so sandbox↔sandbox traffic on the shared bridge is cut here; MAC
/// filtering on the NIC makes the source MAC trustworthy. Only IPv4, ARP and IPv6 leave a
/// sandbox (no VLAN-tagged or other protocols to the host), and towards a sandbox IPv6 carries
/// only neighbour discovery and the host's own refusals (the bridge family cannot reject).
fn bridge_table(members: &[Member]) -> String {
    let macs = members.iter().map(|m| m.mac.clone()).collect::<Vec<_>>().join(", ");
    let macs_el = if macs.is_empty() { String::new() } else { format!(" elements = {{ {macs} }};") };
    format!(
        "table bridge {TABLE} {{\n\
         \tset sandbox_macs {{ type ether_addr;{macs_el} }}\n\
         \tchain isolate {{\n\
         \t\ttype filter hook forward priority filter - 10; policy accept;\n\
         \t\tether saddr @sandbox_macs drop\n\
         \t\tether daddr @sandbox_macs drop\n\
         \t\tether saddr & {MAC_MASK} == {MAC_PREFIX} drop\n\
         \t\tether daddr & {MAC_MASK} == {MAC_PREFIX} drop\n\
         \t}}\n\
         \tchain from_sandbox {{\n\
         \t\ttype filter hook prerouting priority filter - 10; policy accept;\n\
         \t\t{SANDBOX_MAC} ether type != {{ ip, arp, ip6 }} drop\n\
         \t}}\n\
         \tchain to_sandbox {{\n\
         \t\ttype filter hook output priority filter - 10; policy accept;\n\
         \t\tether daddr & {MAC_MASK} == {MAC_PREFIX} ether type ip6 jump ipv6_in\n\
         \t}}\n\
         \tchain ipv6_in {{\n\
         \t\ticmpv6 type {{ nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert, destination-unreachable, \
         packet-too-big, time-exceeded, parameter-problem }} accept\n\
         \t\tmeta l4proto tcp tcp flags & rst == rst accept\n\
         \t\tdrop\n\
         \t}}\n}}\n"
    )
}

/// Addresses a restricted sandbox's TLS is never handed to Squid for: the bridge, the host (also
/// `fib daddr type local`), link-local (cloud metadata), multicast. They meet the input or
/// forward policy instead, which refuses them. (Plain HTTP goes only to allowed names' addresses,
/// which the resolver never lets be the host's.)
fn never_proxied(net: &Net) -> String {
    format!("{{ {}, 0.0.0.0/8, 127.0.0.0/8, 169.254.0.0/16, 224.0.0.0/3 }}", net.subnet())
}

/// Everything routed: per-sandbox sets and redirects, then the forward and input policies.
fn inet_table(net: &Net, members: &[Member]) -> String {
    let br = &net.bridge;
    let gw = net.gateway;
    let (mut sets, mut divert, mut ssh) = (String::new(), String::new(), String::new());
    for m in members.iter().filter(|m| m.restricted) {
        let set = addr_set(&m.name);
        let _ = writeln!(sets, "\tset {set} {{ type ipv4_addr; flags dynamic, timeout; timeout {ADDR_TIMEOUT}; }}");
        for proto in ["udp", "tcp"] {
            let _ = writeln!(
                divert,
                "\t\tiifname \"{br}\" ip saddr {} ip daddr {gw} {proto} dport 53 redirect to :{}",
                m.ip,
                dns_port(m.slot)
            );
        }
        // Plain HTTP only to an allowed name's address: Squid then checks the Host header (a
        // forged one cannot point a request anywhere else).
        let _ = writeln!(
            divert,
            "\t\tiifname \"{br}\" ip saddr {} ip daddr @{set} tcp dport 80 redirect to :{SQUID_HTTP_PORT}",
            m.ip
        );
        let _ = writeln!(ssh, "\t\tip saddr {} tcp dport 22 ip daddr @{set} update @{set} {{ ip daddr }} accept", m.ip);
    }
    let _ = writeln!(
        divert,
        "\t\tiifname \"{br}\" ip saddr @restricted ip daddr != {} fib daddr type != local \
         tcp dport 443 redirect to :{SQUID_TLS_PORT}",
        never_proxied(net)
    );
    format!(
        "table inet {TABLE} {{\n\
         \tset sandboxes {{ type ipv4_addr; }}\n\
         \tset restricted {{ type ipv4_addr; }}\n\
         \tset quic {{ type ipv4_addr; }}\n\
         {sets}\
         \tchain divert {{\n\
         \t\ttype nat hook prerouting priority dstnat - 10; policy accept;\n\
         {divert}\
         \t}}\n\
         {forward}{input}\
         \tchain unregistered {{\n\
         \t\tct state established,related accept\n\
         \t\tjump refuse\n\
         \t}}\n\
         \tchain refuse {{\n\
         \t\tmeta l4proto tcp reject with tcp reset\n\
         \t\treject with icmpx type admin-prohibited\n\
         \t}}\n}}\n",
        forward = forward_chains(net, &ssh),
        input = input_chains(net),
    )
}

/// Routed through the host: sandboxes reach 22/80/443 (restricted ones less, see `ssh`), never
/// each other, and nothing reaches them but replies.
fn forward_chains(net: &Net, ssh: &str) -> String {
    let (br, pinned) = (&net.bridge, net.pinned_range());
    format!(
        "\tchain forward_guard {{\n\
         \t\ttype filter hook forward priority filter - 10; policy accept;\n\
         \t\tiifname \"{br}\" ip saddr @sandboxes jump from_sandbox\n\
         \t\toifname \"{br}\" ip daddr @sandboxes jump to_sandbox\n\
         \t\tiifname \"{br}\" ip saddr {pinned} jump unregistered\n\
         \t\toifname \"{br}\" ip daddr {pinned} ct state new drop\n\
         \t\tiifname \"{br}\" {SANDBOX_MAC} meta nfproto ipv6 jump refuse\n\
         \t}}\n\
         \tchain from_sandbox {{\n\
         \t\toifname \"{br}\" reject with icmpx type admin-prohibited\n\
         \t\tip saddr @restricted jump restricted_out\n\
         \t\tct state established,related accept\n\
         \t\ttcp dport {{ 22, 80, 443 }} accept\n\
         \t\tip saddr @quic udp dport 443 accept\n\
         \t\tjump refuse\n\
         \t}}\n\
         \tchain restricted_out {{\n\
         {ssh}\
         \t\tct state related accept\n\
         \t\tjump refuse\n\
         \t}}\n\
         \tchain to_sandbox {{\n\
         \t\tct state established,related accept\n\
         \t\tdrop\n\
         \t}}\n"
    )
}

/// To the host itself: DNS/DHCP on the gateway for open sandboxes, only what was redirected for
/// restricted ones; Squid's ports and the resolvers only through the redirect, from the bridge.
fn input_chains(net: &Net) -> String {
    let (br, gw, pinned) = (&net.bridge, net.gateway, net.pinned_range());
    format!(
        "\tchain input_guard {{\n\
         \t\ttype filter hook input priority filter - 10; policy accept;\n\
         \t\tiifname \"{br}\" ip saddr @sandboxes jump sandbox_to_host\n\
         \t\tiifname \"{br}\" ip saddr {pinned} jump unregistered\n\
         \t\tiifname \"{br}\" {SANDBOX_MAC} meta nfproto ipv6 jump ipv6_to_host\n\
         \t\tip daddr {gw} tcp dport {{ {SQUID_TLS_PORT}, {SQUID_HTTP_PORT} }} jump redirected_only\n\
         \t\tip daddr {gw} meta l4proto {{ tcp, udp }} th dport {first}-{last} jump redirected_only\n\
         \t}}\n\
         \tchain redirected_only {{\n\
         \t\tiifname \"{br}\" ct status dnat accept\n\
         \t\tjump refuse\n\
         \t}}\n\
         \tchain sandbox_to_host {{\n\
         \t\tct state established,related accept\n\
         \t\tip saddr @restricted ct status dnat accept\n\
         \t\tip saddr @restricted jump refuse\n\
         \t\tip daddr {gw} udp dport {{ 53, 67 }} accept\n\
         \t\tip daddr {gw} tcp dport 53 accept\n\
         \t\tjump refuse\n\
         \t}}\n\
         \tchain ipv6_to_host {{\n\
         \t\ticmpv6 type {{ nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit }} accept\n\
         \t\tjump refuse\n\
         \t}}\n",
        first = dns_port(1),
        last = dns_port(99),
    )
}

/// The bridge's network: the subnet every sandbox lives in.
impl Net {
    /// The addresses sandboxes are pinned to: network + 100 + slot, slots 1–99.
    pub fn pinned_range(&self) -> String {
        let mask = if self.prefix == 0 { 0 } else { u32::MAX << (32 - self.prefix) };
        let base = u32::from(self.gateway) & mask;
        format!("{}-{}", Ipv4Addr::from(base + 101), Ipv4Addr::from(base + 199))
    }

    pub fn subnet(&self) -> String {
        let mask = if self.prefix == 0 { 0 } else { u32::MAX << (32 - self.prefix) };
        format!("{}/{}", Ipv4Addr::from(u32::from(self.gateway) & mask), self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net() -> Net {
        Net { bridge: "incusbr0".into(), gateway: "10.100.0.1".parse().unwrap(), prefix: 24 }
    }

    fn member(name: &str, slot: u32, restricted: bool, quic: bool) -> Member {
        Member {
            name: name.into(),
            ip: format!("10.100.0.{}", 100 + slot).parse().unwrap(),
            mac: format!("0a:5b:5a:00:00:{slot:02x}"),
            slot,
            restricted,
            quic,
            has_private: false,
            upstreams: vec![],
        }
    }

    /// No member: every pinned address is unregistered and refused (fail closed).
    #[test]
    fn ruleset_without_members() {
        insta::assert_snapshot!(script(&net(), &[], &[]));
    }

    /// An open, a QUIC and a restricted sandbox: isolation, IPv4 only, the restricted one's DNS,
    /// HTTP(S) diverted and port 22 only to its address set.
    #[test]
    fn ruleset_with_open_quic_and_restricted_sandboxes() {
        let members = [member("open", 4, false, false), member("quic", 6, false, true), member("shut", 5, true, false)];
        insta::assert_snapshot!(script(&net(), &members, &["addrs_gone".into()]));
    }

    #[test]
    fn unregistered_sandboxes_fail_closed() {
        let s = script(&net(), &[], &[]);
        assert!(s.contains("ip saddr 10.100.0.101-10.100.0.199 jump unregistered"), "{s}");
        assert!(s.contains("ether saddr & ff:ff:ff:ff:ff:00 == 0a:5b:5a:00:00:00 drop"), "{s}");
        assert!(!s.contains("elements = {  }") && !s.contains("add element"), "{s}");
    }

    #[test]
    fn restricted_members_get_their_resolver_proxy_and_address_set() {
        let s = script(&net(), &[member("a", 5, true, false)], &["addrs_gone".into()]);
        assert!(s.contains("ip saddr 10.100.0.105 ip daddr 10.100.0.1 udp dport 53 redirect to :5305"), "{s}");
        assert!(s.contains("fib daddr type != local tcp dport 443 redirect to :3129"), "{s}");
        assert!(s.contains("set addrs_a { type ipv4_addr; flags dynamic, timeout; timeout 1h; }"), "{s}");
        assert!(s.contains("ip saddr 10.100.0.105 tcp dport 22 ip daddr @addrs_a update @addrs_a { ip daddr } accept"));
        assert!(s.contains("ip saddr 10.100.0.105 ip daddr @addrs_a tcp dport 80 redirect to :3130"), "{s}");
        assert!(s.contains("delete set inet agent_sandboxes_egress addrs_gone"), "{s}");
        // The ssh check comes before established traffic is let through: a flushed set cuts.
        let (a, b) = (s.find("jump restricted_out").unwrap(), s.find("ct state established,related accept\n\t\ttcp"));
        assert!(a < b.unwrap(), "{s}");
    }

    #[test]
    fn open_members_keep_no_tunnel_ports() {
        let s = script(&net(), &[member("a", 5, false, false)], &[]);
        assert!(s.contains("tcp dport { 22, 80, 443 } accept") && !s.contains("dport { 22, 53"), "{s}");
        assert!(s.contains("ip saddr @quic udp dport 443 accept"), "{s}");
        assert!(!s.contains("add element inet agent_sandboxes_egress quic"), "{s}");
        let s = script(&net(), &[member("a", 5, false, true)], &[]);
        assert!(s.contains("add element inet agent_sandboxes_egress quic { 10.100.0.105 }"), "{s}");
    }

    #[test]
    fn addr_sets_are_read_back_from_a_listing() {
        let l = "table inet x {\n\tset sandboxes {\n\t\ttype ipv4_addr\n\t}\n\tset addrs_t-a-1 {\n\t}\n}\n";
        assert_eq!(addr_sets_in(l), ["addrs_t-a-1"]);
    }
}
