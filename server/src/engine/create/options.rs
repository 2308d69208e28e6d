//! What a create asks for — one struct for `sandbox start`'s flags, `sandbox/create`'s params and
//! the engine — and its validation at the boundary, before anything changes.
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::engine::creds::{RepoRef, Token};
use crate::engine::{stacks, validate};
use crate::error::{EngineError, Result};

/// A new sandbox. Values are raw strings from the user: `validate` checks them all.
#[derive(Debug, Clone, Default, clap::Args, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[ts(optional_fields)]
pub struct CreateOptions {
    /// Sandbox name (letters, digits, '-').
    pub name: String,
    /// Repository to clone into /workspace/project.
    pub repo: Option<String>,
    /// Toolchain stack (golden image) to clone: base, rust, python, node, go, dotnet, unison, …
    #[arg(long)]
    pub stack: Option<String>,
    /// Branch to check out, or create.
    #[arg(long)]
    pub branch: Option<String>,
    /// Branch off another sandbox: same repo, stack and egress settings.
    #[arg(long, value_name = "OTHER")]
    pub from: Option<String>,
    /// Use this private key (loaded into the host-side agent, never copied) instead of a deploy key.
    #[arg(long, value_name = "PATH")]
    pub ssh_key: Option<PathBuf>,
    /// Register the deploy key read-only (default: write access, so the sandbox can push).
    #[arg(long)]
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[ts(as = "Option<bool>")]
    pub read_only_key: bool,
    /// Let the sandbox push anywhere its key can (its agent plugged in, no push gate); by default
    /// it may push only its own branch, checked on the host.
    #[arg(long)]
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[ts(as = "Option<bool>")]
    pub allow_push_any: bool,
    /// Slot 1–99 (ports 2200+slot, 8000+slot, 9000+slot); default: the first free one.
    #[arg(long)]
    pub slot: Option<u32>,
    /// CPU limit.
    #[arg(long)]
    pub cpu: Option<String>,
    /// Memory limit, e.g. 4GiB (at least 128MiB).
    #[arg(long)]
    pub memory: Option<String>,
    /// Root disk size, e.g. 20GiB (at least 1GiB; default: SANDBOX_DEFAULT_DISK, else 10GiB).
    #[arg(long)]
    pub disk: Option<String>,
    /// Environment variable for login shells (repeatable); the value is stored literally.
    #[arg(long, value_name = "K=V")]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[ts(as = "Option<Vec<String>>")]
    pub env: Vec<String>,
    /// Allow HTTPS/HTTP only to allowlisted domains.
    #[arg(long)]
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[ts(as = "Option<bool>")]
    pub restrict_domains: bool,
    /// Allowlist file (implies --restrict-domains).
    #[arg(long, value_name = "FILE")]
    pub domains_file: Option<PathBuf>,
    /// Let UDP 443 (QUIC, HTTP/3) out; off by default, and never with restricted domains.
    #[arg(long)]
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[ts(as = "Option<bool>")]
    pub allow_quic: bool,
    /// Per-turn checkpoints to keep (default 20; 0: none are taken); pinned ones are kept too.
    #[arg(long, value_name = "N")]
    pub checkpoints: Option<u32>,
    /// Cluster member to create on (default: Incus places it).
    #[arg(long, value_name = "MEMBER")]
    pub target: Option<String>,
    /// GitHub token for the deploy key (e.g. the editor's session); else GH_TOKEN, GITHUB_TOKEN,
    /// `gh auth token`.
    #[arg(skip)]
    #[serde(default, skip_serializing_if = "Token::is_none")]
    #[ts(as = "Option<String>")]
    pub github_token: Token,
}

impl CreateOptions {
    /// Nothing but the name given (a token aside): a plain `sandbox start NAME`.
    pub fn is_bare(&self) -> bool {
        let bare =
            CreateOptions { name: self.name.clone(), github_token: self.github_token.clone(), ..Default::default() };
        serde_json::to_value(self).ok() == serde_json::to_value(&bare).ok()
    }
}

/// How a `start` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub enum StartAction {
    Created,
    Restarted,
    /// It was running already: nothing to start.
    Running,
}

/// The options that passed validation, parsed.
pub(crate) struct Validated {
    pub cpu: Option<u32>,
    pub memory: Option<String>,
    pub disk: Option<String>,
    pub env: Vec<(String, String)>,
    pub repo: Option<RepoRef>,
    pub branch: Option<String>,
    /// Stored absolute: restarts from another directory load the same file.
    pub ssh_key: Option<PathBuf>,
}

pub(crate) fn validate(o: &CreateOptions) -> Result<Validated> {
    validate::sandbox_name(&o.name)?;
    if let Some(s) = &o.stack {
        stacks::validate_stack_name(s)?;
    }
    if let Some(f) = &o.from {
        validate::sandbox_name(f)?;
    }
    if let Some(s) = o.slot {
        validate::slot(s)?;
    }
    if let Some(t) = &o.target {
        validate::member_name(t)?;
    }
    if let Some(n) = o.checkpoints {
        crate::engine::snapshots::validate_keep(n)?;
    }
    let ssh_key = o.ssh_key.as_deref().map(ssh_key_file).transpose()?;
    if o.read_only_key && o.ssh_key.is_some() {
        return Err(EngineError::invalid(
            "options",
            "--read-only-key applies to the deploy key, and --ssh-key uses your own key instead",
            "drop one of them",
        ));
    }
    if let Some(f) = &o.domains_file {
        // Read (bounded) and parsed now: a list that cannot be used fails before anything changes.
        crate::engine::egress::domains::base_list(Some(f))?;
    }
    let env: Vec<(String, String)> = o.env.iter().map(|e| validate::env_pair(e)).collect::<Result<_>>()?;
    validate::env_list(&env)?;
    Ok(Validated {
        cpu: o.cpu.as_deref().map(validate::cpu).transpose()?,
        memory: o.memory.as_deref().map(validate::memory).transpose()?,
        disk: o.disk.as_deref().map(validate::disk).transpose()?,
        env,
        repo: o.repo.as_deref().map(RepoRef::parse).transpose()?,
        branch: o.branch.as_deref().map(validate::branch).transpose()?,
        ssh_key,
    })
}

fn ssh_key_file(k: &std::path::Path) -> Result<PathBuf> {
    if !k.is_file() {
        return Err(EngineError::invalid(
            "ssh key",
            format!("{} is not a file", k.display()),
            "give the path of a private key",
        ));
    }
    Ok(std::fs::canonicalize(k).unwrap_or_else(|_| k.to_path_buf()))
}

/// The root disk size of a new sandbox without `--disk`: `SANDBOX_DEFAULT_DISK` (a size, or
/// `none` for no limit), else 10GiB. A sandbox cannot fill the shared pool by itself.
pub fn default_disk() -> Result<Option<String>> {
    match std::env::var("SANDBOX_DEFAULT_DISK").ok().filter(|v| !v.is_empty()) {
        None => Ok(Some("10GiB".into())),
        Some(v) if v == "none" => Ok(None),
        Some(v) => validate::disk(&v).map(Some).map_err(|e| match e {
            EngineError::Invalid { message, hint, .. } => {
                EngineError::invalid("SANDBOX_DEFAULT_DISK", message, format!("{hint} (or `none`)"))
            }
            e => e,
        }),
    }
}

/// `SANDBOX_DEFAULT_STACK`, else `base`.
pub fn default_stack() -> String {
    std::env::var("SANDBOX_DEFAULT_STACK").ok().filter(|s| !s.is_empty()).unwrap_or_else(|| "base".into())
}
