//! Incus REST client (unix socket or HTTPS with a client certificate).
mod client;
mod error;
mod events;
mod exec;
mod files;
mod instances;
mod pipe;
mod resources;
mod tls;
pub mod types;
mod ws;

pub use client::{DEFAULT_SOCKET, Endpoint, Incus, socket_exists};
pub use error::{IncusError, Result};
pub use events::EventMsg;
pub use exec::{ExecOutput, ExecSpec, Stream};
pub use files::FileWrite;
pub use tls::{RemoteTls, fetch_server_certificate, generate_client_certificate};
pub use types::*;
