#!/usr/bin/env python3
"""What the reliability work (issue #18) costs: medians of a create on the copy path
(SANDBOX_SPARES=0) and on the warm-spare path, a `start` of a running sandbox (which now checks and
repairs what it must have: ports device, ssh entry, known_hosts, authorized key) and `list --json
--no-health`; with --old BIN the same for another build, and the ratios new/old. Then the cost of
the root disk limit: copy creates with the default size against SANDBOX_DEFAULT_DISK=none.
Runs against the real daemon (through /work/helpers/itest --shell on a shared machine).

    python3 tests/bench/reliability.py [--runs 7] [--bin target/debug/sandbox] [--old OTHER_BIN]
"""
import argparse, os, secrets, statistics, subprocess, sys, tempfile, time

OPS = ["create (copy)", "create (spare)", "start of a running one", "list"]


def timed(argv, env):
    t0 = time.perf_counter()
    p = subprocess.run(argv, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"`{' '.join(argv)}` failed:\n{p.stderr}")
    return dt


def warm_spare(binary, env):
    """A warm spare-minimal to take (what a create's background refill makes)."""
    subprocess.run([binary, "__spare", "minimal"], env=env, capture_output=True)
    for _ in range(300):
        p = subprocess.run(["incus", "config", "get", "spare-minimal", "user.sandbox.spare-warm"],
                           capture_output=True, text=True)
        if p.stdout.strip() == "1":
            return
        time.sleep(0.1)
    sys.exit("spare-minimal never became warm")


def one_round(binary, tag, i, samples):
    home = tempfile.mkdtemp(prefix="sandbox-bench-rel-")
    for mode in ("copy", "spare"):
        env = dict(os.environ, SANDBOX_HOME=home, SANDBOX_SPARES="0" if mode == "copy" else "1")
        if mode == "spare":
            warm_spare(binary, env)
        name = f"t-br{tag}-{mode[0]}{i}"
        samples[f"create ({mode})"].append(timed([binary, "start", name, "--stack", "minimal"], env))
        if mode == "spare":
            samples["start of a running one"].append(timed([binary, "start", name], env))
            samples["list"].append(timed([binary, "list", "--json", "--no-health"], env))
        timed([binary, "rm", name], env)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--bin", default="target/debug/sandbox")
    ap.add_argument("--old")
    a = ap.parse_args()
    bins = {"new": a.bin, **({"old": a.old} if a.old else {})}
    tag = secrets.token_hex(2)
    res = {b: {op: [] for op in OPS} for b in bins}
    for i in range(a.runs):
        for b, path in bins.items():  # interleaved: both see the same load
            one_round(path, tag + b[0], i, res[b])
    print(f"{'operation':24} {'new':>8}" + (f" {'old':>8} {'new/old':>8}" if a.old else ""))
    for op in OPS:
        new = statistics.median(res["new"][op])
        line = f"{op:24} {new:7.3f}s"
        if a.old:
            old = statistics.median(res["old"][op])
            line += f" {old:7.3f}s {new / old:8.2f}"
        print(line)

    disk = {"default": [], "none": []}
    for i in range(a.runs):
        for d in disk:
            env = dict(os.environ, SANDBOX_HOME=tempfile.mkdtemp(prefix="sandbox-bench-rel-"), SANDBOX_SPARES="0")
            if d == "none":
                env["SANDBOX_DEFAULT_DISK"] = "none"
            else:
                env.pop("SANDBOX_DEFAULT_DISK", None)
            name = f"t-br{tag}-d{d[0]}{i}"
            disk[d].append(timed([a.bin, "start", name, "--stack", "minimal"], env))
            timed([a.bin, "rm", name], env)
    sized, unsized = statistics.median(disk["default"]), statistics.median(disk["none"])
    print(f"copy create, default disk size {sized:.3f}s, no size {unsized:.3f}s, ratio {sized / unsized:.2f}")


if __name__ == "__main__":
    main()
