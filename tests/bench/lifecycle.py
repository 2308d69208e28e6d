#!/usr/bin/env python3
"""Lifecycle benchmark: medians of create→ssh-ready, restart→ssh-ready, stop, rm, list (N=1, N=20)
and the CLI's peak RSS, with ratios against the seed's bash scripts measured on the same kind of
machine (7.0 s / 3.7 s / 1.4 s / 1.2 s / 0.6 s). Runs the release binary against the real daemon.

    python3 tests/bench/lifecycle.py [--runs 5] [--stack minimal] [--bin target/release/sandbox]
"""
import argparse, json, os, re, secrets, statistics, subprocess, sys, tempfile, time

SEED = {"create": 7.0, "create (copy)": 7.0, "restart": 3.7, "stop": 1.4, "rm": 1.2, "list N=1": 0.6}
TARGET = {"create": 0.5, "create (copy)": 0.5, "restart": 0.5, "stop": 1.0, "rm": 0.5, "list N=20": 0.3}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--stack", default="minimal")
    ap.add_argument("--bin", default="target/release/sandbox")
    a = ap.parse_args()
    env = dict(os.environ)
    env.setdefault("SANDBOX_HOME", tempfile.mkdtemp(prefix="sandbox-bench-"))

    def run(*args, check=True):
        t0 = time.perf_counter()
        p = subprocess.run([a.bin, *args], env=env, capture_output=True, text=True)
        dt = time.perf_counter() - t0
        if check and p.returncode != 0:
            sys.exit(f"`sandbox {' '.join(args)}` failed:\n{p.stderr}")
        return dt, p

    def rss(*args):
        p = subprocess.run(["/usr/bin/time", "-f", "%M", a.bin, *args], env=env, capture_output=True, text=True)
        return int(p.stderr.strip().splitlines()[-1]) / 1024

    # Creates take the stack's warm spare (made in the background after each create, see
    # server/src/engine/spares.rs); "create (copy)" is the path without one (SANDBOX_SPARES=0).
    spare_used = []
    tag = secrets.token_hex(3)
    samples = {k: [] for k in ["create", "create (copy)", "restart", "stop", "rm", "list N=1", "list N=20"]}
    peak = []
    for i in range(a.runs):
        name = f"bench-{tag}-{i}"
        dt, p = run("start", name, "--stack", a.stack); samples["create"].append(dt)
        spare_used.append("Took the warm spare" in p.stderr)
        dt, _ = run("list", "--json"); samples["list N=1"].append(dt)
        peak.append(rss("list", "--json"))
        dt, _ = run("stop", name); samples["stop"].append(dt)
        dt, _ = run("start", name); samples["restart"].append(dt)
        dt, _ = run("rm", name); samples["rm"].append(dt)
    copy_env = dict(env, SANDBOX_SPARES="0")
    for i in range(a.runs):
        name = f"bench-{tag}-c{i}"
        t0 = time.perf_counter()
        p = subprocess.run([a.bin, "start", name, "--stack", a.stack], env=copy_env, capture_output=True, text=True)
        samples["create (copy)"].append(time.perf_counter() - t0)
        if p.returncode != 0:
            sys.exit(f"`sandbox start {name}` failed:\n{p.stderr}")
        run("rm", name)
    # N=20: twenty sandboxes running, then list (with health probes) several times.
    names = [f"bench-{tag}-n{i}" for i in range(20)]
    procs = [subprocess.Popen([a.bin, "start", n, "--stack", a.stack], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for n in names]
    for p in procs:
        p.wait()
    for _ in range(a.runs):
        dt, _ = run("list", "--json"); samples["list N=20"].append(dt)
    peak.append(rss("list", "--json"))
    run("rm", *names, check=False)

    print(f"{'operation':<14} {'median':>8} {'target':>8} {'seed':>7} {'speed-up':>9}   runs (s)")
    for k, v in samples.items():
        med = statistics.median(v)
        seed = SEED.get(k)
        tgt = TARGET.get(k)
        print(f"{k:<14} {med:>7.3f}s {('≤%.1fs' % tgt) if tgt else '':>8} {('%.1fs' % seed) if seed else '':>7} "
              f"{('%.1f×' % (seed / med)) if seed else '':>9}   {' '.join('%.2f' % x for x in v)}")
    print(f"{'':<14} creates that took a warm spare: {sum(spare_used)} of {len(spare_used)}")
    print(f"{'peak RSS':<14} {max(peak):>6.1f}MB   (CLI, `sandbox list --json`)")


if __name__ == "__main__":
    main()
