//! The Anthropic credential, held on the host only: `~/.sandbox/credentials/anthropic.json`
//! (0600 in a 0700 directory). Never logged, never in Incus config, never in a sandbox: the proxy
//! reads it for each request, so `sandbox auth set` takes effect at once everywhere.
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};
use crate::paths::{sandbox_home, write_atomic};

/// Providers whose credential the host can hold (a closed set; the CLI and the API say which).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Anthropic,
}

impl Provider {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "anthropic" => Ok(Self::Anthropic),
            other => Err(EngineError::invalid(
                "provider",
                format!("unknown provider '{}'", other.escape_default()),
                "the one provider is `anthropic`: sandbox auth set anthropic",
            )),
        }
    }
}

/// What kind of credential it is decides the header the proxy sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub enum CredentialKind {
    /// A Console API key (`sk-ant-api…`): sent as `x-api-key`.
    ApiKey,
    /// A long-lived OAuth token from `claude setup-token` (`sk-ant-oat…`): sent as
    /// `Authorization: Bearer`, with the `oauth-2025-04-20` beta the API requires for it.
    OauthToken,
}

impl CredentialKind {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "api-key" | "apiKey" => Ok(Self::ApiKey),
            "oauth-token" | "oauthToken" => Ok(Self::OauthToken),
            other => Err(EngineError::invalid(
                "kind",
                format!("unknown credential kind '{}'", other.escape_default()),
                "use --kind api-key or --kind oauth-token",
            )),
        }
    }

    /// From the token's prefix; anything else (a gateway's key, say) is sent as an API key.
    pub fn detect(secret: &str) -> Self {
        if secret.starts_with("sk-ant-oat") { Self::OauthToken } else { Self::ApiKey }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Self::ApiKey => "API key",
            Self::OauthToken => "OAuth token",
        }
    }
}

/// The stored credential. Debug never prints the secret.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Credential {
    pub kind: CredentialKind,
    pub secret: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credential({:?}, ***)", self.kind)
    }
}

/// What `sandbox auth status` says: what is set, never the value.
#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub struct CredentialStatus {
    pub provider: Provider,
    pub set: bool,
    pub kind: Option<CredentialKind>,
    /// When it was stored (RFC 3339).
    pub updated_at: Option<String>,
}

const MAX_LEN: usize = 4096;

pub fn path(_p: Provider) -> PathBuf {
    sandbox_home().join("credentials").join("anthropic.json")
}

/// What was typed or piped, checked: one line of visible ASCII (one trailing newline allowed, as
/// `echo` and editors leave it). Nothing is stored when it is refused.
pub fn validate(raw: &str) -> Result<String> {
    let hint = "paste the API key (sk-ant-api…) or the token from `claude setup-token` (sk-ant-oat…) alone";
    let s = raw.strip_suffix('\n').unwrap_or(raw);
    let s = s.strip_suffix('\r').unwrap_or(s);
    let bad = |why: &str| EngineError::invalid("credential", why.to_string(), hint);
    if s.trim().is_empty() {
        return Err(bad("it is empty"));
    }
    if s.contains('\n') || s.contains('\r') {
        return Err(bad("it has more than one line"));
    }
    if s.len() > MAX_LEN {
        return Err(bad(&format!("it is longer than {MAX_LEN} characters")));
    }
    if s.chars().any(|c| !c.is_ascii_graphic()) {
        return Err(bad("it contains spaces, control characters or non-ASCII characters"));
    }
    Ok(s.to_string())
}

/// Stores a credential (replacing any), 0600 from the start.
pub fn store(p: Provider, raw: &str, kind: Option<CredentialKind>) -> Result<CredentialStatus> {
    let secret = validate(raw)?;
    let kind = kind.unwrap_or_else(|| CredentialKind::detect(&secret));
    let file = path(p);
    let dir = file.parent().expect("credentials dir");
    crate::engine::creds::private_dir(dir)?;
    let body = serde_json::to_vec(&Credential { kind, secret }).expect("serialisable");
    write_atomic(&file, &body, 0o600).map_err(|e| {
        EngineError::failed(format!("cannot write {}: {e}", file.display()), "check the permissions of ~/.sandbox")
    })?;
    Ok(status(p))
}

pub fn remove(p: Provider) -> Result<CredentialStatus> {
    match std::fs::remove_file(path(p)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(EngineError::failed(
                format!("cannot remove {}: {e}", path(p).display()),
                "check the permissions of ~/.sandbox",
            ));
        }
    }
    Ok(status(p))
}

/// The stored credential; None when there is none (or the file is not one of ours).
pub fn load(p: Provider) -> Option<Credential> {
    let text = std::fs::read(path(p)).ok()?;
    let c: Credential = serde_json::from_slice(&text).ok()?;
    validate(&c.secret).ok().map(|secret| Credential { secret, ..c })
}

pub fn status(p: Provider) -> CredentialStatus {
    let c = load(p);
    let updated_at = std::fs::metadata(path(p))
        .and_then(|m| m.modified())
        .ok()
        .filter(|_| c.is_some())
        .and_then(|t| time::OffsetDateTime::from(t).format(&time::format_description::well_known::Rfc3339).ok());
    CredentialStatus { provider: p, set: c.is_some(), kind: c.map(|c| c.kind), updated_at }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_of_visible_ascii_only() {
        assert_eq!(validate("sk-ant-api03-abc\n").unwrap(), "sk-ant-api03-abc");
        assert_eq!(validate("sk-ant-api03-abc\r\n").unwrap(), "sk-ant-api03-abc");
        for bad in ["", "\n", "   ", "a\nb", "a\nb\n", "a b", "a\tb", "é", "a\u{0}b", &"x".repeat(MAX_LEN + 1)] {
            let e = validate(bad).unwrap_err();
            assert_eq!(e.code(), crate::error::ErrorCode::InvalidInput, "{bad:?}");
            assert!(e.hint().is_some());
        }
    }

    #[test]
    fn kinds_from_the_prefix_or_named() {
        assert_eq!(CredentialKind::detect("sk-ant-oat01-x"), CredentialKind::OauthToken);
        assert_eq!(CredentialKind::detect("sk-ant-api03-x"), CredentialKind::ApiKey);
        assert_eq!(CredentialKind::detect("gateway-key"), CredentialKind::ApiKey);
        assert_eq!(CredentialKind::parse("oauth-token").unwrap(), CredentialKind::OauthToken);
        assert!(CredentialKind::parse("password").is_err());
        assert!(Provider::parse("openai").unwrap_err().hint().unwrap().contains("anthropic"));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let c = Credential { kind: CredentialKind::ApiKey, secret: "sk-ant-api03-SECRET".into() };
        assert!(!format!("{c:?}").contains("SECRET"));
    }
}
