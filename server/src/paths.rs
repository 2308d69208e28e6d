//! User files under `~/.sandbox/` (seed-compatible layout).
use std::path::PathBuf;

/// `SANDBOX_HOME`, else `~/.sandbox`.
pub fn sandbox_home() -> PathBuf {
    if let Some(p) = std::env::var_os("SANDBOX_HOME") {
        return PathBuf::from(p);
    }
    dirs::home_dir().unwrap_or_else(|| PathBuf::from("/root")).join(".sandbox")
}

/// Replaces a file atomically, created with `mode` from the start (a key is never readable by
/// others, not even for a moment; readers such as Squid never see half a file).
pub fn write_atomic(path: &std::path::Path, content: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&tmp)?;
    f.write_all(content)?;
    // The umask may have narrowed `mode` at creation; readers such as dnsmasq need it exact.
    std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(mode))?;
    std::fs::rename(&tmp, path)
}

/// Where user stacks live: `~/.sandbox/stacks/`.
pub fn user_stacks_dir() -> PathBuf {
    sandbox_home().join("stacks")
}
