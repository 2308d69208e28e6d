//! `sandbox fork NAME NEW [--at LABEL] [--branch B]`: a create whose disk is NAME's (as it is now,
//! or one of its snapshots) instead of a golden image's. It runs the create's own steps, so what
//! must be NEW's own is made new exactly as for any sandbox — SSH host key, machine-id, hostname
//! (the identity templates render again at its first start), slot, ports, address and MAC, deploy
//! key (registered on NAME's repository) and ssh-agent, egress registration, Anthropic endpoint
//! and token counters — and it is one transaction: a failure or a cancel at any step leaves
//! neither NEW nor anything it registered. NEW keeps NAME's stack, repository, egress settings,
//! `--env` and limits, and gets its own branch (default `NAME-fork-N`) from NAME's checkout.
use std::path::PathBuf;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::options::default_stack;
use super::plan::{Plan, Source};
use super::{StartAction, StartResult};
use crate::engine::creds::{RepoRef, Token};
use crate::engine::golden::golden_name;
use crate::engine::sandbox::{self, Sandbox};
use crate::engine::snapshots::snapshot_not_found;
use crate::engine::validate::{self, instance_name};
use crate::engine::{Engine, gate, identity, keys};
use crate::error::{EngineError, Result};
use crate::progress::Progress;

/// A fork: which sandbox, the new one's name, from which snapshot, on which branch.
#[derive(Debug, Clone, Default, clap::Args, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[ts(optional_fields)]
pub struct ForkOptions {
    /// The sandbox to fork.
    #[arg(value_name = "NAME")]
    pub from: String,
    /// The new sandbox's name.
    #[arg(value_name = "NEW")]
    pub name: String,
    /// Fork this snapshot of NAME (`sandbox snapshots NAME`) instead of NAME as it is now.
    #[arg(long, value_name = "LABEL")]
    pub at: Option<String>,
    /// The new sandbox's branch (default NAME-fork-N), made from NAME's checkout.
    #[arg(long)]
    pub branch: Option<String>,
    /// GitHub token for the new deploy key; else GH_TOKEN, GITHUB_TOKEN, `gh auth token`.
    #[arg(skip)]
    #[serde(default, skip_serializing_if = "Token::is_none")]
    #[ts(as = "Option<String>")]
    pub github_token: Token,
}

impl Engine {
    pub async fn fork(
        &self,
        o: &ForkOptions,
        progress: &dyn Progress,
        cancel: &CancellationToken,
    ) -> Result<StartResult> {
        let started = Instant::now();
        validate::sandbox_name(&o.name)?;
        validate::sandbox_name(&o.from)?;
        let branch = o.branch.as_deref().map(validate::branch).transpose()?;
        if let Some(l) = &o.at {
            validate::snapshot_label(l, true)?;
        }
        if o.name == o.from {
            return Err(EngineError::invalid("name", "a fork needs a new name", "e.g. sandbox fork NAME NAME-2"));
        }
        crate::engine::anthropic::upstream::from_env()?;
        let src = self.existing(&o.from).await?;
        if sandbox::get(&self.incus, &o.name).await?.is_some() {
            return Err(EngineError::Conflict {
                what: format!("sandbox '{}'", o.name),
                hint: "pick another name".into(),
            });
        }
        let plan = self.fork_plan(o, &src, branch).await?;
        progress.step(&format!("Forking {} into {}", plan.source_label(), o.name));
        // The journal records the fork as asked (a `start` of NEW after a killed fork removes what
        // it left, then makes NEW afresh: the fork's options are not a create's).
        let asked = serde_json::to_value(ForkOptions { github_token: Token::default(), ..o.clone() });
        let sandbox =
            self.create_transaction(plan, asked.unwrap_or_default(), &o.github_token, progress, cancel).await?;
        Ok(StartResult { action: StartAction::Created, sandbox, seconds: started.elapsed().as_secs_f64() })
    }

    /// NAME's settings as they are now; the disk (and what it was built from) from the snapshot.
    async fn fork_plan(&self, o: &ForkOptions, src: &Sandbox, branch: Option<String>) -> Result<Plan> {
        let inst = self.incus.instance(&src.instance).await?;
        let source_config = match &o.at {
            Some(l) => {
                let snaps = self.incus.snapshots(&src.instance).await?;
                snaps.into_iter().find(|s| s.name == *l).ok_or_else(|| snapshot_not_found(&o.from, l))?.config
            }
            None => inst.config.clone(),
        };
        let stack = src.stack.clone().or_else(|| inst.setting(keys::GOLDEN_STACK).map(str::to_owned));
        let stack = stack.unwrap_or_else(default_stack);
        let repo = src.repo.as_deref().map(RepoRef::parse).transpose()?;
        // Pushes as NAME's do: through the gate only if NAME's go through it.
        let gated = self.push_gated(&o.name, repo.is_some(), !gate::gated(&inst));
        let env: Vec<(String, String)> =
            inst.setting(keys::ENV).and_then(|j| serde_json::from_str(j).ok()).unwrap_or_default();
        let user_env = super::env::user_env()?;
        validate::env_list(&super::env::merge(user_env.clone(), &env))?;
        // NAME's disk size (the copy is as big as NAME's disk may grow).
        let disk = inst.devices.get("root").and_then(|d| d.get("size")).cloned();
        Ok(Plan {
            name: o.name.clone(),
            instance: instance_name(&o.name),
            golden: golden_name(&stack),
            stack,
            source: Source::Fork { from: o.from.clone(), snapshot: o.at.clone() },
            carried: identity::carried_by(&source_config),
            golden_config: source_config,
            repo_url: src.repo.clone(),
            repo,
            branch,
            from: Some(o.from.clone()),
            restrict: sandbox::is_restricted(&inst),
            domains_file: inst.setting(keys::DOMAINS_FILE).map(str::to_owned),
            allow_quic: inst.setting(keys::ALLOW_QUIC) == Some("yes"),
            ssh_key: inst.setting(keys::SSH_KEY).map(PathBuf::from),
            read_only_key: inst.setting(keys::DEPLOY_KEY_READ_ONLY) == Some("true"),
            gated,
            // Limits come with NAME's config (the copy carries them).
            cpu: None,
            memory: None,
            disk,
            env,
            user_env,
            target: None,
            // NAME's limit comes with its record (source.rs keeps it).
            checkpoints: None,
            slot: None,
        })
    }
}
