//! `sandbox allow | deny` (live changes to one sandbox's list, or to the user's list for every
//! sandbox) and `sandbox denials`.
use std::path::PathBuf;

use super::{Allowlist, domains, effective_list, paths};
use crate::engine::sandbox::is_restricted;
use crate::engine::validate::{self, instance_name};
use crate::engine::{Engine, keys, lock};
use crate::error::{EngineError, Result};
use crate::incus::{Config, Devices};

impl Engine {
    /// `sandbox allow` (add = true) and `sandbox deny`: stored in Incus, applied live when
    /// running. `everywhere` (allow only) also adds the entries to the user's list, which every
    /// sandbox without its own `--domains-file` starts from; running ones get it at once. A deny
    /// that removes names ends the connections the sandbox opened while they were allowed.
    pub async fn change_allowlist(
        &self,
        name: &str,
        entries: &[String],
        add: bool,
        everywhere: bool,
    ) -> Result<Allowlist> {
        validate::sandbox_name(name)?;
        if entries.is_empty() {
            return Err(EngineError::invalid("domains", "no domain given", "e.g. sandbox allow NAME api.example.com"));
        }
        if everywhere && !add {
            return Err(EngineError::invalid(
                "options",
                "--everywhere applies to allow only",
                format!("to stop allowing a name everywhere, remove it from {}", domains::user_list().display()),
            ));
        }
        let entries: Vec<String> = entries.iter().map(|d| domains::entry(d)).collect::<Result<_>>()?;
        let inst = match self.incus.instance(&instance_name(name)).await {
            Ok(i) => i,
            Err(e) if e.is_not_found() => return Err(EngineError::sandbox_not_found(name)),
            Err(e) => return Err(e.into()),
        };
        if !is_restricted(&inst) {
            return Err(EngineError::invalid(
                "sandbox",
                format!("'{name}' has open egress: every domain is reachable already"),
                format!("restrict it: sandbox stop {name} && sandbox start {name} --restrict-domains"),
            ));
        }
        if everywhere {
            add_to_user_list(&entries, name)?;
        }
        let mut allowed = domains::split_stored(inst.setting(keys::DOMAINS_ALLOW));
        let mut denied = domains::split_stored(inst.setting(keys::DOMAINS_DENY));
        for d in &entries {
            allowed.retain(|x| x != d);
            denied.retain(|x| x != d);
            if add { allowed.push(d.clone()) } else { denied.push(d.clone()) }
        }
        let mut c = Config::new();
        c.insert(keys::DOMAINS_ALLOW.into(), allowed.join(","));
        c.insert(keys::DOMAINS_DENY.into(), denied.join(","));
        self.incus.patch_instance(&inst.name, c, Devices::new()).await?;
        let inst = self.incus.instance(&inst.name).await?;
        let list = effective_list(&inst)?;
        let live = inst.status.eq_ignore_ascii_case("running") && paths::marked().iter().any(|n| n == name);
        if live || everywhere {
            let before = paths::read_list(name);
            let _g = lock::acquire().await?;
            if live {
                paths::write_list(name, &list)?;
            }
            if everywhere {
                self.refresh_user_list_members(name).await?;
            }
            self.egress_sync().await?;
            // Once the new lists are in force (a connection made after this is checked anew).
            if live && before.names.iter().any(|d| !list.names.contains(d)) {
                let m = self.members().await?.into_iter().find(|m| m.name == name);
                if let Some(m) = m {
                    self.cut(&m).await?;
                }
            }
        }
        Ok(Allowlist { name: name.to_string(), domains: list.names.into_iter().collect(), live })
    }

    /// Rewrites the lists of the running restricted sandboxes that start from the user's list
    /// (no `--domains-file`), other than `except`. Call with the host lock held.
    async fn refresh_user_list_members(&self, except: &str) -> Result<()> {
        let marked = paths::marked();
        for inst in self.incus.instances().await? {
            let Some(n) = validate::sandbox_of(&inst.name) else { continue };
            let own_file = inst.setting(keys::DOMAINS_FILE).is_some();
            if n != except && marked.iter().any(|m| m == n) && is_restricted(&inst) && !own_file {
                paths::write_list(n, &effective_list(&inst)?)?;
            }
        }
        Ok(())
    }

    /// What NAME was refused since it was created.
    pub async fn denials(&self, name: &str) -> Result<Vec<super::denials::Denial>> {
        validate::sandbox_name(name)?;
        let s = crate::engine::sandbox::get(&self.incus, name)
            .await?
            .ok_or_else(|| EngineError::sandbox_not_found(name))?;
        let since = time::OffsetDateTime::parse(&s.created_at, &time::format_description::well_known::Rfc3339)
            .map(|t| t.unix_timestamp() as f64)
            .unwrap_or(0.0);
        Ok(super::denials::collect(name, s.ip.as_deref(), since))
    }
}

/// Appends ENTRIES to `~/.sandbox/allowed-domains.txt` (made from the default list when it does
/// not exist yet, since it replaces the default). A file that does not parse is left alone.
fn add_to_user_list(entries: &[String], from: &str) -> Result<PathBuf> {
    let path = domains::user_list();
    let (text, mode) = match std::fs::read_to_string(&path) {
        Ok(t) => {
            domains::parse(&t, &path.display().to_string()).map_err(|e| {
                EngineError::invalid(
                    "allowlist",
                    format!("cannot add to {}: {e}", path.display()),
                    "fix that line first (nothing was changed)",
                )
            })?;
            let mode = std::os::unix::fs::PermissionsExt::mode(
                &std::fs::metadata(&path).map_err(|e| io(&path, e))?.permissions(),
            );
            (t, mode & 0o7777)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (
            format!(
                "# Your allowlist for every sandbox without its own --domains-file (it replaces the\n\
                 # default). Made by `sandbox allow --everywhere` from the default list; edit freely.\n{}",
                domains::DEFAULT_LIST
            ),
            0o644,
        ),
        Err(e) => return Err(io(&path, e)),
    };
    let have = domains::parse(&text, "").unwrap_or_default();
    let stamp = time::OffsetDateTime::now_utc().date();
    let mut out = text.clone();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    for e in entries.iter().filter(|e| !have.names.contains(*e)) {
        out.push_str(&format!("{e:<32}  # allowed everywhere from sandbox {from} on {stamp}\n"));
    }
    if out != text {
        crate::paths::write_atomic(&path, out.as_bytes(), mode).map_err(|e| io(&path, e))?;
    }
    Ok(path)
}

fn io(path: &std::path::Path, e: std::io::Error) -> EngineError {
    EngineError::failed(format!("{}: {e}", path.display()), "check the file's permissions")
}
