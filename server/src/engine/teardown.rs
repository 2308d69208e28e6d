//! Stop, remove and nuke: everything a sandbox owned goes, on the host and on GitHub.
use super::creds::Token;
use super::leftovers::Removed;
use super::sandbox::{self, Sandbox};
use super::{Engine, golden, validate};
use crate::error::{EngineError, Result};
use crate::progress::Progress;

/// What stopping or removing one name did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// An instance was removed (rm).
    pub instance: bool,
    /// What else went, on the host, and what was left on purpose.
    pub host: Removed,
}

impl Engine {
    /// Stops each sandbox (idempotent); with `remove`, removes whatever exists of each name —
    /// its instance and what it has on the host, also when the instance is gone already. A name
    /// with nothing anywhere is an error for that name only. `token` deletes deploy keys on rm.
    pub async fn stop(&self, names: &[String], remove: bool, token: &Token) -> Vec<(String, Result<Outcome>)> {
        let futs = names.iter().map(|n| async move {
            let r = async {
                validate::sandbox_name(n)?;
                if remove {
                    return self.remove(n, token).await;
                }
                let s = sandbox::get(&self.incus, n).await?.ok_or_else(|| EngineError::sandbox_not_found(n))?;
                self.stop_one(&s).await?;
                Ok(Outcome::default())
            }
            .await;
            (n.clone(), r)
        });
        futures::future::join_all(futs).await
    }

    async fn stop_one(&self, s: &Sandbox) -> Result<()> {
        if s.is_running() {
            self.incus.stop(&s.instance, false).await.or_else(|e| match &e {
                crate::incus::IncusError::Api { message, .. } | crate::incus::IncusError::Operation { message }
                    if message.contains("already stopped") =>
                {
                    Ok(())
                }
                _ => Err(e),
            })?;
        }
        self.egress_unregister(&s.name).await?;
        self.anthropic_release(&s.name, false).await?;
        // After the relay closed: its sessions ended with the sandbox.
        let inst = self.incus.instance(&s.instance).await?;
        super::agents::reset(&self.incus, &s.instance, &inst.config).await?;
        self.drop_local_credentials(&s.name, false).await
    }

    async fn remove(&self, name: &str, token: &Token) -> Result<Outcome> {
        let found = self.inspect(name).await?;
        let (instance, host) = self.remove_name(name, found, token).await?;
        if !instance && host.removed.is_empty() && host.warnings.is_empty() {
            return Err(EngineError::sandbox_not_found(name));
        }
        Ok(Outcome { instance, host })
    }

    /// Removes every sandbox and golden image, and their host-side leftovers.
    pub async fn nuke(&self, progress: &dyn Progress) -> Result<Vec<String>> {
        let all = self.incus.instances().await?;
        // Deploy keys on GitHub first, best effort: nuke goes on without a token, and says which
        // keys are left to remove by hand (their private halves are deleted below either way).
        for inst in all.iter().filter(|i| i.name.starts_with("agent-")) {
            let Some(name) = validate::sandbox_of(&inst.name) else { continue };
            if let Err(e) = self.forget_remote_key(name, inst, &Token::default()).await {
                progress.step(&format!("Deploy key of '{name}' left on GitHub (remove 'sandbox-{name}' there): {e}"));
            }
        }
        let doomed: Vec<String> = all
            .into_iter()
            .map(|i| i.name)
            .filter(|n| {
                n.starts_with("agent-")
                    || n.starts_with("golden-")
                    || n.starts_with("tmp-golden-")
                    || n.starts_with("tmp-old-golden-")
                    || n.starts_with(super::spares::PREFIX)
            })
            .collect();
        progress.step(&format!("Removing {} instances", doomed.len()));
        let futs = doomed.iter().map(|n| self.incus.delete_force(n));
        let results = futures::future::join_all(futs).await;
        // Whatever any sandbox has on the host: of the instances just removed, and of names
        // whose instance was already gone (an interrupted run's leftovers).
        let mut failed: Vec<String> = Vec::new();
        for name in super::leftovers::names() {
            match self.remove_leftovers(&name).await {
                Ok(r) => r.warnings.iter().for_each(|w| progress.step(&format!("Left: {w}"))),
                Err(e) => failed.push(format!("{name}: {e}")),
            }
        }
        super::anthropic::control::shutdown().await?;
        failed.extend(doomed.iter().zip(results).filter_map(|(n, r)| r.err().map(|e| format!("{n}: {e:#}"))));
        // A spare that a create's background refill was still making when the list was taken
        // (its golden image is gone now, so no other can follow).
        for inst in self.incus.instances().await? {
            if inst.name.starts_with(super::spares::PREFIX)
                && let Err(e) = self.incus.delete_force(&inst.name).await
            {
                failed.push(format!("{}: {e:#}", inst.name));
            }
        }
        // A cluster's golden images (see golden::cluster_alias).
        for img in self.incus.images().await? {
            if img.aliases.iter().any(|a| a.name.starts_with(golden::CLUSTER_ALIAS_PREFIX))
                && let Err(e) = self.incus.delete_image(&img.fingerprint).await
            {
                failed.push(format!("image {}: {e}", img.fingerprint));
            }
        }
        if !failed.is_empty() {
            return Err(EngineError::failed(
                format!("could not remove: {}", failed.join("; ")),
                "run `sandbox nuke` again",
            ));
        }
        Ok(doomed)
    }
}
