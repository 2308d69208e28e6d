//! Creates whose disk is not a golden image's: a prepared image of the repository, or another
//! sandbox (a fork). Incus copies the source's config and devices along with its disk wherever the
//! request does not name them, so the new sandbox would carry the other instance's record — its
//! deploy key id, token counters, snapshot records, forwards, agent and endpoint devices. One step
//! leaves it only its own; and its checkout is brought to its branch instead of cloned.
use tokio_util::sync::CancellationToken;

use super::plan::{Plan, Source};
use crate::engine::{Engine, gate, keys, prepared, sandbox};
use crate::error::{EngineError, Result};
use crate::incus::{Config, Devices, InstancesPost};
use crate::progress::Progress;

/// Settings a fork keeps from the sandbox it copies: its allowlist changes and resolver, its
/// checkpoint limit, the base its changes are reviewed against. (Its egress mode, `--env`, key
/// source and limits come through the plan.)
const FORK_KEEPS: [&str; 6] = [
    keys::DOMAINS_ALLOW,
    keys::DOMAINS_DENY,
    keys::DNS_UPSTREAM,
    keys::CHECKPOINT_KEEP,
    keys::BASE_COMMIT,
    keys::BASE_BRANCH,
];

/// What of a copied instance's record stays: its request's keys, the golden image's (`golden-*`),
/// Incus's own, and (forks) FORK_KEEPS. Devices: exactly the request's (and the copy's root disk
/// when the request has none).
pub(super) fn own_only(config: &mut Config, devices: &mut Devices, req: &InstancesPost, fork: bool) {
    config.retain(|k, _| {
        !k.starts_with("user.sandbox.")
            || req.config.contains_key(k)
            || k.starts_with("user.sandbox.golden-")
            || (fork && FORK_KEEPS.contains(&k.as_str()))
    });
    let root = devices.remove("root");
    *devices = req.devices.clone();
    // The request's root disk (with its size) wins; else the copy's stays.
    if let Some(r) = root {
        devices.entry("root".into()).or_insert(r);
    }
}

impl Engine {
    /// After the copy of a prepared image or a sandbox: the record is the new sandbox's only.
    pub(super) async fn keep_own_record(&self, plan: &Plan, req: &InstancesPost) -> Result<()> {
        if plan.source == Source::Golden {
            return Ok(());
        }
        let fork = matches!(plan.source, Source::Fork { .. });
        Ok(self.incus.modify_instance(&plan.instance, |i| own_only(&mut i.config, &mut i.devices, req, fork)).await?)
    }

    /// A repository's sandbox from its prepared image, when one still matches the branch's
    /// lockfiles (prepared/choose.rs says which and why not).
    pub(super) async fn use_prepared_if_current(&self, plan: &mut Plan, progress: &dyn Progress) -> Result<()> {
        if plan.source != Source::Golden || plan.target.is_some() {
            return Ok(());
        }
        let (Some(repo), Some(url)) = (&plan.repo, &plan.repo_url) else { return Ok(()) };
        let base = match &plan.from {
            Some(f) => sandbox::get(&self.incus, f).await?.and_then(|s| s.branch),
            None => None,
        };
        let ask =
            prepared::Ask { stack: &plan.stack, repo, url, branch: plan.branch.as_deref(), base: base.as_deref() };
        if let Some(c) = self.choose_prepared(&ask, &plan.name, progress).await? {
            plan.carried = crate::engine::identity::carried_by(&c.config);
            plan.golden_config = c.config;
            plan.source = Source::Prepared { image: c.image };
        }
        Ok(())
    }

