//! A `sandbox lsp` client that only listens, as the VS Code extension does: initialised, then
//! every `sandbox/changed` notification it receives is kept.
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::sandbox_bin;

pub struct Watch {
    child: Child,
    seen: Arc<Mutex<Vec<Value>>>,
}

fn frame(v: &Value) -> Vec<u8> {
    let body = v.to_string();
    format!("Content-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
}

/// One LSP frame's body from R (None at the end of the stream).
pub fn read_frame(r: &mut impl BufRead) -> Option<Vec<u8>> {
    let mut len = 0usize;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some(v) = line.strip_prefix("Content-Length: ") {
            len = v.parse().unwrap_or(0);
        }
    }
    let mut buf = vec![0; len];
    r.read_exact(&mut buf).ok()?;
    Some(buf)
}

impl Watch {
    /// Started with SANDBOX_HOME = `home`; returns once the server answered `initialize`.
    pub fn start(home: &Path) -> Watch {
        let mut child = Command::new(sandbox_bin())
            .arg("lsp")
            .env("SANDBOX_HOME", home)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sandbox lsp");
        let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let keep = seen.clone();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            while let Some(buf) = read_frame(&mut r) {
                let Ok(v) = serde_json::from_slice::<Value>(&buf) else { continue };
                if v["id"] == 1 {
                    let _ = ready_tx.send(());
                } else if v["method"] == "sandbox/changed" {
                    keep.lock().unwrap().push(v["params"].clone());
                }
            }
        });
        let stdin = child.stdin.as_mut().unwrap();
        stdin
            .write_all(&frame(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": {"capabilities": {}, "processId": null, "rootUri": null}})))
            .unwrap();
        stdin.flush().unwrap();
        ready_rx.recv_timeout(Duration::from_secs(30)).expect("sandbox lsp answered initialize");
        // Only after the answer (a server still initialising ignores it).
        let stdin = child.stdin.as_mut().unwrap();
        stdin.write_all(&frame(&json!({"jsonrpc": "2.0", "method": "initialized", "params": {}}))).unwrap();
        stdin.flush().unwrap();
        Watch { child, seen }
    }

    /// The sandbox states `sandbox/changed` carried for `name`, oldest first (null: removed).
    pub fn changes(&self, name: &str) -> Vec<Value> {
        self.seen.lock().unwrap().iter().filter(|p| p["name"] == name).map(|p| p["sandbox"].clone()).collect()
    }

    /// The agent states carried for `name`, repeats folded: e.g. ["working", "done"].
    pub fn agent_states(&self, name: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for s in self.changes(name) {
            let st = s["agent"]["state"].as_str().unwrap_or("").to_string();
            if !st.is_empty() && out.last() != Some(&st) {
                out.push(st);
            }
        }
        out
    }

    /// Waits until a notification for `name` satisfies `pred`; returns its sandbox.
    pub fn wait(&self, name: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let end = Instant::now() + timeout;
        loop {
            if let Some(s) = self.changes(name).into_iter().find(&pred) {
                return s;
            }
            assert!(Instant::now() < end, "no matching sandbox/changed for {name}: {:?}", self.agent_states(name));
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
