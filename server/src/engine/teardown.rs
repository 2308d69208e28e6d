//! Stop, remove and nuke: everything a sandbox owned goes, on the host and on GitHub.
use super::creds::Token;
use super::sandbox::{self, Sandbox};
use super::{Engine, golden, lock, sshcfg, validate};
use crate::error::{EngineError, Result};
use crate::progress::Progress;

impl Engine {
    /// Stops each sandbox (idempotent). A missing one is an error for that name only.
    /// `token` is needed only to delete deploy keys on rm.
    pub async fn stop(&self, names: &[String], remove: bool, token: &Token) -> Vec<(String, Result<()>)> {
        let futs = names.iter().map(|n| async move {
            let r = async {
                validate::sandbox_name(n)?;
                let s = sandbox::get(&self.incus, n).await?.ok_or_else(|| EngineError::sandbox_not_found(n))?;
                if remove {
                    self.remove_one(&s, token).await
                } else {
                    if s.is_running() {
                        self.incus.stop(&s.instance, false).await.or_else(|e| match &e {
                            crate::incus::IncusError::Api { message, .. }
                            | crate::incus::IncusError::Operation { message }
                                if message.contains("already stopped") =>
                            {
                                Ok(())
                            }
                            _ => Err(e),
                        })?;
                    }
                    self.egress_unregister(n).await?;
                    self.anthropic_release(n, false).await?;
                    // After the relay closed: its sessions ended with the sandbox.
                    let inst = self.incus.instance(&s.instance).await?;
                    super::agents::reset(&self.incus, &s.instance, &inst.config).await?;
                    self.drop_local_credentials(&s.name, false).await
                }
            }
            .await;
            (n.clone(), r)
        });
        futures::future::join_all(futs).await
    }

    async fn remove_one(&self, s: &Sandbox, token: &Token) -> Result<()> {
        // The deploy key on GitHub first: if that fails the sandbox stays, and rm can be retried.
        let inst = self.incus.instance(&s.instance).await?;
        self.forget_remote_key(&s.name, &inst, token).await?;
        self.incus
            .delete_force(&s.instance)
            .await
            .map_err(|e| EngineError::failed(format!("cannot remove {}: {e:#}", s.instance), "retry `sandbox rm`"))?;
        self.egress_unregister(&s.name).await?;
        super::egress::denials::forget(&s.name);
        self.anthropic_release(&s.name, true).await?;
        self.drop_local_credentials(&s.name, true).await?;
        let _g = lock::acquire().await?;
        sshcfg::remove_entry(&s.name)?;
        Ok(())
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
        let _g = lock::acquire().await?;
        for n in &doomed {
            if let Some(s) = validate::sandbox_of(n) {
                sshcfg::remove_entry(s)?;
                self.drop_local_credentials(s, true).await?;
            }
        }
        // Entries whose sandbox is already gone (an interrupted run) are leftovers too.
        for s in sshcfg::entries() {
            sshcfg::remove_entry(&s)?;
        }
        drop(_g);
        for n in &doomed {
            if let Some(s) = validate::sandbox_of(n) {
                self.egress_unregister(s).await?;
                super::egress::denials::forget(s);
                self.anthropic_release(s, true).await?;
            }
        }
        super::anthropic::control::shutdown().await?;
        let mut failed: Vec<String> =
            doomed.iter().zip(results).filter_map(|(n, r)| r.err().map(|e| format!("{n}: {e:#}"))).collect();
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
