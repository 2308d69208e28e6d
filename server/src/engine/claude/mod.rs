//! Claude Code in every golden image, without container internet: the release pinned in
//! `stacks/claude-code.json` is fetched on the host from the npm registry (verified, cached by
//! version) and pushed into the image with what makes it start without questions and talk to the
//! Anthropic API through the host (see `engine::anthropic`).
pub mod fetch;
pub mod hooks;
pub mod image;
pub mod pin;

pub use image::{SETUP_REVISION, VERSION_KEY, install};
pub use pin::pin;
