//! `sandbox snapshot | snapshots | restore | fork`.
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::{Ctx, output};
use crate::engine::Result;
use crate::engine::create::ForkOptions;
use crate::engine::snapshots::{SnapshotInfo, SnapshotKind};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct SnapshotArgs {
    #[command(subcommand)]
    cmd: Option<SnapshotCmd>,
    /// The sandbox.
    #[arg(required = true)]
    name: Option<String>,
    /// Letters, digits, - _ . (default: snap-N).
    label: Option<String>,
    /// Print the snapshot as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum SnapshotCmd {
    /// Remove a snapshot: sandbox snapshot rm NAME LABEL
    Rm { name: String, label: String },
    /// Keep a checkpoint whatever the limit: sandbox snapshot pin NAME LABEL
    Pin { name: String, label: String },
    /// Let a pinned checkpoint go with the oldest again.
    Unpin { name: String, label: String },
    /// How many per-turn checkpoints NAME keeps (default 20; 0: none are taken).
    Keep { name: String, count: u32 },
}

#[derive(Debug, Args)]
pub struct SnapshotsArgs {
    name: String,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    name: String,
    /// The snapshot (`sandbox snapshots NAME` lists them).
    label: String,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct ForkArgs {
    #[command(flatten)]
    options: ForkOptions,
    /// Print the result (action, sandbox, seconds) as JSON.
    #[arg(long)]
    json: bool,
}

pub async fn snapshot(ctx: &Ctx, a: SnapshotArgs) -> Result<ExitCode> {
    let e = &ctx.engine;
    let (info, json) = match a.cmd {
        Some(SnapshotCmd::Rm { name, label }) => {
            e.snapshot_rm(&name, &label).await?;
            println!("{name}: snapshot {label} removed");
            return Ok(ExitCode::SUCCESS);
        }
        Some(SnapshotCmd::Pin { name, label }) => (e.snapshot_pin(&name, &label, true).await?, false),
        Some(SnapshotCmd::Unpin { name, label }) => (e.snapshot_pin(&name, &label, false).await?, false),
        Some(SnapshotCmd::Keep { name, count }) => {
            let left = e.set_checkpoint_keep(&name, count).await?;
            let n = left.iter().filter(|s| s.kind == SnapshotKind::Checkpoint).count();
            println!("{name}: keeps {count} checkpoints (plus pinned ones); {n} now");
            return Ok(ExitCode::SUCCESS);
        }
        None => {
            let name = a.name.unwrap_or_default();
            ctx.progress.step(&format!("Taking a snapshot of {name}"));
            (e.snapshot(&name, a.label.as_deref()).await?, a.json)
        }
    };
    if json {
        output::json(&info);
    } else {
        println!("{}", describe(&info));
    }
    Ok(ExitCode::SUCCESS)
}

fn describe(s: &SnapshotInfo) -> String {
    let pin = if s.pinned { " (pinned)" } else { "" };
    format!("{}  {}{pin}  {}", s.label, s.created_at, if s.title == s.label { "" } else { &s.title })
        .trim_end()
        .to_string()
}

pub async fn snapshots(ctx: &Ctx, a: SnapshotsArgs) -> Result<ExitCode> {
    let all = ctx.engine.snapshots(&a.name).await?;
    if a.json {
        output::json(&all);
        return Ok(ExitCode::SUCCESS);
    }
    if all.is_empty() {
        println!("{} has no snapshots — take one with `sandbox snapshot {} [LABEL]`", a.name, a.name);
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|s| {
            vec![
                s.label.clone(),
                output::word(&s.kind),
                if s.pinned { "yes".into() } else { "-".into() },
                s.created_at.clone(),
                s.message.clone().unwrap_or_default(),
            ]
        })
        .collect();
    output::table(&["LABEL", "KIND", "PINNED", "CREATED", "MESSAGE"], &rows);
    Ok(ExitCode::SUCCESS)
}

pub async fn restore(ctx: &Ctx, a: RestoreArgs) -> Result<ExitCode> {
    let s = ctx.engine.restore(&a.name, &a.label, ctx.progress.as_ref(), &ctx.cancel).await?;
    if a.json {
        output::json(&s);
    } else {
        println!("{} restored to {} ({})", a.name, a.label, output::word(&s.state));
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn fork(ctx: &Ctx, a: ForkArgs) -> Result<ExitCode> {
    let r = ctx.engine.fork(&a.options, ctx.progress.as_ref(), &ctx.cancel).await?;
    super::sandboxes::print_start(&r, a.json);
    if !a.json
        && let Some(b) = &r.sandbox.branch
    {
        println!("  branch: {b}");
    }
    Ok(ExitCode::SUCCESS)
}