    /// The checkout: cloned (golden image), fetched and switched (prepared image), or a new
    /// branch from the other sandbox's (fork; its name is recorded). Through the push gate when
    /// the sandbox's pushes go through it, which learns the branch once it is known.
    pub(super) async fn checkout(
        &self,
        plan: &Plan,
        progress: &dyn Progress,
        cancel: &CancellationToken,
    ) -> Result<()> {
        if cancel.is_cancelled() {
            return Err(EngineError::Cancelled);
        }
        let Some(repo) = &plan.repo else { return Ok(()) };
        let base = match &plan.from {
            Some(f) => sandbox::get(&self.incus, f).await?.and_then(|s| s.branch),
            None => None,
        };
        let url = if plan.gated { gate::sandbox_url(repo) } else { repo.ssh_url() };
        let (base, branch) = (base.as_deref(), plan.branch.as_deref());
        match &plan.source {
            Source::Golden => {
                let made_from = self.clone_repo(&plan.instance, repo, &url, branch, base, progress).await?;
                self.record_base(&plan.name, &plan.instance, made_from.as_deref()).await?;
            }
            Source::Prepared { .. } => {
                let made_from = self.update_checkout(&plan.instance, &url, branch, base, progress).await?;
                self.record_base(&plan.name, &plan.instance, made_from.as_deref()).await?;
            }
            // Its base stays NAME's (FORK_KEEPS): its changes are NAME's and its own.
            Source::Fork { from, .. } => self.fork_checkout(plan, from, progress).await?,
        }
        if plan.gated && plan.branch.is_none() {
            // Its branch is the one the checkout made: the gate learns it from Incus.
            let inst = self.incus.instance(&plan.instance).await?;
            self.anthropic_revive(&plan.name, &inst, true).await?;
        }
        Ok(())
    }

    /// A fork's new branch, recorded (the other sandboxes' branches are taken; this one's record
    /// already names the one asked for).
    async fn fork_checkout(&self, plan: &Plan, from: &str, progress: &dyn Progress) -> Result<()> {
        let all = sandbox::list(&self.incus).await?;
        let taken: Vec<String> = all.into_iter().filter(|s| s.name != plan.name).filter_map(|s| s.branch).collect();
        let made = self.fork_branch(&plan.instance, from, plan.branch.as_deref(), &taken, progress).await?;
        if let Some(b) = made {
            let mut c = Config::new();
            c.insert(keys::BRANCH.into(), b);
            self.incus.patch_instance(&plan.instance, c, Devices::new()).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> Config {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn a_copy_keeps_only_its_own_record_and_devices() {
        let mut config = map(&[
            (keys::DEPLOY_KEY_ID, "7"),
            (keys::USAGE, "{}"),
            ("user.sandbox.snapshot.turn-1", "{}"),
            (keys::DOMAINS_ALLOW, "x.example"),
            (keys::GOLDEN_BUILT_AT, "t"),
            (keys::SLOT, "3"),
            ("limits.cpu", "2"),
            ("volatile.uuid", "u"),
        ]);
        let mut devices = Devices::new();
        for d in ["eth0", "ports", "port-7000-tcp", "ssh-agent", "anthropic", "root"] {
            devices.insert(d.into(), map(&[("type", "x")]));
        }
        let mut req = InstancesPost { config: map(&[(keys::SLOT, "9")]), ..Default::default() };
        req.devices.insert("eth0".into(), map(&[("type", "nic")]));
        req.devices.insert("ports".into(), map(&[("type", "proxy")]));
        let (mut c2, mut d2) = (config.clone(), devices.clone());
        own_only(&mut config, &mut devices, &req, true);
        let keys: Vec<&str> = config.keys().map(String::as_str).collect();
        assert_eq!(keys, ["limits.cpu", keys::DOMAINS_ALLOW, keys::GOLDEN_BUILT_AT, keys::SLOT, "volatile.uuid"]);
        assert_eq!(devices.keys().map(String::as_str).collect::<Vec<_>>(), ["eth0", "ports", "root"]);
        assert_eq!(devices["eth0"]["type"], "nic");
        own_only(&mut c2, &mut d2, &req, false);
        assert!(!c2.contains_key(keys::DOMAINS_ALLOW), "a prepared image's copy keeps no allowlist of another");
    }
}
