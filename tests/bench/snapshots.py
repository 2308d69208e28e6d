#!/usr/bin/env python3
"""Snapshots, forks and per-turn checkpoints: medians of

- fork → SSH-ready: `sandbox fork SRC NEW` (it returns once NEW answers SSH), target ≤ 1 s;
- snapshot (a running sandbox) and restore (stop, roll back, start again → SSH-ready);
- a checkpoint per turn: what it adds to a turn end (the Stop hook's round trip to the host's
  relay with checkpoints on vs off: the checkpoint is taken off the hook's path) and how long
  until it is there (Stop posted → `turn-N` listed by Incus);
- the disk 20 checkpoints use, each turn writing 1 MiB of new files and rewriting 1 MiB (btrfs
  exclusive bytes of the snapshots: `btrfs filesystem du`).

The hook events are posted by the host to the sandbox's hook socket, as the hook command inside
does. A scratch ~/.sandbox unless SANDBOX_HOME is set (removed afterwards).

    python3 tests/bench/snapshots.py [--bin target/release/sandbox] [--stack minimal] [--runs 5]
"""
import argparse, glob, json, os, secrets, shutil, socket, statistics, subprocess, tempfile, time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/sandbox")
    ap.add_argument("--stack", default="minimal")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--turns", type=int, default=20)
    a = ap.parse_args()
    env = dict(os.environ)
    scratch = None if env.get("SANDBOX_HOME") else tempfile.mkdtemp(prefix="sandbox-bench-")
    if scratch:
        env["SANDBOX_HOME"] = scratch
    env["SANDBOX_ANTHROPIC_UPSTREAM"] = "http://127.0.0.1:9"  # no API call is made
    tag = secrets.token_hex(3)
    src = f"bsnap-{tag}"
    made = [src]

    def sb(*args, check=True):
        t0 = time.perf_counter()
        p = subprocess.run([a.bin, *args], env=env, capture_output=True, text=True)
        if check and p.returncode != 0:
            raise SystemExit(f"`sandbox {' '.join(args)}` failed:\n{p.stderr}")
        return time.perf_counter() - t0, p

    try:
        sb("start", src, "--stack", a.stack)
        fork, snap, restore = [], [], []
        for i in range(a.runs):
            new = f"bfork-{tag}-{i}"
            made.append(new)
            dt, _ = sb("fork", src, new); fork.append(dt)
            _, p = sb("exec", new, "--", "true")  # it answers
            sb("rm", new); made.remove(new)
            dt, _ = sb("snapshot", src, f"s{i}"); snap.append(dt)
            dt, _ = sb("restore", src, f"s{i}"); restore.append(dt)
        report("fork → SSH-ready", fork, "≤ 1 s")
        report("snapshot (running)", snap)
        report("restore → SSH-ready", restore)
        for i in range(a.runs):
            sb("snapshot", "rm", src, f"s{i}")
        checkpoints(a, env, sb, src)
    finally:
        for n in made:
            subprocess.run([a.bin, "rm", n], env=env, capture_output=True)
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)


def post(sock_path, event):
    body = json.dumps(event).encode()
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock_path)
    s.sendall(b"POST /hook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n"
              b"Content-Length: %d\r\n\r\n" % len(body) + body)
    while s.recv(4096):
        pass
    s.close()


def turn_end(sock_path, i):
    """One turn: the prompt, then the Stop; returns the Stop's round trip."""
    post(sock_path, {"hook_event_name": "UserPromptSubmit", "session_id": "bench", "prompt": "go"})
    t0 = time.perf_counter()
    post(sock_path, {"hook_event_name": "Stop", "session_id": "bench", "last_assistant_message": f"turn {i} done"})
    return t0, time.perf_counter() - t0


def listed(src):
    p = subprocess.run(["incus", "query", f"/1.0/instances/agent-{src}/snapshots"], capture_output=True, text=True)
    return {u.rsplit("/", 1)[-1] for u in json.loads(p.stdout or "[]")}


def checkpoints(a, env, sb, src):
    sock = os.path.join(env["SANDBOX_HOME"], "anthropic", "sandboxes", src, "hooks.sock")
    # Off: the Stop's round trip with no checkpoint taken.
    sb("snapshot", "keep", src, "0")
    off = []
    for i in range(a.turns):
        off.append(turn_end(sock, i)[1])
        time.sleep(0.3)
    sb("snapshot", "keep", src, str(a.turns))
    on, ready = [], []
    for i in range(a.turns):
        # What an agent's turn changes: 1 MiB of new files, 1 MiB rewritten.
        sb("exec", src, "--", "sh", "-c",
           f"head -c 1048576 /dev/urandom > new-{i}.bin && head -c 1048576 /dev/urandom > rewritten.bin")
        before = listed(src)
        t0, rt = turn_end(sock, i)
        on.append(rt)
        while True:
            new = listed(src) - before
            if any(n.startswith("turn-") for n in new):
                ready.append(time.perf_counter() - t0)
                break
            if time.perf_counter() - t0 > 30:
                raise SystemExit("no checkpoint after 30 s")
            time.sleep(0.01)
        time.sleep(1.1)  # past the relay's gap between checkpoints
    report("Stop hook round trip, checkpoints off", off)
    report("Stop hook round trip, checkpoints on", on)
    added = statistics.median(on) - statistics.median(off)
    print(f"{'  → added to a turn end':<42} {added * 1000:>7.1f} ms")
    report("Stop → checkpoint listed by Incus", ready)
    snaps = glob.glob(f"/var/lib/incus/storage-pools/*/containers-snapshots/agent-{src}/turn-*")
    if snaps:
        p = subprocess.run(["btrfs", "filesystem", "du", "-s", "--raw", *snaps], capture_output=True, text=True)
        excl = sum(int(l.split()[1]) for l in p.stdout.splitlines()[1:] if l.split() and l.split()[1].isdigit())
        print(f"{'disk of %d checkpoints (exclusive)' % len(snaps):<42} {excl / 2**20:>7.1f} MiB"
              f"   ({excl / 2**20 / len(snaps):.2f} MiB a turn; each turn wrote 2 MiB)")
    else:
        print("disk: the snapshots' directories were not found (not a local btrfs pool)")


def report(what, xs, target=""):
    print(f"{what:<42} {statistics.median(xs) * 1000:>7.1f} ms  {target:<8} runs: "
          f"{' '.join('%.0f' % (x * 1000) for x in xs)}")


if __name__ == "__main__":
    main()
