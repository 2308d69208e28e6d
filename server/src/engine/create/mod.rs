//! `sandbox start`: a create is a transaction of named steps, each registering its undo beside
//! it (steps.rs); a failure, or a cancel between steps, undoes them all. An existing sandbox is
//! restarted instead (restart.rs).
mod env;
mod options;
mod plan;
mod request;
mod steps;

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

pub use env::{digest as env_digest, merge as merge_env, script as env_script, user_env};
pub use options::{CreateOptions, StartAction, default_stack};
pub(crate) use options::{Validated, validate};

use super::rollback::Rollback;
use super::sandbox::{self, Sandbox};
use super::{Engine, spares};
use crate::error::{EngineError, Result};
use crate::progress::Progress;

#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub struct StartResult {
    pub action: StartAction,
    pub sandbox: Sandbox,
    pub seconds: f64,
}

impl Engine {
    /// Creates NAME, or restarts it when it exists and is stopped.
    pub async fn start(
        &self,
        o: &CreateOptions,
        progress: &dyn Progress,
        cancel: &CancellationToken,
    ) -> Result<StartResult> {
        let started = Instant::now();
        let v = validate(o)?;
        super::anthropic::upstream::from_env()?;
        super::anthropic::warn_visible_credential(&merge_env(user_env(), &v.env), progress);
        let (action, sandbox) = match sandbox::get(&self.incus, &o.name).await? {
            Some(s) => self.restart(o, &v, s, progress).await?,
            None => (StartAction::Created, self.create_transaction(o, &v, progress, cancel).await?),
        };
        Ok(StartResult { action, sandbox, seconds: started.elapsed().as_secs_f64() })
    }

    async fn create_transaction(
        &self,
        o: &CreateOptions,
        v: &Validated,
        progress: &dyn Progress,
        cancel: &CancellationToken,
    ) -> Result<Sandbox> {
        let mut rb = Rollback::new();
        // Cancellation is checked between steps (and during the long waits), never by dropping an
        // Incus call half-way, so every undo sees the state it expects.
        match self.create(o, v, progress, &mut rb, cancel).await {
            Ok(s) => {
                rb.commit();
                Ok(s)
            }
            Err(e) => {
                progress.step("Failed; undoing every step");
                let failures = rb.undo().await;
                if failures.is_empty() {
                    return Err(e);
                }
                Err(EngineError::failed(
                    format!("{e}; and the rollback could not undo: {}", failures.join("; ")),
                    "remove what is left with `sandbox rm NAME`",
                ))
            }
        }
    }

    /// The create, step by step (each step registers its undo in `rb`).
    async fn create(
        &self,
        o: &CreateOptions,
        v: &Validated,
        progress: &dyn Progress,
        rb: &mut Rollback,
        cancel: &CancellationToken,
    ) -> Result<Sandbox> {
        let check = || if cancel.is_cancelled() { Err(EngineError::Cancelled) } else { Ok(()) };
        let plan = self.plan(o, v).await?;
        self.fail_at("before-copy")?;
        check()?;
        // Credentials before the container: a refused key or a missing token fails fast.
        let key_config = self.prepare_key(&plan, &o.github_token, progress, rb).await?;
        check()?;
        let endpoint = self.prepare_endpoint(&plan, progress, rb).await?;
        super::hostnet::ensure(&self.host, super::golden::BRIDGE).await?;
        let identity = steps::IdentityMaterial::new(&plan)?;
        progress.step(&format!("Creating {} from {}", plan.instance, plan.source_label()));
        // Slot, ports, the instance record and its ssh entry under one host-wide lock: concurrent
        // creates get distinct slots, and the instance itself then holds the slot.
        let guard = super::lock::acquire().await?;
        let (slot, clustered) = self.allocate_slot(&plan).await?;
        let files = identity.files(&plan, &slot);
        let (mut req, templated) = identity.request(&plan, &slot, &files, &key_config, clustered);
        req.devices.extend(endpoint);
        self.place_instance(&plan, &req, templated, clustered, progress, rb).await?;
        self.add_ssh_entry(&plan, &slot, &identity, rb)?;
        drop(guard);
        self.fail_at("after-copy")?;
        self.slow_down_for_tests(cancel).await;
        check()?;
        if !templated {
            self.push_identity(&plan, &files, progress).await?;
        }
        self.push_gate_units(&plan).await?;
        check()?;
        self.start_with_egress(&plan, progress, rb).await?;
        self.fail_at("after-egress")?;
        self.fail_at("after-start")?;
        check()?;
        self.wait_ready(&plan, &slot, templated, progress, cancel).await?;
        self.attach_repo(&plan, progress, cancel).await?;
        self.fail_at("after-clone")?;
        if plan.spare_ok(clustered) && templated {
            // The next create's spare, now that this one no longer needs the CPU.
            spares::refill_in_background(&plan.stack);
        }
        let name = &plan.name;
        sandbox::get(&self.incus, name).await?.ok_or_else(|| EngineError::failed(format!("{name} vanished"), ""))
    }

    /// Test-only fault injection: `SANDBOX_FAULT=<point>` makes create fail there.
    pub(crate) fn fault(&self, point: &str) -> bool {
        std::env::var("SANDBOX_FAULT").is_ok_and(|v| v == point)
    }

    pub(crate) fn fail_at(&self, point: &str) -> Result<()> {
        if self.fault(point) {
            return Err(EngineError::failed(
                format!("injected failure {} (SANDBOX_FAULT)", point.replace('-', " ")),
                "",
            ));
        }
        Ok(())
    }

    /// `SANDBOX_FAULT=slow-after-copy`: lets tests cancel a create half-way, deterministically.
    async fn slow_down_for_tests(&self, cancel: &CancellationToken) {
        if self.fault("slow-after-copy") {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(4)) => {}
                _ = cancel.cancelled() => {}
            }
        }
    }
}
