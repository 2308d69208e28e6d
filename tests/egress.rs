//! Egress control against real Incus, real nftables, real Squid and real dnsmasq, with a
//! simulated internet in a network namespace (support/inet.rs). Every "blocked" test also shows
//! the same request succeeding where it is allowed (the open sandbox, the right address, or the
//! host), so a failure cannot come from an unrelated cause.
use std::sync::OnceLock;

use sandbox_e2e::inet::{self, DIG, OTHER, UPSTREAM, WEB, exec};
use sandbox_e2e::inet_probe::{
    ENV, curl, dig, getent, list_file as write_list, ok, refused, resolve, start, tcp_connect, udp_echo,
};
use sandbox_e2e::{sandbox, text, unique};

struct World {
    /// --domains-file with allowed.test and .wild.test
    restricted: String,
    open: String,
}

fn list_file() -> String {
    write_list("egress-test-list.txt", "# test list\nallowed.test\n.wild.test\n")
}

/// One restricted and one open sandbox, shared by the read-only tests; removed at exit.
fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        inet::inet();
        let (restricted, open) = (unique("egr"), unique("ego"));
        {
            let names = [restricted.clone(), open.clone()];
            inet::at_exit(move || {
                let mut args = vec!["rm"];
                args.extend(names.iter().map(String::as_str));
                let _ = sandbox(&args, ENV);
            });
        }
        let f = list_file();
        start(&restricted, &["--domains-file", &f]);
        start(&open, &[]);
        World { restricted, open }
    })
}

// ── allowed ─────────────────────────────────────────────────────────────────────────────────

#[test]
fn https_to_an_allowed_name_is_spliced_with_its_sni() {
    let w = world();
    let body = ok(&w.restricted, &["https://allowed.test/"]);
    assert!(body.contains("sni=allowed.test"), "{body}");
}

#[test]
fn https_to_a_subdomain_of_a_wildcard_entry() {
    let w = world();
    let body = ok(&w.restricted, &["https://deep.a.wild.test/"]);
    assert!(body.contains("sni=deep.a.wild.test"), "{body}");
}

#[test]
fn http_to_an_allowed_host() {
    let w = world();
    let body = ok(&w.restricted, &["http://allowed.test/"]);
    assert!(body.contains("http ok") && body.contains("host=allowed.test"), "{body}");
}

#[test]
fn dns_answers_an_allowed_name() {
    let w = world();
    assert_eq!(dig(&w.restricted, "allowed.test", "10.100.0.1").unwrap(), WEB);
    assert_eq!(dig(&w.restricted, "x.wild.test", "10.100.0.1").unwrap(), WEB);
}

#[test]
fn ssh_port_22_goes_out_to_an_allowed_name() {
    let w = world();
    // Port 22 opens to the addresses the sandbox's resolver gave for allowed names.
    assert!(getent(&w.restricted, "allowed.test").contains(WEB));
    let o = exec(&w.restricted, &["nc", "-w", "3", WEB, "22"]);
    assert!(text(&o.stdout).starts_with("SSH-2.0-simulated"), "{}", text(&o.stderr));
}

// ── blocked ─────────────────────────────────────────────────────────────────────────────────

#[test]
fn a_name_not_on_the_list_is_cut_and_reported() {
    let w = world();
    let r = resolve("", "blocked.test");
    refused(&w.restricted, &["--resolve", &r, "https://blocked.test/"]);
    refused(&w.restricted, &["http://blocked.test/"]);
    ok(&w.open, &["--resolve", &r, "https://blocked.test/"]);
    let out = sandbox(&["denials", &w.restricted, "--json"], ENV);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let d: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let hit = d.as_array().unwrap().iter().find(|x| x["domain"] == "blocked.test" && x["kind"] == "tls");
    assert!(hit.is_some_and(|h| h["count"].as_u64() >= Some(1)), "denials: {d}");
    // What went through is not reported.
    let fine = format!("{}.wild.test", unique("fine"));
    ok(&w.restricted, &[&format!("https://{fine}/")]);
    let out = sandbox(&["denials", &w.restricted, "--json"], ENV);
    assert!(!text(&out.stdout).contains(&fine), "{}", text(&out.stdout));
}

#[test]
fn tls_without_sni_is_cut() {
    let w = world();
    refused(&w.restricted, &[&format!("https://{WEB}/")]);
    let body = ok(&w.open, &[&format!("https://{WEB}/")]);
    assert!(body.contains("sni= "), "{body}");
}

