//! The push gate: a sandbox's git traffic to its repository goes through the host, which lets it
//! push its own branch and nothing else, against a sandbox that is root inside.
//!
//! The sandbox's key (deploy key, or `--ssh-key`) lives only in the sandbox's ssh-agent on the
//! host, which is not plugged into the sandbox: nothing inside can sign for the server, so a
//! hand-made SSH connection gets nowhere. Its `origin` is `git://127.0.0.1/OWNER/REPO.git`, a
//! socket unit forwarding to `git.sock` in the sandbox's directory of the host daemon (units.rs),
//! the one daemon for per-sandbox services (anthropic/daemon.rs opens it with the sandbox's
//! registration: endpoint.rs). The gate keeps a bare mirror per sandbox: fetches refresh it from
//! the server first, pushes go into it and are decided by its pre-receive hook (hook.rs), which
//! forwards the allowed updates to the server with the sandbox's key before the mirror's refs
//! move. `--allow-push-any` at create turns the gate off for that sandbox: its agent is plugged
//! in and it talks to the server directly.
pub mod endpoint;
pub mod hook;
mod mirror;
pub mod units;
mod wire;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{creds, keys, validate};
use crate::error::Result;
use crate::incus::Instance;

/// The socket's file name in the sandbox's directory of the host daemon.
pub const SOCKET: &str = "git.sock";
/// git's own port, on the sandbox's loopback.
pub const PORT: u16 = 9418;
/// `user.sandbox.push` values.
pub const PUSH_GATE: &str = "gate";
pub const PUSH_ANY: &str = "any";

/// `~/.sandbox/gate` (0700): the mirrors, the hook and the pinned host keys the gate's ssh uses.
pub fn root() -> PathBuf {
    crate::paths::sandbox_home().join("gate")
}

/// What the gate knows of a sandbox (part of its registration with the host daemon).
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
    pub fn new(name: &str, repo: &creds::RepoRef, branch: Option<&str>) -> Register {
        Register {
            url: repo.ssh_url(),
            branch: branch.map(str::to_owned),
            agent: creds::agent::socket_path(name).display().to_string(),
        }
    }

    /// A registration as Incus records the sandbox: None unless its pushes go through the gate.
    pub fn of(name: &str, inst: &Instance) -> Result<Option<Register>> {
        if !gated(inst) {
            return Ok(None);
        }
        let Some(repo) = inst.setting(keys::REPO).map(creds::RepoRef::parse).transpose()? else { return Ok(None) };
        Ok(Some(Register::new(name, &repo, inst.setting(keys::BRANCH))))
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

/// Whether this sandbox's pushes go through the gate (recorded at create).
pub fn gated(inst: &Instance) -> bool {
    inst.setting(keys::PUSH) == Some(PUSH_GATE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registration_names_an_ssh_url_a_branch_and_one_of_our_agents() {
        let repo = creds::RepoRef::parse("git@github.com:acme/app.git").unwrap();
        let r = Register::new("t", &repo, Some("feature"));
        assert!(r.check().is_ok(), "{r:?}");
        assert_eq!(sandbox_url(&repo), "git://127.0.0.1/acme/app.git");
        let bad = [
            Register { url: "https://github.com/acme/app".into(), ..r.clone() },
            Register { branch: Some("-x".into()), ..r.clone() },
            Register { agent: "/tmp/other.sock".into(), ..r.clone() },
        ];
        for b in bad {
            assert!(b.check().is_err(), "{b:?}");
        }
    }
}
