//! A simulated internet for the egress suite: a network namespace this test run creates, joined
//! to the host by a veth pair, with 198.18.7.1 and .2 (RFC 2544 benchmarking range — never
//! routed anywhere else) serving HTTPS/HTTP/SSH-banner/5432/UDP-443 (inet_server.py) and a
//! dnsmasq upstream with no upstream of its own. The namespace routes only back to the bridge.
//! Everything is removed at process exit (and stale namespaces of dead runs at start).
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};

use crate::text;

pub const WEB: &str = "198.18.7.1";
pub const OTHER: &str = "198.18.7.2";
pub const UPSTREAM: &str = "198.18.7.1";
const HOST_SIDE: &str = "198.18.7.254";
/// Names the upstream answers. `.tunnel.test` stands for an attacker's zone.
const ZONE: &[(&str, &str)] = &[
    ("allowed.test", WEB),
    ("wild.test", WEB),
    ("blocked.test", WEB),
    ("later.test", WEB),
    ("other.test", OTHER),
    ("tunnel.test", WEB),
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

impl Inet {
    pub fn start() -> Inet {
        remove_stale();
        let pid = std::process::id();
        let (ns, veth, peer) = (format!("sbx-inet-{pid}"), format!("sbxh{pid}"), format!("sbxn{pid}"));
        let dir = tempfile::Builder::new().prefix("sbx-inet-").tempdir().expect("tempdir").keep();
        must(&["ip", "netns", "add", &ns]);
        must(&["ip", "link", "add", &veth, "type", "veth", "peer", "name", &peer]);
        must(&["ip", "link", "set", &peer, "netns", &ns]);
        must(&["ip", "addr", "add", &format!("{HOST_SIDE}/24"), "dev", &veth]);
        must(&["ip", "link", "set", &veth, "up"]);
        for a in [WEB, OTHER] {
            must(&["ip", "-n", &ns, "addr", "add", &format!("{a}/24"), "dev", &peer]);
        }
        must(&["ip", "-n", &ns, "link", "set", &peer, "up"]);
        must(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        // Back to the sandboxes only: no default route, so nothing here can reach further.
        must(&["ip", "-n", &ns, "route", "add", "10.100.0.0/24", "via", HOST_SIDE]);

        let names: Vec<String> =
            ZONE.iter().flat_map(|(n, _)| [n.to_string(), format!("*.{n}")]).chain([WEB.to_string()]).collect();
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
            .args([WEB, OTHER])
            .stdout(Stdio::piped())
            .spawn()
            .expect("servers");
        let mut first = String::new();
        BufReader::new(servers.stdout.take().unwrap()).read_line(&mut first).unwrap();
        assert_eq!(first.trim(), "ready", "inet_server.py did not start");

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
        let inet = Inet { ns, veth, upstream_log, dir, children: Mutex::new(vec![servers, dns]) };
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

/// A one-question DNS client (A record) as a Python snippet: prints the address or fails.
pub const DIG: &str = r#"
import socket, struct, sys
name, server = sys.argv[1], sys.argv[2]
q = struct.pack(">HHHHHH", 0x5b5a, 0x100, 1, 0, 0, 0)
q += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0\0\1\0\1"
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
s.sendto(q, (server, 53))
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
