//! The checkout of a sandbox that did not start from a clone: one copied from a prepared image
//! (the repository is there, with its dependencies: fetch and check out the branch on top) and a
//! fork (the other sandbox's working tree, uncommitted changes included: a new branch from it).
use super::{PROJECT, project_git};
use crate::engine::Engine;
use crate::error::{EngineError, Result};
use crate::progress::Progress;

/// At most this many `NAME-fork-N` names are tried.
const MAX_FORKS: u32 = 99;

impl Engine {
    async fn git_ok(&self, instance: &str, args: &[&str]) -> Result<(bool, String, String)> {
        let out = self.incus.exec(instance, &project_git(args)).await?;
        Ok((out.ok(), out.stdout_str(), out.stderr_str()))
    }

    async fn git_must(&self, instance: &str, args: &[&str]) -> Result<String> {
        let (ok, out, err) = self.git_ok(instance, args).await?;
        if !ok {
            return Err(EngineError::failed(format!("git {} failed: {}", args.join(" "), err.trim()), ""));
        }
        Ok(out)
    }

    /// A prepared image's checkout brought up to date: fetch, then `branch` from the remote (an
    /// existing one), or a new branch from `base`'s (another sandbox's, when the remote has it)
    /// or from the default branch; no `branch`: the default branch, as a fresh clone has it.
    /// Changes the setup made to the working tree (ignored files: dependencies) stay. Returns
    /// `base` when the new branch was made from it (as clone_repo).
    pub(crate) async fn update_checkout(
        &self,
        instance: &str,
        url: &str,
        branch: Option<&str>,
        base: Option<&str>,
        progress: &dyn Progress,
    ) -> Result<Option<String>> {
        self.pin_git_hosts(instance).await?;
        progress.step("Fetching the repository on top of the prepared image");
        // The image was cloned over a key; this sandbox may fetch through the push gate instead.
        self.git_must(instance, &["remote", "set-url", "--", "origin", url]).await?;
        self.git_must(instance, &["fetch", "--quiet", "--prune", "origin"]).await?;
        let head = self.git_must(instance, &["symbolic-ref", "--short", "refs/remotes/origin/HEAD"]).await?;
        let default = head.trim().to_string();
        let exists = |b: String| async move {
            let r = format!("refs/remotes/origin/{b}");
            self.git_ok(instance, &["rev-parse", "--verify", "--quiet", &r])
                .await
                .map(|o| o.0.then_some(format!("origin/{b}")))
        };
        let (name, start, made_from) = match branch {
            Some(b) => match exists(b.to_string()).await? {
                Some(remote) => (b.to_string(), remote, None),
                None => {
                    let from = match base {
                        Some(x) => exists(x.to_string()).await?,
                        None => None,
                    };
                    let made_from = from.as_ref().and(base).map(str::to_owned);
                    (b.to_string(), from.unwrap_or_else(|| default.clone()), made_from)
                }
            },
            None => (default.trim_start_matches("origin/").to_string(), default.clone(), None),
        };
        progress.step(&format!("Checking out branch {name} ({start})"));
        self.git_must(instance, &["-c", "advice.detachedHead=false", "checkout", "--quiet", "-B", &name, &start, "--"])
            .await?;
        Ok(made_from)
    }

    /// A fork's branch: `wanted`, or `FROM-fork-N` (the first N free in the checkout and among
    /// `taken`, the other sandboxes' branches), made from what is checked out — the working tree
    /// comes along as it is. None when the sandbox has no checkout.
    pub(crate) async fn fork_branch(
        &self,
        instance: &str,
        from: &str,
        wanted: Option<&str>,
        taken: &[String],
        progress: &dyn Progress,
    ) -> Result<Option<String>> {
        let (has_repo, ..) = self.git_ok(instance, &["rev-parse", "--git-dir"]).await?;
        if !has_repo {
            if wanted.is_some() {
                return Err(EngineError::failed(format!("'{from}' has no git checkout in {PROJECT}"), "drop --branch"));
            }
            return Ok(None);
        }
        let candidates: Vec<String> = match wanted {
            Some(w) => vec![w.to_string()],
            None => (1..=MAX_FORKS).map(|n| format!("{from}-fork-{n}")).collect(),
        };
        for b in candidates {
            let local = format!("refs/heads/{b}");
            if taken.contains(&b) || self.git_ok(instance, &["rev-parse", "--verify", "--quiet", &local]).await?.0 {
                if wanted.is_some() {
                    return Err(EngineError::Conflict {
                        what: format!("branch '{b}'"),
                        hint: "give another --branch, or drop it for FROM-fork-N".into(),
                    });
                }
                continue;
            }
            progress.step(&format!("Creating branch {b} from {from}'s checkout"));
            self.git_must(instance, &["checkout", "--quiet", "-b", &b, "--"]).await?;
            return Ok(Some(b));
        }
        Err(EngineError::failed(format!("{from}-fork-1 … {from}-fork-{MAX_FORKS} are all taken"), "give --branch B"))
    }
}
