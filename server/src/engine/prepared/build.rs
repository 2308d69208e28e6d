//! `sandbox prepare REPO_URL`: a temporary instance from the stack's golden image, on the network
//! a stack build has (the default profile's NIC: no sandbox slot or egress policy); the repository
//! cloned as a create does (a read-only deploy key of its own, through a host-side agent, removed
//! again at the end whatever happens); the repository's setup run as ubuntu in the project; per-
//! machine identity stripped; a `ready` snapshot; swapped in as `prepared-STACK-KEY`. Each step
//! registers its undo: a failed or interrupted prepare leaves nothing, and an earlier image of the
//! same key stays until the new one is in place.
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::key::{self, Entry};
use super::sweep::CRED_PREFIX;
use super::{PreparedInfo, PreparedState, TMP_PREFIX, instance_name, list, repo_id};
use crate::engine::create::default_stack;
use crate::engine::creds::{self, KeySource, RepoRef, Token, project_git};
use crate::engine::golden::{self, READY, build as gbuild};
use crate::engine::journal::{Begin, Journal, Owner};
use crate::engine::rollback::Rollback;
use crate::engine::{Engine, host::Host, keys, sandbox, stacks, validate};
use crate::error::{EngineError, Result};
use crate::incus::{Config, ExecSpec, InstanceSource, InstancesPost};
use crate::progress::{LineSplitter, Progress};

/// What to prepare.
#[derive(Debug, Clone, Default, clap::Args, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[ts(optional_fields)]
pub struct PrepareOptions {
    /// The repository (as for `sandbox start`).
    #[arg(value_name = "REPO_URL")]
    pub repo: String,
    /// The stack whose golden image it starts from.
    #[arg(long)]
    pub stack: Option<String>,
    /// The branch whose lockfiles to install (default: the repository's default branch).
    #[arg(long)]
    pub branch: Option<String>,
    /// Prepare again even when an image of these exact files exists.
    #[arg(long)]
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[ts(as = "Option<bool>")]
    pub rebuild: bool,
    /// GitHub token for the temporary deploy key; else GH_TOKEN, GITHUB_TOKEN, `gh auth token`.
    #[arg(skip)]
    #[serde(default, skip_serializing_if = "Token::is_none")]
    #[ts(as = "Option<String>")]
    pub github_token: Token,
}

/// The names one prepare works under: its temporary instance and, for its key and agent, `prep-TAG`.
struct Work {
    tmp: String,
    cred: String,
    repo: RepoRef,
    url: String,
    stack: String,
    branch: Option<String>,
    golden_build: String,
}

/// A prepare's undo: the temporary key's (run whatever happens), the rest's (run on a failure),
/// and its record (kept until both ran).
struct Undo<'a> {
    creds: Rollback,
    rest: Rollback,
    journal: &'a mut Journal,
}

