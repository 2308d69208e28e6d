//! A simulated Anthropic Messages API for the tests and the benchmark: `POST /v1/messages` as the
//! real API answers it (a JSON message, or with `"stream": true` the server-sent events
//! `message_start`, `content_block_start`, `content_block_delta`, `content_block_stop`,
//! `message_delta`, `message_stop`), `POST /v1/messages/count_tokens`, and the `HEAD /api/hello`
//! Claude Code sends first; anything else is the API's 404 error. Every request is recorded
//! (method, path with query, headers, body) for assertions.
//!
//! Test knobs, sent by a client as headers (the proxy forwards them unchanged):
//! `x-sim-pause-ms: N` pauses a stream after `message_start`; `x-sim-hold: KEY` holds it there
//! until a request to `/sim/release/KEY` arrives — a client behind a buffering proxy would never
//! see `message_start` before asking for the release, so it proves the proxy streams.
//!
//! Knobs in the prompt (the last user message's text), for a real Claude Code driven by a test:
//! `sim:pause:MS` pauses the answer after `message_start` as the header does; `sim:tool:NAME:ARG` (ARG one word)
//! makes a request that offers tool NAME answer with a call to it (Bash: `{"command": ARG}`)
//! instead of text, and the request that brings its `tool_result` gets the text. `/sim/pause/MS`
//! (or `Sim::set_pause`) pauses every answer from then on.
//!
//! It listens on loopback, or on an address of a network namespace the test creates (in
//! 198.18.0.0/15, routed to the sandboxes' bridge), so a sandbox could reach it directly.
use std::collections::BTreeMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::Response;
use futures::StreamExt;
use serde_json::{Value, json};

/// The usage every answer reports (tests assert sums of these).
pub const USAGE: Usage = Usage { input: 11, output: 7, cache_read: 5, cache_write: 3 };

#[derive(Debug, Clone, Copy)]
pub struct Usage {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write: u64,
}

#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query, as received.
    pub target: String,
    /// Lowercased names; repeated headers joined with ", ".
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    /// The text of the last user message (its text blocks joined), up to 4 KiB: what a prompt
    /// typed or passed to Claude Code became.
    pub fn user_text(&self) -> String {
        let v = self.json();
        let Some(m) = v["messages"].as_array().and_then(|ms| ms.iter().rev().find(|m| m["role"] == "user")) else {
            return String::new();
        };
        let text = match &m["content"] {
            Value::String(t) => t.clone(),
            Value::Array(blocks) => blocks.iter().filter_map(|b| b["text"].as_str()).collect::<Vec<_>>().join("\n"),
            _ => String::new(),
        };
        text.chars().take(4096).collect()
    }
}

struct Shared {
    text: String,
    /// Milliseconds every answer pauses after `message_start` (0: none); see `set_pause`.
    pause_ms: std::sync::atomic::AtomicU64,
    holds: Mutex<std::collections::HashMap<String, Arc<tokio::sync::Notify>>>,
    log: Mutex<Vec<Recorded>>,
    /// Also appended here as JSON lines (for scripts: the VS Code suite, the benchmark).
    log_file: Option<std::path::PathBuf>,
}

pub struct Sim {
    /// `http://ADDR:PORT`
    pub url: String,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    netns: Option<Netns>,
}

fn app(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(shared)
}

