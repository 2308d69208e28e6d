//! `sandbox lsp`: the real binary, real LSP framing (Content-Length), real Incus.
use std::io::{BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sandbox_e2e::*;
use serde_json::{Value, json};

struct Lsp {
    child: Child,
    stdin: Option<ChildStdin>,
    rx: mpsc::Receiver<Value>,
    next_id: i64,
    /// Notifications and server requests seen while waiting for responses.
    seen: Vec<Value>,
}

impl Lsp {
    fn spawn(env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(sandbox_bin());
        cmd.arg("lsp").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn sandbox lsp");
        let stdout = child.stdout.take().unwrap();
        let stdin = child.stdin.take();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            while let Some(buf) = watch::read_frame(&mut r) {
                let v: Value = serde_json::from_slice(&buf).expect("server sent JSON");
                if tx.send(v).is_err() {
                    return;
                }
            }
        });
        Lsp { child, stdin, rx, next_id: 1, seen: Vec::new() }
    }

    fn raw(&mut self, body: &[u8]) {
        let s = self.stdin.as_mut().unwrap();
        write!(s, "Content-Length: {}\r\n\r\n", body.len()).unwrap();
        s.write_all(body).unwrap();
        s.flush().unwrap();
    }

    fn send(&mut self, v: Value) {
        self.raw(serde_json::to_string(&v).unwrap().as_bytes());
    }

    fn request(&mut self, method: &str, params: Value) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        id
    }

    fn notify(&mut self, method: &str, params: Value) {
        self.send(json!({"jsonrpc": "2.0", "method": method, "params": params}));
    }

    /// Waits for the response to `id`; keeps everything else in `seen`.
    fn response(&mut self, id: i64, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self.rx.recv_timeout(left).unwrap_or_else(|_| panic!("no response to {id} in {timeout:?}"));
            if v.get("id") == Some(&json!(id)) && v.get("method").is_none() {
                return v;
            }
            self.seen.push(v);
        }
    }

    fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.request(method, params);
        self.response(id, Duration::from_secs(120))
    }

    /// Waits for a message matching `pred` (looking at what was already seen first).
    fn wait_for(&mut self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.seen.iter().position(&pred) {
            return self.seen.remove(i);
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self.rx.recv_timeout(left).expect("expected message in time");
            if pred(&v) {
                return v;
            }
            self.seen.push(v);
        }
    }

    fn initialize(&mut self) {
        let r = self.call("initialize", json!({"capabilities": {}, "processId": null, "rootUri": null}));
        assert_eq!(r["result"]["serverInfo"]["name"], "agent-sandboxes", "{r}");
        self.notify("initialized", json!({}));
    }
}

