//! `sandbox start` of an existing sandbox: a stopped one is started again with its egress policy,
//! agent and ssh entry back in place (and new limits or `--env` applied); a running one gets its
//! policy and agent checked (after a host reboot, or an outside `incus start`).
use std::time::Duration;

use super::create::{CreateOptions, StartAction, Validated, env_digest, env_script, merge_env, user_env};
use super::golden::BRIDGE;
use super::sandbox::{self, Egress, Sandbox};
use super::{Engine, creds, hostnet, keys, lock, sshcfg};
use crate::error::{EngineError, Result};
use crate::incus::{Config, Devices, FileWrite, Instance};
use crate::progress::Progress;

const ENV_FILE: &str = "/etc/profile.d/sandbox-env.sh";

impl Engine {
    pub(super) async fn restart(
        &self,
        o: &CreateOptions,
        v: &Validated,
        s: Sandbox,
        progress: &dyn Progress,
    ) -> Result<(StartAction, Sandbox)> {
        refuse_immutable(o, &s)?;
        let mut inst = self.incus.instance(&s.instance).await?;
        if let Some(c) = v.cpu {
            self.check_cpus(c, s.location.as_deref()).await?;
        }
        if o.allow_quic && inst.setting(keys::ALLOW_QUIC) != Some("yes") {
            // Like the policy itself, in force for a running sandbox too (re-registered below).
            let restricted = s.egress == Egress::Filtered || o.restrict_domains || o.domains_file.is_some();
            crate::engine::egress::check_quic(true, restricted)?;
            let mut c = Config::new();
            c.insert(keys::ALLOW_QUIC.into(), "yes".into());
            self.incus.patch_instance(&s.instance, c, Devices::new()).await?;
        }
        if let Some(k) = &v.ssh_key {
            inst = self.switch_agent_key(&s, k, progress).await?;
        }
        self.repair(&s, &inst, progress).await?;
        // The agent answers again (after a reboot, or if it was killed), with the same key; with
        // the push gate it stays on the host, and the gate's endpoint answers again.
        let uses_agent = self.revive_agent(&s.name, &inst).await? && !crate::engine::gate::gated(&inst);
        if !s.is_running() {
            // Its Claude Code sessions ended with it (also when the host went down).
            super::agents::reset(&self.incus, &s.instance, &inst.config).await?;
        }
        self.anthropic_revive(&s.name, &inst, s.is_running()).await?;
        if s.is_running() {
            self.recheck_running(&s, uses_agent, v.ssh_key.is_some(), progress).await?;
            // Reachable, or it says why: a running sandbox is not "started" otherwise.
            self.ssh_entry_and_wait(&s, &inst, progress).await?;
            return Ok((StartAction::Running, s));
        }
        let inst = self.incus.instance(&s.instance).await?;
        if inst.devices.contains_key(creds::AGENT_DEVICE) {
            // Plugged again after boot (see plug_agent).
            self.incus.remove_devices(&s.instance, &[creds::AGENT_DEVICE]).await?;
        }
        let env_pairs = self.apply_settings(o, v, &s, &inst, progress).await?;
        self.write_environment(&s, &inst, &env_pairs, &v.env).await?;
        hostnet::ensure(&self.host, BRIDGE).await?;
        let restricted = s.egress == Egress::Filtered || o.restrict_domains || o.domains_file.is_some();
        self.start_stopped(&s, restricted, progress).await?;
        self.ssh_entry_and_wait(&s, &inst, progress).await?;
        if uses_agent {
            progress.step("Carrying the agent's socket into the sandbox");
            self.plug_agent(&s.name, &s.instance).await?;
        }
        let s = sandbox::get(&self.incus, &s.name).await?.ok_or_else(|| EngineError::failed("sandbox vanished", ""))?;
        Ok((StartAction::Restarted, s))
    }