fn api_error(status: StatusCode, kind: &str, message: &str) -> Response {
    let body = json!({"type": "error", "error": {"type": kind, "message": message}});
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn record(s: &Shared, method: &Method, target: &str, headers: &HeaderMap, body: &[u8]) {
    let mut h: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in headers {
        let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
        h.entry(k.as_str().to_string()).and_modify(|e| *e = format!("{e}, {v}")).or_insert(v);
    }
    let r = Recorded { method: method.to_string(), target: target.to_string(), headers: h, body: body.to_vec() };
    if let Some(f) = &s.log_file {
        let line = json!({"method": r.method, "target": r.target, "headers": r.headers, "bodyBytes": body.len(),
            "model": r.json()["model"], "stream": r.json()["stream"], "userText": r.user_text()});
        use std::io::Write;
        if let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(f) {
            let _ = writeln!(file, "{line}");
        }
    }
    s.log.lock().unwrap().push(r);
}

async fn handle(State(s): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 64 << 20).await.unwrap_or_default();
    let target = parts.uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_default();
    record(&s, &parts.method, &target, &parts.headers, &body);
    let path = parts.uri.path();
    match (&parts.method, path) {
        (&Method::HEAD | &Method::GET, "/api/hello") => Response::new(Body::empty()),
        (_, p) if p.starts_with("/sim/pause/") => {
            let ms = p["/sim/pause/".len()..].parse().unwrap_or(0);
            s.pause_ms.store(ms, std::sync::atomic::Ordering::SeqCst);
            Response::new(Body::from("paused"))
        }
        (_, p) if p.starts_with("/sim/release/") => {
            hold(&s, &p["/sim/release/".len()..]).notify_one();
            Response::new(Body::from("released"))
        }
        (&Method::POST, "/v1/messages/count_tokens") => Response::builder()
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(r#"{"input_tokens":11}"#))
            .unwrap(),
        (&Method::POST, "/v1/messages") => {
            let Ok(req) = serde_json::from_slice::<Value>(&body) else {
                return api_error(StatusCode::BAD_REQUEST, "invalid_request_error", "body is not JSON");
            };
            let model = req["model"].as_str().unwrap_or("claude-sim").to_string();
            let prompt = Prompt::of(&req);
            let pause = parts
                .headers
                .get("x-sim-pause-ms")
                .and_then(|v| v.to_str().ok()?.parse().ok())
                .or(prompt.pause)
                .or(Some(s.pause_ms.load(std::sync::atomic::Ordering::SeqCst)).filter(|&ms| ms > 0));
            let held = parts.headers.get("x-sim-hold").and_then(|v| v.to_str().ok()).map(|k| hold(&s, k));
            let answer = match prompt.tool {
                Some(call) => Answer::Tool(call),
                None => Answer::Text(s.text.clone()),
            };
            if req["stream"] == true {
                stream(&answer, &model, pause.unwrap_or(0), held)
            } else {
                message(&answer, &model)
            }
        }
        _ => api_error(StatusCode::NOT_FOUND, "not_found_error", &format!("{} {path} is not simulated", parts.method)),
    }
}

fn hold(s: &Shared, key: &str) -> Arc<tokio::sync::Notify> {
    s.holds.lock().unwrap().entry(key.to_string()).or_default().clone()
}

fn usage_json(output: u64) -> Value {
    json!({"input_tokens": USAGE.input, "cache_creation_input_tokens": USAGE.cache_write,
           "cache_read_input_tokens": USAGE.cache_read, "output_tokens": output})
}

/// What the prompt asks of the simulation (see the module's comment). Knobs are read from the
/// user's messages since the last answer only, and a tool call is asked for only by a text
/// after their last `tool_result` (Claude Code sends a new prompt in the same message as the
/// previous result).
#[derive(Debug, Default)]
struct Prompt {
    pause: Option<u64>,
    /// (tool name, argument), when the request offers that tool.
    tool: Option<(String, String)>,
}

fn knob(text: &str, name: &str) -> Option<String> {
    let at = text.find(&format!("sim:{name}:"))? + name.len() + 5;
    Some(text[at..].split_whitespace().next().unwrap_or("").to_string())
}

impl Prompt {
    fn of(req: &Value) -> Prompt {
        let messages = req["messages"].as_array().cloned().unwrap_or_default();
        let turn = messages.iter().rposition(|m| m["role"] == "assistant").map_or(0, |i| i + 1);
        let blocks: Vec<Value> = messages[turn..]
            .iter()
            .flat_map(|m| match &m["content"] {
                Value::String(t) => vec![json!({"type": "text", "text": t})],
                Value::Array(a) => a.clone(),
                _ => Vec::new(),
            })
            .collect();
        let offered = |tool: &str| req["tools"].as_array().is_some_and(|ts| ts.iter().any(|t| t["name"] == tool));
        let mut p = Prompt::default();
        for b in &blocks {
            if b["type"] == "tool_result" {
                p.tool = None;
            }
            let Some(text) = b["text"].as_str() else { continue };
            if let Some(ms) = knob(text, "pause").and_then(|v| v.parse().ok()) {
                p.pause = Some(ms);
            }
            if let Some((name, arg)) = knob(text, "tool").as_deref().and_then(|s| s.split_once(':'))
                && offered(name)
            {
                p.tool = Some((name.to_string(), arg.to_string()));
            }
        }
        p
    }
}

enum Answer {
    Text(String),
    /// (tool name, argument)
    Tool((String, String)),
}

impl Answer {
    fn content(&self) -> Value {
        match self {
            Answer::Text(t) => json!({"type": "text", "text": t}),
            Answer::Tool((name, arg)) => {
                json!({"type": "tool_use", "id": "toolu_sim", "name": name, "input": tool_input(name, arg)})
            }
        }
    }
    fn stop_reason(&self) -> &'static str {
        match self {
            Answer::Text(_) => "end_turn",
            Answer::Tool(_) => "tool_use",
        }
    }
}

