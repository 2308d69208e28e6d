//! What the egress suites do from inside a sandbox (as root, like an agent with sudo) against the
//! simulated internet (inet.rs): curl with retries that tell a policy refusal from Squid
//! re-reading its configuration, a one-question DNS client, raw TCP/UDP probes.
use crate::inet::{DIG, exec};
use crate::{sandbox, sandbox_home, text};

/// The resolver restricted sandboxes' allowed names go to: the simulated internet's.
pub const ENV: &[(&str, &str)] = &[("SANDBOX_DNS_UPSTREAM", crate::inet::UPSTREAM)];
pub const GATEWAY: &str = "10.100.0.1";

/// `sandbox start NAME --stack minimal EXTRA…` with the suite's upstream; panics on failure.
pub fn start(name: &str, extra: &[&str]) {
    let mut args = vec!["start", name, "--stack", "minimal"];
    args.extend_from_slice(extra);
    let out = sandbox(&args, ENV);
    assert!(out.status.success(), "start {name}: {}", text(&out.stderr));
}

/// Writes an allowlist file under the sandbox home and returns its path.
pub fn list_file(file: &str, content: &str) -> String {
    let f = sandbox_home().join(file);
    std::fs::create_dir_all(sandbox_home()).unwrap();
    std::fs::write(&f, content).unwrap();
    f.display().to_string()
}

/// (succeeded, stdout, stderr) of curl in the sandbox.
pub fn curl(name: &str, args: &[&str]) -> (bool, String, String) {
    // No retries: another sandbox's start or `allow` never makes Squid re-read its configuration
    // (egress_bypass::another_sandboxs_policy_changes_never_refuse_this_ones_connections).
    let mut argv = vec!["curl", "-sS", "-k", "-f", "--max-time", "8"];
    argv.extend_from_slice(args);
    let o = exec(name, &argv);
    (o.status.success(), text(&o.stdout), text(&o.stderr))
}

/// Expected to succeed; returns the body.
pub fn ok(name: &str, args: &[&str]) -> String {
    let (good, out, err) = curl(name, args);
    assert!(good, "{name}: curl {args:?} failed: {err}");
    out
}

/// Expected to be refused; returns curl's error text.
pub fn refused(name: &str, args: &[&str]) -> String {
    let (good, out, err) = curl(name, args);
    assert!(!good && !out.contains(" ok "), "{name}: curl {args:?} got through: {out}");
    err
}

/// A `--resolve` argument: HOST on port 443 at ADDR (default: the web server).
pub fn resolve(addr: &str, host: &str) -> String {
    format!("{host}:443:{}", if addr.is_empty() { crate::inet::WEB } else { addr })
}

/// Asks SERVER (port 53) for NAME's A record from inside the sandbox.
pub fn dig(sandbox: &str, name: &str, server: &str) -> Result<String, String> {
    dig_port(sandbox, name, server, 53)
}

pub fn dig_port(sandbox: &str, name: &str, server: &str, port: u16) -> Result<String, String> {
    let o = exec(sandbox, &["python3", "-c", DIG, name, server, &port.to_string()]);
    if o.status.success() { Ok(text(&o.stdout).trim().to_string()) } else { Err(text(&o.stderr)) }
}

/// Whether a UDP datagram to ADDR:PORT gets the echo server's answer.
pub fn udp_echo(sandbox: &str, addr: &str, port: &str) -> bool {
    let code = "import socket,sys\nf=socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET\n\
                s=socket.socket(f,socket.SOCK_DGRAM)\ns.settimeout(2)\n\
                s.sendto(b'probe',(sys.argv[1],int(sys.argv[2])))\nprint(s.recv(64))";
    exec(sandbox, &["python3", "-c", code, addr, port]).status.success()
}

/// Python that prints "refused" (a reset: fast failure), "timeout", "connected", or the error.
pub const TCP_CONNECT: &str = "import socket,sys\ntry:\n socket.create_connection((sys.argv[1],int(sys.argv[2])),timeout=5)\n print('connected')\n\
    except ConnectionRefusedError: print('refused')\nexcept OSError as e: print('timeout' if 'timed out' in str(e) else e)";

pub fn tcp_connect(sandbox: &str, addr: &str, port: &str) -> String {
    text(&exec(sandbox, &["python3", "-c", TCP_CONNECT, addr, port]).stdout).trim().to_string()
}

/// Resolves NAME through the sandbox's own resolver configuration (what a program would do).
pub fn getent(sandbox: &str, name: &str) -> String {
    text(&exec(sandbox, &["getent", "ahostsv4", name]).stdout)
}
