//! `sandbox prepare | prepared`.
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::{Ctx, output};
use crate::engine::Result;
use crate::engine::prepared::{self, PrepareOptions, PreparedInfo};

#[derive(Debug, Args)]
pub struct PrepareArgs {
    #[command(flatten)]
    options: PrepareOptions,
    /// Print the prepared image as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct PreparedArgs {
    #[command(subcommand)]
    cmd: Option<PreparedCmd>,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum PreparedCmd {
    /// Remove prepared images (sandboxes made from them stay): sandbox prepared rm IMAGE…
    Rm {
        #[arg(required = true)]
        images: Vec<String>,
    },
}

pub async fn prepare(ctx: &Ctx, a: PrepareArgs) -> Result<ExitCode> {
    let p = ctx.engine.prepare(&a.options, ctx.progress.as_ref(), &ctx.cancel).await?;
    if a.json {
        output::json(&p);
    } else {
        println!("{}: {} at {} ({})", p.name, p.repo, short(&p.commit), p.setup);
        println!(
            "  `sandbox start NAME {}` uses it while these files stay as they are: {}",
            p.repo,
            p.files.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn short(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}

pub async fn prepared(ctx: &Ctx, a: PreparedArgs) -> Result<ExitCode> {
    if let Some(PreparedCmd::Rm { images }) = a.cmd {
        let mut failed = false;
        for i in images {
            match ctx.engine.prepared_rm(&i).await {
                Ok(()) => println!("{i}: removed"),
                Err(e) => {
                    failed = true;
                    eprintln!("error: {e}");
                    if let Some(h) = e.hint() {
                        eprintln!("  hint: {h}");
                    }
                }
            }
        }
        return Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS });
    }
    let all: Vec<PreparedInfo> = prepared::list(&ctx.engine.incus).await?;
    if a.json {
        output::json(&all);
        return Ok(ExitCode::SUCCESS);
    }
    if all.is_empty() {
        println!("no prepared images — make one with `sandbox prepare REPO_URL --stack STACK`");
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|p| {
            vec![
                p.name.clone(),
                p.repo.clone(),
                p.branch.clone().unwrap_or("-".into()),
                short(&p.commit).to_string(),
                output::word(&p.state),
                p.prepared_at.clone(),
                p.setup.clone(),
            ]
        })
        .collect();
    output::table(&["IMAGE", "REPO", "BRANCH", "COMMIT", "STATE", "PREPARED", "SETUP"], &rows);
    Ok(ExitCode::SUCCESS)
}