#[test]
fn an_allowed_sni_sent_to_another_address_is_cut() {
    let w = world();
    let r = resolve(OTHER, "allowed.test");
    refused(&w.restricted, &["--resolve", &r, "https://allowed.test/"]);
    ok(&w.restricted, &["--resolve", &resolve(WEB, "allowed.test"), "https://allowed.test/"]);
    ok(&w.open, &["--resolve", &r, "https://allowed.test/"]);
}

#[test]
fn plain_http_to_a_raw_ip_is_refused() {
    let w = world();
    refused(&w.restricted, &[&format!("http://{WEB}/")]);
    ok(&w.open, &[&format!("http://{WEB}/")]);
}

#[test]
fn a_forged_host_header_is_refused() {
    let w = world();
    let args = ["-H", "Host: allowed.test", &format!("http://{OTHER}/")];
    refused(&w.restricted, &args);
    let body = ok(&w.open, &args);
    assert!(body.contains("host=allowed.test"), "{body}");
}

#[test]
fn connect_through_port_80_is_refused_by_the_proxy() {
    let w = world();
    for target in ["https://blocked.test/", "https://allowed.test/"] {
        let err = refused(&w.restricted, &["-p", "-x", "http://allowed.test:80", target]);
        // The proxy itself answered (403/409), not a network failure: the refusal is policy.
        assert!(err.contains("error: 40") || err.contains("response 40"), "{target}: {err}");
    }
}

#[test]
fn quic_udp_443_is_dropped() {
    let w = world();
    assert!(!udp_echo(&w.restricted, WEB, "443"), "UDP 443 got an answer from a restricted sandbox");
    assert!(!udp_echo(&w.open, WEB, "443"), "UDP 443 got an answer from an open sandbox");
    // (egress_bypass.rs: with --allow-quic an open sandbox reaches the same echo server)
}

#[test]
fn a_dns_tunnel_name_never_leaves_the_host() {
    let w = world();
    let name = format!("{}.t.tunnel.test", unique("exfil").replace('-', ""));
    assert!(dig(&w.restricted, &name, "10.100.0.1").is_err(), "tunnel name resolved");
    let upstream = std::fs::read_to_string(&inet::inet().upstream_log).unwrap_or_default();
    assert!(!upstream.contains(&name), "the tunnel name reached the upstream");
    // The upstream would have answered it: the host asks it directly (the test's own netns).
    let o = std::process::Command::new("python3").args(["-c", DIG, &name, UPSTREAM]).output().unwrap();
    assert_eq!(text(&o.stdout).trim(), WEB, "{}", text(&o.stderr));
}

#[test]
fn dns_straight_to_another_resolver_is_blocked() {
    let w = world();
    assert!(dig(&w.restricted, "allowed.test", UPSTREAM).is_err());
    assert!(dig(&w.open, "allowed.test", UPSTREAM).is_err());
    // That resolver answers (the host asks it directly).
    let o = std::process::Command::new("python3").args(["-c", DIG, "allowed.test", UPSTREAM]).output().unwrap();
    assert_eq!(text(&o.stdout).trim(), WEB, "{}", text(&o.stderr));
}

