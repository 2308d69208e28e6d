//! Shared helpers for the end-to-end suites: unique names, cleanup, the binary under test.
use std::path::PathBuf;
use std::process::{Command, Output};

pub mod anthropic;
pub mod inet;
pub mod inet_probe;
pub mod secrets;

pub use sandbox::incus::Incus;

pub mod gitfake;
pub mod home;
pub mod repo;
pub mod watch;

/// The base image the test bed imports (scripts/build-base-image.sh).
pub fn base_image() -> String {
    std::env::var("SANDBOX_TEST_IMAGE").unwrap_or_else(|_| "sandbox-base/debootstrap-bookworm".into())
}

/// A name unique to this test run: `t-<prefix>-<6 hex>`.
pub fn unique(prefix: &str) -> String {
    format!("t-{prefix}-{:06x}", rand::random::<u32>() & 0xff_ffff)
}

pub fn incus() -> Incus {
    Incus::local().expect("incus client")
}

/// Deletes the named instances when dropped (also when the test panics).
pub struct Cleanup(pub Vec<String>);

impl Cleanup {
    pub fn new() -> Self {
        Self(Vec::new())
    }
    pub fn add(&mut self, name: impl Into<String>) -> String {
        let n = name.into();
        self.0.push(n.clone());
        n
    }
}

impl Default for Cleanup {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = Command::new("incus").args(["delete", "--force", n]).output();
        }
    }
}

/// The `sandbox` binary built for this workspace.
pub fn sandbox_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("SANDBOX_BIN") {
        return PathBuf::from(p);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
    target.join("debug").join("sandbox")
}

/// Runs `sandbox ARGS…` with extra environment variables.
pub fn sandbox(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(sandbox_bin());
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run sandbox binary")
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Lists instance names via the incus CLI (an independent view of the daemon).
pub fn incus_names() -> Vec<String> {
    let out = Command::new("incus").args(["list", "--format", "csv", "-c", "n"]).output().expect("incus list");
    text(&out.stdout).lines().map(str::to_owned).collect()
}

/// The sandbox home the tests share (tests/run.sh sets SANDBOX_HOME).
pub fn sandbox_home() -> PathBuf {
    std::env::var_os("SANDBOX_HOME").map(PathBuf::from).unwrap_or_else(|| dirs_home().join(".sandbox"))
}

fn dirs_home() -> PathBuf {
    std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/root"))
}

/// Creates a sandbox from the test stack; panics with the CLI's stderr on failure.
pub fn create(name: &str, extra: &[&str]) -> Output {
    let mut args = vec!["start", name, "--stack", "minimal"];
    args.extend_from_slice(extra);
    let out = sandbox(&args, &[]);
    assert!(out.status.success(), "create {name} failed: {}", text(&out.stderr));
    out
}

/// `sandbox list --json` entry for NAME.
pub fn listed(name: &str) -> Option<serde_json::Value> {
    let out = sandbox(&["list", "--json"], &[]);
    assert!(out.status.success(), "list failed: {}", text(&out.stderr));
    let all: serde_json::Value = serde_json::from_slice(&out.stdout).expect("list json");
    all.as_array()?.iter().find(|s| s["name"] == name).cloned()
}

/// `ssh -F <managed config> NAME CMD` (strict host-key checking comes from the config).
pub fn ssh(name: &str, cmd: &str) -> Output {
    Command::new("ssh")
        .arg("-F")
        .arg(sandbox_home().join("ssh_config"))
        .args(["-o", "BatchMode=yes", name, cmd])
        .output()
        .expect("ssh")
}

/// Removes sandboxes by name when dropped.
pub struct Sandboxes(pub Vec<String>);

impl Sandboxes {
    pub fn new() -> Self {
        Self(Vec::new())
    }
    pub fn name(&mut self, prefix: &str) -> String {
        let n = unique(prefix);
        self.0.push(n.clone());
        n
    }
}

impl Default for Sandboxes {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Sandboxes {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            let mut args = vec!["rm".to_string()];
            args.extend(self.0.iter().cloned());
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            let _ = sandbox(&refs, &[]);
        }
    }
}

pub mod faults;
