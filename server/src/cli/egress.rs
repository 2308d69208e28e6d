//! `sandbox allow | deny | denials`.
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::{Ctx, output};
use crate::engine::Result;
use crate::engine::egress::denials::Denial;

#[derive(Debug, Args)]
pub struct DomainsArgs {
    name: String,
    /// `example.com` (exactly), `.example.com` (it and every subdomain), `@LIST` (an extra list:
    /// go, sentry, telemetry).
    #[arg(required = true, value_name = "DOMAIN")]
    domains: Vec<String>,
    /// allow only: also add them to ~/.sandbox/allowed-domains.txt (every sandbox without its own
    /// --domains-file; running ones at once).
    #[arg(long)]
    everywhere: bool,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct DenialsArgs {
    name: String,
    /// Keep watching and print each new refusal as it happens.
    #[arg(long)]
    follow: bool,
    #[arg(long)]
    json: bool,
}

pub async fn change(ctx: &Ctx, a: DomainsArgs, add: bool) -> Result<ExitCode> {
    let r = ctx.engine.change_allowlist(&a.name, &a.domains, add, a.everywhere).await?;
    if a.json {
        output::json(&r);
    } else {
        let when = if r.live { "in force now" } else { "applied at its next start" };
        let verb = if add { "allowed" } else { "denied" };
        outln!("{}: {verb} {} ({} domains on the list, {when})", r.name, a.domains.join(" "), r.domains.len());
        if a.everywhere {
            outln!("added to {}", crate::engine::egress::domains::user_list().display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn line(d: &Denial) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(d.last as i64)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default();
    format!("{:<5} {:>5}  {t}  {}", output::word(&d.kind), d.count, d.domain)
}

pub async fn denials(ctx: &Ctx, a: DenialsArgs) -> Result<ExitCode> {
    let mut seen = ctx.engine.denials(&a.name).await?;
    if a.json && !a.follow {
        output::json(&seen);
        return Ok(ExitCode::SUCCESS);
    }
    if !a.json {
        if seen.is_empty() && !a.follow {
            outln!("{}: nothing refused", a.name);
        } else {
            outln!("KIND  COUNT  LAST                  NAME");
        }
    }
    let print = |d: &Denial| {
        let text = if a.json { serde_json::to_string(d).unwrap_or_default() } else { line(d) };
        output::stream(&mut std::io::stdout(), format!("{text}\n").as_bytes(), true);
    };
    seen.iter().for_each(print);
    if !a.follow {
        return Ok(ExitCode::SUCCESS);
    }
    loop {
        tokio::select! {
            _ = ctx.cancel.cancelled() => break,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        let now = ctx.engine.denials(&a.name).await?;
        for d in &now {
            if !seen.iter().any(|s| s.domain == d.domain && s.kind == d.kind && s.count == d.count) {
                print(d);
            }
        }
        seen = now;
    }
    Ok(ExitCode::SUCCESS)
}
