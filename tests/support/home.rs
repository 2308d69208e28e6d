//! A `~/.sandbox` of a test's own (SANDBOX_HOME): its own credential, host daemon and sandboxes,
//! removed when dropped; plus what the Claude Code suites share (a tmux session on the host,
//! waiting for a condition).
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::{sandbox_bin, text, unique};

pub const VERSION: &str = "2.1.332";
/// No telemetry or update checks from the sandboxes: they reach nothing but the simulated API.
pub const QUIET: &str = "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1";
pub const NOWHERE: &str = "http://127.0.0.1:9";

/// A SANDBOX_HOME of the test's own; removes its sandboxes and ends its proxy when dropped.
pub struct Home {
    dir: tempfile::TempDir,
    names: Vec<String>,
}

impl Home {
    pub fn new() -> Home {
        Home { dir: tempfile::Builder::new().prefix("sbx-claude-").tempdir().unwrap(), names: Vec::new() }
    }
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    pub fn cmd(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut c = Command::new(sandbox_bin());
        // A start that names no upstream would forward to api.anthropic.com: here, to a port
        // where nothing listens (the tests reach nothing beyond this machine).
        c.args(args).env("SANDBOX_HOME", self.path()).env("SANDBOX_ANTHROPIC_UPSTREAM", NOWHERE);
        for (k, v) in env {
            c.env(k, v);
        }
        c
    }
    pub fn sb(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        self.cmd(args, env).stdin(Stdio::null()).output().unwrap()
    }
    pub fn sb_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        let mut c =
            self.cmd(args, &[]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        // Bad arguments are refused before the input is read: the pipe may be closed by then.
        if let Err(e) = c.stdin.take().unwrap().write_all(input) {
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
        }
        c.wait_with_output().unwrap()
    }
    pub fn name(&mut self, prefix: &str) -> String {
        let n = unique(prefix);
        self.names.push(n.clone());
        n
    }
    pub fn set_credential(&self, secret: &str) {
        let o = self.sb_stdin(&["auth", "set", "anthropic"], format!("{secret}\n").as_bytes());
        assert!(o.status.success(), "auth set: {}", text(&o.stderr));
    }
    /// A sandbox from golden-minimal whose Claude Code goes to `upstream`.
    pub fn create(&self, name: &str, upstream: &str, extra: &[&str]) -> Output {
        let mut args = vec!["start", name, "--stack", "minimal", "--env", QUIET];
        args.extend_from_slice(extra);
        let o = self.sb(&args, &[("SANDBOX_ANTHROPIC_UPSTREAM", upstream)]);
        assert!(o.status.success(), "create {name}: {}", text(&o.stderr));
        o
    }
    /// `sandbox start NAME` (a restart, or a revive) with the upstream it applies.
    pub fn start(&self, name: &str, upstream: &str) -> Output {
        self.sb(&["start", name], &[("SANDBOX_ANTHROPIC_UPSTREAM", upstream)])
    }
    pub fn exec(&self, name: &str, argv: &[&str]) -> Output {
        let mut args = vec!["exec", name, "--"];
        args.extend_from_slice(argv);
        self.sb(&args, &[])
    }
    /// `claude -p PROMPT` in the sandbox, as ubuntu in a login shell.
    pub fn claude_p(&self, name: &str, prompt: &str) -> Output {
        self.exec(name, &["claude", "-p", prompt])
    }
    pub fn listed(&self, name: &str) -> serde_json::Value {
        let o = self.sb(&["list", "--json"], &[]);
        assert!(o.status.success(), "{}", text(&o.stderr));
        let all: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        all.as_array().unwrap().iter().find(|s| s["name"] == name).cloned().unwrap_or_default()
    }
    pub fn daemon_pid(&self) -> Option<i32> {
        let pid: i32 = std::fs::read_to_string(self.path().join("anthropic/daemon.pid")).ok()?.trim().parse().ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        String::from_utf8_lossy(&cmdline).contains("__anthropic-proxy").then_some(pid)
    }
    pub fn socket(&self, name: &str) -> PathBuf {
        self.path().join("anthropic/sandboxes").join(name).join("api.sock")
    }
}

impl Default for Home {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        if !self.names.is_empty() {
            let mut args = vec!["rm"];
            args.extend(self.names.iter().map(String::as_str));
            let _ = self.sb(&args, &[]);
        }
        if let Some(pid) = self.daemon_pid() {
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
    }
}

pub fn secret(prefix: &str) -> String {
    format!("{prefix}{:032x}{:016x}", rand::random::<u128>(), rand::random::<u64>())
}

pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A tmux session on the host (a terminal), killed when dropped. Each has its own tmux server
/// (`-L NAME`): with one shared server, killing the last session makes it exit while the next
/// session's client connects, and that one fails with "server exited unexpectedly".
pub struct Tmux(pub String);

impl Tmux {
    fn tmux(&self) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.0]);
        c
    }
    /// Runs `argv` in a new detached 160x45 session.
    pub fn new(name: &str, argv: &[&str]) -> Tmux {
        let t = Tmux(name.to_string());
        let mut args = vec!["new-session", "-d", "-s", name, "-x", "160", "-y", "45"];
        args.extend_from_slice(argv);
        let o = t.tmux().args(&args).output().unwrap();
        assert!(o.status.success(), "tmux: {}", text(&o.stderr));
        t
    }
    pub fn screen(&self) -> String {
        text(&self.tmux().args(["capture-pane", "-p", "-t", &self.0]).output().unwrap().stdout)
    }
    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", &self.0];
        args.extend_from_slice(keys);
        self.tmux().args(&args).output().unwrap();
    }
    /// Closes the terminal (its processes get SIGHUP).
    pub fn kill(&self) {
        let _ = self.tmux().args(["kill-session", "-t", &self.0]).output();
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.kill();
    }
}
