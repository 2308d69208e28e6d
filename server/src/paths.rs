//! User files under `~/.sandbox/` (seed-compatible layout).
use std::path::PathBuf;

/// `SANDBOX_HOME`, else `~/.sandbox`.
pub fn sandbox_home() -> PathBuf {
    if let Some(p) = std::env::var_os("SANDBOX_HOME") {
        return PathBuf::from(p);
    }
    dirs::home_dir().unwrap_or_else(|| PathBuf::from("/root")).join(".sandbox")
}

/// Where user stacks live: `~/.sandbox/stacks/`.
pub fn user_stacks_dir() -> PathBuf {
    sandbox_home().join("stacks")
}
