//! `sandbox start`: a create is a transaction of named steps, each registering its undo beside
//! it (steps.rs); a failure, or a cancel between steps, undoes them all. An existing sandbox is
//! restarted instead (restart.rs).
mod env;
mod fork;
mod options;
mod plan;
mod request;
mod source;
mod steps;

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

pub use env::{digest as env_digest, merge as merge_env, script as env_script, user_env};
pub use fork::ForkOptions;
pub use options::{CreateOptions, StartAction, default_stack};
pub(crate) use options::{Validated, validate};
use plan::Plan;
pub use request::root_disk;

use super::creds::Token;
use super::journal::{Begin, Journal};
use super::recover::Found;
use super::rollback::Rollback;
use super::sandbox::{self, Sandbox};
use super::{Engine, keys, spares};
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
    /// Creates NAME, or restarts it when it exists. What an interrupted create of NAME left (a
    /// killed process; see journal.rs) is removed first, and NAME made again — with the options
    /// that create was given when none are given now.
    pub async fn start(
        &self,
        o: &CreateOptions,
        progress: &dyn Progress,
        cancel: &CancellationToken,
    ) -> Result<StartResult> {
        let started = Instant::now();
        let v = validate(o)?;
        super::anthropic::upstream::from_env()?;
        super::anthropic::warn_visible_credential(&merge_env(user_env()?, &v.env), progress);
        // A restore that was interrupted is finished first (snapshots/restore.rs).
        self.finish_restore(&o.name).await?;
        let (action, sandbox) = match self.inspect(&o.name).await? {
            Found::Exists(inst) => {
                let s = sandbox::from_instance(&inst).ok_or_else(|| EngineError::sandbox_not_found(&o.name))?;
                self.restart(o, &v, s, progress).await?
            }
            Found::Creating(by) => return Err(busy(&o.name, &by)),
            Found::Interrupted(left) => {
                progress.step(&format!("Removing what an interrupted create of {} left", o.name));
                let asked: Option<CreateOptions> = left
                    .record
                    .as_ref()
                    .and_then(|r| serde_json::from_value(r.options.clone()).ok())
                    .filter(|_| o.is_bare());
                self.remove_name(&o.name, Found::Interrupted(left), &o.github_token).await?;
                let o = match asked {
                    Some(asked) => CreateOptions { github_token: o.github_token.clone(), ..asked },
                    None => o.clone(),
                };
                let v = validate(&o)?;
                (StartAction::Created, self.create_asked(&o, &v, progress, cancel).await?)
            }
            Found::Absent => (StartAction::Created, self.create_asked(o, &v, progress, cancel).await?),
        };
        Ok(StartResult { action, sandbox, seconds: started.elapsed().as_secs_f64() })
    }

    /// A create of what was asked (from the stack's golden image, or a prepared image of its
    /// repository).
    async fn create_asked(
        &self,
        o: &CreateOptions,
        v: &Validated,
        progress: &dyn Progress,
        cancel: &CancellationToken,
    ) -> Result<Sandbox> {
        let plan = self.plan(o, v).await?;
        // What was asked, without the GitHub token (never written to disk).
        let asked = serde_json::to_value(CreateOptions { github_token: Default::default(), ..o.clone() });
        self.create_transaction(plan, asked.unwrap_or_default(), &o.github_token, progress, cancel).await
    }

    /// The create as one transaction (`asked`: what the journal records of the request): on a
    /// failure, or a cancel, every step's undo runs.
    async fn create_transaction(
        &self,
        plan: Plan,
        asked: serde_json::Value,
        token: &Token,
        progress: &dyn Progress,
        cancel: &CancellationToken,
    ) -> Result<Sandbox> {
        // Recorded before the first change; removed once complete or fully undone.
        let name = plan.name.clone();
        let mut journal = match Journal::begin(&name, asked) {
            Ok(j) => j,
            Err(Begin::Exists(r)) => {
                let by = r.map(|r| r.owner.describe()).unwrap_or_else(|| "another process".into());
                return Err(busy(&name, &by));
            }
            Err(Begin::Failed(e)) => return Err(e),
        };
        let mut rb = Rollback::new();
        // Cancellation is checked between steps (and during the long waits), never by dropping an
        // Incus call half-way, so every undo sees the state it expects.
        match self.create(plan, token, progress, &mut rb, &mut journal, cancel).await {
            Ok(s) => {
                rb.commit();
                journal.finish();
                Ok(s)
            }
            Err(e) => {
                progress.step("Failed; undoing every step");
                let failures = rb.undo().await;
                if failures.is_empty() {
                    journal.finish();
                    return Err(e);
                }
                // The record stays: the next `start` or `rm` of NAME removes what is left.
                Err(EngineError::failed(
                    format!("{e}; and the rollback could not undo: {}", failures.join("; ")),
                    format!("remove what is left with `sandbox rm {name}`"),
                ))
            }
        }
    }

    /// The create, step by step (each step registers its undo in `rb`).
    async fn create(
        &self,
        mut plan: Plan,
        token: &Token,
        progress: &dyn Progress,
        rb: &mut Rollback,
        journal: &mut Journal,
        cancel: &CancellationToken,
    ) -> Result<Sandbox> {
        let check = || if cancel.is_cancelled() { Err(EngineError::Cancelled) } else { Ok(()) };
        self.fault_point("before-copy", progress, cancel).await?;
        check()?;
        if let Some(url) = plan.repo_url.as_deref().filter(|_| plan.ssh_key.is_none()) {
            journal.note_repo(url)?;
        }
        // Credentials before the container: a refused key or a missing token fails fast.
        let mut key_config = self.prepare_key(&plan, token, progress, rb).await?;
        if let Some(id) = key_config.iter().find(|(k, _)| k == keys::DEPLOY_KEY_ID).and_then(|(_, v)| v.parse().ok()) {
            journal.note_key(id)?;
        }
        // The instance says it is half-made until the last step (see journal.rs).
        key_config.push((keys::CREATING.to_string(), journal.owner().to_key()));
        check()?;
        // With the new sandbox's own key in its agent, the repository's lockfiles can be read.
        self.use_prepared_if_current(&mut plan, progress).await?;
        let endpoint = self.prepare_endpoint(&plan, progress, rb).await?;
        super::hostnet::ensure(&self.host, super::golden::BRIDGE).await?;
        let identity = steps::IdentityMaterial::new(&plan)?;
        key_config.push((keys::CLIENT_KEY.to_string(), identity.client_key_fingerprint()));
        progress.step(&format!("Creating {} from {}", plan.instance, plan.source_label()));
        // Slot, ports, the instance record and its ssh entry under one host-wide lock: concurrent
        // creates get distinct slots, and the instance itself then holds the slot.
        let guard = super::lock::acquire().await?;
        let (slot, clustered) = self.allocate_slot(&plan).await?;
        let files = identity.files(&plan, &slot);
        let (mut req, templated) = identity.request(&plan, &slot, &files, &key_config, clustered);
        req.devices.extend(endpoint);
        self.place_instance(&plan, &req, templated, clustered, progress, rb).await?;
        self.fault_point("after-place", progress, cancel).await?;
        self.add_ssh_entry(&plan, &slot, &identity, clustered, rb)?;
        drop(guard);
        if plan.disk.is_some() {
            // The size is a btrfs quota: enforced only while the accounting is consistent.
            super::quota::ensure_enforced(&self.host, super::golden::STORAGE_POOL, progress).await?;
        }
        self.fault_point("after-copy", progress, cancel).await?;
        check()?;
        if !templated {
            self.push_identity(&plan, &files, progress).await?;
        }
        self.push_gate_units(&plan).await?;
        check()?;
        self.start_with_egress(&plan, progress, rb).await?;
        self.fault_point("after-egress", progress, cancel).await?;
        self.fault_point("after-start", progress, cancel).await?;
        check()?;
        // Nothing is left to do after SSH answers but the agent and the clone: without them the
        // marker goes with the secrets, once the sandbox has started.
        let done_at_start = templated && !plan.uses_agent();
        let probe = (!clustered).then(|| slot.ssh_port());
        self.wait_ready(&plan, probe, templated, done_at_start, progress, cancel).await?;
        self.attach_repo(&plan, progress, cancel).await?;
        self.fault_point("after-clone", progress, cancel).await?;
        if !done_at_start {
            self.mark_complete(&plan.instance).await?;
        }
        if plan.spare_ok(clustered) && templated {
            // The next create's spare, now that this one no longer needs the CPU.
            spares::refill_in_background(&plan.stack);
        }
        let name = &plan.name;
        sandbox::get(&self.incus, name).await?.ok_or_else(|| EngineError::failed(format!("{name} vanished"), ""))
    }

    /// The last step: the instance no longer says it is half-made.
    async fn mark_complete(&self, instance: &str) -> Result<()> {
        let mut c = crate::incus::Config::new();
        c.insert(keys::CREATING.into(), String::new());
        Ok(self.incus.patch_instance(instance, c, crate::incus::Devices::new()).await?)
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

    /// `SANDBOX_FAULT=POINT` fails the create at POINT; `SANDBOX_FAULT=slow-POINT` pauses it there
    /// for 4 s (a cancel ends the pause), so tests can interrupt it at that step deterministically.
    pub(crate) async fn fault_point(
        &self,
        point: &str,
        progress: &dyn Progress,
        cancel: &CancellationToken,
    ) -> Result<()> {
        self.fail_at(point)?;
        if self.fault(&format!("slow-{point}")) {
            progress.step(&format!("Pausing at {point} (SANDBOX_FAULT)"));
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(4)) => {}
                _ = cancel.cancelled() => {}
            }
        }
        Ok(())
    }
}

/// NAME is being created by another process (or this one).
fn busy(name: &str, by: &str) -> EngineError {
    EngineError::Conflict {
        what: format!("a create of '{name}' under way ({by})"),
        hint: format!("wait for it to end; if that process is stuck, stop it: `sandbox start {name}` then finishes it"),
    }
}
