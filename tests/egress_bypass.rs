//! The egress policy against an attacker: root inside a sandbox (what an agent with sudo can do)
//! trying the bypasses an outside test of the first version found (issue #19), against the
//! simulated internet (support/inet.rs). Each refusal sits next to proof that the target was up
//! and reachable where it is allowed, so a pass cannot come from an unrelated failure.
//! IPv6 is in egress_ipv6.rs (it changes the bridge for its run).
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sandbox_e2e::inet::{self, DIG, HOST_SIDE, LAN, OTHER, UPSTREAM, WEB, exec};
use sandbox_e2e::inet_probe::{
    ENV, GATEWAY, TCP_CONNECT, curl, dig, dig_port, getent, list_file, ok, refused, resolve, start, tcp_connect,
    udp_echo,
};
use sandbox_e2e::{Sandboxes, sandbox, text, unique};

/// A restricted sandbox with the given list (a guard removes it).
fn restricted(prefix: &str, list: &str) -> (Sandboxes, String) {
    inet::inet();
    let mut g = Sandboxes::new();
    let name = g.name(prefix);
    let f = list_file(&format!("{name}.txt"), list);
    start(&name, &["--domains-file", &f]);
    (g, name)
}

fn host_dig(name: &str, server: &str) -> String {
    let o = Command::new("python3").args(["-c", DIG, name, server]).output().unwrap();
    text(&o.stdout).trim().to_string()
}

// ── 2. SSH (port 22) only to addresses of allowlisted names ─────────────────────────────────

#[test]
fn ssh_reaches_only_addresses_its_resolver_gave_for_allowed_names() {
    let (_g, name) = restricted("egs", "allowed.test\n");
    // Nothing resolved yet: port 22 reaches no address at all.
    assert_ne!(tcp_connect(&name, WEB, "22"), "connected", "22 before any allowed name was resolved");
    // The allowed name, resolved through the sandbox's resolver, opens 22 to its address
    // (github.com keeps working) …
    assert!(getent(&name, "allowed.test").contains(WEB), "allowed.test did not resolve");
    let o = exec(&name, &["nc", "-w", "2", WEB, "22"]);
    assert!(text(&o.stdout).starts_with("SSH-2.0-simulated"), "22 to allowed.test's address: {}", text(&o.stderr));
    // … and nothing else: a raw TCP tunnel to a host no allowed name resolves to is refused.
    assert_ne!(tcp_connect(&name, OTHER, "22"), "connected", "22 to a non-allowlisted host");
    let banner = std::net::TcpStream::connect((OTHER, 22));
    assert!(banner.is_ok(), "the SSH listener on {OTHER} is up (seen from the host)");
}

// ── 3. DNS rebinding into the host or the LAN ───────────────────────────────────────────────

const REBIND_LIST: &str = "allowed.test\nrebind-host.test\nrebind-lan.test\nrebind-lo.test\nrebind-gw.test\n";

#[test]
fn the_resolver_drops_answers_pointing_at_the_host_or_private_addresses() {
    let (_g, name) = restricted("egrd", REBIND_LIST);
    for n in ["rebind-host.test", "rebind-lan.test", "rebind-lo.test", "rebind-gw.test"] {
        let got = dig(&name, n, GATEWAY);
        assert!(got.is_err(), "{n} resolved to {got:?} in the sandbox");
    }
    assert_eq!(dig(&name, "allowed.test", GATEWAY).unwrap(), WEB);
    // The upstream does give those answers.
    assert_eq!(host_dig("rebind-host.test", UPSTREAM), HOST_SIDE);
    assert_eq!(host_dig("rebind-lan.test", UPSTREAM), LAN);
}

#[test]
fn squid_never_relays_to_the_host_or_a_private_address() {
    let (_g, name) = restricted("egrs", REBIND_LIST);
    // The sandbox brings its own answer for an allowed name (Squid resolves it the same way).
    for (n, addr) in [("rebind-host.test", HOST_SIDE), ("rebind-lan.test", LAN)] {
        refused(&name, &["--resolve", &format!("{n}:443:{addr}"), &format!("https://{n}/")]);
        refused(&name, &["--resolve", &format!("{n}:80:{addr}"), &format!("http://{n}/")]);
    }
    // The host's service and the LAN machine were there to be reached.
    for addr in [HOST_SIDE, LAN] {
        let o = Command::new("curl").args(["-sk", "--max-time", "3", &format!("https://{addr}/")]).output().unwrap();
        assert!(text(&o.stdout).contains("https ok"), "{addr} is up (seen from the host)");
    }
}

