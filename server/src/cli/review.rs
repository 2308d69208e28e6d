//! `sandbox diff | fetch | pr`: what the agent changed, its branch in your clone, a pull request.
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Args;

use super::{Ctx, output};
use crate::engine::Result;
use crate::engine::creds::Token;
use crate::engine::review::pr::PrOptions;
use crate::engine::review::{ChangeKind, Diff};

#[derive(Debug, Args)]
pub struct DiffArgs {
    name: String,
    /// Only the changed files with their added/deleted line counts, and the totals.
    #[arg(long)]
    stat: bool,
    /// The files, counts and the snapshot's ids as JSON (the API's `sandbox/diff` result).
    #[arg(long)]
    json: bool,
    /// Compare with this revision instead of where the sandbox's branch started.
    #[arg(long, value_name = "REF")]
    base: Option<String>,
}

#[derive(Debug, Args)]
pub struct FetchArgs {
    name: String,
    /// Print the result (remote, branch, ref, commit) as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct PrArgs {
    name: String,
    /// Default: the commit's subject (one commit), else the branch's name.
    #[arg(long)]
    title: Option<String>,
    /// Default: the commit's body (one commit), else the list of commits.
    #[arg(long)]
    body: Option<String>,
    /// Open it as a draft.
    #[arg(long)]
    draft: bool,
    /// Do not open one: read the recorded pull request's state again from GitHub.
    #[arg(long, conflicts_with_all = ["title", "body", "draft"])]
    status: bool,
    #[arg(long)]
    json: bool,
}

pub async fn diff(ctx: &Ctx, a: DiffArgs) -> Result<ExitCode> {
    let d = ctx.engine.diff(&a.name, a.base.as_deref()).await?;
    if a.json {
        output::json(&d);
    } else if a.stat {
        print_stat(&d);
    } else {
        let patch = ctx.engine.patch(&d).await?;
        let mut out = std::io::stdout().lock();
        if std::io::stdout().is_terminal() {
            let _ = out.write_all(terminal_safe(&patch).as_bytes());
        } else {
            let _ = out.write_all(&patch);
        }
        errln!("{}", totals(&d));
    }
    Ok(ExitCode::SUCCESS)
}

fn totals(d: &Diff) -> String {
    let since = d.base_branch.as_deref().map(|b| format!(" since {b}")).unwrap_or_default();
    let dirty = if d.uncommitted { ", uncommitted changes included" } else { "" };
    format!("{} ({}{since}{dirty})", d.summary().line(), &d.base[..d.base.len().min(10)])
}

fn print_stat(d: &Diff) {
    let name = |f: &crate::engine::review::FileChange| match (&f.old_path, f.kind) {
        (Some(old), ChangeKind::Renamed | ChangeKind::Copied) => format!("{old} → {}", f.path),
        _ => f.path.clone(),
    };
    let rows: Vec<(String, String)> = d
        .files
        .iter()
        .map(|f| {
            let counts = match (f.added, f.deleted) {
                (Some(a), Some(r)) => format!("+{a} −{r}"),
                _ => "binary".into(),
            };
            (printable(&name(f)), format!("{counts}{}", if f.kind == ChangeKind::Deleted { " (deleted)" } else { "" }))
        })
        .collect();
    let width = rows.iter().map(|(p, _)| p.chars().count()).max().unwrap_or(0).min(70);
    for (p, c) in rows {
        outln!(" {p:<width$} | {c}");
    }
    if d.omitted > 0 {
        outln!(" … and {} more files", d.omitted);
    }
    outln!("{}", totals(d));
}

/// A path as one visible line (a newline or an escape in a name cannot move the cursor).
fn printable(s: &str) -> String {
    s.chars().flat_map(|c| if c.is_control() { c.escape_default().collect::<Vec<_>>() } else { vec![c] }).collect()
}

/// A patch for a terminal: what the sandbox wrote can hold escape sequences, which are shown as
/// `^[` instead of being obeyed; added and removed lines get colour.
fn terminal_safe(patch: &[u8]) -> String {
    let text = String::from_utf8_lossy(patch);
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let colour = match line.as_bytes().first() {
            Some(b'+') if !line.starts_with("+++") => "\x1b[32m",
            Some(b'-') if !line.starts_with("---") => "\x1b[31m",
            Some(b'@') => "\x1b[36m",
            _ => "",
        };
        out.push_str(colour);
        for c in line.chars() {
            match c {
                '\n' | '\t' => out.push(c),
                c if (c as u32) < 0x20 => {
                    out.push('^');
                    out.push((c as u8 + b'@') as char);
                }
                '\x7f' => out.push_str("^?"),
                c if c.is_control() => out.push_str(&c.escape_default().to_string()),
                c => out.push(c),
            }
        }
        if !colour.is_empty() {
            // Before the newline, so the colour never leaks into the next line.
            let nl = out.ends_with('\n');
            if nl {
                out.pop();
            }
            out.push_str("\x1b[0m");
            if nl {
                out.push('\n');
            }
        }
    }
    out
}

pub async fn fetch(ctx: &Ctx, a: FetchArgs) -> Result<ExitCode> {
    let dir = std::env::current_dir().map_err(|e| {
        crate::engine::EngineError::failed(format!("cannot read the current directory: {e}"), "cd to your clone")
    })?;
    let r = ctx.engine.fetch(&a.name, &dir, ctx.progress.as_ref()).await?;
    if a.json {
        output::json(&r);
        return Ok(ExitCode::SUCCESS);
    }
    outln!("{} → {} ({})", r.branch, r.r#ref, &r.commit[..r.commit.len().min(12)]);
    outln!("  see it:   git log --oneline HEAD..{}", r.r#ref.trim_start_matches("refs/remotes/"));
    outln!("  merge it: git merge {}", r.r#ref.trim_start_matches("refs/remotes/"));
    if r.uncommitted > 0 {
        errln!(
            "note: {} changed files in the sandbox are not committed, so not fetched (`sandbox diff {}` shows them)",
            r.uncommitted,
            a.name
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn pr(ctx: &Ctx, a: PrArgs) -> Result<ExitCode> {
    let pr = if a.status {
        ctx.engine.refresh_pull_request(&a.name, &Token::default()).await?.ok_or_else(|| {
            crate::engine::EngineError::not_found(
                format!("a pull request of sandbox '{}'", a.name),
                format!("open one: sandbox pr {}", a.name),
            )
        })?
    } else {
        let o = PrOptions { title: a.title, body: a.body, draft: a.draft, token: Token::default() };
        ctx.engine.pull_request(&a.name, &o, ctx.progress.as_ref()).await?
    };
    if a.json {
        output::json(&pr);
    } else {
        outln!("#{} {} ({} → {}, {})", pr.number, pr.url, pr.branch, pr.base, output::word(&pr.state));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_from_the_sandbox_are_shown_not_obeyed() {
        let out = terminal_safe(b"+evil \x1b]52;c;aGk=\x07 x\n context\x1b[2J\n");
        assert!(!out.contains("\x1b]") && !out.contains('\x07') && !out.contains("\x1b[2J"), "{out:?}");
        assert!(out.contains("^[]52;c;aGk=^G"), "{out:?}");
        assert!(out.starts_with("\x1b[32m+evil") && out.contains("\x1b[0m\n context^[[2J\n"), "{out:?}");
        assert_eq!(printable("a\nb"), "a\\nb");
    }
}
