//! The egress policy with IPv6 on the bridge (what `incus admin init` gives by default: a ULA).
//! This suite gives the shared bridge an IPv6 prefix for the length of its run and restores it at
//! exit, also when a test fails (and at the start of the next run, if this one was killed).
//! Cargo runs test binaries one after another, so no other suite sees the change.
//! Sandboxes are IPv4-only: as root, with an address and a route they configured themselves, they
//! reach nothing over IPv6 — not the simulated internet, not the host's resolver.
use std::process::Command;
use std::sync::OnceLock;

use sandbox_e2e::inet::{self, BRIDGE6_GW, WEB, WEB6, exec};
use sandbox_e2e::inet_probe::{ENV, list_file, ok, start, tcp_connect, udp_echo};
use sandbox_e2e::{sandbox, sandbox_home, text, unique};

const BRIDGE: &str = "incusbr0";
const BRIDGE6: &str = "fd5b:5a:1::1/64";

fn incus(args: &[&str]) -> String {
    let o = Command::new("incus").args(args).output().expect("incus");
    assert!(o.status.success(), "incus {args:?}: {}", text(&o.stderr));
    text(&o.stdout).trim().to_string()
}

fn saved() -> std::path::PathBuf {
    sandbox_home().join("egress-ipv6-bridge-restore.txt")
}

/// Puts the bridge back as it was (the saved `ipv6.address` and `ipv6.nat`).
fn restore() {
    let Ok(s) = std::fs::read_to_string(saved()) else { return };
    let mut lines = s.lines();
    let (addr, nat) = (lines.next().unwrap_or("none"), lines.next().unwrap_or(""));
    let _ = Command::new("incus").args(["network", "set", BRIDGE, &format!("ipv6.address={addr}")]).status();
    let key =
        if nat.is_empty() { vec!["network", "unset", BRIDGE, "ipv6.nat"] } else { vec!["network", "set", BRIDGE] };
    let mut args = key;
    let kv = format!("ipv6.nat={nat}");
    if !nat.is_empty() {
        args.push(&kv);
    }
    let _ = Command::new("incus").args(&args).status();
    let _ = std::fs::remove_file(saved());
}

struct World {
    restricted: String,
    open: String,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        restore(); // a killed run's change
        let addr = incus(&["network", "get", BRIDGE, "ipv6.address"]);
        let nat = incus(&["network", "get", BRIDGE, "ipv6.nat"]);
        std::fs::create_dir_all(sandbox_home()).unwrap();
        std::fs::write(saved(), format!("{}\n{nat}\n", if addr.is_empty() { "none" } else { &addr })).unwrap();
        inet::inet();
        let (restricted, open) = (unique("eg6r"), unique("eg6o"));
        {
            let names = [restricted.clone(), open.clone()];
            inet::at_exit(move || {
                let _ = sandbox(&["rm", &names[0], &names[1]], ENV);
                restore();
            });
        }
        // NAT stays off: the prefix is routed to the test's namespace only.
        incus(&["network", "set", BRIDGE, &format!("ipv6.address={BRIDGE6}"), "ipv6.nat=false"]);
        let f = list_file("egress-ipv6-list.txt", "allowed.test\n");
        start(&restricted, &["--domains-file", &f]);
        start(&open, &[]);
        for (i, n) in [&restricted, &open].into_iter().enumerate() {
            give_ipv6(n, 200 + i);
        }
        World { restricted, open }
    })
}

/// What a root attacker does when SLAAC did not already: an address in the bridge's prefix and
/// a default route through the bridge.
fn give_ipv6(name: &str, host: usize) {
    let a = format!("fd5b:5a:1::{host}/64");
    let _ = exec(name, &["ip", "-6", "addr", "add", &a, "dev", "eth0", "nodad"]);
    let o = exec(name, &["ip", "-6", "route", "replace", "default", "via", BRIDGE6_GW, "dev", "eth0"]);
    assert!(o.status.success(), "{name}: {}", text(&o.stderr));
}

#[test]
fn no_ipv6_traffic_leaves_any_sandbox() {
    let w = world();
    for s in [&w.restricted, &w.open] {
        for port in ["22", "80", "443", "8080"] {
            assert_ne!(tcp_connect(s, WEB6, port), "connected", "{s}: TCP {port} over IPv6");
        }
        assert!(!udp_echo(s, WEB6, "51820"), "{s}: UDP 51820 over IPv6");
        assert!(!udp_echo(s, WEB6, "443"), "{s}: UDP 443 over IPv6");
        let ping = exec(s, &["ping", "-6", "-c", "1", "-W", "2", WEB6]);
        assert!(!ping.status.success(), "{s}: ICMPv6 echo answered");
        assert_ne!(tcp_connect(s, BRIDGE6_GW, "53"), "connected", "{s}: the bridge's resolver over IPv6");
    }
    // The servers answer over IPv6 (the host reaches them), and IPv4 still goes out.
    assert!(std::net::TcpStream::connect((WEB6, 443)).is_ok(), "the IPv6 listener is up");
    assert_eq!(tcp_connect(&w.open, WEB, "443"), "connected");
}

#[test]
fn a_name_with_an_ipv6_address_still_goes_through_the_filter() {
    let w = world();
    // allowed.test has A and AAAA records: the request must take IPv4, through Squid.
    let body = ok(&w.restricted, &["https://allowed.test/"]);
    assert!(body.contains(&format!("addr={WEB} ")) && body.contains("sni=allowed.test"), "{body}");
    // blocked.test too: with IPv6 it would skip Squid altogether.
    let o = exec(&w.restricted, &["curl", "-sk", "--max-time", "5", "-6", &format!("https://[{WEB6}]/")]);
    assert!(!text(&o.stdout).contains("https ok"), "IPv6 straight to the server: {}", text(&o.stdout));
}

#[test]
fn setup_and_doctor_say_what_happens_to_ipv6() {
    world();
    let out = sandbox(&["doctor", "--json"], ENV);
    let checks: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let c = checks.as_array().unwrap().iter().find(|c| c["name"] == "bridge IPv6").cloned();
    let c = c.unwrap_or_else(|| panic!("no 'bridge IPv6' check: {checks}"));
    assert_eq!(c["ok"], true, "{c}");
    assert!(c["detail"].as_str().unwrap().contains("IPv4 only"), "{c}");
    let out = sandbox(&["setup", "--stack", "minimal"], ENV);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("IPv4 only"), "{}", text(&out.stderr));
}