#[test]
fn a_private_address_is_reachable_only_for_names_marked_private() {
    let list = "# a name on the company network\nlan-ok.test   private   # VPN-only host\nrebind-lan.test\nrebind-host.test private\n";
    let (_g, name) = restricted("egpv", list);
    assert_eq!(dig(&name, "lan-ok.test", GATEWAY).unwrap(), LAN);
    let body = ok(&name, &["https://lan-ok.test/"]);
    assert!(body.contains(&format!("addr={LAN}")) && body.contains("sni=lan-ok.test"), "{body}");
    assert!(ok(&name, &["http://lan-ok.test/"]).contains("host=lan-ok.test"));
    // Only that name: the same address under another name stays refused.
    refused(&name, &["--resolve", &format!("rebind-lan.test:443:{LAN}"), "https://rebind-lan.test/"]);
    // And `private` never opens the host itself.
    assert!(dig(&name, "rebind-host.test", GATEWAY).is_err());
    refused(&name, &["--resolve", &format!("rebind-host.test:443:{HOST_SIDE}"), "https://rebind-host.test/"]);
}

// ── 4. deny (and stop) cut open connections ─────────────────────────────────────────────────

/// Keeps a TLS connection (through Squid, spliced) and a port-22 connection open, sending a
/// line on each every 200 ms; prints `tls ok`, `ssh ok`, or `… closed` when one breaks.
const LONG_CLIENT: &str = r#"
import socket, ssl, sys, time
name, ssh_addr = sys.argv[1], sys.argv[2]
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
t = ctx.wrap_socket(socket.create_connection((name, 443), timeout=5), server_hostname=name)
t.sendall(b"GET /echo HTTP/1.0\r\nHost: " + name.encode() + b"\r\n\r\n")
head = b""
while b"\r\n\r\n" not in head:
    head += t.recv(1)
conns = {"tls": t}
if ssh_addr != "-":
    s = socket.create_connection((ssh_addr, 22), timeout=5)
    s.recv(64)
    conns["ssh"] = s
end = time.time() + 30
while conns and time.time() < end:
    for k, c in list(conns.items()):
        try:
            c.sendall(b"ping\n")
            if not c.recv(64):
                raise OSError("closed by the peer")
            print(k, "ok", flush=True)
        except Exception as e:
            print(k, "closed", e, flush=True)
            del conns[k]
    time.sleep(0.2)
print("done", flush=True)
"#;

/// Starts LONG_CLIENT in the sandbox; its lines arrive on the channel.
fn long_client(name: &str, host: &str, ssh_addr: &str) -> mpsc::Receiver<String> {
    let mut child = Command::new("incus")
        .args(["exec", &format!("agent-{name}"), "--", "python3", "-c", LONG_CLIENT, host, ssh_addr])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
        let _ = child.wait();
    });
    rx
}

/// Waits until every kind in `kinds` has said "ok" once.
fn until_flowing(rx: &mpsc::Receiver<String>, kinds: &[&str]) {
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < kinds.len() {
        let line = rx.recv_timeout(Duration::from_secs(20)).expect("the long connections never came up");
        assert!(!line.contains("closed"), "a connection broke before the test acted: {line}");
        if let Some(k) = kinds.iter().find(|k| line == format!("{k} ok")) {
            seen.insert(*k);
        }
    }
}

/// After the action: each kind must report "closed" within `grace`, and no "ok" may follow it.
fn all_cut(rx: &mpsc::Receiver<String>, kinds: &[&str], grace: Duration) -> Result<(), String> {
    let end = Instant::now() + grace;
    let mut cut = std::collections::BTreeSet::new();
    while cut.len() < kinds.len() {
        let left = end.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains("closed") => {
                cut.insert(line.split_whitespace().next().unwrap_or("").to_string());
            }
            Ok(_) => {}
            Err(_) => return Err(format!("still open {grace:?} after: {:?} of {kinds:?} cut", cut)),
        }
    }
    Ok(())
}