impl Engine {
    pub async fn prepare(
        &self,
        o: &PrepareOptions,
        progress: &dyn Progress,
        cancel: &CancellationToken,
    ) -> Result<PreparedInfo> {
        let repo = RepoRef::parse(&o.repo)?;
        let stack = o.stack.clone().unwrap_or_else(default_stack);
        stacks::validate_stack_name(&stack)?;
        let branch = o.branch.as_deref().map(validate::branch).transpose()?;
        let Some(golden_config) = golden::ready_config(&self.incus, &golden::golden_name(&stack)).await? else {
            stacks::find(&stack)?;
            return Err(EngineError::needs_setup(
                format!("golden image golden-{stack}/{READY}"),
                format!("build it first: sandbox setup --stack {stack}"),
            ));
        };
        if let Err(e) = self.sweep_prepares().await {
            tracing::warn!("what interrupted prepares left was not all removed: {e}");
        }
        let tag = format!("{:06x}", rand::random::<u32>() & 0xff_ffff);
        let w = Work {
            tmp: format!("{TMP_PREFIX}{tag}"),
            cred: format!("{CRED_PREFIX}{tag}"),
            url: o.repo.clone(),
            repo,
            stack,
            branch,
            golden_build: super::build_of(Some(&golden_config)),
        };
        // Recorded before the key is registered: a kill at any point leaves what the next
        // prepare removes (sweep.rs).
        let mut journal = match Journal::begin(&w.cred, serde_json::json!({ "prepare": o.repo })) {
            Ok(j) => j,
            Err(Begin::Exists(_)) => return Err(EngineError::failed(format!("{} is in use", w.cred), "try again")),
            Err(Begin::Failed(e)) => return Err(e),
        };
        journal.note_repo(&o.repo)?;
        let mut u = Undo { creds: Rollback::new(), rest: Rollback::new(), journal: &mut journal };
        let made = self.prepare_in(&w, o, &mut u, progress, cancel).await;
        let Undo { creds, rest: rb, .. } = u;
        // The temporary key goes whatever happened (it only ever served this clone).
        let failures = creds.undo().await;
        for f in &failures {
            progress.step(&format!("Could not remove the temporary deploy key: {f}"));
        }
        match made {
            Ok(info) => {
                rb.commit();
                if failures.is_empty() {
                    journal.finish();
                }
                Ok(info)
            }
            Err(e) => {
                progress.step("Failed; undoing every step");
                let left = rb.undo().await;
                if left.is_empty() && failures.is_empty() {
                    journal.finish();
                }
                if left.is_empty() {
                    return Err(e);
                }
                let failures = left;
                Err(EngineError::failed(format!("{e}; and the rollback could not undo: {}", failures.join("; ")), ""))
            }
        }
    }

    async fn prepare_in(
        &self,
        w: &Work,
        o: &PrepareOptions,
        u: &mut Undo<'_>,
        progress: &dyn Progress,
        cancel: &CancellationToken,
    ) -> Result<PreparedInfo> {
        let check = || if cancel.is_cancelled() { Err(EngineError::Cancelled) } else { Ok(()) };
        let source = KeySource::Deploy { read_only: true };
        let key = self.prepare_credentials(&w.cred, &w.repo, &source, &o.github_token, progress, &mut u.creds).await?;
        if let Some(id) = key.iter().find(|(k, _)| k == keys::DEPLOY_KEY_ID).and_then(|(_, v)| v.parse().ok()) {
            u.journal.note_key(id)?;
        }
        check()?;
        if !o.rebuild
            && let Some(have) = self.already_prepared(w, progress).await?
        {
            return Ok(have);
        }
        self.fail_at("prepare-before-copy")?;
        self.prepare_instance(w, &mut u.rest, progress).await?;
        check()?;
        self.prepare_clone(w, progress).await?;
        // Tests: `slow-prepare-after-clone` holds it here to be killed.
        self.fault_point("prepare-after-clone", progress, cancel).await?;
        let files = key::entries(&self.tree_listing(&w.tmp).await?);
        let setup = key::setup(&files);
        if setup.is_empty() {
            return Err(EngineError::failed(
                format!("nothing to prepare in {}: no {} and no lockfile", w.repo.slug(), key::SETUP_SCRIPT),
                "add .sandbox/setup.sh to the repository (it runs as ubuntu in /workspace/project), or a lockfile \
                 (package-lock.json, pnpm-lock.yaml, yarn.lock, Cargo.lock, uv.lock, poetry.lock, requirements*.txt, go.sum)",
            ));
        }
        self.run_setup(w, &setup, progress, cancel).await?;
        self.fail_at("prepare-after-setup")?;
        check()?;
        self.publish(w, &files, &setup, progress).await
    }

