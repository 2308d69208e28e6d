//! `sandbox setup`: Incus initialised (pool, bridge, default profile), then the requested golden
//! images built, parents first. A rebuilt image's warm spare goes at once (it would never be
//! taken again: see spares.rs).
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::base_image::BaseImage;
use super::golden::build::Build;
use super::golden::{self, READY, cluster_alias, golden_name};
use super::rollback::Rollback;
use super::stacks::{self, Parent, Shared, Stack};
use super::{Engine, spares};
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
    /// Stacks to make sure exist (default: base).
    pub stacks: Vec<String>,
    pub rebuild: Rebuild,
    pub base_image: String,
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
    base: BaseImage,
    shared: Shared,
    clustered: bool,
    /// The base image's source, made ready once for every image-rooted stack.
    base_source: Option<InstanceSource>,
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
        let base = BaseImage::parse(&opts.base_image)?;
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
            base,
            shared: stacks::shared(),
            clustered: golden::is_clustered(&self.incus).await?,
            base_source: None,
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
        Ok(reports)
    }

    /// The stacks asked for (default: base), plus those to rebuild (`all`: every built one of ours).
    async fn requested(&self, opts: &SetupOptions) -> Result<Vec<String>> {
        let mut requested = if opts.stacks.is_empty() { vec!["base".to_string()] } else { opts.stacks.clone() };
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
        let source = self.source(stack).await?;
        let started = std::time::Instant::now();
        self.build(stack, source).await?;
        if self.clustered {
            golden::publish_for_cluster(incus, &stack.name, self.progress).await?;
        }
        let action = if exists { SetupAction::Rebuilt } else { SetupAction::Built };
        Ok(SetupReport { stack: stack.name.clone(), action, seconds: started.elapsed().as_secs_f64() })
    }

    /// What the stack's image starts from: the base image, or its parent's `ready` snapshot.
    async fn source(&mut self, stack: &Stack) -> Result<InstanceSource> {
        let incus = &self.engine.incus;
        match &stack.parent {
            Parent::Image => {
                if self.base_source.is_none() {
                    self.base_source = Some(self.base.ensure(incus, &self.engine.host, self.progress).await?);
                }
                Ok(self.base_source.clone().expect("set above"))
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
    async fn build(&self, stack: &Stack, source: InstanceSource) -> Result<()> {
        let build = Build {
            incus: &self.engine.incus,
            stack,
            shared: &self.shared,
            base: &self.base,
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