#[test]
fn deny_cuts_the_connections_already_open_to_the_denied_names() {
    let (_g, name) = restricted("egd", "allowed.test\n");
    let out = sandbox(&["allow", &name, "later.test", "sshonly.test"], ENV);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(getent(&name, "sshonly.test").contains(OTHER), "sshonly.test did not resolve");
    let rx = long_client(&name, "later.test", OTHER);
    until_flowing(&rx, &["tls", "ssh"]);
    let out = sandbox(&["deny", &name, "later.test", "sshonly.test"], ENV);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Squid re-reads its rules, then the connections opened while they were allowed must go.
    all_cut(&rx, &["tls", "ssh"], Duration::from_secs(5)).unwrap();
    // The denied names stay closed, the allowed one stays open.
    refused(&name, &["https://later.test/"]);
    assert_ne!(tcp_connect(&name, OTHER, "22"), "connected");
    ok(&name, &["https://allowed.test/"]);
}

#[test]
fn stop_cuts_its_proxied_connections_on_the_host() {
    let (_g, name) = restricted("egst", "allowed.test\n");
    let ip = sandbox_e2e::listed(&name).unwrap()["ip"].as_str().unwrap().to_string();
    let rx = long_client(&name, "allowed.test", "-");
    until_flowing(&rx, &["tls"]);
    let squid_sockets = || {
        let o = Command::new("ss").args(["-tnH", "state", "established", "dst", &ip]).output().unwrap();
        text(&o.stdout).lines().filter(|l| l.contains(":3129") || l.contains(":3130")).count()
    };
    assert!(squid_sockets() > 0, "no Squid socket for {ip} while the connection is open");
    let out = sandbox(&["stop", &name], ENV);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut left = squid_sockets();
    for _ in 0..30 {
        if left == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        left = squid_sockets();
    }
    assert_eq!(left, 0, "Squid still holds {left} connection(s) of the stopped sandbox {ip}");
}

// ── 5. default sandboxes: no tunnels over 53 or QUIC ────────────────────────────────────────

#[test]
fn an_open_sandbox_has_no_other_resolver_and_no_quic() {
    inet::inet();
    let mut g = Sandboxes::new();
    let name = g.name("eg5");
    start(&name, &[]);
    // Its own resolver (the gateway) stays; any other address on 53 is a tunnel.
    assert_eq!(tcp_connect(&name, GATEWAY, "53"), "connected", "the gateway's resolver");
    assert!(dig(&name, "allowed.test", UPSTREAM).is_err(), "DNS straight to another resolver");
    assert_ne!(tcp_connect(&name, UPSTREAM, "53"), "connected", "TCP 53 to another address");
    assert!(!udp_echo(&name, WEB, "443"), "UDP 443 (QUIC) without --allow-quic");
    // Those servers answer (the host asks them directly); 443/TCP still goes out.
    assert_eq!(host_dig("allowed.test", UPSTREAM), WEB);
    assert!(ok(&name, &[&format!("https://{WEB}/")]).contains("https ok"));
}

#[test]
fn allow_quic_opens_udp_443_for_that_sandbox_only() {
    inet::inet();
    let mut g = Sandboxes::new();
    let name = g.name("egq");
    start(&name, &["--allow-quic"]);
    assert!(udp_echo(&name, WEB, "443"), "--allow-quic: UDP 443 should reach the echo server");
    assert!(!udp_echo(&name, WEB, "51820"), "other UDP ports stay closed");
    let s = sandbox_e2e::listed(&name).unwrap();
    assert_eq!(s["egress"], "open", "{s}");
    // A restricted sandbox cannot have it: QUIC would skip the SNI check.
    let other = g.name("egq2");
    let f = list_file(&format!("{other}.txt"), "allowed.test\n");
    let out = sandbox(&["start", &other, "--stack", "minimal", "--domains-file", &f, "--allow-quic"], ENV);
    assert!(!out.status.success() && text(&out.stderr).contains("hint:"), "{}", text(&out.stderr));
}

// ── 6. an exact entry matches exactly, in the resolver as in Squid ──────────────────────────

