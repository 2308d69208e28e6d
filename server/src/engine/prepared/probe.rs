//! At `start`: which lockfiles the requested branch has now, read on the host without a checkout —
//! a shallow, blob-less fetch of that one commit into a scratch repository, authenticated by the
//! new sandbox's own agent (its key never leaves it) with the host keys pinned as in sandboxes.
//! Only object ids are read (`git ls-tree`), so a large repository costs one commit's trees.
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::key::{self, Entry};
use crate::engine::creds::RepoRef;
use crate::error::{EngineError, Result};

/// The commit a ref points at, and its keyed files.
pub struct Probed {
    pub commit: String,
    /// The ref that existed (the requested branch, the branch it starts from, or HEAD).
    pub found: String,
    pub files: Vec<Entry>,
}

/// Scratch repositories live under ~/.sandbox/cache and go when done.
struct Scratch(PathBuf);
impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Fetches the first of `refs` (branch names, or "HEAD") that the repository has.
pub async fn probe(repo: &RepoRef, agent_sock: &Path, refs: &[String]) -> Result<Probed> {
    let dir = crate::paths::sandbox_home().join("cache").join(format!("probe-{:08x}", rand::random::<u32>()));
    let scratch = Scratch(dir.clone());
    std::fs::create_dir_all(&dir).map_err(|e| EngineError::failed(format!("{}: {e}", dir.display()), ""))?;
    let known = dir.join("known_hosts");
    crate::paths::write(&known, crate::engine::creds::known_hosts().as_bytes(), 0o600)?;
    let git_dir = dir.join("repo.git");
    git(&git_dir, agent_sock, &known, &["init", "--quiet", "--bare", &git_dir.display().to_string()]).await?;
    let url = repo.ssh_url();
    let mut last = String::new();
    for r in refs {
        let want = if r == "HEAD" { "HEAD".to_string() } else { format!("refs/heads/{r}") };
        let args = ["fetch", "--quiet", "--no-tags", "--depth=1", "--filter=blob:none", "--", &url, &want];
        let out = git(&git_dir, agent_sock, &known, &args).await?;
        if out.0 {
            let commit = git(&git_dir, agent_sock, &known, &["rev-parse", "FETCH_HEAD"]).await?.1.trim().to_string();
            let mut listing = git(&git_dir, agent_sock, &known, &["ls-tree", &commit]).await?.1;
            listing
                .push_str(&git(&git_dir, agent_sock, &known, &["ls-tree", &commit, "--", key::SETUP_SCRIPT]).await?.1);
            drop(scratch);
            return Ok(Probed { commit, found: r.clone(), files: key::entries(&listing) });
        }
        last = out.2;
        if !last.contains("couldn't find remote ref") {
            break;
        }
    }
    Err(EngineError::failed(format!("git fetch {url} on the host failed: {}", last.trim()), ""))
}

/// Runs git on the host for the probe: (success, stdout, stderr). No user or system config (a
/// URL rewrite there must not send the fetch elsewhere), no prompt, bounded in time.
async fn git(git_dir: &Path, agent: &Path, known: &Path, args: &[&str]) -> Result<(bool, String, String)> {
    // git runs this through a shell: the paths go in quoted.
    let q = |p: &Path| crate::engine::validate::shell_single_quote(&p.display().to_string());
    let ssh = format!(
        "ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile={} \
         -o GlobalKnownHostsFile=/dev/null -o IdentityAgent={} -o ConnectTimeout=10",
        q(known),
        q(agent)
    );
    let mut cmd = tokio::process::Command::new("git");
    if args.first() != Some(&"init") {
        cmd.arg("--git-dir").arg(git_dir);
    }
    cmd.args(args)
        .env("GIT_SSH_COMMAND", ssh)
        .env("SSH_AUTH_SOCK", agent)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .map_err(|_| EngineError::failed("git on the host took over 60 s", ""))?
        .map_err(|e| EngineError::failed(format!("cannot run git on the host: {e}"), "install git on the host"))?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}
