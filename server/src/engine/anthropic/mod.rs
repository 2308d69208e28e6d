//! The Anthropic credential stays on the host. One host daemon (`sandbox __anthropic-proxy`,
//! started on demand, outliving the CLI and the sidecar) listens on a unix socket per sandbox,
//! `~/.sandbox/anthropic/sandboxes/NAME/api.sock` (and, next to it, `hooks.sock`: Claude Code's
//! hooks, see engine::agents — one daemon for the per-sandbox services); the sandbox's `anthropic` disk device carries
//! that directory (read-only) to `/var/lib/sandbox/anthropic`, where a socket unit of the golden
//! image forwards 127.0.0.1:PORT to it. The daemon knows which sandbox calls from the socket alone,
//! puts the real credential in, forwards everything else unchanged to the upstream, streams the
//! answer back unbuffered and counts its tokens into Incus (`user.sandbox.usage`).
//!
//! Why a disk device and not a proxy device (the ssh-agent's way): a proxy device that connects
//! to a unix socket runs an Incus `forkproxy`, and Incus polls for its start once a second — every
//! create and start would take ~1 s longer (measured). A bind-mounted directory costs nothing at
//! start; the socket file inside it can be replaced while the sandbox runs (a revived daemon binds
//! it again), and a stopped sandbox's socket is gone.
//!
//! `start` registers the sandbox (and so revives the daemon after a reboot or a kill), `stop`
//! unregisters it (flushing its counters), `rm` removes its directory too, `nuke` ends the daemon.
pub mod control;
pub mod credential;
mod daemon;
mod forward;
mod state;
pub mod upstream;
pub mod usage;

use std::collections::BTreeMap;
use std::path::PathBuf;

pub(crate) use daemon::bind as bind_socket;
pub use daemon::run as run_daemon;

use super::Engine;
use super::rollback::Rollback;
use crate::error::{EngineError, Result};
use crate::incus::{Config, Instance};

/// The Incus device that carries the sandbox's endpoint directory in.
pub const DEVICE: &str = "anthropic";
/// Where that directory appears inside (outside /run: systemd mounts a tmpfs there at boot).
pub const SANDBOX_DIR: &str = "/var/lib/sandbox/anthropic";
pub const SOCKET_NAME: &str = "api.sock";
/// Claude Code inside talks to http://127.0.0.1:PORT.
pub const PORT: u16 = 7411;
/// What the sandbox holds instead of a credential (the proxy replaces it).
pub const PLACEHOLDER: &str = "sandbox-placeholder-the-host-adds-the-credential";

/// `~/.sandbox/anthropic` (0700): the daemon's control socket, pid, log and state, and one
/// directory per sandbox holding its socket.
pub fn root() -> PathBuf {
    crate::paths::sandbox_home().join("anthropic")
}
pub fn endpoint_dir(name: &str) -> PathBuf {
    root().join("sandboxes").join(name)
}
pub fn socket_path(name: &str) -> PathBuf {
    endpoint_dir(name).join(SOCKET_NAME)
}
/// Claude Code's hooks inside post to `SANDBOX_DIR/hooks.sock` (see engine::agents).
pub fn hooks_socket_path(name: &str) -> PathBuf {
    endpoint_dir(name).join(crate::engine::agents::relay::SOCKET_NAME)
}

/// Whether NAME has an endpoint here (its directory, or the daemon's saved state of it).
pub fn has_endpoint(name: &str) -> bool {
    endpoint_dir(name).exists() || root().join("state").join(format!("{name}.json")).exists()
}

/// Every name with an endpoint directory or saved state here.
pub fn endpoint_names() -> Vec<String> {
    let dir_names = |d: PathBuf, suffix: &str| -> Vec<String> {
        std::fs::read_dir(d)
            .map(|rd| {
                rd.flatten().filter_map(|e| e.file_name().to_str()?.strip_suffix(suffix).map(str::to_owned)).collect()
            })
            .unwrap_or_default()
    };
    let mut v = dir_names(root().join("sandboxes"), "");
    v.extend(dir_names(root().join("state"), ".json"));
    v.sort();
    v.dedup();
    v
}

/// sun_path holds 108 bytes including the NUL.
const MAX_SOCKET_PATH: usize = 107;

