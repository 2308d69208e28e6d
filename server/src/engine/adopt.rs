//! `sandbox adopt NAME`: reach a sandbox another user (or another `SANDBOX_HOME`) made. Every
//! user of one Incus sees every sandbox, but SSH reaches only the ones whose entry is in this
//! user's `~/.sandbox/ssh_config` and whose authorized keys hold this user's key. Adopting adds
//! both: this user's keys are appended to the sandbox's `authorized_keys` (what is there stays,
//! byte for byte) and its entry, pinned to the host key Incus stores for it, is written here.
//! Whoever may use the Incus socket may do this anyway (`incus exec`): nothing new is granted.
use super::sandbox::{self, Sandbox};
use super::{Engine, keys, lock, sshcfg, validate};
use crate::error::{EngineError, Result};
use crate::incus::{FileWrite, IncusError};

const AUTHORIZED_KEYS: &str = "/home/ubuntu/.ssh/authorized_keys";
const HOST_KEY_PUB: &str = "/etc/ssh/ssh_host_ed25519_key.pub";

/// `type base64` of an OpenSSH public key line (options and comments left out).
fn key_id(line: &str) -> Option<(&str, &str)> {
    let mut words = line.split_whitespace();
    let (kind, blob) = (words.next()?, words.next()?);
    let known = kind.starts_with("ssh-") || kind.starts_with("ecdsa-") || kind.starts_with("sk-");
    known.then_some((kind, blob))
}

/// `current` with the lines of `ours` whose key it lacks appended; None when nothing is missing.
pub fn with_keys(current: &str, ours: &str) -> Option<String> {
    let have: Vec<(&str, &str)> = current
        .lines()
        .filter_map(|l| {
            // A line may start with options (`restrict,command="…" ssh-ed25519 AAAA…`).
            let start = l.find("ssh-").or_else(|| l.find("ecdsa-")).or_else(|| l.find("sk-"))?;
            key_id(&l[start..])
        })
        .collect();
    let missing: Vec<&str> = ours.lines().filter(|l| key_id(l).is_some_and(|id| !have.contains(&id))).collect();
    if missing.is_empty() {
        return None;
    }
    let mut out = current.to_string();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    for l in missing {
        out.push_str(l.trim());
        out.push('\n');
    }
    Some(out)
}

impl Engine {
    /// Gives this user SSH access to NAME; returns it as this user now sees it.
    pub async fn adopt(&self, name: &str) -> Result<Sandbox> {
        validate::sandbox_name(name)?;
        let inst = match self.incus.instance(&validate::instance_name(name)).await {
            Ok(i) => i,
            Err(e) if e.is_not_found() => return Err(EngineError::sandbox_not_found(name)),
            Err(e) => return Err(e.into()),
        };
        let s = sandbox::from_instance(&inst).ok_or_else(|| EngineError::sandbox_not_found(name))?;
        let port = s.ssh_port().ok_or_else(|| {
            EngineError::failed(
                format!("sandbox '{name}' has no SSH port forward"),
                format!("start it once (it gets one): sandbox start {name}"),
            )
        })?;
        let host_key = match inst.setting(keys::SSH_HOST_KEY) {
            Some(k) => k.to_string(),
            None => String::from_utf8_lossy(&self.incus.pull_file(&s.instance, HOST_KEY_PUB).await?).trim().to_string(),
        };
        if key_id(&host_key).is_none() {
            return Err(EngineError::failed(
                format!("sandbox '{name}' has no SSH host key to pin"),
                format!("restart it (it writes one): sandbox stop {name} && sandbox start {name}"),
            ));
        }
        let current = match self.incus.pull_file(&s.instance, AUTHORIZED_KEYS).await {
            Ok(b) => String::from_utf8(b).map_err(|_| {
                EngineError::failed(
                    format!("{AUTHORIZED_KEYS} in '{name}' is not text; it was left alone"),
                    "look at it with `incus file pull`",
                )
            })?,
            Err(IncusError::NotFound { .. }) => String::new(),
            Err(e) => return Err(e.into()),
        };
        if let Some(text) = with_keys(&current, &sshcfg::authorized_keys()?) {
            let file =
                FileWrite { path: AUTHORIZED_KEYS, content: text.into_bytes(), uid: 1000, gid: 1000, mode: 0o600 };
            self.incus.push_file(&s.instance, &file).await?;
        }
        let route = self.ssh_route(name, port).await?;
        {
            let _g = lock::acquire().await?;
            sshcfg::add_entry(name, &route, &host_key)?;
        }
        sandbox::get(&self.incus, name).await?.ok_or_else(|| EngineError::sandbox_not_found(name))
    }
}

#[cfg(test)]
mod tests {
    use super::with_keys;

    const A: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA+first agent-sandboxes client";
    const B: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB+second other@host";

    #[test]
    fn appends_only_missing_keys_and_keeps_the_rest() {
        let current = format!("# theirs\nrestrict {A}\nnot a key line\n");
        let merged = with_keys(&current, &format!("{A}\n{B}\n")).unwrap();
        assert_eq!(merged, format!("{current}{B}\n"));
        assert_eq!(with_keys(&merged, &format!("{B}\n{A}\n")), None, "nothing missing: untouched");
    }

    #[test]
    fn an_empty_or_unterminated_file() {
        assert_eq!(with_keys("", A).unwrap(), format!("{A}\n"));
        assert_eq!(with_keys(B, A).unwrap(), format!("{B}\n{A}\n"));
        assert_eq!(with_keys("", "garbage\n"), None);
    }
}
