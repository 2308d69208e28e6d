//! The gate's side of a sandbox's repository: a bare mirror on the host
//! (`~/.sandbox/gate/mirrors/NAME.git`) that the sandbox fetches from and pushes into, refreshed
//! from the server before every fetch, and git's SSH to the server with the sandbox's key — which
//! lives only in the sandbox's ssh-agent on the host, never plugged into the sandbox.
use std::path::{Path, PathBuf};
use std::process::Stdio;

use super::{Register, root};
use crate::engine::validate;

/// A push bigger than this is refused by receive-pack itself.
const MAX_PUSH: &str = "2g";

pub fn mirror_dir(name: &str) -> PathBuf {
    root().join("mirrors").join(format!("{name}.git"))
}

/// The commits this sandbox put on its branch through the gate (one id per line): what a
/// force-push of it may drop.
pub fn made_file(name: &str) -> PathBuf {
    mirror_dir(name).join("sandbox-made")
}

pub fn known_hosts_file() -> PathBuf {
    root().join("known_hosts")
}

pub fn hooks_dir() -> PathBuf {
    root().join("hooks")
}

/// `GIT_SSH_COMMAND` for the server: pinned host keys only, no user config, the agent's key.
pub fn ssh_command() -> String {
    format!(
        "ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile={} -o ConnectTimeout=20",
        validate::shell_single_quote(&known_hosts_file().display().to_string())
    )
}

/// `git ARGS…` on the host for a sandbox: its agent and the pinned hosts; no prompt, no config
/// of the user's that could change what happens.
pub fn git(reg: &Register) -> tokio::process::Command {
    let mut c = tokio::process::Command::new("git");
    c.env("SSH_AUTH_SOCK", &reg.agent)
        .env("GIT_SSH_COMMAND", ssh_command())
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("LC_ALL", "C")
        .stdin(Stdio::null());
    c
}

/// The bare mirror, made once: objects from the sandbox are checked, deletions refused, size
/// bounded. Also the pinned host keys the gate's ssh uses.
pub async fn ensure(name: &str, reg: &Register) -> Result<PathBuf, String> {
    let dir = mirror_dir(name);
    crate::paths::write_atomic(&known_hosts_file(), crate::engine::creds::known_hosts().as_bytes(), 0o600)
        .map_err(|e| format!("cannot write the gate's known hosts: {e}"))?;
    if dir.join("HEAD").is_file() {
        return Ok(dir);
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    run(git(reg).arg("init").arg("--quiet").arg("--bare").arg(&dir)).await?;
    for (k, v) in [
        ("receive.fsckObjects", "true"),
        ("receive.denyDeletes", "true"),
        ("receive.maxInputSize", MAX_PUSH),
        ("receive.advertisePushOptions", "false"),
        ("uploadpack.allowFilter", "true"),
        ("core.logAllRefUpdates", "false"),
    ] {
        run(git(reg).arg("--git-dir").arg(&dir).args(["config", k, v])).await?;
    }
    Ok(dir)
}

/// The mirror's branches and tags set to the server's (a fetch from the sandbox sees the server
/// as it is now).
pub async fn refresh(dir: &Path, reg: &Register) -> Result<(), String> {
    let mut c = git(reg);
    c.arg("--git-dir").arg(dir).args(["fetch", "--quiet", "--prune", "--no-write-fetch-head", "--", &reg.url]);
    c.args(["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"]);
    run(&mut c).await.map_err(|e| format!("the host could not fetch {} with the sandbox's key: {e}", reg.url))?;
    follow_head(dir, reg).await
}

/// The mirror's HEAD names the server's default branch (a clone checks it out, and `origin/HEAD`
/// comes from it); asked from the server only while HEAD names a branch the mirror lacks.
async fn follow_head(dir: &Path, reg: &Register) -> Result<(), String> {
    let head = git(reg).arg("--git-dir").arg(dir).args(["symbolic-ref", "HEAD"]).output().await;
    let target = head.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default();
    let exists = git(reg).arg("--git-dir").arg(dir).args(["rev-parse", "--verify", "--quiet", &target]).output().await;
    if exists.is_ok_and(|o| o.status.success()) {
        return Ok(());
    }
    let out = git(reg)
        .arg("--git-dir")
        .arg(dir)
        .args(["ls-remote", "--symref", "--", &reg.url, "HEAD"])
        .output()
        .await
        .map_err(|e| format!("cannot run git: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(branch) = text.lines().find_map(|l| l.strip_prefix("ref: ")?.strip_suffix("\tHEAD")) else {
        return Ok(()); // an empty repository: nothing to follow yet
    };
    if !branch.starts_with("refs/heads/") || validate::branch(&branch["refs/heads/".len()..]).is_err() {
        return Err(format!("the server's HEAD is {branch:?}"));
    }
    run(git(reg).arg("--git-dir").arg(dir).args(["symbolic-ref", "HEAD", branch])).await
}

async fn run(c: &mut tokio::process::Command) -> Result<(), String> {
    let out = c.stdout(Stdio::null()).output().await.map_err(|e| format!("cannot run git: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    Err(err.lines().filter(|l| !l.trim().is_empty()).take(4).collect::<Vec<_>>().join(" / "))
}
