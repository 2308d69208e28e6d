#!/usr/bin/env python3
"""The host's Anthropic proxy: how much later the first byte of a streamed answer arrives through
it than straight from the upstream, measured inside a sandbox (median of N, as a ratio), and the
proxy daemon's RSS, idle. The upstream is the simulated Messages API (tests/support/anthropic.rs,
the sim-anthropic program) in a network namespace this script creates (198.18.9.0/24) and
removes, reachable from an open sandbox directly; run as root, after `sandbox setup --stack minimal`.

    cargo build --release && sudo python3 tests/bench/claude_proxy.py [--requests 50] [--runs 3]

Two client modes: a new connection per request (what a client without keep-alive pays), and one
kept-alive connection (what Claude Code does). Targets: <= 2 ms added at the median, <= 20 MB RSS.
"""
import argparse, os, secrets, shutil, statistics, subprocess, sys, tempfile, time

API, HOST_SIDE = "198.18.9.1", "198.18.9.254"

# Inside the sandbox: N streamed requests; for each, the time from sending it to the first line
# of the answer's body (the message_start event). Prints the times in seconds.
CLIENT = r"""
import http.client, json, sys, time
host, port, n, keep = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "keep"
body = json.dumps({"model": "claude-bench", "stream": True, "max_tokens": 8,
                   "messages": [{"role": "user", "content": "hi"}]})
headers = {"content-type": "application/json", "anthropic-version": "2023-06-01", "x-api-key": "placeholder"}
conn, out = None, []
for i in range(n + 5):
    if conn is None or not keep:
        conn = http.client.HTTPConnection(host, port, timeout=10)
    t0 = time.perf_counter()
    conn.request("POST", "/v1/messages?beta=true", body=body, headers=headers)
    r = conn.getresponse()
    first = r.readline()
    t1 = time.perf_counter()
    r.read()
    if b"message_start" not in first:
        sys.exit("unexpected first line %r (status %d)" % (first, r.status))
    if i >= 5:  # the first few warm up (the forwarder's start, pooled upstream connections)
        out.append(t1 - t0)
    if not keep:
        conn.close()
print(" ".join("%.6f" % x for x in out))
"""


def sh(*argv, check=True, **kw):
    p = subprocess.run(argv, capture_output=True, text=True, **kw)
    if check and p.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed:\n{p.stderr}")
    return p


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def find(name, given):
    if given:
        return given
    for d in ("target/release", "target/debug"):
        if os.access(f"{d}/{name}", os.X_OK):
            return f"{d}/{name}"
    sys.exit(f"{name} not found: cargo build --release (or pass --{name.split('-')[0]})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=50)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--bin", default="target/release/sandbox")
    ap.add_argument("--sim", default=None)
    ap.add_argument("--stack", default="minimal")
    a = ap.parse_args()
    sim_bin = find("sim-anthropic", a.sim)
    home = tempfile.mkdtemp(prefix="sandbox-bench-")
    env = dict(os.environ, SANDBOX_HOME=home, SANDBOX_ANTHROPIC_UPSTREAM=f"http://{API}")
    tag = secrets.token_hex(3)
    ns, veth = f"sbx-bapi-{tag}", f"sbxa{tag}"
    name = f"bench-claude-{tag}"
    procs = []
    try:
        sh("ip", "netns", "add", ns)
        sh("ip", "link", "add", veth, "type", "veth", "peer", "name", veth + "n")
        sh("ip", "link", "set", veth + "n", "netns", ns)
        sh("ip", "addr", "add", HOST_SIDE + "/24", "dev", veth), sh("ip", "link", "set", veth, "up")
        sh("ip", "-n", ns, "addr", "add", API + "/24", "dev", veth + "n")
        sh("ip", "-n", ns, "link", "set", veth + "n", "up"), sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", ns, "route", "add", "10.100.0.0/24", "via", HOST_SIDE)
        sim = subprocess.Popen(["ip", "netns", "exec", ns, sim_bin, "--listen", f"{API}:80"], stdout=subprocess.PIPE, text=True)
        procs.append(sim)
        sim.stdout.readline()
        p = subprocess.run([a.bin, "auth", "set", "anthropic"], input="sk-ant-api03-bench\n", env=env, capture_output=True, text=True)
        if p.returncode:
            sys.exit(p.stderr)
        p = subprocess.run([a.bin, "start", name, "--stack", a.stack, "--env", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1"],
                           env=env, capture_output=True, text=True)
        if p.returncode:
            sys.exit(p.stderr)
        daemon = int(open(f"{home}/anthropic/daemon.pid").read())
        time.sleep(1)
        idle_before = rss_kib(daemon)

        def run(host, port, keep):
            p = sh("incus", "exec", f"agent-{name}", "--", "python3", "-c", CLIENT, host, str(port), str(a.requests),
                   "keep" if keep else "new")
            return [float(x) for x in p.stdout.split()]

        results = {}
        for keep in (False, True):
            direct, proxied = [], []
            for _ in range(a.runs):  # interleaved, so both see the same machine load
                direct += run(API, 80, keep)
                proxied += run("127.0.0.1", 7411, keep)
            results[keep] = (statistics.median(direct), statistics.median(proxied), len(direct))
        time.sleep(3)
        idle_after = rss_kib(daemon)
        print(f"time to the first event of a streamed answer, inside the sandbox ({a.runs} x {a.requests} each, medians):")
        for keep, label in ((False, "new connection per request"), (True, "one kept-alive connection")):
            d, pr, n = results[keep]
            print(f"  {label}:")
            print(f"    direct to the upstream   {d * 1000:7.3f} ms")
            print(f"    through the host proxy   {pr * 1000:7.3f} ms   (+{(pr - d) * 1000:.3f} ms, ratio {pr / d:.2f}x;"
                  f" target <= +2 ms)")
        print(f"proxy daemon RSS, idle: {idle_before / 1024:.1f} MB after start, {idle_after / 1024:.1f} MB after "
              f"{2 * 2 * a.runs * (a.requests + 5)} requests (target <= 20 MB)")
    finally:
        subprocess.run([a.bin, "rm", name], env=env, capture_output=True)
        for p in procs:
            p.kill()
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["ip", "link", "del", veth], capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
