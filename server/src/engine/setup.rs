//! `sandbox setup`: Incus initialised (pool, bridge, default profile), then the requested golden
//! images built, parents first. A rebuilt image's warm spare goes at once (it would never be
//! taken again: see spares.rs).
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::base_image::{BaseImage, DEFAULT_BASE_IMAGE};
use super::golden::build::Build;
use super::golden::{self, READY, cluster_alias, golden_name};
use super::rollback::Rollback;
use super::stacks::{self, Parent, Shared, Stack};
use super::{Engine, keys, spares};
use crate::error::{EngineError, Result};
use crate::incus::InstanceSource;
use crate::progress::Progress;

/// What `--rebuild` asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Rebuild {
    #[default]
    None,
    All,
    Some(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct SetupOptions {
    /// Stacks to make sure exist (default: base, unless something is to be rebuilt).
    pub stacks: Vec<String>,
    pub rebuild: Rebuild,
    /// None: what the existing image was built from (recorded on it), else the default.
    pub base_image: Option<String>,
}

/// What setup did with one stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub enum SetupAction {
    Built,
    Rebuilt,
    /// Built already (and not asked to rebuild).
    Skipped,
}

#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub struct SetupReport {
    pub stack: String,
    pub action: SetupAction,
    pub seconds: f64,
}

/// One setup run: what every stack's build shares.
struct Run<'a> {
    engine: &'a Engine,
    opts: &'a SetupOptions,
    /// `--base-image`, when given; else each stack's recorded one (see `base_for`).
    explicit: Option<BaseImage>,
    shared: Shared,
    clustered: bool,
    /// Each base image's source, made ready once for every image-rooted stack.
    base_sources: Vec<(BaseImage, InstanceSource)>,
    progress: &'a dyn Progress,
    cancel: &'a CancellationToken,
}

impl Engine {
    /// Makes sure Incus is initialised and the requested golden images exist.
    pub async fn setup(
        &self,
        opts: &SetupOptions,
        progress: Arc<dyn Progress>,
        cancel: &CancellationToken,
    ) -> Result<Vec<SetupReport>> {
        let explicit = opts.base_image.as_deref().map(BaseImage::parse).transpose()?;
        let order = stacks::build_order(&self.requested(opts).await?)?;
        golden::ensure_initialised(&self.incus, progress.as_ref()).await?;
        // A bridge made elsewhere may carry IPv6: say what becomes of it.
        if let Ok(n) = self.incus.network(golden::BRIDGE).await
            && super::egress::bridge_has_ipv6(&n)
        {
            progress.step(&super::egress::ipv6_note(&n));
        }
        let mut run = Run {
            engine: self,
            opts,
            explicit,
            shared: stacks::shared(),
            clustered: golden::is_clustered(&self.incus).await?,
            base_sources: Vec::new(),
            progress: progress.as_ref(),
            cancel,
        };
        let mut reports = Vec::new();
        for stack in order {
            let report = run.stack(&stack).await?;
            if report.action != SetupAction::Skipped
                && let Err(e) = self.incus.delete_force(&spares::name(&stack.name)).await
            {
                tracing::warn!("could not remove the previous build's spare: {e:#}");
            }
            reports.push(report);
        }
        if reports.iter().any(|r| r.action != SetupAction::Skipped) {
            // Replacing a golden image leaves the pool's quota accounting inconsistent (see
            // quota.rs): the next create should not pay for the rescan.
            super::quota::ensure_enforced(&self.host, golden::STORAGE_POOL, progress.as_ref()).await?;
        }
        Ok(reports)
    }

    /// The stacks asked for, plus those to rebuild (`all`: every built one of ours). A bare
    /// `sandbox setup` means base; `--rebuild S` alone means S only.
    async fn requested(&self, opts: &SetupOptions) -> Result<Vec<String>> {
        let mut requested = if opts.stacks.is_empty() && opts.rebuild == Rebuild::None {
            vec!["base".to_string()]
        } else {
            opts.stacks.clone()
        };
        match &opts.rebuild {
            Rebuild::All => {
                let existing = golden::list(&self.incus).await?;
                requested.extend(existing.into_iter().filter(|g| g.built && g.managed).map(|g| g.stack));
            }
            Rebuild::Some(names) => requested.extend(names.iter().cloned()),
            Rebuild::None => {}
        }
        requested.dedup();
        Ok(requested)
    }
}

