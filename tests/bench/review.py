#!/usr/bin/env python3
"""Review and hand-back: how long `sandbox diff NAME --stat` takes on a change of 200 files
(target <= 300 ms at the median), and what the push gate costs — a push, and a fetch, through
the gate vs straight to the server with the sandbox's key (`--allow-push-any`), timed inside the
sandboxes (medians and ratios). The server is the simulated GitHub of the credentials suite
(target/debug/sim-github: its API on loopback, a real sshd git server in a network namespace it
creates and removes). Run as root, after `sandbox setup --stack minimal`:

    cargo build --release && cargo build -p sandbox-e2e --bins && sudo python3 tests/bench/review.py [--runs 15]
"""
import argparse, os, secrets, shutil, statistics, subprocess, sys, tempfile, time

# Inside a sandbox, as ubuntu in its checkout: N times, a new commit then `git push` (or `git
# fetch`), each timed. Prints the times in seconds.
CLIENT = r"""
import subprocess, sys, time
what, branch, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
git = lambda *a: subprocess.run(["git", "-c", "user.name=b", "-c", "user.email=b@example.invalid", *a],
                                check=True, capture_output=True)
out = []
for i in range(n + 2):
    git("commit", "-q", "--allow-empty", "-m", "bench %d" % i)
    t0 = time.perf_counter()
    git(*(["push", "-q", "origin", branch] if what == "push" else ["fetch", "-q", "origin"]))
    if i >= 2:  # the first ones warm up (the forwarder's start, the mirror's first refresh)
        out.append(time.perf_counter() - t0)
print(" ".join("%.6f" % x for x in out))
"""

# 200 files: 100 edited and committed, 60 added and left untracked, 40 deleted (uncommitted).
CHANGE = r"""
set -e
mkdir -p bench
for i in $(seq 1 140); do printf 'line one\nline two %s\n' "$i" > "bench/file $i.txt"; done
git add bench && git -c user.name=b -c user.email=b@example.invalid commit -qm 'bench: the files'
git rev-parse HEAD > /tmp/bench-base
for i in $(seq 1 100); do printf 'changed\n' >> "bench/file $i.txt"; done
git -c user.name=b -c user.email=b@example.invalid commit -qam 'bench: 100 edits'
for i in $(seq 101 140); do rm "bench/file $i.txt"; done
for i in $(seq 1 60); do printf 'new %s\n' "$i" > "bench/new $i.txt"; done
cat /tmp/bench-base
"""


def run(argv, env=None, check=True, **kw):
    p = subprocess.run(argv, capture_output=True, text=True, env=env, **kw)
    if check and p.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed:\n{p.stdout}{p.stderr}")
    return p


def find(name, given):
    if given:
        return given
    for d in ("target/release", "target/debug"):
        if os.access(f"{d}/{name}", os.X_OK):
            return f"{d}/{name}"
    sys.exit(f"{name} not found: cargo build (or pass --{name.split('-')[-1]})")


def timed_in(bin, env, name, what, branch, n):
    p = run([bin, "exec", name, "--", "python3", "-c", CLIENT, what, branch, str(n)], env=env)
    return [float(x) for x in p.stdout.split()]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--bin", default=None)
    ap.add_argument("--github", default=None)
    ap.add_argument("--stack", default="minimal")
    a = ap.parse_args()
    bin, sim = find("sandbox", a.bin), find("sim-github", a.github)
    home = tempfile.mkdtemp(prefix="sandbox-bench-")
    tag = secrets.token_hex(3)
    gated, direct = f"t-bench-gate-{tag}", f"t-bench-direct-{tag}"
    env = dict(os.environ, SANDBOX_HOME=home)
    gh = subprocess.Popen([sim, "--repo", "acme/app"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    try:
        info = {}
        for line in gh.stdout:
            if line.strip() == "ready":
                break
            k, *v = line.split()
            info[k] = v
        env.update(SANDBOX_GITHUB_API=info["api"][0], GH_TOKEN=info["token"][0])
        url = info["repo"][1]
        t0 = time.perf_counter()
        run([bin, "start", gated, url, "--stack", a.stack, "--branch", "bench-gate"], env=env)
        print(f"create with a repository through the gate: {time.perf_counter() - t0:.2f} s (one run)")
        run([bin, "start", direct, url, "--stack", a.stack, "--branch", "bench-direct", "--allow-push-any"], env=env)

        base = run([bin, "exec", gated, "--", "bash", "-c", CHANGE], env=env).stdout.strip()
        stat = [bin, "diff", gated, "--stat", "--base", base]
        out = run(stat, env=env).stdout
        if "200 files" not in out:
            sys.exit(f"expected 200 changed files:\n{out}")
        times = []
        for _ in range(a.runs):
            t0 = time.perf_counter()
            run(stat, env=env)
            times.append(time.perf_counter() - t0)
        print(f"sandbox diff --stat, 200 files (100 committed edits, 60 untracked, 40 deleted), {a.runs} runs:")
        print(f"  median {statistics.median(times) * 1000:7.1f} ms   min {min(times) * 1000:.1f}   max {max(times) * 1000:.1f}"
              f"   (target <= 300 ms)")

        for what in ("push", "fetch"):
            through, straight = [], []
            for _ in range(3):  # interleaved, so both see the same machine load
                through += timed_in(bin, env, gated, what, "bench-gate", a.runs)
                straight += timed_in(bin, env, direct, what, "bench-direct", a.runs)
            g, d = statistics.median(through), statistics.median(straight)
            print(f"git {what} of one new commit, inside the sandbox ({len(through)} each, medians):")
            print(f"  straight to the server (--allow-push-any)   {d * 1000:7.1f} ms")
            print(f"  through the push gate                       {g * 1000:7.1f} ms   (+{(g - d) * 1000:.1f} ms,"
                  f" ratio {g / d:.2f}x)")
    finally:
        for n in (gated, direct):
            subprocess.run([bin, "rm", n], env=env, capture_output=True)
        gh.stdin.close()
        gh.wait(timeout=30)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
