//! A simulated internet for the egress suites: a network namespace this test run creates, joined
//! to the host by a veth pair, with 198.18.7.1 and .2 (RFC 2544 benchmarking range — never
//! routed anywhere else), fd5b:5a:7::1 (a ULA) and a "LAN" host 10.254.7.1 serving
//! HTTPS/HTTP/SSH-banner/5432/8080/UDP-443/UDP-51820 (inet_server.py), and a dnsmasq upstream
//! with no upstream of its own. The host's side of the veth (198.18.7.254) also runs the web
//! servers: a service on the host itself, which sandboxes must never reach. The namespace routes
//! only back to the bridge. Everything is removed at process exit (and stale namespaces of dead
//! runs at start).
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};

use crate::text;

pub const WEB: &str = "198.18.7.1";
pub const OTHER: &str = "198.18.7.2";
pub const UPSTREAM: &str = "198.18.7.1";
/// The host's own address on the simulated internet (a service on the host listens there).
pub const HOST_SIDE: &str = "198.18.7.254";
/// A private (RFC 1918) address in the namespace: a machine on the host's LAN.
pub const LAN: &str = "10.254.7.1";
const HOST_LAN: &str = "10.254.7.254";
/// The namespace's IPv6 address, and the host's side of it.
pub const WEB6: &str = "fd5b:5a:7::1";
const HOST_SIDE6: &str = "fd5b:5a:7::fe";
/// The IPv6 prefix the IPv6 suite puts on the bridge (routed back from the namespace).
pub const BRIDGE6_NET: &str = "fd5b:5a:1::/64";
pub const BRIDGE6_GW: &str = "fd5b:5a:1::1";
/// Names the upstream answers (a name may have several records). `.tunnel.test` stands for an
/// attacker's zone; the `rebind-*` names resolve where public names must not.
const ZONE: &[(&str, &str)] = &[
    ("allowed.test", WEB),
    ("allowed.test", WEB6),
    ("wild.test", WEB),
    ("blocked.test", WEB),
    ("blocked.test", WEB6),
    ("later.test", WEB),
    ("other.test", OTHER),
    ("sshonly.test", OTHER),
    ("tunnel.test", WEB),
    ("rebind-host.test", HOST_SIDE),
    ("rebind-lan.test", LAN),
    ("rebind-lo.test", "127.0.0.1"),
    ("rebind-gw.test", "10.100.0.1"),
    ("lan-ok.test", LAN),
];

pub struct Inet {
    pub ns: String,
    veth: String,
    pub upstream_log: PathBuf,
    pub dir: PathBuf,
    children: Mutex<Vec<Child>>,
}

fn run(argv: &[&str]) -> Output {
    Command::new(argv[0]).args(&argv[1..]).output().expect("run")
}

fn must(argv: &[&str]) {
    let o = run(argv);
    assert!(o.status.success(), "{argv:?}: {}", text(&o.stderr));
}

/// Namespaces of earlier runs whose process is gone (a killed test run cannot clean up).
fn remove_stale() {
    for ns in text(&run(&["ip", "netns", "list"]).stdout).lines() {
        let ns = ns.split_whitespace().next().unwrap_or("");
        let Some(pid) = ns.strip_prefix("sbx-inet-") else { continue };
        if std::path::Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        for p in text(&run(&["ip", "netns", "pids", ns]).stdout).lines() {
            let _ = run(&["kill", p.trim()]);
        }
        let _ = run(&["ip", "netns", "del", ns]);
        let _ = run(&["ip", "link", "del", &format!("sbxh{pid}")]);
    }
}

fn wait_ready(child: &mut Child, what: &str) {
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    assert_eq!(first.trim(), "ready", "{what} did not start");
}

impl Inet {
    /// Runs argv inside the namespace (a machine on the internet, or on the host's LAN).
    pub fn run_in(&self, argv: &[&str]) -> Output {
        Command::new("ip").args(["netns", "exec", &self.ns]).args(argv).output().expect("ip netns exec")
    }

    /// Whether the upstream resolver was ever asked about a name containing `needle`.
    pub fn upstream_saw(&self, needle: &str) -> bool {
        std::fs::read_to_string(&self.upstream_log).unwrap_or_default().contains(needle)
    }