    /// An image of exactly these files (read on the host) made from the current golden image.
    async fn already_prepared(&self, w: &Work, progress: &dyn Progress) -> Result<Option<PreparedInfo>> {
        let local = self.host == Host::Local && matches!(self.incus.endpoint(), crate::incus::Endpoint::Unix(_));
        if !local {
            return Ok(None);
        }
        let refs = vec![w.branch.clone().unwrap_or_else(|| "HEAD".into())];
        let probed =
            super::probe::probe(&w.repo, &creds::agent::socket_path(&w.cred), &refs).await.map_err(|e| {
                match (&w.branch, e.to_string().contains("couldn't find remote ref")) {
                    (Some(b), true) => EngineError::invalid(
                        "branch",
                        format!("{} has no branch '{b}'", w.repo.slug()),
                        "give an existing branch, or drop --branch for the default branch",
                    ),
                    _ => e,
                }
            })?;
        let want = key::key(&w.stack, &repo_id(&w.repo), &probed.files);
        let have = list(&self.incus).await?.into_iter().find(|p| p.key == want && p.state == PreparedState::Current);
        if let Some(p) = &have {
            progress.step(&format!("{} is up to date with these lockfiles (--rebuild to prepare it again)", p.name));
        }
        Ok(have)
    }

    /// The temporary instance: a copy of the golden image with the default profile's network (as
    /// a stack build has). Undo: delete it (registered first: a half-made copy goes too).
    async fn prepare_instance(&self, w: &Work, rb: &mut Rollback, progress: &dyn Progress) -> Result<()> {
        let golden = golden::golden_name(&w.stack);
        progress.step(&format!("Creating {} from {golden}/{READY}", w.tmp));
        let mut config = Config::new();
        config.insert(keys::PREPARING.into(), w.url.clone());
        // Its owner: a prepare killed before its undo ran is recognised (sweep.rs).
        config.insert(keys::CREATING.into(), Owner::me().to_key());
        config.insert(keys::CREATED_AT.into(), crate::engine::snapshots::meta::now_rfc3339());
        config.insert("boot.autostart".into(), "false".into());
        let req = InstancesPost {
            name: w.tmp.clone(),
            source: InstanceSource::copy(format!("{golden}/{READY}")),
            config,
            kind: "container".into(),
            ..Default::default()
        };
        let (incus, tmp) = (self.incus.clone(), w.tmp.clone());
        rb.push(format!("delete {tmp}"), async move { Ok(incus.delete_force(&tmp).await?) });
        self.incus.create_instance(&req).await?;
        self.incus.start(&w.tmp).await?;
        gbuild::wait_booted(&self.incus, &w.tmp).await;
        Ok(())
    }

    /// The clone, over the temporary key's agent, then the agent's socket out again.
    async fn prepare_clone(&self, w: &Work, progress: &dyn Progress) -> Result<()> {
        self.plug_agent(&w.cred, &w.tmp).await?;
        self.clone_repo(&w.tmp, &w.repo, &w.repo.ssh_url(), None, None, progress).await?;
        if let Some(b) = &w.branch {
            let remote = format!("refs/remotes/origin/{b}");
            if !self.incus.exec(&w.tmp, &project_git(&["rev-parse", "--verify", "--quiet", &remote])).await?.ok() {
                return Err(EngineError::invalid(
                    "branch",
                    format!("{} has no branch '{b}'", w.repo.slug()),
                    "give an existing branch, or drop --branch for the default branch",
                ));
            }
            progress.step(&format!("Checking out branch {b}"));
            let out = self.incus.exec(&w.tmp, &project_git(&["checkout", "--quiet", b, "--"])).await?;
            if !out.ok() {
                return Err(EngineError::failed(format!("git checkout {b}: {}", out.stderr_str().trim()), ""));
            }
        }
        Ok(self.incus.remove_devices(&w.tmp, &[creds::AGENT_DEVICE]).await?)
    }

