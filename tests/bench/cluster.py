#!/usr/bin/env python3
"""Cluster benchmark on the test cluster (tests/cluster/up.sh: three nested Incus members on this
machine, reached over HTTPS like any remote): 30 sandboxes created at once placed across the
three members vs the same 30 all on one member (wall time, ratio), `list` of the 30 across members
(median latency), and the memory each member uses with its 10 sandboxes.

    bash tests/cluster/up.sh && python3 tests/bench/cluster.py [--n 30] [--bin target/release/sandbox]

All three members share this machine's cores, so the spread gains nothing from more CPU: the
figure shows what placement and three daemons cost or save in themselves.
"""
import argparse, concurrent.futures, json, os, secrets, statistics, subprocess, sys, tempfile, time

MEMBERS = ["sbx-clu-1", "sbx-clu-2", "sbx-clu-3"]


def sh(*argv, check=True, **kw):
    p = subprocess.run(list(argv), capture_output=True, text=True, **kw)
    if check and p.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed:\n{p.stderr}")
    return p


def member_memory_mib(m):
    state = json.loads(sh("incus", "query", f"/1.0/instances/{m}/state").stdout)
    return state["memory"]["usage"] / 2**20


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--list-runs", type=int, default=7)
    ap.add_argument("--bin", default="target/release/sandbox")
    a = ap.parse_args()
    home = tempfile.mkdtemp(prefix="sandbox-bench-clu-")
    # The members' btrfs pools (in unprivileged containers) have no quotas: no root disk limit.
    env = dict(os.environ, SANDBOX_HOME=home, SANDBOX_DEFAULT_DISK="none")
    token = sh("incus", "exec", MEMBERS[0], "--", "incus", "config", "trust", "add", f"bench-{secrets.token_hex(3)}", "-q").stdout.split()[-1]
    sh(a.bin, "remote", "add", "clu", "--token", token, env=env)
    sh(a.bin, "--remote", "clu", "setup", "--stack", "minimal",
       "--base-image", os.environ.get("SANDBOX_TEST_IMAGE", "sandbox-base/debootstrap-bookworm"), env=env)

    def run(*args):
        return sh(a.bin, "--remote", "clu", *args, env=env)

    def wave(tag, target):
        names = [f"b{tag}-{i}" for i in range(a.n)]
        extra = ["--target", target] if target else []
        t0 = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(a.n) as ex:
            list(ex.map(lambda n: run("start", n, "--stack", "minimal", *extra), names))
        return time.perf_counter() - t0, names

    idle = {m: member_memory_mib(m) for m in MEMBERS}
    tag = secrets.token_hex(2)
    spread, names = wave(f"{tag}s", None)
    listed = json.loads(run("list", "--json", "--no-health").stdout)
    where = {}
    for s in listed:
        if s["name"] in names:
            where[s["location"]] = where.get(s["location"], 0) + 1
    lat = []
    for _ in range(a.list_runs):
        t0 = time.perf_counter()
        run("list", "--json", "--no-health")
        lat.append(time.perf_counter() - t0)
    mem = {m: member_memory_mib(m) for m in MEMBERS}
    print(f"{a.n} creates at once across 3 members : {spread:6.1f} s wall  (placement: {where})", flush=True)
    print(f"list of {a.n} across members (median)   : {statistics.median(lat) * 1000:6.0f} ms  (n={a.list_runs})")
    for m, v in mem.items():
        print(f"memory of {m}: {idle[m]:6.0f} MiB idle, {v:6.0f} MiB with its {where.get(m, 0)} sandboxes", flush=True)
    run("rm", *names)
    one, names = wave(f"{tag}o", MEMBERS[0])
    run("rm", *names)
    print(f"{a.n} creates at once on one member    : {one:6.1f} s wall")
    print(f"ratio one member / three members       : {one / spread:6.2f}")


if __name__ == "__main__":
    main()
