//! Repositories and credentials: a deploy key per sandbox (or the user's own key), held by a
//! host-side ssh-agent the sandbox can use but never read, and the clone into
//! /workspace/project. Private keys stay on the host; the sandbox gets a socket.
pub mod agent;
mod checkout;
pub mod github;
pub mod repo;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::rollback::Rollback;
use super::{Engine, keys, sshcfg};
use crate::error::{EngineError, Result};
use crate::incus::{ExecSpec, FileWrite, Instance};
use crate::paths::sandbox_home;
use crate::progress::Progress;
pub use repo::RepoRef;

/// The Incus device that carries the agent's socket into the sandbox.
pub const AGENT_DEVICE: &str = "ssh-agent";
/// Where the socket appears inside (seed convention; /etc/profile.d/sandbox-agent.sh exports it).
pub const AGENT_SOCKET: &str = "/run/ssh-agent.sock";
pub const PROJECT: &str = "/workspace/project";

/// github.com's published host keys (docs.github.com, "GitHub's SSH key fingerprints").
pub const GITHUB_KNOWN_HOSTS: &str = "\
github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl
github.com ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBEmKSENjQEezOmxkZMy7opKgwFB9nkt5YRrYMjNuG5N87uRgg6CLrbo5wAdT/y6v0mKV0U2w0WZ2YB/++Tpockg=
github.com ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABgQCj7ndNxQowgcQnjshcLrqPEiiphnt+VTTvDP6mHBL9j1aNUkY4Ue1gvwnGLVlOhGeYrnZaMgRK6+PKCUXaDbC7qtbW8gIkhL7aGCsOr/C56SJMy/BCZfxd1nWzAOxSDPgVsmerOBYfNqltV9/hWCqBywINIR+5dIg6JTJ72pcEpEjcYgXkE2YEFXV1JHnsKgbLWNlhScqb2UmyRkQyytRLtL+38TGxkxCflmO+5Z8CSSNY7GidjMIZ7Q4zMjA2n1nGrlTDkzwDCsw+wqFPGQA179cnfGWOWRVruj16z6XyvxvjJwbz0wQZ75XK5tKSb7FNyeIEs4TT4jk+S4dhPeAUC5y+bDYirYgM4GC7uEnztnZyaVWQ7B381AK4Qdrwt51ZqExKbQpTUNn+EjqoTwvqNj4kqx5QUCI0ThS/YkOxJCXmPUWZbhjpCg56i+2aB6CmK2JGhn57K5mj0MNdBXA4/WnwH6XoPWJzK5Nyu2zB3nAZp+S5hpQs+p1vN1/wsjk=
";

/// The deploy key pair on the host (seed-compatible): `~/.sandbox/keys/deploy_NAME` (+ `.pub`).
pub fn deploy_key_path(name: &str) -> PathBuf {
    sandbox_home().join("keys").join(format!("deploy_{name}"))
}

/// The title the key has on GitHub.
pub fn key_title(name: &str) -> String {
    format!("sandbox-{name}")
}

/// Host keys the sandbox trusts for git: github.com's, plus `~/.sandbox/git_known_hosts` (yours:
/// GitHub Enterprise and other servers; known_hosts format).
pub fn git_known_hosts_path() -> PathBuf {
    sandbox_home().join("git_known_hosts")
}

/// What `/etc/ssh/ssh_known_hosts` holds in sandboxes (and the host's own checks use).
pub(crate) fn known_hosts() -> String {
    let mut s =
        String::from("# Written by Agent Sandboxes: github.com's published keys, then ~/.sandbox/git_known_hosts.\n");
    s.push_str(GITHUB_KNOWN_HOSTS);
    if let Ok(extra) = std::fs::read_to_string(git_known_hosts_path()) {
        s.push_str(&extra);
        if !extra.ends_with('\n') {
            s.push('\n');
        }
    }
    s
}

/// git in the sandbox as ubuntu, over the agent, with pinned host keys only (an unknown or changed
/// key fails, never accept-new).
pub(crate) fn git<'a>(args: impl IntoIterator<Item = &'a str>) -> ExecSpec {
    ExecSpec::new(std::iter::once("git").chain(args))
        .as_user(1000, 1000, "/home/ubuntu")
        .env("USER", "ubuntu")
        .env("SSH_AUTH_SOCK", AGENT_SOCKET)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes -o StrictHostKeyChecking=yes")
}