impl Drop for Lsp {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// A `sandbox/status` push saying whether Incus answers.
fn status_with(reachable: bool) -> impl Fn(&Value) -> bool {
    move |v: &Value| v["method"] == "sandbox/status" && v["params"]["incusReachable"] == reachable
}

fn changed_for<'a>(name: &'a str, state: Option<&'a str>) -> impl Fn(&Value) -> bool + 'a {
    move |v: &Value| {
        v["method"] == "sandbox/changed"
            && v["params"]["name"] == name
            && match state {
                Some(s) => v["params"]["sandbox"]["state"] == s,
                None => v["params"]["sandbox"].is_null(),
            }
    }
}

#[test]
fn lifecycle_with_progress_and_live_changes() {
    let mut sb = Sandboxes::new();
    let name = sb.name("lsp");
    let mut lsp = Lsp::spawn(&[]);
    // Before initialize: the proper error.
    let r = lsp.call("sandbox/list", json!({}));
    assert_eq!(r["error"]["code"], -32002, "{r}");
    lsp.initialize();
    let r = lsp.call("sandbox/list", json!({}));
    assert!(r["result"].is_array(), "{r}");
    // The server status is pushed once the client is initialized.
    let st = lsp.wait_for(Duration::from_secs(10), status_with(true));
    let p = &st["params"];
    assert_eq!((p["remote"].as_str(), p["incusError"].is_null()), (Some("local"), true), "{st}");
    assert!(p["incusVersion"].as_str().is_some_and(|v| !v.is_empty()), "{st}");
    assert!(p["goldenBuilt"].as_array().unwrap().iter().any(|g| g == "minimal"), "{st}");
    assert_eq!(p["health"], "ok", "{st}");

    // Create with a work-done token: $/progress begin/report/end, a result, and changes.
    let r = lsp.call("sandbox/create", json!({"name": name, "stack": "minimal", "workDoneToken": "create-1"}));
    assert_eq!(r["result"]["action"], "created", "{r}");
    assert_eq!(r["result"]["sandbox"]["state"], "running");
    // The end may be written after the response: notifications and responses are separate
    // streams in the server, and LSP does not order them (clients handle either).
    lsp.wait_for(Duration::from_secs(5), |v| {
        v["method"] == "$/progress" && v["params"]["token"] == "create-1" && v["params"]["value"]["kind"] == "end"
    });
    let progress: Vec<&Value> =
        lsp.seen.iter().filter(|v| v["method"] == "$/progress" && v["params"]["token"] == "create-1").collect();
    let kinds: Vec<&str> = progress.iter().map(|v| v["params"]["value"]["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"begin"), "{kinds:?}");
    assert!(kinds[1..].iter().all(|k| *k == "report"), "one begin, reports, one end: {kinds:?}");
    assert!(
        progress
            .iter()
            .any(|v| v["params"]["value"]["message"].as_str().is_some_and(|m| m.contains("Waiting for SSH")))
    );
    lsp.wait_for(Duration::from_secs(10), changed_for(&name, Some("running")));
    // How to reach it comes from the sidecar: its SSH host, the managed config, the project.
    assert_eq!(r["result"]["sandbox"]["sshAlias"], format!("sandbox-{name}"));
    let info = lsp.call("sandbox/hostInfo", json!({}))["result"].clone();
    assert_eq!(info["sshConfig"], sandbox_home().join("ssh_config").display().to_string(), "{info}");
    assert_eq!(info["projectDir"], "/workspace/project");
    assert!(info["sshEntries"].as_array().unwrap().iter().any(|e| e == name.as_str()), "{info}");
    let o = Command::new("ssh")
        .args([
            "-F",
            info["sshConfig"].as_str().unwrap(),
            "-o",
            "BatchMode=yes",
            &format!("sandbox-{name}"),
            "hostname",
        ])
        .output()
        .unwrap();
    assert_eq!(text(&o.stdout).trim(), name, "the alias reaches it: {}", text(&o.stderr));

    // A stop done outside (the incus CLI) shows up as a notification, without polling.
    let t0 = Instant::now();
    assert!(Command::new("incus").args(["stop", "--force", &format!("agent-{name}")]).status().unwrap().success());
    lsp.wait_for(Duration::from_secs(10), changed_for(&name, Some("stopped")));
    eprintln!("outside stop → sandbox/changed after {:?} (incl. the stop itself)", t0.elapsed());

    // get, start, exec, destroy through the same table.
    let r = lsp.call("sandbox/start", json!({"name": name}));
    assert_eq!(r["result"]["action"], "restarted", "{r}");
    let r = lsp.call("sandbox/exec", json!({"name": name, "command": ["sh", "-c", "echo $USER; pwd"]}));
    assert_eq!(r["result"]["stdout"], "ubuntu\n/workspace/project\n", "{r}");
    let r = lsp.call("sandbox/get", json!({"name": name}));
    assert_eq!(r["result"]["name"], name.as_str());
    let r = lsp.call("sandbox/create", json!({"name": name, "stack": "minimal"}));
    assert_eq!(r["error"]["data"]["code"], "conflict", "{r}");
    let r = lsp.call("sandbox/destroy", json!({"names": [name]}));

    assert_eq!(r["result"][0]["ok"], true, "{r}");
    lsp.wait_for(Duration::from_secs(10), changed_for(&name, None));
    let r = lsp.call("sandbox/get", json!({"name": name}));
    assert!(r["result"].is_null());
    let r = lsp.call("shutdown", Value::Null);
    assert!(r.get("error").is_none(), "{r}");
    lsp.notify("exit", Value::Null);
    let st = lsp.child.wait().unwrap();
    assert!(st.success());
}

#[test]
fn bad_requests_get_errors_and_the_server_stays_up() {
    let mut lsp = Lsp::spawn(&[]);
    lsp.initialize();
    // Malformed JSON: a Parse error response, and the server lives on.
    lsp.raw(b"{this is not json");
    let e = lsp.wait_for(Duration::from_secs(10), |v| v["error"]["code"] == -32700);
    assert!(e["id"].is_null(), "{e}");
    let r = lsp.call("sandbox/list", json!({"health": false}));
    assert!(r["result"].is_array(), "{r}");
    // Unknown method.
    let r = lsp.call("sandbox/nope", json!({}));
    assert_eq!(r["error"]["code"], -32601, "{r}");
    // Wrong param types and unknown fields.
    let r = lsp.call("sandbox/expose", json!({"name": "x", "port": "abc"}));
    assert_eq!(r["error"]["code"], -32602, "{r}");
    let r = lsp.call("sandbox/list", json!({"health": false, "bogus": 1}));
    assert_eq!(r["error"]["code"], -32602, "{r}");
    // Validation at the boundary: typed error with a hint.
    let r = lsp.call("sandbox/create", json!({"name": "bad name"}));
    assert_eq!(r["error"]["data"]["code"], "invalid_input", "{r}");
    assert!(r["error"]["data"]["hint"].is_string());
    // A large message (8 MiB of params) is read and refused by validation; one over the
    // 16 MiB limit is skipped with an error.
    let big = "x".repeat(8 << 20);
    let r = lsp.call("sandbox/get", json!({"name": big}));
    assert_eq!(r["error"]["data"]["code"], "invalid_input", "{}", &r.to_string()[..200.min(r.to_string().len())]);
    let huge = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":999,\"method\":\"sandbox/get\",\"params\":{{\"name\":\"{}\"}}}}",
        "y".repeat(17 << 20)
    );
    lsp.raw(huge.as_bytes());
    let e = lsp.wait_for(Duration::from_secs(30), |v| v["error"]["code"] == -32600);
    assert!(e["error"]["message"].as_str().unwrap().contains("limit"), "{e}");
    // exec arguments are bounded (128 KiB each): a clear error, before any Incus call.
    let r = lsp.call("sandbox/exec", json!({"name": "x", "command": ["echo", "a".repeat(1 << 20)]}));
    assert_eq!(r["error"]["data"]["code"], "invalid_input", "{}", &r.to_string()[..300.min(r.to_string().len())]);
    assert!(r["error"]["data"]["message"].as_str().unwrap().contains("128 KiB"), "{}", r["error"]);
    let r = lsp.call("sandbox/doctor", json!({}));
    assert!(r["result"].as_array().is_some_and(|a| !a.is_empty()), "still serving: {r}");
}

#[test]
fn cancelling_a_create_rolls_it_back() {
    let name = unique("cancel");
    let _c = Cleanup(vec![format!("agent-{name}")]);
    let mut lsp = Lsp::spawn(&[("SANDBOX_FAULT", "slow-after-copy")]);
    lsp.initialize();
    let id = lsp.request("sandbox/create", json!({"name": name, "stack": "minimal"}));
    // Wait until the instance exists (the copy happened), then cancel.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !incus_names().contains(&format!("agent-{name}")) {
        assert!(Instant::now() < deadline, "create never started");
        std::thread::sleep(Duration::from_millis(100));
    }
    lsp.notify("$/cancelRequest", json!({"id": id}));
    let r = lsp.response(id, Duration::from_secs(30));
    assert_eq!(r["error"]["code"], -32800, "{r}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while incus_names().contains(&format!("agent-{name}")) {
        assert!(Instant::now() < deadline, "rolled back: the instance is gone");
        std::thread::sleep(Duration::from_millis(100));
    }
    let cfg = std::fs::read_to_string(sandbox_home().join("ssh_config")).unwrap_or_default();
    assert!(!cfg.contains(&name), "no ssh entry left");
}

#[test]
fn a_client_vanishing_mid_create_leaves_no_orphan() {
    let name = unique("vanish");
    let _c = Cleanup(vec![format!("agent-{name}")]);
    let mut lsp = Lsp::spawn(&[("SANDBOX_FAULT", "slow-after-copy")]);
    lsp.initialize();
    lsp.request("sandbox/create", json!({"name": name, "stack": "minimal"}));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !incus_names().contains(&format!("agent-{name}")) {
        assert!(Instant::now() < deadline, "create never started");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(lsp.stdin.take()); // the editor is gone
    let st = lsp.child.wait().unwrap();
    assert!(st.success());
    // Either fully created and reachable, or not there at all.
    if incus_names().contains(&format!("agent-{name}")) {
        assert!(ssh(&name, "true").status.success(), "a sandbox that exists is complete");
        let _ = sandbox(&["rm", &name], &[]);
    }
}

/// Restarts incusd, so it is ignored by default: tests/run.sh runs it on CI, after the suites.
#[test]
#[ignore = "restarts the Incus daemon; run by tests/run.sh on CI only"]
fn two_clients_see_the_same_state_and_notifications_resume_after_incusd_restarts() {
    let mut sb = Sandboxes::new();
    let name = sb.name("restart");
    let (mut a, mut b) = (Lsp::spawn(&[]), Lsp::spawn(&[]));
    a.initialize();
    b.initialize();
    std::thread::sleep(Duration::from_millis(500));
    // A create from the CLI shows up in both windows.
    create(&name, &[]);
    a.wait_for(Duration::from_secs(10), changed_for(&name, Some("running")));
    b.wait_for(Duration::from_secs(10), changed_for(&name, Some("running")));
    a.wait_for(Duration::from_secs(10), status_with(true));
    b.wait_for(Duration::from_secs(10), status_with(true));
    // The daemon goes away: both clients are told within 2 s, with the reason (the status bar
    // follows it). Then it comes back (`sandbox host install` starts it) and so does the status.
    assert!(Command::new("incus").args(["admin", "shutdown"]).status().unwrap().success());
    let down = Instant::now();
    for c in [&mut a, &mut b] {
        let st = c.wait_for(Duration::from_secs(10), status_with(false));
        assert_eq!(st["params"]["health"], "error", "{st}");
        assert_eq!(st["params"]["incusError"]["code"], "incus_unavailable", "{st}");
    }
    assert!(down.elapsed() < Duration::from_secs(2), "told after {:?}", down.elapsed());
    assert!(Command::new(sandbox_bin()).args(["host", "install", "--nat", "off"]).status().unwrap().success());
    a.wait_for(Duration::from_secs(30), status_with(true));
    b.wait_for(Duration::from_secs(30), status_with(true));
    // Sandboxes do not come back by themselves (boot.autostart=false: only `sandbox start`, which
    // applies their egress policy and agent first, starts one). Start ours from outside once the
    // daemon answers: both clients must see it, then see an outside stop.
    let inst = format!("agent-{name}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let o = Command::new("incus").args(["list", "--format", "csv", "-c", "ns", &inst]).output().unwrap();
        let state = text(&o.stdout);
        assert!(!state.contains("RUNNING"), "a sandbox came back without `sandbox start`: {state}");
        if state.contains("STOPPED") {
            break;
        }
        assert!(Instant::now() < deadline, "daemon back after the restart");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(1));
    // Only what happens from here counts (the create's own notifications may still be queued).
    a.seen.clear();
    b.seen.clear();
    assert!(Command::new("incus").args(["start", &inst]).status().unwrap().success());
    a.wait_for(Duration::from_secs(15), changed_for(&name, Some("running")));
    b.wait_for(Duration::from_secs(15), changed_for(&name, Some("running")));
    // Both clients re-synchronised and still receive live changes.
    assert!(Command::new("incus").args(["stop", "--force", &inst]).status().unwrap().success());
    a.wait_for(Duration::from_secs(15), changed_for(&name, Some("stopped")));
    b.wait_for(Duration::from_secs(15), changed_for(&name, Some("stopped")));
}

/// What the welcome view is drawn from: why Incus does not answer (here: installed, no daemon on
/// that socket), and "ready" when it does.
#[test]
fn the_status_says_why_incus_does_not_answer() {
    let mut lsp = Lsp::spawn(&[("INCUS_SOCKET", "/nonexistent/incus.socket")]);
    lsp.initialize();
    let st = lsp.wait_for(Duration::from_secs(10), status_with(false));
    let p = &st["params"];
    assert_eq!((p["incus"].as_str(), p["health"].as_str()), (Some("notRunning"), Some("error")), "{st}");
    assert!(p["message"].as_str().unwrap().contains("does not answer"), "{st}");
    assert!(p["incusError"]["message"].as_str().unwrap().contains("sandbox host install"), "{st}");
    let mut ok = Lsp::spawn(&[]);
    ok.initialize();
    let st = ok.wait_for(Duration::from_secs(10), status_with(true));
    assert_eq!(st["params"]["incus"], "ready", "{st}");
}

/// A new sandbox's health is pushed once probed (no list request), with what listens in it; a
/// command's output streams as progress while it runs.
#[test]
fn health_is_pushed_and_exec_output_streams() {
    let mut sb = Sandboxes::new();
    let name = sb.name("push");
    let mut lsp = Lsp::spawn(&[]);
    lsp.initialize();
    let r = lsp.call("sandbox/create", json!({"name": name, "stack": "minimal"}));
    assert_eq!(r["result"]["action"], "created", "{r}");
    let with_health = lsp.wait_for(Duration::from_secs(15), |v| {
        changed_for(&name, Some("running"))(v) && !v["params"]["sandbox"]["health"].is_null()
    });
    let h = &with_health["params"]["sandbox"]["health"];
    assert!(h["claudeInstalled"].is_boolean(), "{h}");
    assert!(h["listening"].as_array().unwrap().contains(&json!({"port": 22, "loopbackOnly": false})), "{h}");
    assert_eq!(with_health["params"]["sandbox"]["reachable"], true);

    // Listening: one server on the sandbox's loopback only, one on every address.
    let serve = "cd /tmp && (setsid python3 -m http.server 3000 --bind 127.0.0.1 >/dev/null 2>&1 &) \
                 && (setsid python3 -m http.server 3001 >/dev/null 2>&1 &) && sleep 1";
    let r = lsp.call("sandbox/exec", json!({"name": name, "command": ["sh", "-c", serve]}));
    assert_eq!(r["result"]["status"], 0, "{r}");
    let got = lsp.call("sandbox/get", json!({"name": name}));
    let l = got["result"]["health"]["listening"].as_array().unwrap().clone();
    assert!(l.contains(&json!({"port": 3000, "loopbackOnly": true})), "{l:?}");
    assert!(l.contains(&json!({"port": 3001, "loopbackOnly": false})), "{l:?}");

    // The first line arrives while the command still waits (for a file only the test makes).
    let id = lsp.request(
        "sandbox/exec",
        json!({"name": name, "workDoneToken": "exec-1", "command": ["sh", "-c",
            "echo one; echo err-two >&2; while [ ! -e /tmp/go ]; do sleep 0.1; done; echo three"]}),
    );
    let report = |m: &'static str| {
        move |v: &Value| {
            v["method"] == "$/progress"
                && v["params"]["token"] == "exec-1"
                && v["params"]["value"]["message"].as_str().is_some_and(|x| x.trim() == m)
        }
    };
    lsp.wait_for(Duration::from_secs(20), report("one"));
    lsp.wait_for(Duration::from_secs(20), report("err-two"));
    assert!(
        Command::new("incus")
            .args(["exec", &format!("agent-{name}"), "--", "touch", "/tmp/go"])
            .status()
            .unwrap()
            .success()
    );
    let r = lsp.response(id, Duration::from_secs(20));
    assert_eq!(r["result"]["stdout"], "one\nthree\n", "{r}");
    assert_eq!(r["result"]["stderr"], "err-two\n", "{r}");
    lsp.wait_for(Duration::from_secs(5), report("three"));
}

/// Valid JSON that is not a JSON-RPC 2.0 message, and header bytes that are not UTF-8: each gets
/// an error (-32600 Invalid Request, -32700 Parse error), the server keeps serving, and a create
/// in flight still gets its reply.
#[test]
fn messages_that_are_not_json_rpc_get_errors_and_a_create_in_flight_still_gets_its_reply() {
    let home = sandbox_e2e::faults::Home::new("lspbad");
    let home_dir = home.dir.display().to_string();
    let name = unique("lspbad");
    let mut lsp = Lsp::spawn(&[("SANDBOX_FAULT", "slow-after-copy"), ("SANDBOX_HOME", &home_dir)]);
    lsp.initialize();
    let create = lsp.request("sandbox/create", json!({"name": name, "stack": "minimal"}));
    let bad: [(&[u8], i64); 9] = [
        (b"{}", -32600),
        (b"null", -32600),
        (b"1", -32600),
        (b"[]", -32600),
        (b"[{\"jsonrpc\":\"2.0\",\"id\":90,\"method\":\"sandbox/list\"}]", -32600),
        (b"{\"jsonrpc\":\"2.0\",\"id\":91,\"method\":7}", -32600),
        (b"{\"jsonrpc\":\"1.0\",\"id\":92,\"method\":\"sandbox/list\"}", -32600),
        (b"{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"sandbox/list\"}", -32600),
        (b"{\"jsonrpc\":\"2.0\",\"id\":{\"a\":1},\"method\":\"sandbox/list\"}", -32600),
    ];
    for (body, code) in bad {
        lsp.raw(body);
        let e = lsp.wait_for(Duration::from_secs(10), |v| v["error"]["code"] == code);
        assert!(e["error"]["message"].is_string(), "{e}");
        let r = lsp.call("sandbox/list", json!({"health": false}));
        assert!(r["result"].is_array(), "still serving after {}: {r}", String::from_utf8_lossy(body));
    }
    // A header line that is not UTF-8 next to a valid Content-Length: the message is served.
    let body = json!({"jsonrpc": "2.0", "id": 93, "method": "sandbox/list", "params": {"health": false}}).to_string();
    let mut frame = format!("Content-Length: {}\r\nX-Note: caf", body.len()).into_bytes();
    frame.extend_from_slice(b"\xe9\r\n\r\n");
    frame.extend_from_slice(body.as_bytes());
    let s = lsp.stdin.as_mut().unwrap();
    s.write_all(&frame).unwrap();
    s.flush().unwrap();
    let r = lsp.response(93, Duration::from_secs(10));
    assert!(r["result"].is_array(), "{r}");
    // A Content-Length that is not UTF-8: a Parse error.
    let s = lsp.stdin.as_mut().unwrap();
    s.write_all(b"Content-Length: \xff\xfe\r\n\r\n").unwrap();
    s.flush().unwrap();
    lsp.wait_for(Duration::from_secs(10), |v| v["error"]["code"] == -32700);
    let r = lsp.call("sandbox/list", json!({"health": false}));
    assert!(r["result"].is_array(), "{r}");
    // The create went on all along.
    let r = lsp.response(create, Duration::from_secs(120));
    assert_eq!(r["result"]["action"], "created", "{r}");
    home.remove(&name, "after bad messages");
}

/// A sidecar killed (kill -9) mid-create leaves a half-made sandbox that the next sidecar, when
/// it starts, recognises and removes; one that gets TERM rolls its create back before it exits.
#[test]
fn a_sidecar_killed_mid_create_is_cleaned_up_by_the_next_and_term_rolls_back() {
    let home = sandbox_e2e::faults::Home::new("lspkill");
    let home_dir = home.dir.display().to_string();
    let env = [("SANDBOX_FAULT", "slow-after-copy"), ("SANDBOX_HOME", home_dir.as_str())];
    // Until the instance exists; a create that ended first (an error) fails the test with its reply.
    let wait_instance = |lsp: &mut Lsp, id: i64, name: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !sandbox_e2e::faults::exists(name) {
            if let Ok(v) = lsp.rx.recv_timeout(Duration::from_millis(50)) {
                assert!(v.get("id") != Some(&json!(id)) || v.get("method").is_some(), "the create ended: {v}");
                lsp.seen.push(v);
            }
            assert!(Instant::now() < deadline, "create never started: {:?}", lsp.seen);
        }
    };
    // kill -9: the half-made sandbox stays until a sidecar starts.
    let name = unique("lspk9");
    let mut lsp = Lsp::spawn(&env);
    lsp.initialize();
    let id = lsp.request("sandbox/create", json!({"name": name, "stack": "minimal"}));
    wait_instance(&mut lsp, id, &name);
    lsp.child.kill().unwrap();
    lsp.child.wait().unwrap();
    assert!(sandbox_e2e::faults::exists(&name), "half-made: the instance is there");
    let mut next = Lsp::spawn(&[("SANDBOX_HOME", home_dir.as_str())]);
    next.initialize();
    let deadline = Instant::now() + Duration::from_secs(60);
    while sandbox_e2e::faults::exists(&name) || !home.leftovers(&name).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the next sidecar removed the half-made {name}: {:?}",
            home.leftovers(&name)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    home.assert_absent(&name, "after the next sidecar");
    // TERM: the create rolls back, then the sidecar exits.
    let name = unique("lspterm");
    let mut lsp = Lsp::spawn(&env);
    lsp.initialize();
    let id = lsp.request("sandbox/create", json!({"name": name, "stack": "minimal"}));
    wait_instance(&mut lsp, id, &name);
    unsafe { libc::kill(lsp.child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(60);
    while lsp.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the sidecar exits after TERM");
        std::thread::sleep(Duration::from_millis(100));
    }
    home.assert_absent(&name, "after TERM to the sidecar");
}
