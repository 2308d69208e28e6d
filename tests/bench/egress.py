#!/usr/bin/env python3
"""Egress benchmark: the latency Squid's peek/splice adds to an HTTPS request (new connection +
TLS handshake + one GET, measured inside the sandbox) in a restricted sandbox vs an open one; a
DNS look-up through a restricted sandbox's resolver (no cache: every answer is forwarded, so it
can open port 22 to the address) vs asking the upstream directly; how long a live `sandbox allow`
takes to be in force (from invoking it to the first request that gets through, DNS included); and
how long a `sandbox deny` takes to cut a spliced connection that is open to the denied name. Uses a simulated internet in a network namespace it creates
(198.18.7.0/24, like tests/support/inet.rs) and removes; run as root.

    python3 tests/bench/egress.py [--runs 5] [--requests 50] [--bin target/release/sandbox]
"""
import argparse, os, secrets, statistics, subprocess, sys, tempfile, time

WEB, HOST_SIDE = "198.18.7.1", "198.18.7.254"
HERE = os.path.dirname(os.path.abspath(__file__))

CLIENT = r"""
import socket, ssl, sys, time
host, addr, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
out = []
for _ in range(n):
    t0 = time.perf_counter()
    s = ctx.wrap_socket(socket.create_connection((addr, 443), timeout=5), server_hostname=host)
    s.sendall(b"GET / HTTP/1.0\r\nHost: " + host.encode() + b"\r\n\r\n")
    while s.recv(4096): pass
    s.close()
    out.append(time.perf_counter() - t0)
print(" ".join("%.6f" % x for x in out))
"""

# Tries a name until it gets through; prints the wall-clock time of the first success.
WAIT = r"""
import socket, ssl, sys, time
host = sys.argv[1]
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
print("ready", flush=True)
while True:
    try:
        addr = socket.gethostbyname(host)
        s = ctx.wrap_socket(socket.create_connection((addr, 443), timeout=2), server_hostname=host)
        s.sendall(b"GET / HTTP/1.0\r\nHost: " + host.encode() + b"\r\n\r\n")
        if b"https ok" in s.recv(4096):
            print("%.6f" % time.time(), flush=True); break
    except OSError:
        time.sleep(0.002)
"""


# Keeps a spliced TLS connection busy (an echo); prints the time it broke.
CUT = r"""
import socket, ssl, sys, time
host = sys.argv[1]
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
t = ctx.wrap_socket(socket.create_connection((socket.gethostbyname(host), 443), timeout=5), server_hostname=host)
t.sendall(b"GET /echo HTTP/1.0\r\nHost: " + host.encode() + b"\r\n\r\n")
head = b""
while b"\r\n\r\n" not in head:
    head += t.recv(1)
print("ready", flush=True)
t.settimeout(10)
while True:
    try:
        t.sendall(b"x")
        if not t.recv(16):
            break
    except OSError:
        break
    time.sleep(0.002)
print("%.6f" % time.time(), flush=True)
"""

# N look-ups of a name through a DNS server; prints each one's seconds.
LOOKUPS = r"""
import socket, struct, sys, time
name, server, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
q = struct.pack(">HHHHHH", 0x5b5a, 0x100, 1, 0, 0, 0)
q += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0\0\1\0\1"
out = []
for _ in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3)
    t0 = time.perf_counter(); s.sendto(q, (server, 53)); s.recv(512); out.append(time.perf_counter() - t0)
    s.close()
print(" ".join("%.6f" % x for x in out))
"""