/// `git` in the project.
pub(crate) fn project_git(args: &[&str]) -> ExecSpec {
    git(["-C", PROJECT].into_iter().chain(args.iter().copied()))
}

/// Where the key the agent loads comes from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// A new deploy key registered on the repository.
    Deploy { read_only: bool },
    /// The user's own private key (loaded into the agent, never copied).
    User(PathBuf),
}

/// A GitHub token, kept out of Debug output and logs.
#[derive(Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Token(pub Option<String>);
impl Token {
    pub fn is_none(&self) -> bool {
        self.0.is_none()
    }
}
impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Token(***)" } else { "Token(None)" })
    }
}

/// The unix-socket proxy: the host agent's socket at /run/ssh-agent.sock, owned by ubuntu.
pub fn agent_device(host_socket: &Path) -> BTreeMap<String, String> {
    [
        ("type", "proxy".to_string()),
        ("bind", "instance".into()),
        ("listen", format!("unix:{AGENT_SOCKET}")),
        ("connect", format!("unix:{}", host_socket.display())),
        ("uid", "1000".into()),
        ("gid", "1000".into()),
        ("mode", "0600".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// A directory only we can read (the keys, the agents' sockets).
pub(crate) fn private_dir(d: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(d)
        .and_then(|_| std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700)))
        .map_err(|e| EngineError::failed(format!("cannot create {}: {e}", d.display()), "check ~/.sandbox"))
}

fn remove_file(p: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(anyhow::anyhow!("remove {}: {e}", p.display())),
        _ => Ok(()),
    }
}

pub(crate) fn remove_key_pair(name: &str) -> anyhow::Result<()> {
    let p = deploy_key_path(name);
    remove_file(&p)?;
    remove_file(&p.with_extension("pub"))
}

