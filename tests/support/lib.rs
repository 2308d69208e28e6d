//! Shared helpers for the end-to-end suites: unique names, cleanup, the binary under test.
use std::path::PathBuf;
use std::process::{Command, Output};

pub use sandbox::incus::Incus;

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