fn device(name: &str) -> BTreeMap<String, String> {
    [
        ("type", "disk".to_string()),
        ("source", endpoint_dir(name).display().to_string()),
        ("path", SANDBOX_DIR.to_string()),
        ("readonly", "true".into()),
        // A start without the daemon's directory (say, `incus start` by hand) still starts.
        ("required", "false".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

impl Engine {
    /// The proxy (and the push gate) runs where Incus runs: here, on a local daemon.
    pub(crate) fn anthropic_here(&self) -> bool {
        self.host == super::host::Host::Local && matches!(self.incus.endpoint(), crate::incus::Endpoint::Unix(_))
    }

    /// Create: registers the new sandbox with the daemon (its sockets answer before the sandbox
    /// starts) and returns the device for the create request; nothing when the golden image has
    /// no Claude Code of ours and no push gate is asked for (`git`), or Incus is elsewhere. The
    /// undo unregisters and removes the directory (and the gate's mirror).
    pub(crate) async fn anthropic_prepare(
        &self,
        name: &str,
        golden_config: &Config,
        git: Option<crate::engine::gate::Register>,
        rb: &mut Rollback,
    ) -> Result<Option<(String, BTreeMap<String, String>)>> {
        let upstream = upstream::from_env()?;
        let claude = golden_config.contains_key(super::claude::VERSION_KEY);
        if !self.anthropic_here() || (!claude && git.is_none()) {
            return Ok(None);
        }
        check_path(name)?;
        {
            let n = name.to_string();
            rb.push(format!("remove the Anthropic endpoint of {n}"), async move {
                control::unregister(&n, control::Release::Remove).await.map_err(|e| anyhow::anyhow!("{e}"))
            });
        }
        control::register(name, &upstream, true, git).await?;
        Ok(Some((DEVICE.to_string(), device(name))))
    }

    /// Restart, or `start` of a running sandbox: its endpoint answers again (after a reboot, a
    /// killed daemon), with the upstream of this start's environment and the push gate for the
    /// branch Incus records (also once a create learnt it from the clone). A sandbox about to
    /// boot (`running` false) has no agent session left.
    pub(crate) async fn anthropic_revive(&self, name: &str, inst: &Instance, running: bool) -> Result<()> {
        let upstream = upstream::from_env()?;
        if !self.anthropic_here() || !inst.devices.contains_key(DEVICE) {
            return Ok(());
        }
        check_path(name)?;
        control::register(name, &upstream, !running, crate::engine::gate::Register::of(name, inst)?).await
    }

    /// Stop (`removed` false: the counters are flushed to Incus first) or rm (the directory goes).
    pub(crate) async fn anthropic_release(&self, name: &str, removed: bool) -> Result<()> {
        if !self.anthropic_here() {
            return Ok(());
        }
        let how = if removed { control::Release::Remove } else { control::Release::Stop };
        control::unregister(name, how).await
    }
}

/// Environment variables that hold a credential Claude Code would use instead of the host's.
pub const CREDENTIAL_VARS: [&str; 3] = ["ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN"];

/// A credential in the sandbox's environment still works, but it is readable inside: say so.
pub fn warn_visible_credential(env: &[(String, String)], progress: &dyn crate::progress::Progress) {
    if let Some((k, _)) = env.iter().find(|(k, v)| CREDENTIAL_VARS.contains(&k.as_str()) && !v.is_empty()) {
        progress.step(&format!(
            "warning: {k} is in the sandbox's environment, where anything running inside can read it; \
             `sandbox auth set anthropic` keeps the credential on the host instead"
        ));
    }
}

fn check_path(name: &str) -> Result<()> {
    let p = [socket_path(name), hooks_socket_path(name)].into_iter().max_by_key(|p| p.as_os_str().len()).expect("two");
    if p.as_os_str().len() > MAX_SOCKET_PATH {
        return Err(EngineError::failed(
            format!("the Anthropic endpoint's socket path {} is longer than {MAX_SOCKET_PATH} bytes", p.display()),
            "use a shorter sandbox name or a shorter SANDBOX_HOME",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_device_carries_only_the_sandboxs_own_directory_read_only() {
        let d = device("a");
        assert_eq!(d["type"], "disk");
        assert!(d["source"].ends_with("/anthropic/sandboxes/a"));
        assert_eq!((d["path"].as_str(), d["readonly"].as_str()), (SANDBOX_DIR, "true"));
        assert!(!SANDBOX_DIR.starts_with("/run"));
    }
}
