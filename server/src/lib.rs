//! Agent Sandboxes: the engine (Incus client, golden images, sandboxes) behind three fronts —
//! the CLI, `sandbox lsp` and `sandbox serve`.
pub mod api;
pub mod cli;
pub mod engine;
pub mod error;
pub mod incus;
pub mod paths;
pub mod poll;
pub mod progress;
pub mod remotes;
pub mod tls;