impl Run<'_> {
    /// Builds one stack's golden image unless it is built and not to be rebuilt.
    async fn stack(&mut self, stack: &Stack) -> Result<SetupReport> {
        let incus = &self.engine.incus;
        let name = golden_name(&stack.name);
        let rebuild = match &self.opts.rebuild {
            Rebuild::All => true,
            Rebuild::Some(v) => v.contains(&stack.name),
            Rebuild::None => false,
        };
        let exists = golden::has_ready(incus, &name).await?;
        if exists && !rebuild {
            if self.clustered && incus.image_alias(&cluster_alias(&stack.name)).await.is_err() {
                golden::publish_for_cluster(incus, &stack.name, self.progress).await?;
            }
            self.progress.step(&format!("{name} is built (use --rebuild {} to rebuild)", stack.name));
            return Ok(SetupReport { stack: stack.name.clone(), action: SetupAction::Skipped, seconds: 0.0 });
        }
        let base = self.base_for(stack).await?;
        let source = self.source(stack, &base).await?;
        let started = std::time::Instant::now();
        self.build(stack, source, &base).await?;
        if self.clustered {
            golden::publish_for_cluster(incus, &stack.name, self.progress).await?;
        }
        let action = if exists { SetupAction::Rebuilt } else { SetupAction::Built };
        Ok(SetupReport { stack: stack.name.clone(), action, seconds: started.elapsed().as_secs_f64() })
    }

    /// `--base-image`, else the one the image being rebuilt (or, for a cloned stack, its parent)
    /// records, else the default: a rebuild needs no `--base-image` again.
    async fn base_for(&self, stack: &Stack) -> Result<BaseImage> {
        if let Some(b) = &self.explicit {
            return Ok(b.clone());
        }
        let from = match &stack.parent {
            Parent::Image => golden_name(&stack.name),
            Parent::Stack(p) => golden_name(p),
        };
        let recorded = match self.engine.incus.instance(&from).await {
            Ok(inst) => inst.setting(keys::GOLDEN_BASE_IMAGE).filter(|v| !v.is_empty()).map(str::to_owned),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e.into()),
        };
        BaseImage::parse(recorded.as_deref().unwrap_or(DEFAULT_BASE_IMAGE))
    }

    /// What the stack's image starts from: the base image, or its parent's `ready` snapshot.
    async fn source(&mut self, stack: &Stack, base: &BaseImage) -> Result<InstanceSource> {
        let incus = &self.engine.incus;
        match &stack.parent {
            Parent::Image => {
                if let Some((_, src)) = self.base_sources.iter().find(|(b, _)| b == base) {
                    return Ok(src.clone());
                }
                let src = base.ensure(incus, &self.engine.host, self.progress).await?;
                self.base_sources.push((base.clone(), src.clone()));
                Ok(src)
            }
            Parent::Stack(p) => {
                if !golden::has_ready(incus, &golden_name(p)).await? {
                    return Err(EngineError::needs_setup(
                        format!("{}/{READY}", golden_name(p)),
                        format!("build it first: sandbox setup --stack {p}"),
                    ));
                }
                Ok(InstanceSource::copy(format!("{}/{READY}", golden_name(p))))
            }
        }
    }

    /// The build as a transaction: a failure or a cancel removes the temporary instance.
    async fn build(&self, stack: &Stack, source: InstanceSource, base: &BaseImage) -> Result<()> {
        let build = Build {
            incus: &self.engine.incus,
            stack,
            shared: &self.shared,
            base,
            inputs: stack.inputs_hash(&self.shared),
            progress: self.progress,
        };
        let mut rb = Rollback::new();
        let res = tokio::select! {
            r = build.run(source, &mut rb) => r,
            _ = self.cancel.cancelled() => Err(EngineError::Cancelled),
        };
        if let Err(e) = res {
            self.progress
                .step(&format!("Build of {} failed; removing the temporary instance", golden_name(&stack.name)));
            rb.undo().await;
            return Err(e);
        }
        rb.commit();
        Ok(())
    }
}