#[test]
fn a_subdomain_of_an_exact_entry_is_not_resolved() {
    let (_g, name) = restricted("eg6d", "allowed.test\n.wild.test\n");
    let tag = unique("x").replace('-', "");
    let secret = format!("secret-{tag}.allowed.test");
    assert!(dig(&name, &secret, GATEWAY).is_err(), "{secret} resolved");
    assert!(!inet::inet().upstream_saw(&secret), "{secret} reached the upstream resolver");
    // A `.domain` entry still covers its subdomains, and the exact name itself resolves.
    assert_eq!(dig(&name, &format!("deep-{tag}.wild.test"), GATEWAY).unwrap(), WEB);
    assert_eq!(dig(&name, "allowed.test", GATEWAY).unwrap(), WEB);
}

#[test]
fn squid_carries_no_refused_name_upstream() {
    let (_g, name) = restricted("eg6s", "allowed.test\n");
    let tag = unique("x").replace('-', "");
    // The SNI and the Host header of names the list does not allow (Squid checks both against DNS).
    let sni = format!("sni-{tag}.allowed.test");
    refused(&name, &["--resolve", &resolve("", &sni), &format!("https://{sni}/")]);
    let host = format!("host-{tag}.allowed.test");
    refused(&name, &["--resolve", &format!("{host}:80:{WEB}"), &format!("http://{host}/")]);
    let tunnel = format!("data-{tag}.tunnel.test");
    refused(&name, &["--resolve", &resolve("", &tunnel), &format!("https://{tunnel}/")]);
    refused(&name, &["--resolve", &format!("{tunnel}:80:{WEB}"), &format!("http://{tunnel}/")]);
    for n in [&sni, &host, &tunnel] {
        assert!(!inet::inet().upstream_saw(n), "{n} reached the upstream resolver");
    }
    // Allowed names still pass both ways (Squid resolves them for its checks).
    ok(&name, &["https://allowed.test/"]);
    ok(&name, &["http://allowed.test/"]);
}

// ── 7. Squid and the resolvers answer only the bridge, only through the redirect ────────────

#[test]
fn squid_and_the_resolvers_do_not_answer_from_outside() {
    let (_g, name) = restricted("eg7", "allowed.test\n");
    let slot = sandbox_e2e::listed(&name).unwrap()["slot"].as_u64().unwrap();
    let i = inet::inet();
    // A machine on the network that routes to the bridge (the simulated internet routes the
    // bridge subnet to the host).
    for port in ["3129", "3130"] {
        let o = i.run_in(&["python3", "-c", TCP_CONNECT, GATEWAY, port]);
        assert_ne!(text(&o.stdout).trim(), "connected", "Squid's {port} answered from outside");
    }
    let o = i.run_in(&["python3", "-c", DIG, "allowed.test", GATEWAY, &(5300 + slot).to_string()]);
    assert!(!o.status.success(), "the sandbox's resolver answered from outside: {}", text(&o.stdout));
    // The sandbox itself, straight at those ports rather than through the redirect: refused too.
    assert_ne!(tcp_connect(&name, GATEWAY, "3129"), "connected");
    assert!(dig_port(&name, "allowed.test", GATEWAY, 5300 + slot as u16).is_err());
    // Through the redirect they work.
    assert_eq!(dig(&name, "allowed.test", GATEWAY).unwrap(), WEB);
    ok(&name, &["https://allowed.test/"]);
}

// ── 8. the allowlists ───────────────────────────────────────────────────────────────────────

#[test]
fn extra_lists_are_opt_in_per_sandbox() {
    let (_g, name) = restricted("eg8", "allowed.test\n");
    let out = sandbox(&["allow", &name, "@go", "--json"], ENV);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let l: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let has = |d: &str| l["domains"].as_array().unwrap().iter().any(|x| x == d);
    assert!(has("proxy.golang.org") && has("allowed.test"), "{l}");
    let out = sandbox(&["deny", &name, "@go", "--json"], ENV);
    let l: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!l["domains"].as_array().unwrap().iter().any(|x| x == "proxy.golang.org"), "{l}");
    let out = sandbox(&["allow", &name, "@no-such-list"], ENV);
    assert!(!out.status.success() && text(&out.stderr).contains("hint:"), "{}", text(&out.stderr));
}

// ── what the agent sees ─────────────────────────────────────────────────────────────────────