fn tool_input(name: &str, arg: &str) -> Value {
    match name {
        "Bash" => json!({"command": arg, "description": "Run the command the test asked for"}),
        _ => json!({"input": arg}),
    }
}

fn message(answer: &Answer, model: &str) -> Response {
    let body = json!({"id": "msg_sim", "type": "message", "role": "assistant", "model": model,
        "content": [answer.content()], "stop_reason": answer.stop_reason(), "stop_sequence": null,
        "usage": usage_json(USAGE.output)});
    Response::builder().header(header::CONTENT_TYPE, "application/json").body(Body::from(body.to_string())).unwrap()
}

fn event(name: &str, data: Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

fn stream(answer: &Answer, model: &str, pause_ms: u64, held: Option<Arc<tokio::sync::Notify>>) -> Response {
    let start = event(
        "message_start",
        json!({"type": "message_start", "message": {"id": "msg_sim", "type": "message", "role": "assistant",
            "model": model, "content": [], "stop_reason": null, "stop_sequence": null, "usage": usage_json(1)}}),
    );
    let (block, delta) = match answer {
        Answer::Text(text) => (json!({"type": "text", "text": ""}), json!({"type": "text_delta", "text": text})),
        Answer::Tool((name, arg)) => (
            json!({"type": "tool_use", "id": "toolu_sim", "name": name, "input": {}}),
            json!({"type": "input_json_delta", "partial_json": tool_input(name, arg).to_string()}),
        ),
    };
    let rest = [
        event("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": block})),
        event("ping", json!({"type": "ping"})),
        event("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": delta})),
        event("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
        event(
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": answer.stop_reason(), "stop_sequence": null},
            "usage": {"output_tokens": USAGE.output}}),
        ),
        event("message_stop", json!({"type": "message_stop"})),
    ];
    let body =
        futures::stream::once(async move { Ok::<_, std::io::Error>(start) }).chain(futures::stream::once(async move {
            if pause_ms > 0 {
                tokio::time::sleep(Duration::from_millis(pause_ms)).await;
            }
            if let Some(h) = held {
                let _ = tokio::time::timeout(Duration::from_secs(30), h.notified()).await;
            }
            Ok(Bytes::from(rest.concat()))
        }));
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .header("request-id", "req_sim")
        .body(Body::from_stream(body))
        .unwrap()
}

/// A network namespace joined to the host by a veth pair: 198.19.A.B+1 (host side) and +2 (the
/// simulated API), routed back to the sandboxes' bridge only.
struct Netns {
    name: String,
    veth: String,
}

fn run(argv: &[&str]) {
    let o = Command::new(argv[0]).args(&argv[1..]).output().expect("run");
    assert!(o.status.success(), "{argv:?}: {}", String::from_utf8_lossy(&o.stderr));
}

impl Netns {
    fn create() -> (Netns, String) {
        let tag = format!("{:06x}", rand::random::<u32>() & 0xff_ffff);
        let name = format!("sbx-api-{tag}");
        let (vh, vn) = (format!("va{tag}h"), format!("va{tag}n"));
        let addrs = String::from_utf8_lossy(&Command::new("ip").args(["-4", "-o", "addr"]).output().unwrap().stdout)
            .into_owned();
        let (host_ip, ip) = loop {
            let (a, b) = (rand::random::<u8>(), rand::random::<u8>() & 0xfc);
            let net = format!("198.19.{a}.");
            if !addrs.contains(&format!("{net}{}/", b + 1)) {
                break (format!("{net}{}", b + 1), format!("{net}{}", b + 2));
            }
        };
        run(&["ip", "netns", "add", &name]);
        let ns = Netns { name: name.clone(), veth: vh.clone() };
        run(&["ip", "link", "add", &vh, "type", "veth", "peer", "name", &vn, "netns", &name]);
        run(&["ip", "addr", "add", &format!("{host_ip}/30"), "dev", &vh]);
        run(&["ip", "link", "set", &vh, "up"]);
        for args in [
            vec!["ip", "addr", "add", &format!("{ip}/30"), "dev", &vn],
            vec!["ip", "link", "set", &vn, "up"],
            vec!["ip", "link", "set", "lo", "up"],
            vec!["ip", "route", "add", "10.100.0.0/16", "via", &host_ip],
        ] {
            let mut v = vec!["ip", "netns", "exec", &name];
            v.extend(args.iter().map(|s| &**s));
            run(&v);
        }
        (ns, ip)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
        let _ = Command::new("ip").args(["link", "del", &self.veth]).status();
    }
}