    pub fn start() -> Inet {
        remove_stale();
        let pid = std::process::id();
        let (ns, veth, peer) = (format!("sbx-inet-{pid}"), format!("sbxh{pid}"), format!("sbxn{pid}"));
        let dir = tempfile::Builder::new().prefix("sbx-inet-").tempdir().expect("tempdir").keep();
        must(&["ip", "netns", "add", &ns]);
        must(&["ip", "link", "add", &veth, "type", "veth", "peer", "name", &peer]);
        must(&["ip", "link", "set", &peer, "netns", &ns]);
        for a in [format!("{HOST_SIDE}/24"), format!("{HOST_LAN}/24")] {
            must(&["ip", "addr", "add", &a, "dev", &veth]);
        }
        must(&["ip", "-6", "addr", "add", &format!("{HOST_SIDE6}/64"), "dev", &veth, "nodad"]);
        must(&["ip", "link", "set", &veth, "up"]);
        for a in [WEB, OTHER, LAN] {
            must(&["ip", "-n", &ns, "addr", "add", &format!("{a}/24"), "dev", &peer]);
        }
        must(&["ip", "-n", &ns, "-6", "addr", "add", &format!("{WEB6}/64"), "dev", &peer, "nodad"]);
        must(&["ip", "-n", &ns, "link", "set", &peer, "up"]);
        must(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        // Back to the sandboxes only: no default route, so nothing here can reach further.
        must(&["ip", "-n", &ns, "route", "add", "10.100.0.0/24", "via", HOST_SIDE]);
        must(&["ip", "-n", &ns, "-6", "route", "add", BRIDGE6_NET, "via", HOST_SIDE6]);

        let mut names: Vec<String> = ZONE.iter().flat_map(|(n, _)| [n.to_string(), format!("*.{n}")]).collect();
        names.sort();
        names.dedup();
        names.push(WEB.to_string());
        let mut params = rcgen::CertificateParams::new(names).expect("cert params");
        params.subject_alt_names.push(rcgen::SanType::IpAddress(WEB.parse().unwrap()));
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("cert");
        std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();

        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("support/inet_server.py");
        let mut servers = Command::new("ip")
            .args(["netns", "exec", &ns, "python3"])
            .arg(&script)
            .arg(dir.join("cert.pem"))
            .arg(dir.join("key.pem"))
            .args([WEB, OTHER, LAN, WEB6])
            .stdout(Stdio::piped())
            .spawn()
            .expect("servers");
        wait_ready(&mut servers, "inet_server.py in the namespace");
        // The same web servers on the host's own address: what a rebinding attack is after.
        let mut host_servers = Command::new("python3")
            .arg(&script)
            .arg(dir.join("cert.pem"))
            .arg(dir.join("key.pem"))
            .args(["--web-only", HOST_SIDE])
            .stdout(Stdio::piped())
            .spawn()
            .expect("host servers");
        wait_ready(&mut host_servers, "inet_server.py on the host");

        let upstream_log = dir.join("upstream.log");
        let mut dns = Command::new("ip");
        dns.args(["netns", "exec", &ns, "dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts"])
            .args(["--bind-interfaces", &format!("--listen-address={UPSTREAM}"), "--log-queries"])
            .arg(format!("--log-facility={}", upstream_log.display()))
            .arg("--pid-file=")
            .arg("--user=root");
        for (n, a) in ZONE {
            dns.arg(format!("--address=/{n}/{a}"));
        }
        let dns = dns.spawn().expect("dnsmasq upstream");
        let inet = Inet { ns, veth, upstream_log, dir, children: Mutex::new(vec![servers, host_servers, dns]) };
        for _ in 0..100 {
            if std::net::TcpStream::connect((WEB, 443)).is_ok() && inet.upstream_log.exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        inet
    }

    pub fn stop(&self) {
        for c in self.children.lock().unwrap().iter_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = run(&["ip", "netns", "del", &self.ns]);
        let _ = run(&["ip", "link", "del", &self.veth]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs argv in sandbox NAME as root (what an agent with sudo can do).
pub fn exec(name: &str, argv: &[&str]) -> Output {
    Command::new("incus")
        .args(["exec", &format!("agent-{name}"), "--"])
        .args(argv)
        .stdin(Stdio::null())
        .output()
        .expect("incus exec")
}

/// A one-question DNS client (A record) as a Python snippet: `NAME SERVER [PORT]`; prints the
/// address or fails.
pub const DIG: &str = r#"
import socket, struct, sys
name, server = sys.argv[1], sys.argv[2]
port = int(sys.argv[3]) if len(sys.argv) > 3 else 53
q = struct.pack(">HHHHHH", 0x5b5a, 0x100, 1, 0, 0, 0)
q += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0\0\1\0\1"
s = socket.socket(socket.AF_INET6 if ":" in server else socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
s.sendto(q, (server, port))
r = s.recv(512)
rcode, answers = r[3] & 15, struct.unpack(">H", r[6:8])[0]
if rcode or not answers:
    sys.exit("rcode %d, %d answers" % (rcode, answers))
print(".".join(str(b) for b in r[-4:]))
"#;

static INET: OnceLock<Inet> = OnceLock::new();
static AT_EXIT: Mutex<Vec<Box<dyn FnOnce() + Send>>> = Mutex::new(Vec::new());

extern "C" fn run_at_exit() {
    let jobs = std::mem::take(&mut *AT_EXIT.lock().unwrap_or_else(|e| e.into_inner()));
    for j in jobs.into_iter().rev() {
        j();
    }
    if let Some(i) = INET.get() {
        i.stop();
    }
}

/// Runs `f` when the test process exits (libtest exits through `exit`, so atexit runs).
pub fn at_exit(f: impl FnOnce() + Send + 'static) {
    AT_EXIT.lock().unwrap().push(Box::new(f));
}

/// The simulated internet, started once per test process.
pub fn inet() -> &'static Inet {
    INET.get_or_init(|| {
        // SAFETY: registering a plain extern "C" function; it runs at exit, on the exiting thread.
        unsafe { libc::atexit(run_at_exit) };
        Inet::start()
    })
}
