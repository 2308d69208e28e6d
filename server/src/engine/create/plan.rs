//! The first step of a create: everything resolved before anything changes — `--from`'s repo,
//! stack and egress settings, the golden image, the cluster member — into one `Plan`.
use std::path::PathBuf;

use super::options::{CreateOptions, Validated, default_stack};
use crate::engine::creds::RepoRef;
use crate::engine::golden::{self, READY, golden_name};
use crate::engine::validate::instance_name;
use crate::engine::{Engine, identity, keys, sandbox, spares, stacks};
use crate::error::{EngineError, Result};
use crate::incus::Config;

/// What the new sandbox's disk is a copy of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// The stack's golden image (`golden-STACK/ready`, its cluster image, or a warm spare of it).
    Golden,
    /// A prepared image of the repository (`prepared-STACK-KEY/ready`): fetched, not cloned.
    Prepared { image: String },
    /// Another sandbox as it is now, or one of its snapshots (`sandbox fork`).
    Fork { from: String, snapshot: Option<String> },
}

pub(crate) struct Plan {
    pub name: String,
    pub instance: String,
    pub stack: String,
    pub golden: String,
    pub source: Source,
    /// The source's config (the golden `ready` snapshot's, …): what copies start from.
    pub golden_config: Config,
    /// The golden image carries the identity templates (ours); the seed's get the files pushed.
    pub carried: bool,
    /// Stored as given; `repo` is the same, parsed.
    pub repo_url: Option<String>,
    pub repo: Option<RepoRef>,
    pub branch: Option<String>,
    pub from: Option<String>,
    pub restrict: bool,
    pub domains_file: Option<String>,
    pub allow_quic: bool,
    pub ssh_key: Option<PathBuf>,
    pub read_only_key: bool,
    /// Its repository's fetches and pushes go through the host's push gate (gate/): it has a
    /// repository, no `--allow-push-any`, and the gate can run here.
    pub gated: bool,
    pub cpu: Option<u32>,
    pub memory: Option<String>,
    /// The root disk's size (`--disk`, else the default; None: no limit).
    pub disk: Option<String>,
    /// `--env` pairs (stored, so a restart keeps them).
    pub env: Vec<(String, String)>,
    /// `~/.sandbox/env`, read (and checked) before anything changes.
    pub user_env: Vec<(String, String)>,
    pub target: Option<String>,
    /// `--checkpoints`: how many per-turn checkpoints to keep (absent: the default).
    pub checkpoints: Option<u32>,
    /// `--slot`: this one or fail (default: the first free one).
    pub slot: Option<u32>,
}

impl Plan {
    /// The sandbox runs an ssh-agent on the host (deploy key or `--ssh-key`).
    pub fn uses_agent(&self) -> bool {
        self.repo.is_some() || self.ssh_key.is_some()
    }

    /// The agent's socket is plugged into the sandbox: only when no gate stands between it and
    /// the server (with the gate, the key is the gate's alone).
    pub fn plugs_agent(&self) -> bool {
        self.uses_agent() && !self.gated
    }

    /// What Incus copies: `instance/snapshot`, or a sandbox as it is now.
    pub fn source_label(&self) -> String {
        match &self.source {
            Source::Golden => format!("{}/{READY}", self.golden),
            Source::Prepared { image } => crate::engine::prepared::source(image),
            Source::Fork { from, snapshot: Some(s) } => format!("{}/{s}", instance_name(from)),
            Source::Fork { from, snapshot: None } => instance_name(from),
        }
    }

    /// A warm spare may stand in for the copy (see spares.rs): copies of the golden image only.
    pub fn spare_ok(&self, clustered: bool) -> bool {
        self.source == Source::Golden && self.carried && !clustered && self.target.is_none() && spares::enabled()
    }
}

/// `~/.sandbox/env`, read now (a file that cannot be read fails before anything changes), and
/// with `--env` within the environment's bounds.
fn checked_env(v: &Validated) -> Result<Vec<(String, String)>> {
    let user_env = super::env::user_env()?;
    crate::engine::validate::env_list(&super::env::merge(user_env.clone(), &v.env))?;
    Ok(user_env)
}

impl Engine {
    /// Whether the sandbox's pushes go through the host's gate: with a repository, unless
    /// `--allow-push-any`, and only where Incus runs on this machine (else a warning).
    pub(super) fn push_gated(&self, name: &str, has_repo: bool, allow_push_any: bool) -> bool {
        if !has_repo || allow_push_any {
            return false;
        }
        if !self.anthropic_here() {
            tracing::warn!(
                "the push gate runs only where Incus runs on this machine: '{name}' may push anywhere its key can"
            );
        }
        self.anthropic_here()
    }