/// Binds a listener inside network namespace `ns` (a socket stays in the namespace it was made in).
fn bind_in(ns: &str, addr: &str) -> std::net::TcpListener {
    let (ns, addr) = (ns.to_string(), addr.to_string());
    std::thread::spawn(move || {
        let own = std::fs::File::open("/proc/thread-self/ns/net").unwrap();
        let target = std::fs::File::open(format!("/run/netns/{ns}")).unwrap();
        use std::os::fd::AsRawFd;
        // SAFETY: setns on this short-lived thread only; it returns to its own namespace after.
        assert_eq!(unsafe { libc::setns(target.as_raw_fd(), libc::CLONE_NEWNET) }, 0, "setns");
        let l = std::net::TcpListener::bind(&addr);
        assert_eq!(unsafe { libc::setns(own.as_raw_fd(), libc::CLONE_NEWNET) }, 0, "setns back");
        l.unwrap_or_else(|e| panic!("bind {addr} in {ns}: {e}"))
    })
    .join()
    .unwrap()
}

impl Sim {
    /// On 127.0.0.1 (a random port): what the host's proxy can reach, no sandbox can.
    pub fn loopback(text: &str) -> Sim {
        Self::start(std::net::TcpListener::bind("127.0.0.1:0").unwrap(), text, None, None)
    }

    /// On port 80 of an address in a namespace this test creates, reachable from the sandboxes'
    /// bridge (an open sandbox could call it directly).
    pub fn in_netns(text: &str) -> Sim {
        let (ns, ip) = Netns::create();
        let l = bind_in(&ns.name, &format!("{ip}:80"));
        Self::start(l, text, None, Some(ns))
    }

    /// On a listener of the caller's (the `sim-anthropic` binary), also logging to `log_file`.
    pub fn serve(listener: std::net::TcpListener, text: &str, log_file: Option<std::path::PathBuf>) -> Sim {
        Self::start(listener, text, log_file, None)
    }

    fn start(
        listener: std::net::TcpListener,
        text: &str,
        log_file: Option<std::path::PathBuf>,
        netns: Option<Netns>,
    ) -> Sim {
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shared = Arc::new(Shared {
            text: text.to_string(),
            pause_ms: Default::default(),
            holds: Default::default(),
            log: Mutex::new(Vec::new()),
            log_file,
        });
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let router = app(shared.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let l = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(l, router)
                    .with_graceful_shutdown(async move {
                        rx.await.ok();
                    })
                    .await
                    .unwrap();
            });
        });
        Sim { url, shared, shutdown: Some(tx), thread: Some(thread), netns }
    }

    /// Every answer from now on pauses `ms` after `message_start` (0: none). Programs using the
    /// `sim-anthropic` binary ask for it with a request to `/sim/pause/MS`.
    pub fn set_pause(&self, ms: u64) {
        self.shared.pause_ms.store(ms, std::sync::atomic::Ordering::SeqCst);
    }

    /// Requests so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.log.lock().unwrap().clone()
    }

    /// `POST /v1/messages` requests so far.
    pub fn messages(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| {
                r.method == "POST" && r.target.starts_with("/v1/messages") && !r.target.starts_with("/v1/messages/")
            })
            .collect()
    }

    /// The address only (for "a direct request is refused" checks).
    pub fn host(&self) -> String {
        self.url.trim_start_matches("http://").rsplit_once(':').unwrap().0.to_string()
    }

    pub fn in_namespace(&self) -> bool {
        self.netns.is_some()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
