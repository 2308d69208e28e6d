//! `sandbox setup` and `sandbox doctor`.
use std::process::ExitCode;

use clap::Args;

use super::{Ctx, output};
use crate::engine::golden;
use crate::engine::golden::BRIDGE;
use crate::engine::setup::{Rebuild, SetupAction, SetupOptions};
use crate::engine::{EngineError, Result, doctor, hostnet, orb};

#[derive(Debug, Args)]
pub struct SetupArgs {
    /// Stack to build if missing (repeatable; default: base, unless --rebuild names what to build).
    /// Parents are built first.
    #[arg(long = "stack", value_name = "STACK")]
    stacks: Vec<String>,
    /// Rebuild STACK (repeatable) or `all`, even if built.
    #[arg(long, value_name = "STACK|all")]
    rebuild: Vec<String>,
    /// Image for stacks built from an image: a local alias, `images:DISTRO/RELEASE`, or
    /// `debootstrap:SUITE` to build one on this host. Default: what the image being rebuilt was
    /// built from, else images:ubuntu/24.04.
    #[arg(long, value_name = "IMAGE", env = "SANDBOX_BASE_IMAGE")]
    base_image: Option<String>,
    /// List stacks and their golden images instead of building.
    #[arg(long)]
    list: bool,
    /// Machine-readable output on stdout.
    #[arg(long)]
    json: bool,
    /// macOS: run Incus in this OrbStack machine (created if missing) and use it from now on.
    /// The default on a Mac: `agent-sandboxes`.
    #[arg(long, value_name = "MACHINE")]
    orb: Option<String>,
    /// Give sandboxes on the OrbStack machine internet access through NAT (on|off).
    #[arg(long, value_name = "on|off", default_value = "on", env = "SANDBOX_NAT")]
    nat: String,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[arg(long)]
    json: bool,
    /// Remove what sandboxes left behind: host-side leftovers of sandboxes whose instance is
    /// gone, and what interrupted creates left.
    #[arg(long)]
    fix: bool,
}

pub async fn setup(ctx: &Ctx, a: SetupArgs) -> Result<ExitCode> {
    // On a Mac with nothing chosen yet, Incus lives in an OrbStack machine.
    let orb = a.orb.clone().or_else(|| {
        (cfg!(target_os = "macos") && crate::remotes::Remotes::load().is_ok_and(|r| r.current.is_none()))
            .then(|| "agent-sandboxes".to_string())
    });
    let engine = match &orb {
        Some(machine) => {
            let name = orb::setup_machine(machine, &a.nat, ctx.progress.as_ref()).await?;
            errln!("using remote '{name}' (OrbStack machine {machine})");
            crate::engine::Engine::for_remote(Some(&name))?
        }
        None => ctx.engine.clone(),
    };
    let ctx = &Ctx { engine, cancel: ctx.cancel.clone(), progress: ctx.progress.clone() };
    if a.list {
        let list = golden::list(&ctx.engine.incus).await?;
        if a.json {
            output::json(&list);
        } else {
            let rows = list
                .iter()
                .map(|g| {
                    let state = match (g.built, g.stale) {
                        (true, true) => "built (stale)",
                        (true, false) => "built",
                        _ => "-",
                    };
                    vec![
                        g.stack.clone(),
                        state.to_string(),
                        g.built_at.clone().unwrap_or_default(),
                        g.description.clone(),
                    ]
                })
                .collect::<Vec<_>>();
            output::table(&["STACK", "IMAGE", "BUILT AT", "DESCRIPTION"], &rows);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let rebuild = if a.rebuild.iter().any(|r| r == "all") {
        Rebuild::All
    } else if a.rebuild.is_empty() {
        Rebuild::None
    } else {
        Rebuild::Some(a.rebuild.clone())
    };
    // The port-forwarding rules, so a server prepared with `sandbox setup` serves remote clients.
    hostnet::ensure(&ctx.engine.host, BRIDGE).await?;
    let opts = SetupOptions { stacks: a.stacks, rebuild, base_image: a.base_image };
    let reports = ctx.engine.setup(&opts, ctx.progress.clone(), &ctx.cancel).await?;
    if a.json {
        output::json(&reports);
    } else {
        for r in &reports {
            match r.action {
                SetupAction::Skipped => outln!("{}: already built", golden::golden_name(&r.stack)),
                act => outln!("{}: {} in {:.1}s", golden::golden_name(&r.stack), output::word(&act), r.seconds),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn doctor(ctx: &Ctx, a: DoctorArgs) -> Result<ExitCode> {
    if a.fix {
        return fix(ctx).await;
    }
    let mut checks = doctor::run(&ctx.engine.incus, &ctx.engine.host).await;
    if checks.iter().any(|c| c.name == "incus running" && c.ok) {
        checks.push(ctx.engine.orphans_check().await);
    }
    let failed_required = checks.iter().any(|c| !c.ok && c.required);
    if a.json {
        output::json(&checks);
    } else {
        for c in &checks {
            let mark = if c.ok {
                "ok  "
            } else if c.required {
                "FAIL"
            } else {
                "warn"
            };
            outln!("{mark}  {:<22} {}", c.name, c.detail);
            if let Some(fix) = &c.fix {
                outln!("      fix: {fix}");
            }
        }
    }
    let _ = EngineError::Cancelled;
    Ok(if failed_required { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// `doctor --fix`: what sandboxes left behind goes; each name says what was removed.
async fn fix(ctx: &Ctx) -> Result<ExitCode> {
    let results = ctx.engine.fix_orphans(&crate::engine::creds::Token::default()).await?;
    if results.is_empty() {
        outln!("nothing left behind");
    }
    let mut failed = false;
    for (name, r) in results {
        match r {
            Ok(removed) => {
                let what: Vec<&str> = removed.removed.iter().map(|l| l.describe()).collect();
                outln!(
                    "{name}: removed {}",
                    if what.is_empty() { "its half-made instance".into() } else { what.join(", ") }
                );
                for w in removed.warnings {
                    errln!("warning: {w}");
                }
            }
            Err(e) => {
                failed = true;
                errln!("error: {name}: {e}");
                if let Some(h) = e.hint() {
                    errln!("  hint: {h}");
                }
            }
        }
    }
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
