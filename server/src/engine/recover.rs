//! Whether a name is a sandbox, a create under way, or what an interrupted create left (see
//! journal.rs) — and the one removal of a name: its deploy key on GitHub, its instance, then
//! everything it has on the host. `start`, `rm`, `doctor` and a sidecar at its start use these.
use std::collections::BTreeMap;

use super::journal::{self, Record, busy, half_made, marked_owner};
use super::leftovers::{self, Leftover, Removed};
use super::validate::instance_name;
use super::{Engine, keys};
use crate::engine::creds::Token;
use crate::error::{EngineError, Result};
use crate::incus::Instance;

/// What a name is.
#[derive(Debug)]
pub enum Found {
    Absent,
    /// Being created by a process that still runs (described).
    Creating(String),
    /// What an interrupted create left: its instance (if it got that far) and its record.
    Interrupted(Interrupted),
    /// A complete sandbox (ours or the seed's).
    Exists(Box<Instance>),
}

#[derive(Debug)]
pub struct Interrupted {
    pub instance: Option<Box<Instance>>,
    pub record: Option<Box<Record>>,
}

impl Engine {
    /// What NAME is now.
    pub async fn inspect(&self, name: &str) -> Result<Found> {
        let record = journal::read(name).map(Box::new);
        let mut inst = self.instance_of(name).await?;
        let creator = match (&record, &inst) {
            (Some(r), _) => Some((r.owner.clone(), r.started_at.clone())),
            (None, Some(i)) => marked_owner(i),
            (None, None) => None,
        };
        if let Some((owner, started)) = &creator
            && busy(owner, started)
        {
            return Ok(Found::Creating(owner.describe()));
        }
        if (record.is_some() || inst.as_deref().is_some_and(half_made)) && self.settle(&instance_name(name)).await? {
            inst = self.instance_of(name).await?;
        }
        Ok(match inst {
            Some(i) if !half_made(&i) => {
                if record.is_some() {
                    // Complete, and its creator is gone: it died between the last step and
                    // removing its record.
                    journal::remove(name)?;
                }
                Found::Exists(i)
            }
            Some(i) => Found::Interrupted(Interrupted { instance: Some(i), record }),
            None if record.is_some() => Found::Interrupted(Interrupted { instance: None, record }),
            None => Found::Absent,
        })
    }

