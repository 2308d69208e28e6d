//! The product's errors: a stable code, a human message and a hint that says what to do. Every
//! layer above the Incus client (remotes, engine, fronts) reports these.
use crate::incus::IncusError;

/// The stable, machine-readable kind of an error (API `code`, the extension's actions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Params that do not decode (API only).
    InvalidParams,
    /// A value that fails validation; nothing changed.
    InvalidInput,
    NotFound,
    /// Something `sandbox setup` makes is missing (a golden image, the bridge).
    NeedsSetup,
    Conflict,
    Failed,
    Cancelled,
    /// The Incus daemon does not answer (not running, no permission, unreachable).
    IncusUnavailable,
    IncusError,
    /// No such method (API only).
    UnknownMethod,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Bad input, caught at the boundary before anything changed.
    #[error("invalid {field}: {message}")]
    Invalid { field: String, message: String, hint: String },
    #[error("{what} not found")]
    NotFound { what: String, hint: String },
    /// Something `sandbox setup` makes is missing; the hint says which setup.
    #[error("{what} not found")]
    NeedsSetup { what: String, hint: String },
    #[error("{what} already exists")]
    Conflict { what: String, hint: String },
    /// A step failed; what it changed was rolled back.
    #[error("{message}")]
    Failed { message: String, hint: String },
    #[error("cancelled; every change made so far was undone")]
    Cancelled,
    #[error(transparent)]
    Incus(#[from] IncusError),
}

impl EngineError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::Invalid { field: field.into(), message: message.into(), hint: hint.into() }
    }
    pub fn failed(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::Failed { message: message.into(), hint: hint.into() }
    }
    pub fn not_found(what: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::NotFound { what: what.into(), hint: hint.into() }
    }
    /// No sandbox called NAME.
    pub fn sandbox_not_found(name: &str) -> Self {
        Self::not_found(format!("sandbox '{name}'"), "`sandbox list` shows the sandboxes that exist")
    }

    pub fn needs_setup(what: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::NeedsSetup { what: what.into(), hint: hint.into() }
    }

    /// Stable machine-readable code (used by the API and for exit codes).
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Invalid { .. } => ErrorCode::InvalidInput,
            Self::NotFound { .. } => ErrorCode::NotFound,
            Self::NeedsSetup { .. } => ErrorCode::NeedsSetup,
            Self::Conflict { .. } => ErrorCode::Conflict,
            Self::Failed { .. } => ErrorCode::Failed,
            Self::Cancelled => ErrorCode::Cancelled,
            Self::Incus(
                IncusError::NotRunning { .. } | IncusError::PermissionDenied { .. } | IncusError::Unreachable { .. },
            ) => ErrorCode::IncusUnavailable,
            Self::Incus(IncusError::NotFound { .. }) => ErrorCode::NotFound,
            Self::Incus(IncusError::AlreadyExists { .. }) => ErrorCode::Conflict,
            Self::Incus(_) => ErrorCode::IncusError,
        }
    }

    pub fn hint(&self) -> Option<String> {
        let h = match self {
            Self::Invalid { hint, .. }
            | Self::NotFound { hint, .. }
            | Self::NeedsSetup { hint, .. }
            | Self::Conflict { hint, .. }
            | Self::Failed { hint, .. } => hint.clone(),
            _ => String::new(),
        };
        (!h.is_empty()).then_some(h)
    }
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;