def sh(*argv, check=True, **kw):
    p = subprocess.run(argv, capture_output=True, text=True, **kw)
    if check and p.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed:\n{p.stderr}")
    return p


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--requests", type=int, default=50)
    ap.add_argument("--bin", default="target/release/sandbox")
    ap.add_argument("--stack", default="minimal")
    a = ap.parse_args()
    env = dict(os.environ, SANDBOX_DNS_UPSTREAM=WEB)
    env.setdefault("SANDBOX_HOME", tempfile.mkdtemp(prefix="sandbox-bench-"))
    tag = secrets.token_hex(3)
    ns, veth = f"sbx-bench-{tag}", f"sbxb{tag}"
    tmp = tempfile.mkdtemp(prefix="egress-bench-")
    procs, names = [], []
    try:
        sh("ip", "netns", "add", ns)
        sh("ip", "link", "add", veth, "type", "veth", "peer", "name", veth + "n")
        sh("ip", "link", "set", veth + "n", "netns", ns)
        sh("ip", "addr", "add", HOST_SIDE + "/24", "dev", veth); sh("ip", "link", "set", veth, "up")
        sh("ip", "-n", ns, "addr", "add", WEB + "/24", "dev", veth + "n")
        sh("ip", "-n", ns, "link", "set", veth + "n", "up"); sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", ns, "route", "add", "10.100.0.0/24", "via", HOST_SIDE)
        cert, key = f"{tmp}/cert.pem", f"{tmp}/key.pem"
        sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1",
           "-subj", "/CN=bench", "-addext", "subjectAltName=DNS:allowed.test,DNS:*.later.test")
        srv = subprocess.Popen(["ip", "netns", "exec", ns, "python3", f"{HERE}/../support/inet_server.py", cert, key, WEB],
                               stdout=subprocess.PIPE, text=True)
        procs.append(srv); srv.stdout.readline()
        procs.append(subprocess.Popen(["ip", "netns", "exec", ns, "dnsmasq", "-k", "--no-resolv", "--no-hosts",
                                       "--bind-interfaces", f"--listen-address={WEB}", "--pid-file=", "--user=root",
                                       f"--address=/allowed.test/{WEB}", f"--address=/later.test/{WEB}"]))
        lst = f"{tmp}/list.txt"
        open(lst, "w").write("allowed.test\n")
        r, o = f"bench-eg-r-{tag}", f"bench-eg-o-{tag}"
        names += [r, o]
        for n, extra in ((r, ["--domains-file", lst]), (o, [])):
            p = subprocess.run([a.bin, "start", n, "--stack", a.stack, *extra], env=env, capture_output=True, text=True)
            if p.returncode:
                sys.exit(p.stderr)

        def requests(name):
            p = sh("incus", "exec", f"agent-{name}", "--", "python3", "-c", CLIENT, "allowed.test", WEB, str(a.requests))
            return [float(x) for x in p.stdout.split()]

        open_t, spliced_t = [], []
        for _ in range(a.runs):
            open_t += requests(o)
            spliced_t += requests(r)
        allow_cmd, allow_effect = [], []
        for i in range(a.runs):
            name = f"n{i}.later.test"
            w = subprocess.Popen(["incus", "exec", f"agent-{r}", "--", "python3", "-c", WAIT, name],
                                 stdout=subprocess.PIPE, text=True)
            w.stdout.readline()
            time.sleep(0.2)
            t0 = time.time()
            p = subprocess.run([a.bin, "allow", r, name], env=env, capture_output=True, text=True)
            t1 = time.time()
            if p.returncode:
                sys.exit(p.stderr)
            done = float(w.stdout.readline())
            w.wait()
            allow_cmd.append(t1 - t0)
            allow_effect.append(done - t0)
        dns_sandbox = [float(x) for x in sh("incus", "exec", f"agent-{r}", "--", "python3", "-c", LOOKUPS,
                                            "allowed.test", "10.100.0.1", str(a.requests)).stdout.split()]
        dns_direct = [float(x) for x in sh("python3", "-c", LOOKUPS, "allowed.test", WEB, str(a.requests)).stdout.split()]
        deny_cmd, deny_cut = [], []
        for i in range(a.runs):
            name = f"n{i}.later.test"
            c = subprocess.Popen(["incus", "exec", f"agent-{r}", "--", "python3", "-c", CUT, name],
                                 stdout=subprocess.PIPE, text=True)
            if c.stdout.readline().strip() != "ready":
                sys.exit(f"no spliced connection to {name}")
            time.sleep(0.2)
            t0 = time.time()
            p = subprocess.run([a.bin, "deny", r, name], env=env, capture_output=True, text=True)
            t1 = time.time()
            if p.returncode:
                sys.exit(p.stderr)
            cut = float(c.stdout.readline())
            c.wait()
            deny_cmd.append(t1 - t0)
            deny_cut.append(cut - t0)
        mo, ms = statistics.median(open_t), statistics.median(spliced_t)
        print(f"HTTPS request (connect + TLS + GET), {len(open_t)} each, medians:")
        print(f"  open sandbox      {mo * 1000:7.2f} ms")
        print(f"  spliced by Squid  {ms * 1000:7.2f} ms   (+{(ms - mo) * 1000:.2f} ms, ratio {ms / mo:.2f}×)")
        print(f"live `sandbox allow` ({a.runs} runs, medians):")
        print(f"  command returns   {statistics.median(allow_cmd) * 1000:7.1f} ms")
        print(f"  first success     {statistics.median(allow_effect) * 1000:7.1f} ms after invoking it"
              f"   runs: {' '.join('%.0f' % (x * 1000) for x in allow_effect)}")
        dd, ds = statistics.median(dns_direct), statistics.median(dns_sandbox)
        print(f"DNS look-up, {len(dns_sandbox)} each, medians:")
        print(f"  upstream, asked from the host          {dd * 1000:7.2f} ms")
        print(f"  through the sandbox's resolver         {ds * 1000:7.2f} ms   (+{(ds - dd) * 1000:.2f} ms)")
        print(f"live `sandbox deny` of a name with a spliced connection open ({a.runs} runs, medians):")
        print(f"  command returns   {statistics.median(deny_cmd) * 1000:7.1f} ms")
        print(f"  connection cut    {statistics.median(deny_cut) * 1000:7.1f} ms after invoking it"
              f"   runs: {' '.join('%.0f' % (x * 1000) for x in deny_cut)}")
    finally:
        if names:
            subprocess.run([a.bin, "rm", *names], env=env, capture_output=True)
        for p in procs:
            p.kill()
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["ip", "link", "del", veth], capture_output=True)


if __name__ == "__main__":
    main()