    /// `--ssh-key` on restart: the agent is started again with that key (never copied).
    async fn switch_agent_key(&self, s: &Sandbox, key: &std::path::Path, progress: &dyn Progress) -> Result<Instance> {
        progress.step("Switching the sandbox's agent to your key");
        let mut c = Config::new();
        c.insert(keys::SSH_KEY.into(), key.display().to_string());
        c.insert(keys::AGENT.into(), "yes".into());
        self.incus.patch_instance(&s.instance, c, Devices::new()).await?;
        creds::agent::stop(&s.name).await?;
        Ok(self.incus.instance(&s.instance).await?)
    }

    /// Running already: its rules are re-applied (after a host reboot they are gone while Incus
    /// may have started the sandbox by itself), and a socket plugged at boot — hidden under /run —
    /// is plugged again when the sandbox cannot see it.
    async fn recheck_running(
        &self,
        s: &Sandbox,
        uses_agent: bool,
        new_key: bool,
        progress: &dyn Progress,
    ) -> Result<()> {
        self.egress_register(&s.name).await?;
        if !uses_agent {
            return Ok(());
        }
        let mut probe = [s.clone()];
        sandbox::probe_health(&self.incus, &mut probe).await;
        if new_key || !probe[0].health.as_ref().is_some_and(|h| h.ssh_agent) {
            progress.step("Carrying the agent's socket into the sandbox");
            self.plug_agent(&s.name, &s.instance).await?;
        }
        Ok(())
    }

    /// New limits, egress settings and `--env` (added to, or replacing, what it was created
    /// with). Returns the sandbox's `--env` pairs from now on.
    async fn apply_settings(
        &self,
        o: &CreateOptions,
        v: &Validated,
        s: &Sandbox,
        inst: &Instance,
        progress: &dyn Progress,
    ) -> Result<Vec<(String, String)>> {
        let mut config = Config::new();
        if let Some(c) = v.cpu {
            config.insert("limits.cpu".into(), c.to_string());
        }
        if let Some(m) = &v.memory {
            config.insert("limits.memory".into(), m.clone());
        }
        let mut devices = Devices::new();
        if let Some(d) = &v.disk {
            devices.insert("root".into(), super::create::root_disk(d));
        }
        if o.restrict_domains || o.domains_file.is_some() {
            config.insert(keys::RESTRICT_DOMAINS.into(), "yes".into());
        }
        if let Some(n) = o.checkpoints {
            config.insert(keys::CHECKPOINT_KEEP.into(), n.to_string());
        }
        if let Some(f) = &o.domains_file {
            config.insert(keys::DOMAINS_FILE.into(), f.display().to_string());
        }
        let stored: Vec<(String, String)> =
            inst.setting(keys::ENV).and_then(|j| serde_json::from_str(j).ok()).unwrap_or_default();
        let env_pairs = merge_env(stored, &v.env);
        crate::engine::validate::env_list(&merge_env(user_env()?, &env_pairs))?;
        if !v.env.is_empty() {
            config.insert(keys::ENV.into(), serde_json::to_string(&env_pairs).unwrap_or_default());
        }
        if !config.is_empty() || !devices.is_empty() {
            progress.step("Applying new settings");
            self.incus.patch_instance(&s.instance, config, devices).await?;
        }
        Ok(env_pairs)
    }