#[test]
fn a_spoofed_source_address_gets_nowhere() {
    let w = world();
    let spoof = "10.100.0.250";
    let o = exec(&w.restricted, &["ip", "addr", "add", &format!("{spoof}/32"), "dev", "eth0"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let spoofed = curl(&w.restricted, &["--interface", spoof, "--connect-timeout", "3", &format!("https://{WEB}/")]);
    let _ = exec(&w.restricted, &["ip", "addr", "del", &format!("{spoof}/32"), "dev", "eth0"]);
    assert!(!spoofed.0, "spoofed source got through: {}", spoofed.1);
    ok(&w.restricted, &["https://allowed.test/"]);
}

#[test]
fn sandboxes_cannot_reach_each_other_directly_or_through_the_gateway() {
    let w = world();
    let target = sandbox_e2e::listed(&w.restricted).unwrap()["ip"].as_str().unwrap().to_string();
    let srv = "import http.server as h\nclass S(h.HTTPServer):\n def server_bind(self):\n  import socketserver; socketserver.TCPServer.server_bind(self)\n\
               S(('0.0.0.0',443),h.SimpleHTTPRequestHandler).serve_forever()";
    let t = w.restricted.clone();
    let server = std::thread::spawn(move || exec(&t, &["timeout", "25", "python3", "-c", srv]));
    let url = format!("http://{target}:443/");
    // The host reaches it (the listener is up) …
    let mut up = false;
    for _ in 0..50 {
        let o = std::process::Command::new("curl").args(["-sf", "--max-time", "2", &url]).output().unwrap();
        if o.status.success() {
            up = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(up, "the listener in {} never answered the host", w.restricted);
    // … another sandbox does not, neither on the bridge nor routed through the gateway.
    refused(&w.open, &["--connect-timeout", "3", &url]);
    let o = exec(&w.open, &["ip", "route", "add", &format!("{target}/32"), "via", "10.100.0.1"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let via_gw = curl(&w.open, &["--connect-timeout", "3", &url]);
    let _ = exec(&w.open, &["ip", "route", "del", &format!("{target}/32")]);
    assert!(!via_gw.0, "reached {target} through the gateway");
    let _ = exec(&w.restricted, &["pkill", "-f", "SimpleHTTPRequestHandler"]);
    let _ = server.join();
}

#[test]
fn a_port_outside_the_policy_is_rejected_fast() {
    let w = world();
    assert!(getent(&w.restricted, "allowed.test").contains(WEB));
    for s in [&w.restricted, &w.open] {
        assert_eq!(tcp_connect(s, WEB, "5432"), "refused", "{s}: 5432 should be rejected with a reset");
        assert_eq!(tcp_connect(s, WEB, "22"), "connected", "{s}: 22 is allowed");
    }
    let banner = std::net::TcpStream::connect((WEB, 5432));
    assert!(banner.is_ok(), "the 5432 listener is up (seen from the host)");
}

#[test]
fn a_sandbox_started_behind_our_back_gets_no_network() {
    inet::inet();
    let w = world();
    let name = unique("egb");
    let _guard = sandbox_e2e::Sandboxes(vec![name.clone()]);
    start(&name, &["--domains-file", &list_file()]);
    assert!(getent(&name, "allowed.test").contains(WEB));
    assert_eq!(tcp_connect(&name, WEB, "22"), "connected", "registered: port 22 goes out");
    let inst = format!("agent-{name}");
    let cfg = std::process::Command::new("incus").args(["config", "get", &inst, "boot.autostart"]).output().unwrap();
    assert_eq!(text(&cfg.stdout).trim(), "false", "a host reboot must not bring it back without its policy");
    // Stopped through us (policy removed), then started with plain `incus start`: no policy was
    // put in place, so it must get nothing — not an open network.
    let out = sandbox(&["stop", &name], ENV);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let started = std::process::Command::new("incus").args(["start", &inst]).status().unwrap();
    assert!(started.success());
    // Wait for its network to be configured (it boots on its own now; nobody waits for it).
    for _ in 0..50 {
        if !text(&exec(&name, &["ip", "-4", "route", "show", "default"]).stdout).trim().is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(tcp_connect(&name, WEB, "22"), "refused", "unregistered: nothing goes out");
    assert_ne!(tcp_connect(&name, "10.100.0.1", "53"), "connected", "nor to the host");
    let other_ip = sandbox_e2e::listed(&w.open).unwrap()["ip"].as_str().unwrap().to_string();
    assert_ne!(tcp_connect(&name, &other_ip, "22"), "connected", "nor to another sandbox");
    // `sandbox start` on the running sandbox puts the policy back.
    let out = sandbox(&["start", &name], ENV);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(getent(&name, "allowed.test").contains(WEB));
    assert_eq!(tcp_connect(&name, WEB, "22"), "connected", "registered again");
}

// ── live changes, restart, removal ─────────────────────────────────────────────────────────

#[test]
fn allow_and_deny_apply_live_and_survive_a_restart() {
    inet::inet();
    let name = unique("egl");
    let _guard = sandbox_e2e::Sandboxes(vec![name.clone()]);
    start(&name, &["--domains-file", &list_file()]);
    refused(&name, &["https://later.test/"]);
    // Straight to the address too: Squid looks the name up and is refused (it keeps that answer).
    refused(&name, &["--resolve", &resolve("", "later.test"), "https://later.test/"]);
    let out = sandbox(&["allow", &name, "later.test", ".extra.test"], ENV);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("in force now"), "{}", text(&out.stdout));
    // No restart: the running sandbox reaches it once `allow` returns — within the second Squid
    // keeps a refused look-up (it kept it for a minute before).
    let since = std::time::Instant::now();
    loop {
        let (good, out, err) = curl(&name, &["https://later.test/"]);
        if good {
            assert!(out.contains("sni=later.test"), "{out}");
            break;
        }
        assert!(since.elapsed() < std::time::Duration::from_secs(3), "still refused after `allow`: {err}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(dig(&name, "later.test", "10.100.0.1").unwrap(), WEB);

    let stop = sandbox(&["stop", &name], ENV);
    assert!(stop.status.success(), "{}", text(&stop.stderr));
    let restart = sandbox(&["start", &name], ENV);
    assert!(restart.status.success(), "{}", text(&restart.stderr));
    ok(&name, &["https://later.test/"]);
    refused(&name, &["--resolve", &resolve("", "blocked.test"), "https://blocked.test/"]);

    let out = sandbox(&["deny", &name, "later.test"], ENV);
    assert!(out.status.success(), "{}", text(&out.stderr));
    refused(&name, &["https://later.test/"]);
    assert!(dig(&name, "later.test", "10.100.0.1").is_err());
    ok(&name, &["https://allowed.test/"]);
}

/// The product's own egress tables (Incus's port-forward chains in `inet incus` are not ours).
fn egress_rules() -> String {
    ["inet", "bridge"]
        .iter()
        .map(|fam| {
            let out = std::process::Command::new("nft").args(["list", "table", fam, "agent_sandboxes_egress"]).output();
            text(&out.unwrap().stdout)
        })
        .collect()
}

/// Whether an instance holds this address now: the slot `rm` frees may be taken at once by a
/// sandbox of another test, whose rules then rightly name the same address and resolver port.
fn address_taken(ip: &str) -> bool {
    let out = std::process::Command::new("incus").args(["list", "--format", "csv", "-c", "4"]).output().unwrap();
    text(&out.stdout).contains(&format!("{ip} "))
}

#[test]
fn rm_leaves_no_rule_behind() {
    inet::inet();
    let name = unique("egrm");
    let mut guard = sandbox_e2e::Sandboxes(vec![name.clone()]);
    start(&name, &["--domains-file", &list_file()]);
    let s = sandbox_e2e::listed(&name).unwrap();
    let (ip, slot) = (s["ip"].as_str().unwrap().to_string(), s["slot"].as_u64().unwrap());
    // Who Squid's ACL helper knows as a restricted sandbox (its configuration names nobody).
    let squid_conf = "/run/agent-sandboxes/egress/squid-members";
    let dns_port = format!(":{}", 5300 + slot);
    let owned = |rules: &str, conf: &str| {
        [
            rules.contains(&format!("{ip} ")) || rules.contains(&format!("{ip},")),
            rules.contains(&dns_port),
            conf.contains(&name),
        ]
    };
    let conf = std::fs::read_to_string(squid_conf).unwrap();
    assert_eq!(owned(&egress_rules(), &conf), [true, true, true], "the sandbox's rules were not there to begin with");
    let out = sandbox(&["rm", &name], ENV);
    assert!(out.status.success(), "{}", text(&out.stderr));
    guard.0.clear();
    let (rules, conf) = (egress_rules(), std::fs::read_to_string(squid_conf).unwrap_or_default());
    let left = owned(&rules, &conf);
    assert!(!left[2], "the sandbox is still one of Squid's members:\n{conf}");
    // Its address and resolver port are its own only while no other sandbox has taken the slot.
    if !address_taken(&ip) {
        assert_eq!(left, [false, false, false], "rules left behind:\n{rules}");
    }
    for f in [format!("lists/{name}.txt"), format!("dns/{name}.conf"), format!("active/{name}")] {
        assert!(!std::path::Path::new("/run/agent-sandboxes/egress").join(&f).exists(), "{f} left behind");
    }
    let ps = text(&std::process::Command::new("ps").args(["-eo", "args"]).output().unwrap().stdout);
    assert!(!ps.contains(&format!("dns/{name}.conf")), "its resolver still runs");
}

#[test]
fn bad_input_is_refused_with_a_hint() {
    let w = world();
    for bad in ["evil.test;reconfigure", "1.2.3.4", "a b.test", "-x.test", "test"] {
        let out = sandbox(&["allow", &w.restricted, "--", bad], ENV);
        assert!(!out.status.success(), "{bad} accepted");
        assert!(text(&out.stderr).contains("hint:"), "{}", text(&out.stderr));
    }
    let out = sandbox(&["allow", &w.open, "x.test"], ENV);
    assert!(!out.status.success() && text(&out.stderr).contains("open egress"), "{}", text(&out.stderr));
    let out = sandbox(&["allow", &unique("nobody"), "x.test"], ENV);
    assert!(!out.status.success() && text(&out.stderr).contains("not found"), "{}", text(&out.stderr));
}
