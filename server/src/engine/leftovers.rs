//! What exists of a sandbox on the host, outside Incus — its entries in ~/.sandbox/ssh_config and
//! known_hosts, its ssh-agent, its deploy key pair, its egress registration (rules, list,
//! resolver), its Anthropic endpoint and the record of an unfinished create — found and removed by
//! one function each,
//! used by `rm`, `doctor --fix` and `nuke`. The instance may be gone (deleted behind our back, a
//! killed `rm`, an interrupted create): what is left here still goes.
use std::collections::BTreeSet;

use serde::Serialize;

use super::creds::{self, agent};
use super::{Engine, egress, journal, lock, sshcfg, validate};
use crate::error::{EngineError, Result};

/// One kind of thing a sandbox leaves on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Leftover {
    /// Its entry in ~/.sandbox/ssh_config.
    SshEntry,
    /// Its host key line in ~/.sandbox/known_hosts.
    KnownHost,
    /// Its ssh-agent (process, socket, pid file).
    Agent,
    /// Its deploy key pair in ~/.sandbox/keys.
    KeyPair,
    /// Its egress rules, allowlist or resolver.
    Egress,
    /// Its endpoint of the host's Anthropic proxy (socket directory, saved counters).
    ClaudeEndpoint,
    /// The record of a create that did not finish.
    CreateRecord,
}

impl Leftover {
    pub fn describe(self) -> &'static str {
        match self {
            Leftover::SshEntry => "ssh entry",
            Leftover::KnownHost => "known_hosts entry",
            Leftover::Agent => "ssh-agent",
            Leftover::KeyPair => "deploy key pair",
            Leftover::Egress => "egress rules",
            Leftover::ClaudeEndpoint => "Anthropic endpoint",
            Leftover::CreateRecord => "unfinished create's record",
        }
    }
}

fn has_block(path: &std::path::Path, name: &str) -> bool {
    super::blocks::has(&std::fs::read(path).unwrap_or_default(), name)
}

/// What of NAME exists on this host.
pub fn of(name: &str) -> Vec<Leftover> {
    let found = [
        (Leftover::SshEntry, has_block(&sshcfg::config_path(), name)),
        (Leftover::KnownHost, has_block(&sshcfg::known_hosts_path(), name)),
        (Leftover::Agent, agent::socket_path(name).exists() || agent::has_pid_file(name)),
        (Leftover::KeyPair, {
            let k = creds::deploy_key_path(name);
            k.exists() || k.with_extension("pub").exists()
        }),
        (Leftover::Egress, egress::has_state(name)),
        (Leftover::ClaudeEndpoint, super::anthropic::has_endpoint(name)),
        (Leftover::CreateRecord, journal::exists(name)),
    ];
    found.into_iter().filter(|(_, there)| *there).map(|(l, _)| l).collect()
}

/// Every name that has something on this host (whether or not its instance exists).
pub fn names() -> BTreeSet<String> {
    let mut all: BTreeSet<String> = sshcfg::entries().into_iter().collect();
    let kh = std::fs::read(sshcfg::known_hosts_path()).unwrap_or_default();
    all.extend(super::blocks::names(&kh));
    all.extend(agent::names());
    all.extend(creds::key_pair_names());
    all.extend(egress::names_with_state());
    all.extend(super::anthropic::endpoint_names());
    all.extend(journal::names());
    all.retain(|n| validate::sandbox_name(n).is_ok());
    all
}

/// What removing leftovers did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Removed {
    pub removed: Vec<Leftover>,
    /// What was left on purpose, and why (an ssh entry without its END line).
    pub warnings: Vec<String>,
}

impl Engine {
    /// Removes what exists of NAME on the host. The deploy key pair goes only once its key is off
    /// GitHub (the caller's job, before). Each kind is tried even when another fails.
    pub async fn remove_leftovers(&self, name: &str) -> Result<Removed> {
        let found = of(name);
        let mut out = Removed::default();
        let mut errors = Vec::new();
        for kind in found {
            let r = match kind {
                Leftover::SshEntry | Leftover::KnownHost => {
                    if out.removed.contains(&Leftover::SshEntry) || out.removed.contains(&Leftover::KnownHost) {
                        continue; // one call takes both
                    }
                    async {
                        let _g = lock::acquire().await?;
                        let r = sshcfg::remove_entry(name)?;
                        out.warnings.extend(r.warnings);
                        for p in r.removed {
                            out.removed.push(if p == sshcfg::config_path() {
                                Leftover::SshEntry
                            } else {
                                Leftover::KnownHost
                            });
                        }
                        Ok::<_, EngineError>(())
                    }
                    .await
                }
                Leftover::Agent => agent::stop(name).await.map(|_| out.removed.push(kind)),
                Leftover::KeyPair => creds::remove_key_pair(name)
                    .map_err(|e| EngineError::failed(format!("{e:#}"), "check ~/.sandbox/keys"))
                    .map(|_| out.removed.push(kind)),
                Leftover::Egress => self.egress_unregister(name).await.map(|_| {
                    egress::denials::forget(name);
                    out.removed.push(kind)
                }),
                Leftover::ClaudeEndpoint => self.anthropic_release(name, true).await.map(|_| out.removed.push(kind)),
                Leftover::CreateRecord => journal::remove(name).map(|_| out.removed.push(kind)),
            };
            if let Err(e) = r {
                errors.push(format!("{}: {e}", kind.describe()));
            }
        }
        out.removed.sort();
        if !errors.is_empty() {
            return Err(EngineError::failed(
                format!("could not remove what '{name}' left on the host: {}", errors.join("; ")),
                format!("fix that, then run `sandbox rm {name}` again"),
            ));
        }
        Ok(out)
    }
}
