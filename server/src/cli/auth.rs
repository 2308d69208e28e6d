//! `sandbox auth set|status|rm PROVIDER` (a model credential kept on the host) and
//! `sandbox usage` (tokens each sandbox used through the host's proxy).
use std::io::{IsTerminal, Read};
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::{Ctx, output};
use crate::engine::anthropic::credential::{self, CredentialKind, CredentialStatus, Provider};
use crate::engine::anthropic::usage::Tokens;
use crate::engine::sandbox::{self, Sandbox};
use crate::engine::{EngineError, Result, validate};

#[derive(Debug, Subcommand)]
pub enum AuthCmd {
    /// Store a credential on the host, read from standard input (never from the command line).
    /// Sandboxes use it through the host's proxy; none of them ever holds it.
    Set {
        /// Provider: anthropic.
        provider: String,
        /// api-key (x-api-key) or oauth-token (from `claude setup-token`; Authorization: Bearer).
        /// Default: from the prefix (sk-ant-oat… is an OAuth token, anything else an API key).
        #[arg(long)]
        kind: Option<String>,
    },
    /// What is set (never the value).
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Remove a stored credential.
    Rm { provider: String },
}

#[derive(Debug, Args)]
pub struct UsageArgs {
    /// Sandboxes (default: all).
    names: Vec<String>,
    #[arg(long)]
    json: bool,
}

fn describe(s: &CredentialStatus) -> String {
    match (s.set, s.kind) {
        (true, Some(k)) => format!("{} set on the host ({})", k.describe(), s.updated_at.as_deref().unwrap_or("?")),
        _ => "not set — sandbox auth set anthropic".into(),
    }
}

/// Reads the credential: typed without echo on a terminal, else from the pipe (bounded).
fn read_secret() -> Result<String> {
    if std::io::stdin().is_terminal() {
        return rpassword::prompt_password("Anthropic API key or OAuth token (input hidden): ").map_err(|e| {
            EngineError::failed(
                format!("cannot read the credential: {e}"),
                "or pipe it in: … | sandbox auth set anthropic",
            )
        });
    }
    let mut raw = String::new();
    std::io::stdin().take(64 * 1024).read_to_string(&mut raw).map_err(|e| {
        EngineError::failed(format!("cannot read standard input: {e}"), "pipe the credential in as text")
    })?;
    Ok(raw)
}

pub async fn run(_ctx: &Ctx, cmd: AuthCmd) -> Result<ExitCode> {
    match cmd {
        AuthCmd::Set { provider, kind } => {
            let p = Provider::parse(&provider)?;
            let kind = kind.as_deref().map(CredentialKind::parse).transpose()?;
            let raw = read_secret()?;
            let s = credential::store(p, &raw, kind)?;
            outln!("anthropic: {}", describe(&s));
        }
        AuthCmd::Status { json } => {
            let s = credential::status(Provider::Anthropic);
            if json {
                output::json(&[s]);
            } else {
                outln!("anthropic: {}", describe(&s));
            }
        }
        AuthCmd::Rm { provider } => {
            let p = Provider::parse(&provider)?;
            let s = credential::remove(p)?;
            outln!("anthropic: {}", describe(&s));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// 1234567 → "1.2M", 12345 → "12.3k".
pub fn short(n: u64) -> String {
    match n {
        0..1000 => n.to_string(),
        1000..1_000_000 => format!("{:.1}k", n as f64 / 1e3),
        _ => format!("{:.1}M", n as f64 / 1e6),
    }
}

/// The TOKENS column of `sandbox list`.
pub fn tokens_cell(s: &Sandbox) -> String {
    match &s.usage {
        Some(u) if u.total.requests > 0 => {
            format!("{} in / {} out", short(u.total.input_tokens), short(u.total.output_tokens))
        }
        _ => "-".into(),
    }
}

fn row(name: &str, model: &str, t: &Tokens) -> Vec<String> {
    vec![
        name.to_string(),
        model.to_string(),
        t.requests.to_string(),
        t.input_tokens.to_string(),
        t.output_tokens.to_string(),
        t.cache_read_tokens.to_string(),
        t.cache_write_tokens.to_string(),
    ]
}

pub async fn usage(ctx: &Ctx, a: UsageArgs) -> Result<ExitCode> {
    for n in &a.names {
        validate::sandbox_name(n)?;
    }
    let all = sandbox::list(&ctx.engine.incus).await?;
    for n in &a.names {
        if !all.iter().any(|s| &s.name == n) {
            return Err(EngineError::sandbox_not_found(n));
        }
    }
    let picked: Vec<&Sandbox> = all.iter().filter(|s| a.names.is_empty() || a.names.contains(&s.name)).collect();
    if a.json {
        let v: Vec<serde_json::Value> = picked
            .iter()
            .map(|s| serde_json::json!({"name": s.name, "usage": s.usage.clone().unwrap_or_default()}))
            .collect();
        output::json(&v);
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = Vec::new();
    let mut total = Tokens::default();
    for s in &picked {
        let u = s.usage.clone().unwrap_or_default();
        rows.push(row(&s.name, "(all)", &u.total));
        for m in &u.models {
            rows.push(row("", &m.model, &m.tokens));
        }
        total = crate::engine::anthropic::usage::sum(&total, &u.total);
    }
    if picked.len() > 1 {
        rows.push(row("TOTAL", "", &total));
    }
    output::table(&["NAME", "MODEL", "REQUESTS", "INPUT", "OUTPUT", "CACHE READ", "CACHE WRITE"], &rows);
    Ok(ExitCode::SUCCESS)
}
