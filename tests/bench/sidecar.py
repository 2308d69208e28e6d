#!/usr/bin/env python3
"""Sidecar benchmark (`sandbox lsp`): notification latency (an outside `incus stop` → the
`sandbox/changed` message, measured from the daemon's own lifecycle event timestamp), the
round-trip of `sandbox/list` with 20 sandboxes, and the idle RSS of the process.

    python3 tests/bench/sidecar.py [--bin target/release/sandbox] [--stack minimal]
"""
import argparse, json, os, queue, secrets, statistics, subprocess, sys, tempfile, threading, time
from datetime import datetime


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/sandbox")
    ap.add_argument("--stack", default="minimal")
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    env = dict(os.environ)
    env.setdefault("SANDBOX_HOME", tempfile.mkdtemp(prefix="sandbox-bench-"))
    tag = secrets.token_hex(3)
    names = [f"sc-{tag}-{i}" for i in range(20)]
    procs = [subprocess.Popen([a.bin, "start", n, "--stack", a.stack], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for n in names]
    for p in procs:
        p.wait()

    lsp = subprocess.Popen([a.bin, "lsp"], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    inbox = queue.Queue()

    def reader():
        f = lsp.stdout
        while True:
            n = None
            while True:
                line = f.readline()
                if not line:
                    return
                line = line.strip()
                if not line:
                    break
                if line.startswith(b"Content-Length:"):
                    n = int(line.split(b":")[1])
            inbox.put((time.time(), json.loads(f.read(n))))

    threading.Thread(target=reader, daemon=True).start()
    ids = iter(range(1, 10**6))

    def send(msg):
        b = json.dumps(msg).encode()
        lsp.stdin.write(b"Content-Length: %d\r\n\r\n" % len(b) + b)
        lsp.stdin.flush()

    def call(method, params):
        i = next(ids)
        t0 = time.perf_counter()
        send({"jsonrpc": "2.0", "id": i, "method": method, "params": params})
        while True:
            _, m = inbox.get(timeout=60)
            if m.get("id") == i and "method" not in m:
                return time.perf_counter() - t0, m

    call("initialize", {"capabilities": {}})
    send({"jsonrpc": "2.0", "method": "initialized", "params": {}})
    time.sleep(1.0)
    rtt = [call("sandbox/list", {})[0] for _ in range(a.runs)]
    rtt_fast = [call("sandbox/list", {"health": False})[0] for _ in range(a.runs)]
    time.sleep(2.0)
    rss = int(open(f"/proc/{lsp.pid}/status").read().split("VmRSS:")[1].split()[0]) / 1024

    # Latency: the daemon's event timestamp of instance-stopped → our notification's arrival.
    lat = []
    mon = subprocess.Popen(["incus", "monitor", "--type", "lifecycle", "--format", "json"], stdout=subprocess.PIPE, text=True)
    events = queue.Queue()

    def mon_reader():
        for line in mon.stdout:  # one JSON object per line
            try:
                events.put(json.loads(line))
            except ValueError:
                pass

    threading.Thread(target=mon_reader, daemon=True).start()
    time.sleep(0.5)
    for n in names[: a.runs]:
        while not inbox.empty():
            inbox.get()
        subprocess.run(["incus", "stop", "--force", f"agent-{n}"], check=True)
        while True:
            t_arrive, m = inbox.get(timeout=30)
            if m.get("method") == "sandbox/changed" and m["params"]["name"] == n and (m["params"]["sandbox"] or {}).get("state") == "stopped":
                break
        while True:
            ev = events.get(timeout=30)
            if ev["metadata"]["action"] == "instance-stopped" and ev["metadata"]["source"].endswith(f"agent-{n}"):
                ts = ev["timestamp"]
                break
        t_event = datetime.fromisoformat(ts[:26] + "+00:00").timestamp()
        lat.append(t_arrive - t_event)
    mon.kill()
    lsp.kill()
    subprocess.run([a.bin, "rm", *names], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(f"sandbox/changed latency (event → message): median {statistics.median(lat)*1000:.0f} ms   (target ≤ 300 ms)  runs: {' '.join('%.0f' % (x*1000) for x in lat)}")
    print(f"sandbox/list round-trip, 20 sandboxes, with health: median {statistics.median(rtt)*1000:.1f} ms; without: {statistics.median(rtt_fast)*1000:.1f} ms")
    print(f"idle RSS of sandbox lsp: {rss:.1f} MB   (target ≤ 25 MB)")


if __name__ == "__main__":
    main()
