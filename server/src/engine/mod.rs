//! The engine: golden images, sandboxes, host checks. Every front calls into this.
mod adopt;
pub mod agents;
pub mod anthropic;
pub mod base_image;
pub mod blocks;
pub mod claude;
pub mod create;
pub mod creds;
pub mod doctor;
pub mod egress;
mod expose;
pub mod gate;
pub mod golden;
pub mod host;
pub mod host_install;
pub mod hostnet;
pub mod identity;
pub mod journal;
pub mod keys;
pub mod leftovers;
pub mod listen;
pub mod lock;
pub mod orb;
pub mod ports;
pub mod prepared;
mod quota;
mod reach;
mod ready;
pub mod recover;
mod repair;
mod restart;
pub mod review;
pub mod rollback;
pub mod sandbox;
pub mod setup;
pub mod snapshots;
pub mod spares;
pub mod sshcfg;
pub mod stacks;
pub mod teardown;
pub mod validate;

pub use crate::error::{EngineError, Result};

/// The engine's handles: where Incus is, and where host-side processes run.
#[derive(Debug, Clone)]
pub struct Engine {
    pub incus: crate::incus::Incus,
    pub host: host::Host,
    /// The remote's name (`local`, or one from `sandbox remote list`).
    pub remote: String,
}

impl Engine {
    /// The engine for a remote (`--remote`, else the one chosen with `remote use`, else local):
    /// its Incus endpoint, and where its host-side processes run.
    pub fn for_remote(flag: Option<&str>) -> Result<Engine> {
        use crate::remotes::{self, HostKind, LOCAL, Remotes};
        let all = Remotes::load()?;
        let name = all.selected(flag);
        if name == LOCAL {
            return Ok(Engine { incus: crate::incus::Incus::local()?, host: host::Host::local(), remote: name });
        }
        let r = all.get(&name)?;
        let host = match &r.host {
            HostKind::Server => host::Host::Unavailable { remote: name.clone(), ssh_jump: r.effective_ssh_jump() },
            HostKind::Orb { machine } => host::Host::Orb { machine: machine.clone() },
        };
        Ok(Engine { incus: remotes::connect(r)?, host, remote: name })
    }
}
