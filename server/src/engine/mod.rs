//! The engine: golden images, sandboxes, host checks. Every front calls into this.
pub mod base_image;
pub mod doctor;
pub mod error;
pub mod golden;
pub mod host;
pub mod rollback;
pub mod stacks;

pub use error::{EngineError, Result};