/// Names that have a deploy key pair (or half of one) in ~/.sandbox/keys.
pub fn key_pair_names() -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(sandbox_home().join("keys")) else { return Vec::new() };
    let mut v: Vec<String> = rd
        .flatten()
        .filter_map(|e| {
            let f = e.file_name().to_str()?.strip_prefix("deploy_")?.to_owned();
            Some(f.strip_suffix(".pub").map(str::to_owned).unwrap_or(f))
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

/// The agent's private key for an existing sandbox: its `--ssh-key`, else its deploy key.
fn key_for(name: &str, inst: &Instance) -> PathBuf {
    match inst.setting(keys::SSH_KEY) {
        Some(p) => PathBuf::from(p),
        None => deploy_key_path(name),
    }
}

impl Engine {
    /// Create, before the instance exists: the key (made and registered, or the user's) and the
    /// agent. Every step registers its undo. Returns config keys to store.
    pub(crate) async fn prepare_credentials(
        &self,
        name: &str,
        repo: &RepoRef,
        source: &KeySource,
        token: &Token,
        progress: &dyn Progress,
        rb: &mut Rollback,
    ) -> Result<Vec<(String, String)>> {
        let mut config = Vec::new();
        let key_path = match source {
            KeySource::User(p) => p.clone(),
            KeySource::Deploy { read_only } => {
                // Token first: without one nothing else is worth doing.
                let purpose = format!("to register the deploy key of '{name}' on {}", repo.slug());
                let token = github::token(&self.host, token.0.as_deref(), &purpose).await.map_err(|e| match e {
                    EngineError::Failed { message, hint } => EngineError::Failed {
                        message,
                        hint: format!("{hint}; or use --ssh-key PATH (a key of your own)"),
                    },
                    e => e,
                })?;
                let gh = github::GitHub::new(repo, &token)?;
                progress.step(&format!("Making deploy key {} for {}", key_title(name), repo.slug()));
                let (private, public) = sshcfg::generate_ed25519(&key_title(name))?;
                let path = deploy_key_path(name);
                private_dir(path.parent().expect("keys dir"))?;
                {
                    let n = name.to_string();
                    rb.push(format!("remove key pair of {n}"), async move { remove_key_pair(&n) });
                }
                crate::paths::write(&path, private.as_bytes(), 0o600)?;
                crate::paths::write(&path.with_extension("pub"), format!("{public}\n").as_bytes(), 0o644)?;
                let title = key_title(name);
                let id = gh.add(&title, &public, *read_only).await?;
                {
                    let gh = gh.clone();
                    rb.push(format!("delete deploy key {id} on {}", repo.slug()), async move {
                        gh.delete(id).await.map_err(|e| anyhow::anyhow!("{e}"))
                    });
                }
                config.push((keys::DEPLOY_KEY_ID.to_string(), id.to_string()));
                config.push((keys::DEPLOY_KEY_READ_ONLY.to_string(), read_only.to_string()));
                path
            }
        };
        if self.fault("after-register") {
            return Err(EngineError::failed("injected failure after registering the key (SANDBOX_FAULT)", ""));
        }
        progress.step("Starting the sandbox's ssh-agent on the host");
        {
            let n = name.to_string();
            rb.push(format!("stop ssh-agent of {n}"), async move { Ok(agent::stop(&n).await?) });
        }
        agent::fresh(&self.host, name, &key_path).await?;
        Ok(config)
    }

    /// Plugs the agent's socket into a running sandbox. It is plugged after boot: a socket made
    /// before systemd mounts /run would be hidden under that mount.
    pub(crate) async fn plug_agent(&self, name: &str, instance: &str) -> Result<()> {
        let inst = self.incus.instance(instance).await?;
        if inst.devices.contains_key(AGENT_DEVICE) {
            self.incus.remove_devices(instance, &[AGENT_DEVICE]).await?;
        }
        let mut devices = crate::incus::Devices::new();
        devices.insert(AGENT_DEVICE.into(), agent_device(&agent::socket_path(name)));
        self.incus.patch_instance(instance, crate::incus::Config::new(), devices).await?;
        Ok(())
    }

    /// Restart (and `start` of a running sandbox): the agent answers again, with its key.
    /// Returns whether the sandbox uses one.
    pub(crate) async fn revive_agent(&self, name: &str, inst: &Instance) -> Result<bool> {
        if inst.setting(keys::AGENT) != Some("yes") {
            return Ok(false);
        }
        let key = key_for(name, inst);
        if !key.is_file() {
            return Err(EngineError::failed(
                format!("the key of sandbox '{name}' ({}) is missing", key.display()),
                "its agent cannot start without it; recreate the sandbox (`sandbox rm` then `sandbox start`)",
            ));
        }
        agent::ensure(&self.host, name, &key).await?;
        Ok(true)
    }

    /// The host keys git in the sandbox trusts (github.com's and ~/.sandbox/git_known_hosts).
    pub(crate) async fn pin_git_hosts(&self, instance: &str) -> Result<()> {
        let f = FileWrite::root("/etc/ssh/ssh_known_hosts", known_hosts(), 0o644);
        Ok(self.incus.push_file(instance, &f).await?)
    }

    /// Writes the pinned host keys and clones the repository as ubuntu from `url` (the server
    /// over the agent, or the push gate); checks out
    /// `branch` (existing on the remote) or creates it from `base` (when the remote has it) or HEAD.
    /// Returns `base` when the new branch was made from it.
    pub(crate) async fn clone_repo(
        &self,
        instance: &str,
        repo: &RepoRef,
        url: &str,
        branch: Option<&str>,
        base: Option<&str>,
        progress: &dyn Progress,
    ) -> Result<Option<String>> {
        self.pin_git_hosts(instance).await?;
        progress.step(&format!("Cloning {} into {PROJECT}", repo.slug()));
        let out = self.incus.exec(instance, &git(["clone", "--quiet", "--", url, PROJECT])).await?;
        if !out.ok() {
            let err = out.stderr_str();
            let hint = if err.contains("Host key verification failed")
                || err.contains("No ") && err.contains("host key is known")
            {
                format!(
                    "the sandbox does not know {}'s host key: add it to {} (known_hosts format; check its fingerprint)",
                    repo.known_hosts_name(),
                    git_known_hosts_path().display()
                )
            } else if err.contains("Permission denied") {
                "the server refused the key: is it registered on the repository?".to_string()
            } else {
                "check the repository URL and that the server is reachable from the sandbox".to_string()
            };
            return Err(EngineError::failed(format!("git clone {url} failed: {}", err.trim()), hint));
        }
        if let Some(b) = branch {
            let p = project_git;
            let remote = format!("refs/remotes/origin/{b}");
            let exists = self.incus.exec(instance, &p(&["rev-parse", "--verify", "--quiet", &remote])).await?.ok();
            let mut from_base = None;
            let spec = if exists {
                progress.step(&format!("Checking out branch {b}"));
                p(&["checkout", "--quiet", b, "--"])
            } else {
                let start = match base.map(|x| format!("origin/{x}")) {
                    Some(s) if self.incus.exec(instance, &p(&["rev-parse", "--verify", "--quiet", &s])).await?.ok() => {
                        Some(s)
                    }
                    _ => None,
                };
                progress.step(&format!(
                    "Creating branch {b}{}",
                    start.as_deref().map(|s| format!(" from {s}")).unwrap_or_default()
                ));
                let mut args = vec!["checkout", "--quiet", "-b", b];
                if let Some(s) = &start {
                    args.push(s);
                    from_base = base.map(str::to_owned);
                }
                args.push("--");
                p(&args)
            };
            let out = self.incus.exec(instance, &spec).await?;
            if !out.ok() {
                return Err(EngineError::failed(format!("git checkout {b} failed: {}", out.stderr_str().trim()), ""));
            }
            return Ok(from_base);
        }
        Ok(None)
    }

    /// rm: the key on GitHub (by stored id; by title/key for seed sandboxes), then — once the
    /// instance is gone — the agent and the local key pair. GitHub first: if it fails, nothing is
    /// removed and rm can be retried.
    pub(crate) async fn forget_remote_key(&self, name: &str, inst: &Instance, token: &Token) -> Result<()> {
        let id = inst.setting(keys::DEPLOY_KEY_ID).and_then(|v| v.parse().ok());
        self.forget_deploy_key(name, inst.setting(keys::REPO), id, token).await
    }

    /// The deploy key of NAME on `repo_url`: by id, else by title and the local public key (a
    /// create killed before it learnt the id). Nothing to do without a repository or a key.
    pub(crate) async fn forget_deploy_key(
        &self,
        name: &str,
        repo_url: Option<&str>,
        id: Option<u64>,
        token: &Token,
    ) -> Result<()> {
        let Some(url) = repo_url else { return Ok(()) };
        let local_pub = std::fs::read_to_string(deploy_key_path(name).with_extension("pub")).ok();
        if id.is_none() && local_pub.is_none() {
            return Ok(()); // the user's own key, or no key at all
        }
        let Ok(repo) = RepoRef::parse(url) else { return Ok(()) };
        let purpose = format!("to delete the deploy key of '{name}' on {}; the sandbox was kept", repo.slug());
        let token = github::token(&self.host, token.0.as_deref(), &purpose).await?;
        let gh = github::GitHub::new(&repo, &token)?;
        match id {
            Some(id) => gh.delete(id).await,
            None => gh.delete_matching(&key_title(name), local_pub.as_deref()).await.map(|_| ()),
        }
    }

    /// rm/stop, host side: the agent (and on rm the local key pair).
    pub(crate) async fn drop_local_credentials(&self, name: &str, remove_keys: bool) -> Result<()> {
        agent::stop(name).await?;
        if remove_keys {
            remove_key_pair(name).map_err(|e| EngineError::failed(format!("{e:#}"), "check ~/.sandbox/keys"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pinned keys are GitHub's: their SHA256 fingerprints as GitHub publishes them.
    #[test]
    fn github_host_keys_match_published_fingerprints() {
        let want = [
            "SHA256:+DiY3wvvV6TuJJhbpZisF/zLDA0zPMSvHdkr4UvCOqU",
            "SHA256:p2QAMXNIC1TJYWeIOttrVc98/R1BUFWu3/LiyKgUfQM",
            "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s",
        ];
        for (line, fp) in GITHUB_KNOWN_HOSTS.lines().zip(want) {
            let key = line.split_once(' ').unwrap().1;
            let k = ssh_key::PublicKey::from_openssh(key).unwrap();
            assert_eq!(k.fingerprint(ssh_key::HashAlg::Sha256).to_string(), fp, "{line}");
        }
    }

    #[test]
    fn agent_device_is_a_unix_proxy_owned_by_ubuntu() {
        let d = agent_device(Path::new("/x/agents/a.sock"));
        assert_eq!(d["listen"], "unix:/run/ssh-agent.sock");
        assert_eq!(d["connect"], "unix:/x/agents/a.sock");
        assert_eq!((d["uid"].as_str(), d["mode"].as_str(), d["bind"].as_str()), ("1000", "0600", "instance"));
    }
}