#[test]
fn a_refusal_tells_the_agent_it_is_policy_and_what_would_allow_it() {
    let (_g, name) = restricted("egm", "allowed.test\n");
    // Plain HTTP (to an allowed name's address, the only ones it reaches): a 403 page naming the
    // sandbox and the command.
    assert!(getent(&name, "allowed.test").contains(WEB));
    let to = format!("blocked.test:80:{WEB}");
    let o = exec(
        &name,
        &["curl", "-s", "--resolve", &to, "-w", "\n%{http_code}", "--max-time", "8", "http://blocked.test/x"],
    );
    let page = text(&o.stdout);
    assert!(page.trim_end().ends_with("403"), "{page}");
    assert!(page.contains(&format!("sandbox allow {name} blocked.test")), "{page}");
    assert!(page.contains("policy"), "{page}");
    // DNS: NXDOMAIN. TLS: the connection is closed after the ClientHello (no certificate).
    let o = exec(&name, &["python3", "-c", DIG, "blocked.test", GATEWAY]);
    assert!(text(&o.stderr).contains("rcode 3"), "{}", text(&o.stderr));
    let err = refused(&name, &["--resolve", &resolve("", "blocked.test"), "https://blocked.test/"]);
    assert!(!err.contains("certificate"), "{err}");
    // The note for agents in the sandbox (Claude Code's managed instructions).
    let o = exec(&name, &["cat", "/etc/claude-code/CLAUDE.md"]);
    let note = text(&o.stdout);
    assert!(note.contains("policy") && note.contains("sandbox allow"), "{note}");
    let (good, _, _) = curl(&name, &["https://allowed.test/"]);
    assert!(good);
}

/// One Squid serves every restricted sandbox: another sandbox's allow and deny, and sandboxes
/// with `private` names coming and going, must not refuse or stall this one's new connections,
/// not even for a moment (a Squid reconfigure closed its listening sockets; a restart of Squid's
/// resolver lost its look-ups for 5 s). No retries.
#[test]
fn another_sandboxs_policy_changes_never_refuse_this_ones_connections() {
    let (mut g, name) = restricted("egq", "allowed.test\n");
    let other = g.name("egr");
    start(&other, &["--domains-file", &list_file(&format!("{other}.txt"), "allowed.test\n")]);
    let private = g.name("egp");
    let private_list = list_file(&format!("{private}.txt"), "allowed.test\nlan-ok.test private\n");
    assert!(getent(&name, "allowed.test").contains(WEB));
    // Allowed HTTPS and HTTP (200), and a refused name over HTTP (Squid looks it up: 403).
    let to = format!("blocked.test:80:{WEB}");
    let script = format!(
        "for i in $(seq 40); do for u in https://allowed.test/ http://allowed.test/ http://blocked.test/; do \
         c=$(curl -sk -o /dev/null -w '%{{http_code}}' --max-time 4 --resolve {to} $u); echo \"$u $c $?\"; done; done"
    );
    let (tx, rx) = mpsc::channel();
    let n = name.clone();
    let client = std::thread::spawn(move || {
        let o = exec(&n, &["sh", "-c", &script]);
        let _ = tx.send(());
        text(&o.stdout)
    });
    let mut changes = 0;
    while rx.try_recv().is_err() && changes < 40 {
        match changes % 4 {
            0 | 2 => {
                let verb = if changes % 4 == 0 { "allow" } else { "deny" };
                let o = sandbox(&[verb, &other, &format!("n{changes}.test")], ENV);
                assert!(o.status.success(), "{verb}: {}", text(&o.stderr));
            }
            1 => start(&private, &["--domains-file", &private_list]),
            _ => {
                let o = sandbox(&["rm", &private], ENV);
                assert!(o.status.success(), "rm: {}", text(&o.stderr));
            }
        }
        changes += 1;
    }
    let out = client.join().unwrap();
    let expected = |l: &str| l.ends_with(if l.contains("blocked") { " 403 0" } else { " 200 0" });
    let failed: Vec<&str> = out.lines().filter(|l| !expected(l)).collect();
    assert_eq!(out.lines().count(), 120, "{out}");
    assert!(changes >= 4, "the requests ended before the others changed");
    assert!(
        failed.is_empty(),
        "{} of 120 requests failed while the others changed {changes} times: {failed:?}",
        failed.len()
    );
}
