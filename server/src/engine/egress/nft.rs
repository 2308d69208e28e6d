//! The nftables rules of egress control, one table per family, regenerated whole and swapped in
//! one transaction (`nft -f`), so a rule never outlives the sandbox that owned it and a failure
//! leaves the previous rules in place. Hooks run at priority `filter - 10` / `dstnat - 10`, before
//! Incus's own chains; an accept here still passes through Incus's, a drop or reject is final.
use std::fmt::Write;
use std::net::Ipv4Addr;

use super::{Member, Net, SQUID_HTTP_PORT, SQUID_TLS_PORT, dns_port};

pub const TABLE: &str = "agent_sandboxes_egress";
/// Every sandbox NIC has the MAC 0a:5b:5a:00:00:SLOT (and MAC filtering on, so it is trustworthy).
const MAC_PREFIX: &str = "0a:5b:5a:00:00:00";
const MAC_MASK: &str = "ff:ff:ff:ff:ff:00";

/// `nft -f` input: delete our tables (created empty first so the delete cannot fail), then add
/// them back with the current members. The tables stay even with no member: they fail closed for
/// a sandbox started behind our back (`incus start`), which has a pinned address and our MAC
/// prefix but no registration — it gets no traffic at all rather than an open network.
pub fn script(net: &Net, members: &[Member]) -> String {
    let mut s =
        format!("table ip {TABLE}\ndelete table ip {TABLE}\ntable bridge {TABLE}\ndelete table bridge {TABLE}\n");
    let br = &net.bridge;
    let pinned = net.pinned_range();
    let (gw, subnet) = (net.gateway, net.subnet());
    let set = |ms: &mut dyn Iterator<Item = &Member>| ms.map(|m| m.ip.to_string()).collect::<Vec<_>>().join(", ");
    let all = set(&mut members.iter());
    let restricted = set(&mut members.iter().filter(|m| m.restricted));
    let macs = members.iter().map(|m| m.mac.clone()).collect::<Vec<_>>().join(", ");
    let elements = |v: &str| if v.is_empty() { String::new() } else { format!(" elements = {{ {v} }};") };
    let macs_el = elements(&macs);

    // Layer 2: frames between two ports of the bridge never reach the ip hooks (no
    // br_netfilter here), so sandbox↔sandbox traffic on the shared bridge is cut in the bridge
    // family; MAC filtering on the NIC makes the source MAC trustworthy.
    let _ = writeln!(
        s,
        "table bridge {TABLE} {{\n\
         \tset sandbox_macs {{ type ether_addr;{macs_el} }}\n\
         \tchain isolate {{\n\
         \t\ttype filter hook forward priority filter - 10; policy accept;\n\
         \t\tether saddr @sandbox_macs drop\n\
         \t\tether daddr @sandbox_macs drop\n\
         \t\tether saddr & {MAC_MASK} == {MAC_PREFIX} drop\n\
         \t\tether daddr & {MAC_MASK} == {MAC_PREFIX} drop\n\
         \t}}\n}}"
    );

    let mut dns = String::new();
    for m in members.iter().filter(|m| m.restricted) {
        for proto in ["udp", "tcp"] {
            let _ = writeln!(
                dns,
                "\t\tiifname \"{br}\" ip saddr {} ip daddr {gw} {proto} dport 53 redirect to :{}",
                m.ip,
                dns_port(m.slot)
            );
        }
    }
    let _ = writeln!(
        s,
        "table ip {TABLE} {{\n\
         \tset sandboxes {{ type ipv4_addr;{all_el} }}\n\
         \tset restricted {{ type ipv4_addr;{res_el} }}\n\
         \tchain divert {{\n\
         \t\ttype nat hook prerouting priority dstnat - 10; policy accept;\n\
         {dns}\
         \t\tiifname \"{br}\" ip saddr @restricted ip daddr != {subnet} tcp dport 443 redirect to :{SQUID_TLS_PORT}\n\
         \t\tiifname \"{br}\" ip saddr @restricted ip daddr != {subnet} tcp dport 80 redirect to :{SQUID_HTTP_PORT}\n\
         \t}}\n\
         \tchain forward_guard {{\n\
         \t\ttype filter hook forward priority filter - 10; policy accept;\n\
         \t\tiifname \"{br}\" ip saddr @sandboxes jump from_sandbox\n\
         \t\toifname \"{br}\" ip daddr @sandboxes jump to_sandbox\n\
         \t\tiifname \"{br}\" ip saddr {pinned} jump unregistered\n\
         \t\toifname \"{br}\" ip daddr {pinned} ct state new drop\n\
         \t}}\n\
         \tchain unregistered {{\n\
         \t\tct state established,related accept\n\
         \t\tjump refuse\n\
         \t}}\n\
         \tchain from_sandbox {{\n\
         \t\toifname \"{br}\" reject with icmp type admin-prohibited\n\
         \t\tct state established,related accept\n\
         \t\tip saddr @restricted jump restricted_out\n\
         \t\ttcp dport {{ 22, 53, 80, 443 }} accept\n\
         \t\tudp dport {{ 53, 443 }} accept\n\
         \t\tjump refuse\n\
         \t}}\n\
         \tchain restricted_out {{\n\
         \t\ttcp dport 22 accept\n\
         \t\tudp dport 443 drop\n\
         \t\tjump refuse\n\
         \t}}\n\
         \tchain to_sandbox {{\n\
         \t\tct state established,related accept\n\
         \t\tdrop\n\
         \t}}\n\
         \tchain input_guard {{\n\
         \t\ttype filter hook input priority filter - 10; policy accept;\n\
         \t\tiifname \"{br}\" ip saddr @sandboxes jump sandbox_to_host\n\
         \t\tiifname \"{br}\" ip saddr {pinned} jump unregistered\n\
         \t}}\n\
         \tchain sandbox_to_host {{\n\
         \t\tct state established,related accept\n\
         \t\tip saddr @restricted ct status dnat accept\n\
         \t\tip saddr @restricted jump refuse\n\
         \t\tip daddr {gw} udp dport {{ 53, 67 }} accept\n\
         \t\tip daddr {gw} tcp dport 53 accept\n\
         \t\tjump refuse\n\
         \t}}\n\
         \tchain refuse {{\n\
         \t\tmeta l4proto tcp reject with tcp reset\n\
         \t\treject with icmp type admin-prohibited\n\
         \t}}\n}}",
        all_el = elements(&all),
        res_el = elements(&restricted),
    );
    s
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

    fn member(name: &str, slot: u32, restricted: bool) -> Member {
        Member {
            name: name.into(),
            ip: format!("10.100.0.{}", 100 + slot).parse().unwrap(),
            mac: format!("0a:5b:5a:00:00:{slot:02x}"),
            slot,
            restricted,
            upstreams: vec!["192.0.2.53".parse().unwrap()],
        }
    }

    /// No member: every pinned address is unregistered and refused (fail closed).
    #[test]
    fn ruleset_without_members() {
        insta::assert_snapshot!(script(&net(), &[]));
    }

    /// One open and one restricted sandbox: isolation, the restricted one's DNS and HTTP(S) diverted.
    #[test]
    fn ruleset_with_an_open_and_a_restricted_sandbox() {
        insta::assert_snapshot!(script(&net(), &[member("open", 4, false), member("shut", 5, true)]));
    }
}
