#!/usr/bin/env python3
"""Agent-state latency: a Claude Code hook firing inside a sandbox → the `sandbox/changed`
notification carrying the new state at an LSP client (what the VS Code tree redraws from).

The hook is the very command the golden image's managed settings hold (read from the sandbox),
run by a shell inside the sandbox with the hook's JSON on stdin, as Claude Code runs it. Each run
alternates UserPromptSubmit (→ working) and Stop (→ done, with its own message), so every run is
a change. The clock starts when the JSON is handed to the in-sandbox shell and stops when the
notification with that state arrives.

    python3 tests/bench/agent_hooks.py [--bin target/release/sandbox] [--stack minimal] [--runs 20]
"""
import argparse, json, os, queue, secrets, shutil, statistics, subprocess, tempfile, threading, time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/sandbox")
    ap.add_argument("--stack", default="minimal")
    ap.add_argument("--runs", type=int, default=20)
    a = ap.parse_args()
    env = dict(os.environ)
    # A scratch ~/.sandbox unless one is given; removed afterwards.
    scratch = None if env.get("SANDBOX_HOME") else tempfile.mkdtemp(prefix="sandbox-bench-")
    if scratch:
        env["SANDBOX_HOME"] = scratch
    env["SANDBOX_ANTHROPIC_UPSTREAM"] = "http://127.0.0.1:9"  # no API call is made
    name = f"ah-{secrets.token_hex(3)}"
    try:
        subprocess.run([a.bin, "start", name, "--stack", a.stack], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        run(a, env, name)
    finally:
        subprocess.run([a.bin, "rm", name], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)


def hook_command(name):
    settings = json.loads(subprocess.run(["incus", "exec", f"agent-{name}", "--", "cat", "/etc/claude-code/managed-settings.json"],
                                         check=True, capture_output=True, text=True).stdout)
    for entry in settings["hooks"]["Stop"]:
        for h in entry["hooks"]:
            if "hooks.sock" in h.get("command", ""):
                return h["command"]
    raise SystemExit("no agent-state hook in the image's managed settings: rebuild it (sandbox setup --rebuild all)")


def run(a, env, name):
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
            inbox.put((time.perf_counter(), json.loads(f.read(n))))

    threading.Thread(target=reader, daemon=True).start()

    def send(msg):
        b = json.dumps(msg).encode()
        lsp.stdin.write(b"Content-Length: %d\r\n\r\n" % len(b) + b)
        lsp.stdin.flush()

    send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"capabilities": {}}})
    while inbox.get(timeout=30)[1].get("id") != 1:
        pass
    send({"jsonrpc": "2.0", "method": "initialized", "params": {}})

    # One shell inside the sandbox runs the hook command for each line it reads (the JSON).
    cmd = hook_command(name)
    shell = subprocess.Popen(["incus", "exec", f"agent-{name}", "--", "sh", "-c",
                              'while IFS= read -r line; do printf "%s" "$line" | sh -c "$0"; done', cmd],
                             stdin=subprocess.PIPE, text=True)
    time.sleep(1.0)
    lat = []
    for i in range(a.runs + 1):
        stop = i % 2 == 1
        msg = f"bench answer {i}"
        event = {"hook_event_name": "Stop" if stop else "UserPromptSubmit", "session_id": "bench-session",
                 "cwd": "/workspace/project", "last_assistant_message": msg, "prompt": "go"}
        want = "done" if stop else "working"
        while not inbox.empty():
            inbox.get()
        t0 = time.perf_counter()
        shell.stdin.write(json.dumps(event) + "\n")
        shell.stdin.flush()
        while True:
            t, m = inbox.get(timeout=30)
            s = (m.get("params") or {}).get("sandbox") or {}
            ag = s.get("agent") or {}
            if m.get("method") == "sandbox/changed" and m["params"]["name"] == name and ag.get("state") == want \
                    and (not stop or ag.get("message") == msg):
                break
        if i > 0:  # the first run warms the daemon's connection to Incus
            lat.append(t - t0)
        time.sleep(0.4)  # past the relay's minimum gap between writes, so each run is measured alone
    shell.stdin.close()
    shell.wait()
    lsp.kill()
    lat.sort()
    p90 = lat[int(len(lat) * 0.9) - 1]
    print(f"hook in the sandbox → sandbox/changed at an LSP client: median {statistics.median(lat)*1000:.0f} ms, "
          f"p90 {p90*1000:.0f} ms   (target ≤ 500 ms)  runs: {' '.join('%.0f' % (x*1000) for x in lat)}")


if __name__ == "__main__":
    main()
