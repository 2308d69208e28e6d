//! The product's errors: a stable code, a human message and a hint that says what to do. Every
//! layer above the Incus client (remotes, engine, fronts) reports these.
use crate::incus::IncusError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Bad input, caught at the boundary before anything changed.
    #[error("invalid {field}: {message}")]
    Invalid { field: String, message: String, hint: String },
    #[error("{what} not found")]
    NotFound { what: String, hint: String },
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

    /// Stable machine-readable code (used by the API and for exit codes).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid { .. } => "invalid_input",
            Self::NotFound { .. } => "not_found",
            Self::Conflict { .. } => "conflict",
            Self::Failed { .. } => "failed",
            Self::Cancelled => "cancelled",
            Self::Incus(
                IncusError::NotRunning { .. } | IncusError::PermissionDenied { .. } | IncusError::Unreachable { .. },
            ) => "incus_unavailable",
            Self::Incus(IncusError::NotFound { .. }) => "not_found",
            Self::Incus(IncusError::AlreadyExists { .. }) => "conflict",
            Self::Incus(_) => "incus_error",
        }
    }

    pub fn hint(&self) -> Option<String> {
        let h = match self {
            Self::Invalid { hint, .. }
            | Self::NotFound { hint, .. }
            | Self::Conflict { hint, .. }
            | Self::Failed { hint, .. } => hint.clone(),
            _ => String::new(),
        };
        (!h.is_empty()).then_some(h)
    }
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;