    pub(super) async fn plan(&self, o: &CreateOptions, v: &Validated) -> Result<Plan> {
        let name = o.name.clone();
        // --from inherits repo, stack and egress settings.
        let mut stack = o.stack.clone();
        let mut repo_url = o.repo.clone();
        let mut restrict = o.restrict_domains;
        let mut domains_file = o.domains_file.as_ref().map(|p| p.display().to_string());
        if let Some(from) = &o.from {
            let src = sandbox::get(&self.incus, from).await?.ok_or_else(|| {
                EngineError::not_found(
                    format!("sandbox '{from}'"),
                    "`sandbox list` shows the sandboxes you can branch from",
                )
            })?;
            stack = stack.or(src.stack.clone());
            repo_url = repo_url.or(src.repo.clone());
            restrict |= src.egress == sandbox::Egress::Filtered;
            if domains_file.is_none() {
                let inst = self.incus.instance(&src.instance).await?;
                domains_file = inst.setting(keys::DOMAINS_FILE).map(str::to_owned);
            }
        }
        crate::engine::egress::check_quic(o.allow_quic, restrict || domains_file.is_some())?;
        if let Some(t) = &o.target {
            self.check_member(t).await?;
        }
        let target = self.pinned_target(o.target.clone()).await?;
        if let Some(c) = v.cpu {
            self.check_cpus(c, target.as_deref()).await?;
        }
        let (user_env, disk) =
            (checked_env(v)?, v.disk.clone().map_or_else(super::options::default_disk, |d| Ok(Some(d)))?);
        let stack = stack.unwrap_or_else(default_stack);
        let (golden, golden_config) = self.ready_golden(&stack).await?;
        let repo = match (&v.repo, &repo_url) {
            (Some(r), _) => Some(r.clone()),
            (None, Some(u)) => Some(RepoRef::parse(u)?),
            (None, None) => None,
        };
        if v.branch.is_some() && repo.is_none() {
            return Err(EngineError::invalid(
                "branch",
                "--branch needs a repository",
                "give REPO_URL (or --from a sandbox that has one)",
            ));
        }
        let gated = self.push_gated(&name, repo.is_some(), o.allow_push_any);
        Ok(Plan {
            instance: instance_name(&name),
            carried: identity::carried_by(&golden_config),
            name,
            stack,
            golden,
            source: Source::Golden,
            golden_config,
            repo_url,
            repo,
            branch: v.branch.clone(),
            from: o.from.clone(),
            restrict: restrict || domains_file.is_some(),
            domains_file,
            allow_quic: o.allow_quic,
            ssh_key: v.ssh_key.clone(),
            read_only_key: o.read_only_key,
            gated,
            cpu: v.cpu,
            memory: v.memory.clone(),
            disk,
            env: v.env.clone(),
            user_env,
            target,
            checkpoints: o.checkpoints,
            slot: o.slot,
        })
    }

    /// The stack's golden image and its config, or what to do when it is not built.
    async fn ready_golden(&self, stack: &str) -> Result<(String, crate::incus::Config)> {
        let golden = golden_name(stack);
        let Some(config) = golden::ready_config(&self.incus, &golden).await? else {
            stacks::find(stack)?; // unknown stack → the list of available ones
            return Err(EngineError::needs_setup(
                format!("golden image {golden}/{READY}"),
                format!("build it first: sandbox setup --stack {stack}"),
            ));
        };
        Ok((golden, config))
    }

    /// `--cpu N` within what the server (or the member) has: Incus would take more, and the limit
    /// would mean nothing.
    pub(crate) async fn check_cpus(&self, cpus: u32, member: Option<&str>) -> Result<()> {
        let total = self.incus.cpu_total(member).await?;
        if total > 0 && u64::from(cpus) > total {
            let on = member.map(|m| format!("member {m}")).unwrap_or_else(|| "this host".into());
            return Err(EngineError::invalid(
                "cpu",
                format!("{cpus} CPUs asked for, and {on} has {total} CPU{}", if total == 1 { "" } else { "s" }),
                format!("give --cpu {total} or less"),
            ));
        }
        Ok(())
    }

    /// Host-side parts of a sandbox (egress rules, its ssh-agent, the Claude endpoint) live where
    /// `sandbox` runs. Run on a cluster member, it places its sandboxes on that member; over HTTPS
    /// (no host-side parts) Incus places them.
    async fn pinned_target(&self, asked: Option<String>) -> Result<Option<String>> {
        if !self.host.is_available() {
            return Ok(asked);
        }
        let server = self.incus.server().await?;
        if server["environment"]["server_clustered"] != true {
            return Ok(asked);
        }
        let here = server["environment"]["server_name"].as_str().unwrap_or_default().to_string();
        match asked {
            Some(t) if t != here => Err(EngineError::invalid(
                "target",
                format!(
                    "'{t}': a sandbox's host-side parts (egress rules, ssh-agent, Claude endpoint) run where \
                     `sandbox` runs, and this is member {here}"
                ),
                format!("run `sandbox` on {t} itself, or reach the cluster over HTTPS (`sandbox remote add`)"),
            )),
            _ => Ok(Some(here)),
        }
    }

    /// `--target` must name a member of a cluster; said before anything changes.
    async fn check_member(&self, member: &str) -> Result<()> {
        if !golden::is_clustered(&self.incus).await? {
            return Err(EngineError::invalid(
                "target",
                format!("'{member}': this Incus server is not a cluster"),
                "drop --target (it places sandboxes on cluster members)",
            ));
        }
        let members: Vec<String> = self.incus.cluster_members().await?.into_iter().map(|m| m.server_name).collect();
        if !members.iter().any(|m| m == member) {
            return Err(EngineError::invalid(
                "target",
                format!("no cluster member '{member}' (members: {})", members.join(", ")),
                "pick one of the members, or drop --target to let Incus place the sandbox",
            ));
        }
        Ok(())
    }
}