    /// The environment file. Ours: rewritten only when it changed (a files-API call leaves Incus's
    /// file helper running for a while, and a start right after it waits up to a second for it).
    /// The seed's: `--env` appended, as the seed does, but quoted.
    async fn write_environment(
        &self,
        s: &Sandbox,
        inst: &Instance,
        env_pairs: &[(String, String)],
        added: &[(String, String)],
    ) -> Result<()> {
        if s.managed {
            let script = env_script(&merge_env(user_env()?, env_pairs));
            let digest = env_digest(&script);
            if inst.setting(keys::ENV_DIGEST) != Some(digest.as_str()) {
                self.incus.push_file(&s.instance, &FileWrite::root(ENV_FILE, script, 0o644)).await?;
                let mut c = Config::new();
                c.insert(keys::ENV_DIGEST.into(), digest);
                self.incus.patch_instance(&s.instance, c, Devices::new()).await?;
            }
        } else if !added.is_empty() {
            let mut cur = self.incus.pull_file(&s.instance, ENV_FILE).await.unwrap_or_default();
            cur.extend_from_slice(env_script(added).as_bytes());
            self.incus.push_file(&s.instance, &FileWrite::root(ENV_FILE, cur, 0o644)).await?;
        }
        Ok(())
    }

    /// As on create: the policy goes in while it boots (fail closed until then). On failure it is
    /// back where it was: stopped, with no rules.
    async fn start_stopped(&self, s: &Sandbox, restricted: bool, progress: &dyn Progress) -> Result<()> {
        progress.step(&format!("Starting {} and applying its egress policy", s.instance));
        if restricted {
            self.egress_prepare(&s.name).await?;
        }
        let (policy, started) =
            futures::future::join(self.egress_register(&s.name), self.incus.start(&s.instance)).await;
        if policy.is_ok() && started.is_ok() {
            return Ok(());
        }
        if started.is_ok() {
            let _ = self.incus.stop(&s.instance, true).await;
        }
        let _ = self.egress_unregister(&s.name).await;
        Err(match started {
            Err(e) => e.into(),
            Ok(()) => policy.expect_err("one of them failed"),
        })
    }

    /// The ssh entry (from the stored host key, or — seed sandboxes — read from the sandbox), then
    /// wait until SSH answers through it.
    async fn ssh_entry_and_wait(&self, s: &Sandbox, inst: &Instance, progress: &dyn Progress) -> Result<()> {
        let host_key = match inst.setting(keys::SSH_HOST_KEY) {
            Some(k) => Some(k.to_string()),
            None => self
                .incus
                .pull_file(&s.instance, "/etc/ssh/ssh_host_ed25519_key.pub")
                .await
                .ok()
                .map(|b| String::from_utf8_lossy(&b).trim().to_string()),
        };
        let (Some(port), Some(key)) = (s.ssh_port(), host_key) else { return Ok(()) };
        let route = self.ssh_route(&s.name, port).await?;
        {
            // Rewritten only when it differs (lost, or ~/.sandbox deleted).
            let _g = lock::acquire().await?;
            sshcfg::add_entry(&s.name, &route, &key)?;
        }
        progress.step("Waiting for SSH");
        let hint = format!(
            "see `incus info --show-log {}`; `sandbox stop {n}` then `sandbox start {n}` tries again",
            s.instance,
            n = s.name
        );
        let probe = matches!(route, sshcfg::Route::Port { .. }).then_some(port);
        self.wait_ssh(&s.name, probe, Duration::from_secs(40), &hint).await
    }
}

/// What a restart cannot change, all named at once.
fn refuse_immutable(o: &CreateOptions, s: &Sandbox) -> Result<()> {
    let given = [
        ("--stack", o.stack.is_some()),
        ("--from", o.from.is_some()),
        ("--branch", o.branch.is_some()),
        ("--slot", o.slot.is_some()),
        ("--target", o.target.is_some()),
        ("REPO_URL", o.repo.is_some()),
        ("--allow-push-any", o.allow_push_any),
    ];
    let refused: Vec<&str> = given.iter().filter(|(_, g)| *g).map(|(f, _)| *f).collect();
    if refused.is_empty() {
        return Ok(());
    }
    Err(EngineError::invalid(
        "options",
        format!("sandbox '{}' exists; {} cannot change on restart", s.name, refused.join(", ")),
        format!("drop them, or create a new sandbox (e.g. `sandbox start {}-2 --from {} --branch B`)", s.name, s.name),
    ))
}
