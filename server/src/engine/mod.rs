//! The engine: golden images, sandboxes, host checks. Every front calls into this.
pub mod base_image;
pub mod create;
pub mod creds;
pub mod doctor;
pub mod egress;
mod expose;
pub mod golden;
pub mod host;
pub mod hostnet;
pub mod identity;
pub mod keys;
pub mod lock;
pub mod orb;
pub mod ports;
mod ready;
mod restart;
pub mod rollback;
pub mod sandbox;
pub mod spares;
pub mod sshcfg;
pub mod stacks;
mod teardown;
pub mod validate;

pub use crate::error::{EngineError, Result};

/// The engine's handles: where Incus is, and where host-side processes run.
#[derive(Debug, Clone)]
pub struct Engine {
    pub incus: crate::incus::Incus,
    pub host: host::Host,
}
