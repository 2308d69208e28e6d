//! The push gate: a sandbox's git traffic to its repository goes through the host, which lets it
//! push its own branch and nothing else, against a sandbox that is root inside.
//!
//! The sandbox's key (deploy key, or `--ssh-key`) lives only in the sandbox's ssh-agent on the
//! host, which is not plugged into the sandbox: nothing inside can sign for GitHub, so a
//! hand-made SSH connection gets nowhere. Its `origin` is `git://127.0.0.1/OWNER/REPO.git`, a
//! socket unit forwarding to the gate's socket for this sandbox (units.rs). The gate — a host
//! service (hostsvc) run as `sandbox __git-gate` — keeps a bare mirror per sandbox: fetches
//! refresh it from the server first, pushes go into it and are decided by its pre-receive hook
//! (hook.rs), which forwards the allowed updates to the server with the sandbox's key before the
//! mirror's refs move. `--allow-push-any` at create turns the gate off for that sandbox: its
//! agent is plugged in and it talks to the server directly, as before.
pub mod hook;
mod mirror;
mod service;
pub mod units;
mod wire;

use serde::{Deserialize, Serialize};

use super::hostsvc::{self, Release, Service};
use super::rollback::Rollback;
use super::{Engine, creds, keys, validate};
use crate::error::Result;
use crate::incus::Instance;

pub const SERVICE: Service = Service { dir: "gate", command: "__git-gate", title: "the git push gate" };
pub const SOCKET: &str = "git.sock";
/// The Incus device that carries the gate's socket in.
pub const DEVICE: &str = "git-gate";
/// Where that directory appears inside (outside /run: systemd mounts a tmpfs there at boot).
pub const SANDBOX_DIR: &str = "/var/lib/sandbox/gate";
/// git's own port, on the sandbox's loopback.
pub const PORT: u16 = 9418;

/// What the gate knows of a sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Register {
    /// The server's SSH URL (RepoRef::ssh_url).
    pub url: String,
    /// The one branch it may push (unknown until the clone when it was made without `--branch`).
    pub branch: Option<String>,
    /// Its ssh-agent's socket on the host.
    pub agent: String,
}

impl Register {
    fn new(name: &str, repo: &creds::RepoRef, branch: Option<&str>) -> Register {
        Register {
            url: repo.ssh_url(),
            branch: branch.map(str::to_owned),
            agent: creds::agent::socket_path(name).display().to_string(),
        }
    }

    pub fn check(&self) -> std::result::Result<(), String> {
        let repo = creds::RepoRef::parse(&self.url).map_err(|e| e.to_string())?;
        if repo.ssh_url() != self.url {
            return Err(format!("{} is not an SSH URL", self.url));
        }
        if let Some(b) = &self.branch {
            validate::branch(b).map_err(|e| e.to_string())?;
        }
        if !std::path::Path::new(&self.agent).starts_with(creds::agent::dir()) {
            return Err(format!("{} is not one of the sandboxes' agents", self.agent));
        }
        Ok(())
    }
}

/// The sandbox's `origin`: git through the gate.
pub fn sandbox_url(repo: &creds::RepoRef) -> String {
    format!("git://127.0.0.1/{}.git", repo.slug())
}

/// The daemon's entry point (`sandbox __git-gate`).
pub async fn run_daemon() -> anyhow::Result<()> {
    crate::engine::creds::private_dir(&SERVICE.root()).map_err(|e| anyhow::anyhow!("{e}"))?;
    service::write_hook()?;
    hostsvc::daemon::run(SERVICE, service::Gate::default()).await
}

/// Whether this sandbox's pushes go through the gate.
pub fn gated(inst: &Instance) -> bool {
    inst.devices.contains_key(DEVICE)
}

impl Engine {
    /// The gate runs where Incus runs: here, on a local daemon.
    pub(crate) fn gate_here(&self) -> bool {
        self.host == super::host::Host::Local && matches!(self.incus.endpoint(), crate::incus::Endpoint::Unix(_))
    }

    /// Create: the sandbox's endpoint answers before the sandbox starts; returns its device for
    /// the create request. Undo: the endpoint, its directory and mirror.
    pub(crate) async fn gate_prepare(
        &self,
        name: &str,
        repo: &creds::RepoRef,
        branch: Option<&str>,
        rb: &mut Rollback,
    ) -> Result<(String, std::collections::BTreeMap<String, String>)> {
        SERVICE.socket_path(name, SOCKET)?;
        {
            let n = name.to_string();
            rb.push(format!("remove the push gate of {n}"), async move {
                hostsvc::control::unregister(&SERVICE, &n, Release::Remove).await.map_err(|e| anyhow::anyhow!("{e}"))
            });
        }
        hostsvc::control::register(&SERVICE, name, &Register::new(name, repo, branch)).await?;
        Ok((DEVICE.to_string(), hostsvc::device(&SERVICE, name, SANDBOX_DIR)))
    }

    /// Restart, a `start` of a running sandbox, or its branch now known: the endpoint answers
    /// again, for the branch Incus records.
    pub(crate) async fn gate_revive(&self, name: &str, inst: &Instance) -> Result<()> {
        if !gated(inst) || !self.gate_here() {
            return Ok(());
        }
        let Some(repo) = inst.setting(keys::REPO).map(creds::RepoRef::parse).transpose()? else { return Ok(()) };
        let reg = Register::new(name, &repo, inst.setting(keys::BRANCH));
        hostsvc::control::register(&SERVICE, name, &reg).await
    }

    /// Stop, or rm (the mirror goes too).
    pub(crate) async fn gate_release(&self, name: &str, removed: bool) -> Result<()> {
        if !self.gate_here() {
            return Ok(());
        }
        let how = if removed { Release::Remove } else { Release::Stop };
        hostsvc::control::unregister(&SERVICE, name, how).await?;
        if removed {
            let _ = std::fs::remove_dir_all(mirror::mirror_dir(name));
        }
        Ok(())
    }
}
