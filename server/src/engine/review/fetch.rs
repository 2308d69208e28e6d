//! `sandbox fetch NAME`: the sandbox's branch into the user's own clone, through the sandbox's SSH
//! entry — no GitHub, no push from the sandbox. In that clone only the remote `sandbox-NAME` and
//! its remote-tracking refs change: never the working tree, the index or a branch.
//!
//! Runs git here, where the user's clone is (the sandbox's SSH port reaches this machine, through
//! the entry's ProxyJump for a remote server). What the sandbox sends is checked (fsck) before it
//! is stored.
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::git::Git;
use super::running;
use crate::engine::{Engine, keys, sshcfg, validate};
use crate::error::{EngineError, Result};
use crate::progress::Progress;

#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub struct FetchResult {
    /// The remote added or updated in the user's clone (`sandbox-NAME`).
    pub remote: String,
    pub branch: String,
    /// Where it landed: `refs/remotes/sandbox-NAME/BRANCH`.
    pub r#ref: String,
    pub commit: String,
    /// The clone's top directory.
    pub directory: String,
    /// Changed files in the sandbox's working tree that are not committed, so not fetched.
    pub uncommitted: u32,
}

/// `git ARGS…` in `dir` on this machine; stdout, or an error with git's message.
async fn host_git(dir: &Path, args: &[&str], env: &[(&str, String)]) -> Result<String> {
    let mut cmd = tokio::process::Command::new("git");
    cmd.arg("-C").arg(dir).args(args).env("GIT_TERMINAL_PROMPT", "0").env("LC_ALL", "C");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| EngineError::failed(format!("cannot run git: {e}"), "install git on this machine"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(EngineError::failed(format!("git {} failed: {}", args[0], err.trim()), ""));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The top of the git working tree `dir` is in, or a clear refusal.
async fn toplevel(dir: &Path) -> Result<PathBuf> {
    let out = tokio::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "--show-toplevel"])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| EngineError::failed(format!("cannot run git: {e}"), "install git on this machine"))?;
    if !out.status.success() {
        return Err(EngineError::invalid(
            "directory",
            format!("{} is not inside a git repository (with a working tree)", dir.display()),
            "run it in your local clone of the repository (or open that folder in VS Code)",
        ));
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

impl Engine {
    pub async fn fetch(&self, name: &str, dir: &Path, progress: &dyn Progress) -> Result<FetchResult> {
        validate::sandbox_name(name)?;
        let top = toplevel(dir).await?;
        let inst = running(self, name).await?;
        let git = Git { incus: &self.incus, instance: &inst.name, name };
        let (head, dirty) = futures::future::try_join(
            git.ok(&["rev-parse", "--abbrev-ref", "HEAD"]),
            git.ok(&["status", "--porcelain", "-z", "--untracked-files=all"]),
        )
        .await?;
        let head = String::from_utf8_lossy(&head).trim().to_string();
        let branch = match validate::branch(&head) {
            Ok(b) if b != "HEAD" => b,
            _ => inst.setting(keys::BRANCH).map(str::to_owned).ok_or_else(|| {
                EngineError::failed(
                    format!("the checkout in sandbox '{name}' is not on a branch"),
                    "check out a branch in the sandbox first",
                )
            })?,
        };
        let remote = sshcfg::host_alias(name);
        let url = format!("{remote}:{}", crate::engine::creds::PROJECT);
        set_remote(&top, &remote, &url).await?;
        progress.step(&format!("Fetching {branch} from sandbox {name} into {}", top.display()));
        let tracking = format!("refs/remotes/{remote}/{branch}");
        let refspec = format!("+refs/heads/{branch}:{tracking}");
        let ssh = format!(
            "ssh -F {} -o BatchMode=yes",
            validate::shell_single_quote(&sshcfg::config_path().display().to_string())
        );
        let args = ["-c", "fetch.fsckObjects=true", "fetch", "--no-tags", "--no-recurse-submodules", "--quiet"];
        let mut argv: Vec<&str> = args.to_vec();
        argv.extend([remote.as_str(), refspec.as_str()]);
        host_git(&top, &argv, &[("GIT_SSH_COMMAND", ssh)]).await.map_err(|e| match e {
            EngineError::Failed { message, .. } => EngineError::failed(
                message,
                format!(
                    "is sandbox '{name}' reachable? `ssh -F {} {name} true` should work",
                    sshcfg::config_path().display()
                ),
            ),
            e => e,
        })?;
        let commit = host_git(&top, &["rev-parse", "--verify", &tracking], &[]).await?;
        let uncommitted = dirty.split(|b| *b == 0).filter(|e| e.len() > 3).count() as u32;
        Ok(FetchResult { remote, branch, r#ref: tracking, commit, directory: top.display().to_string(), uncommitted })
    }
}

/// Adds the remote, or points an existing one of that name at the sandbox again.
async fn set_remote(top: &Path, remote: &str, url: &str) -> Result<()> {
    let key = format!("remote.{remote}.url");
    let have = host_git(top, &["config", "--get", &key], &[]).await.ok();
    match have.as_deref() {
        Some(u) if u == url => Ok(()),
        Some(_) => host_git(top, &["remote", "set-url", remote, url], &[]).await.map(|_| ()),
        None => host_git(top, &["remote", "add", remote, url], &[]).await.map(|_| ()),
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn outside_a_repository_is_refused_clearly() {
        let d = tempfile::tempdir().unwrap();
        let e = super::toplevel(d.path()).await.unwrap_err();
        assert!(e.to_string().contains("not inside a git repository"), "{e}");
        assert!(e.hint().unwrap().contains("local clone"));
    }
}
