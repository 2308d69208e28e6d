//! The one pattern for per-sandbox host services (docs: the README's "Host services"): a daemon
//! per service and `~/.sandbox`, started on demand in its own session (it outlives the CLI and the
//! sidecar), with
//!
//! - a control socket (`ROOT/control.sock`, 0600, HTTP) to register and unregister sandboxes;
//! - one unix socket per sandbox in `ROOT/sandboxes/NAME/`, a directory the sandbox's disk device
//!   carries in read-only: the daemon knows who calls from the socket alone, and no network path
//!   exists (a disk device costs nothing at start, where a proxy device's `forkproxy` costs ~1 s);
//! - registrations kept as `ROOT/state/NAME.json`, so a daemon started again (after a kill or a
//!   reboot) serves the sandboxes still registered; `start` registers, `stop` unregisters,
//!   `rm` removes the sandbox's directory too, `nuke` ends the daemon; it ends by itself once no
//!   sandbox is left.
//!
//! A service supplies what is its own (`daemon::Endpoints`): what a registration carries, and
//! what opening and closing a sandbox's endpoint means.
pub mod control;
pub mod daemon;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};

/// One host service.
#[derive(Debug, Clone, Copy)]
pub struct Service {
    /// Its directory under `~/.sandbox` (also the control socket's HTTP host name).
    pub dir: &'static str,
    /// The hidden subcommand that runs its daemon (`sandbox __NAME`).
    pub command: &'static str,
    /// What users read in messages ("the git push gate").
    pub title: &'static str,
}

/// sun_path holds 108 bytes including the NUL.
pub const MAX_SOCKET_PATH: usize = 107;

impl Service {
    pub fn root(&self) -> PathBuf {
        crate::paths::sandbox_home().join(self.dir)
    }
    pub fn control_socket(&self) -> PathBuf {
        self.root().join("control.sock")
    }
    /// The directory the sandbox's disk device carries in.
    pub fn endpoint_dir(&self, name: &str) -> PathBuf {
        self.root().join("sandboxes").join(name)
    }
    pub fn state_file(&self, name: &str) -> PathBuf {
        self.root().join("state").join(format!("{name}.json"))
    }
    pub fn log_file(&self) -> PathBuf {
        self.root().join("daemon.log")
    }

    /// A sandbox's socket path, or an error when it would not fit in a socket address.
    pub fn socket_path(&self, name: &str, file: &str) -> Result<PathBuf> {
        let p = self.endpoint_dir(name).join(file);
        if p.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(EngineError::failed(
                format!("the socket path {} of {} is longer than {MAX_SOCKET_PATH} bytes", p.display(), self.title),
                "use a shorter sandbox name or a shorter SANDBOX_HOME",
            ));
        }
        Ok(p)
    }
}

/// What `GET /health` answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Health {
    pub pid: u32,
    pub version: String,
    pub sandboxes: Vec<String>,
}

/// How a sandbox leaves a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Release {
    /// Stopped: its socket closes; its directory stays for the next start.
    Stop,
    /// Removed: its directory and what the service kept for it go too.
    Remove,
}

/// The disk device that carries a sandbox's endpoint directory to `path` inside, read-only.
pub fn device(svc: &Service, name: &str, path: &str) -> std::collections::BTreeMap<String, String> {
    [
        ("type", "disk".to_string()),
        ("source", svc.endpoint_dir(name).display().to_string()),
        ("path", path.to_string()),
        ("readonly", "true".into()),
        // A start without the directory (say, `incus start` by hand) still starts.
        ("required", "false".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SVC: Service = Service { dir: "svc", command: "__svc", title: "the test service" };

    #[test]
    fn paths_and_the_device() {
        assert!(SVC.endpoint_dir("a").ends_with("svc/sandboxes/a"));
        assert!(SVC.state_file("a").ends_with("svc/state/a.json"));
        assert!(SVC.socket_path(&"x".repeat(120), "s.sock").is_err());
        let d = device(&SVC, "a", "/var/lib/sandbox/svc");
        assert_eq!(
            (d["type"].as_str(), d["readonly"].as_str(), d["path"].as_str()),
            ("disk", "true", "/var/lib/sandbox/svc")
        );
        assert!(d["source"].ends_with("svc/sandboxes/a"));
    }
}
