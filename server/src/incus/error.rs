//! Typed Incus errors whose messages say what to do next.
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum IncusError {
    #[error(
        "Incus is not running (no daemon answers on {socket}) — `sandbox host install` installs and starts it \
         (VS Code: Set Up This Machine), then retry"
    )]
    NotRunning { socket: PathBuf },
    #[error(
        "permission denied on {socket} — run as root or add your user to the `incus-admin` group \
         (`sudo usermod -aG incus-admin $USER`, then log in again)"
    )]
    PermissionDenied { socket: PathBuf },
    #[error(
        "cannot reach the Incus server at {url}: {source} — check the address, and that `core.https_address` is set on the server"
    )]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{what} not found")]
    NotFound { what: String },
    #[error("{what} already exists")]
    AlreadyExists { what: String },
    #[error("Incus refused the request ({status}): {message}")]
    Api { status: u16, message: String },
    #[error("Incus operation failed: {message}")]
    Operation { message: String },
    #[error("Incus operation was cancelled")]
    Cancelled,
    /// An exec's command exited 127 or 126, which Incus reports as an error ("Command not
    /// found"): the exec functions turn it back into that exit status.
    #[error("the command exited with status {status}")]
    CommandExited { status: i32 },
    #[error("TLS setup for the Incus remote failed: {0}")]
    Tls(String),
    #[error("Incus websocket failed: {0}")]
    Websocket(String),
    #[error("unexpected answer from Incus: {0}")]
    Decode(String),
    #[error("Incus request failed: {0}")]
    Transport(#[from] reqwest::Error),
}

impl IncusError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, IncusError::NotFound { .. })
    }
}

pub type Result<T, E = IncusError> = std::result::Result<T, E>;