    async fn instance_of(&self, name: &str) -> Result<Option<Box<Instance>>> {
        match self.incus.instance(&instance_name(name)).await {
            Ok(i) => Ok(Some(Box::new(i))),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// A create killed while Incus was copying its instance, or renaming a warm spare into it:
    /// that goes on without it, and what it leaves is known only once it ends. Waits for what
    /// still runs on the instance or on a spare (a rename names only its old name); true if
    /// anything did.
    async fn settle(&self, instance: &str) -> Result<bool> {
        let running =
            self.incus.running_operations_on(|n| n == instance || n.starts_with(super::spares::PREFIX)).await?;
        for op in &running {
            // Its outcome does not matter here (the instance is looked at again).
            let _ = self.incus.wait_operation(&op.id, instance).await;
        }
        Ok(!running.is_empty())
    }

    /// Removes NAME entirely: its deploy key on GitHub first (if that fails nothing else goes,
    /// and `rm` can be retried), its instance, then what it has on the host. Returns whether an
    /// instance was removed and what else was.
    pub async fn remove_name(&self, name: &str, found: Found, token: &Token) -> Result<(bool, leftovers::Removed)> {
        let (inst, record) = match found {
            Found::Creating(by) => {
                return Err(EngineError::Conflict {
                    what: format!("a create of '{name}' under way ({by})"),
                    hint: format!("wait for it to end (or stop it), then `sandbox rm {name}`"),
                });
            }
            Found::Exists(i) => (Some(i), None),
            Found::Interrupted(Interrupted { instance, record }) => (instance, record),
            Found::Absent => (None, None),
        };
        let repo = record
            .as_ref()
            .and_then(|r| r.repo.clone())
            .or_else(|| inst.as_ref().and_then(|i| i.setting(keys::REPO).map(str::to_owned)));
        let id = record
            .as_ref()
            .and_then(|r| r.deploy_key_id)
            .or_else(|| inst.as_ref().and_then(|i| i.setting(keys::DEPLOY_KEY_ID)).and_then(|v| v.parse().ok()));
        self.forget_deploy_key(name, repo.as_deref(), id, token).await?;
        if let Some(i) = &inst {
            let _no_snapshot_meanwhile = super::lock::instance(&i.name).await?;
            self.incus
                .delete_force(&i.name)
                .await
                .map_err(|e| EngineError::failed(format!("cannot remove {}: {e:#}", i.name), "retry `sandbox rm`"))?;
        }
        // Egress goes with the instance even when nothing was registered yet (its set elements).
        let mut left = self.remove_leftovers(name).await?;
        if inst.is_some() && !left.removed.contains(&Leftover::Egress) {
            self.egress_unregister(name).await?;
        }
        left.removed.sort();
        Ok((inst.is_some(), left))
    }

    /// Names whose create was interrupted: records on this host, and instances marked half-made.
    pub async fn interrupted(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = journal::names();
        for i in self.incus.instances().await? {
            if let Some(n) = super::validate::sandbox_of(&i.name)
                && half_made(&i)
            {
                names.push(n.to_string());
            }
        }
        names.sort();
        names.dedup();
        let mut out = Vec::new();
        for n in names {
            if let Found::Interrupted(_) = self.inspect(&n).await? {
                out.push(n);
            }
        }
        Ok(out)
    }

    /// A sidecar starting: every create a killed process left is removed (its instance, its
    /// deploy key, what it has on the host). Returns the names, each with the outcome.
    pub async fn sweep_interrupted(&self) -> Vec<(String, Result<()>)> {
        let names = match self.interrupted().await {
            Ok(n) => n,
            Err(e) => return vec![(String::new(), Err(e))],
        };
        let mut out = Vec::new();
        for n in names {
            let r = async {
                let found = self.inspect(&n).await?;
                if let Found::Interrupted(_) = found {
                    self.remove_name(&n, found, &Token::default()).await?;
                }
                Ok(())
            }
            .await;
            out.push((n, r));
        }
        out
    }
}

impl Engine {
    /// Names that have something on the host but no complete sandbox in Incus (deleted behind
    /// our back, a killed `rm`), and what interrupted creates left (instance included), each with
    /// what is there.
    pub async fn orphans(&self) -> Result<BTreeMap<String, Vec<String>>> {
        let mut names = leftovers::names();
        names.extend(self.interrupted().await?);
        let mut out = BTreeMap::new();
        for name in names {
            let mut what: Vec<String> = Vec::new();
            match self.inspect(&name).await? {
                Found::Interrupted(i) => {
                    what.push(if i.instance.is_some() { "half-made instance" } else { "interrupted create" }.into())
                }
                Found::Absent => {}
                _ => continue,
            }
            what.extend(leftovers::of(&name).into_iter().map(|l| l.describe().to_string()));
            if !what.is_empty() {
                out.insert(name, what);
            }
        }
        Ok(out)
    }

    /// `doctor`'s view of them.
    pub async fn orphans_check(&self) -> super::doctor::Check {
        let (ok, detail) = match self.orphans().await {
            Ok(o) if o.is_empty() => (true, "nothing left behind".to_string()),
            Ok(o) => (false, o.iter().map(|(n, w)| format!("{n} ({})", w.join(", "))).collect::<Vec<_>>().join("; ")),
            Err(e) => (false, format!("cannot tell: {e}")),
        };
        super::doctor::check("leftovers", ok, false, detail, Some("sandbox doctor --fix"))
    }

    /// `doctor --fix`: removes every orphan (its deploy key on GitHub first, when it had one).
    pub async fn fix_orphans(&self, token: &super::creds::Token) -> Result<Vec<(String, Result<Removed>)>> {
        let mut out = Vec::new();
        for name in self.orphans().await?.into_keys() {
            let r = async {
                let found = self.inspect(&name).await?;
                Ok(self.remove_name(&name, found, token).await?.1)
            }
            .await;
            out.push((name, r));
        }
        Ok(out)
    }
}