    /// `git ls-tree` of HEAD's top level and of the setup script (what the key is made of).
    async fn tree_listing(&self, instance: &str) -> Result<String> {
        let mut out = String::new();
        for args in [vec!["ls-tree", "HEAD"], vec!["ls-tree", "HEAD", "--", key::SETUP_SCRIPT]] {
            let o = self.incus.exec(instance, &project_git(&args)).await?;
            if !o.ok() {
                return Err(EngineError::failed(format!("git ls-tree: {}", o.stderr_str().trim()), ""));
            }
            out.push_str(&o.stdout_str());
        }
        Ok(out)
    }

    /// Each setup command as ubuntu in the project (login environment), its output streamed.
    async fn run_setup(
        &self,
        w: &Work,
        setup: &[key::Command],
        progress: &dyn Progress,
        cancel: &CancellationToken,
    ) -> Result<()> {
        for cmd in setup {
            progress.step(&format!("Running `{}` in {}", cmd.join(" "), w.repo.slug()));
            let spec = sandbox::project_exec(cmd.iter().cloned()).env("SANDBOX_PREPARE", "1");
            let mut lines = LineSplitter::new(30);
            let run = self.incus.exec_streamed(&w.tmp, &spec, |_, d| lines.feed(d, |l| progress.line(l)));
            let out = tokio::select! {
                r = run => r?,
                _ = cancel.cancelled() => return Err(EngineError::Cancelled),
            };
            lines.finish(|l| progress.line(l));
            if out.status != 0 {
                return Err(EngineError::failed(
                    format!(
                        "`{}` failed (exit {}); its last lines:\n{}",
                        cmd.join(" "),
                        out.status,
                        lines.tail().join("\n")
                    ),
                    format!("fix the repository's setup and run `sandbox prepare {}` again", w.url),
                ));
            }
        }
        Ok(())
    }

    /// Identity stripped, stopped, recorded, `ready` taken, swapped in under its key's name.
    async fn publish(
        &self,
        w: &Work,
        files: &[Entry],
        setup: &[key::Command],
        progress: &dyn Progress,
    ) -> Result<PreparedInfo> {
        progress.step("Removing per-machine identity");
        let strip = format!("{} rm -f /home/ubuntu/.bash_history; true", gbuild::STRIP);
        self.incus.exec(&w.tmp, &ExecSpec::new(["sh", "-c", strip.as_str()])).await?;
        let commit = self.incus.exec(&w.tmp, &project_git(&["rev-parse", "HEAD"])).await?.stdout_str();
        self.incus.stop(&w.tmp, false).await?;
        let key = key::key(&w.stack, &repo_id(&w.repo), files);
        let target = instance_name(&w.stack, &key);
        let mut c = Config::new();
        let mut set = |k: &str, v: String| {
            c.insert(k.to_string(), v);
        };
        set(keys::PREPARING, String::new());
        set(keys::PREPARED_REPO, repo_id(&w.repo));
        set(keys::PREPARED_URL, w.url.clone());
        set(keys::PREPARED_STACK, w.stack.clone());
        set(keys::PREPARED_BRANCH, w.branch.clone().unwrap_or_default());
        set(keys::PREPARED_COMMIT, commit.trim().to_string());
        set(keys::PREPARED_KEY, key.clone());
        set(keys::PREPARED_FILES, files.iter().map(|f| f.path.as_str()).collect::<Vec<_>>().join(","));
        set(keys::PREPARED_SETUP, key::describe(setup));
        set(keys::PREPARED_AT, crate::engine::snapshots::meta::now_rfc3339());
        set(keys::PREPARED_GOLDEN, w.golden_build.clone());
        self.incus.patch_instance(&w.tmp, c, Default::default()).await?;
        progress.step(&format!("Taking snapshot '{READY}' and swapping {} in as {target}", w.tmp));
        self.incus.create_snapshot(&w.tmp, READY).await?;
        gbuild::swap(&self.incus, &w.tmp, &target).await?;
        list(&self.incus)
            .await?
            .into_iter()
            .find(|p| p.name == target)
            .ok_or_else(|| EngineError::failed(format!("{target} vanished"), ""))
    }
}
