//! SSH access to sandboxes from the host: a client key the product manages, and managed
//! `~/.sandbox/ssh_config` and `~/.sandbox/known_hosts` entries (one per sandbox) that pin each
//! sandbox's own host key, so `ssh -F ~/.sandbox/ssh_config NAME` connects with strict checking.
use std::path::{Path, PathBuf};

use ssh_key::{Algorithm, LineEnding, PrivateKey};

use super::blocks;
use crate::error::{EngineError, Result};
use crate::paths::{self, sandbox_home};

pub fn config_path() -> PathBuf {
    sandbox_home().join("ssh_config")
}
pub fn known_hosts_path() -> PathBuf {
    sandbox_home().join("known_hosts")
}
pub fn client_key_path() -> PathBuf {
    sandbox_home().join("ssh").join("id_ed25519")
}

/// The managed config as an `Include` line in ~/.ssh/config names it: `~/…` when it is under the
/// home directory (the file stays portable), else absolute.
pub fn include_path() -> String {
    let cfg = config_path();
    match dirs::home_dir().and_then(|h| cfg.strip_prefix(h).ok().map(|r| r.to_path_buf())) {
        Some(rel) => format!("~/{}", rel.display()),
        None => cfg.display().to_string(),
    }
}

/// The host alias VS Code's Remote-SSH uses (`NAME` works too with `-F`).
pub fn host_alias(name: &str) -> String {
    format!("sandbox-{name}")
}

fn io_err(what: &str, p: &Path, e: std::io::Error) -> EngineError {
    EngineError::failed(format!("cannot {what} {}: {e}", p.display()), "check the permissions of ~/.sandbox")
}

/// A new ed25519 key pair: (OpenSSH private key PEM, public key line).
pub fn generate_ed25519(comment: &str) -> Result<(String, String)> {
    let mut key = PrivateKey::random(&mut rand_core::OsRng, Algorithm::Ed25519)
        .map_err(|e| EngineError::failed(format!("cannot generate a key: {e}"), ""))?;
    key.set_comment(comment);
    let private = key.to_openssh(LineEnding::LF).map_err(|e| EngineError::failed(format!("key encoding: {e}"), ""))?;
    let public = key.public_key().to_openssh().map_err(|e| EngineError::failed(format!("key encoding: {e}"), ""))?;
    Ok((private.to_string(), public))
}

/// The managed client key's public line, creating the key on first use. Several first creates at
/// once (a fresh ~/.sandbox) must agree on one key: the first complete file linked into place
/// wins, and the public line is always derived from the private key on disk, never from a `.pub`
/// another process may be about to replace.
pub fn ensure_client_key() -> Result<String> {
    ensure_key_at(&client_key_path())
}

fn ensure_key_at(path: &Path) -> Result<String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if !path.exists() {
        let (private, _) = generate_ed25519("agent-sandboxes client")?;
        let dir = path.parent().expect("the key has a directory");
        std::fs::create_dir_all(dir).map_err(|e| io_err("create", dir, e))?;
        let tmp = dir.join(format!(".id_ed25519.{:08x}", rand::random::<u32>()));
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut f| f.write_all(private.as_bytes()))
            .map_err(|e| io_err("write", &tmp, e))?;
        let linked = std::fs::hard_link(&tmp, path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {} // another create's key won
            Err(e) => return Err(io_err("write", path, e)),
        }
    }
    let text = std::fs::read_to_string(path).map_err(|e| io_err("read", path, e))?;
    let key = PrivateKey::from_openssh(&text).map_err(|e| {
        EngineError::failed(
            format!("{} is not an OpenSSH private key: {e}", path.display()),
            "remove it (and its .pub): a new managed key is made on the next create",
        )
    })?;
    let public = key.public_key().to_openssh().map_err(|e| EngineError::failed(format!("key encoding: {e}"), ""))?;
    let pub_path = path.with_extension("pub");
    if std::fs::read_to_string(&pub_path).map_or(true, |p| p.trim() != public) {
        // A convenience copy (ssh reads the private key): a concurrent writer's copy is as good.
        let _ = paths::write(&pub_path, format!("{public}\n").as_bytes(), 0o644);
    }
    Ok(public)
}

/// SHA256 fingerprint of a public key line (empty when it does not parse).
pub fn fingerprint(public: &str) -> String {
    ssh_key::PublicKey::from_openssh(public.trim())
        .map(|k| k.fingerprint(ssh_key::HashAlg::Sha256).to_string())
        .unwrap_or_default()
}

/// Public keys allowed to log in: the managed key plus the user's `~/.ssh/id_*.pub`.
pub fn authorized_keys() -> Result<String> {
    let mut keys = vec![ensure_client_key()?];
    if let Some(home) = dirs::home_dir()
        && let Ok(entries) = std::fs::read_dir(home.join(".ssh"))
    {
        let mut user: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("id_") && n.ends_with(".pub"))
            })
            .collect();
        user.sort();
        for p in user {
            if let Ok(k) = std::fs::read_to_string(&p) {
                let k = k.trim();
                if k.starts_with("ssh-") || k.starts_with("ecdsa-") || k.starts_with("sk-") {
                    keys.push(k.to_string());
                }
            }
        }
    }
    Ok(keys.join("\n") + "\n")
}

/// What `remove_entry` did: the files it took NAME's entry out of, and the entries it had to
/// leave (a block without its END line: the file is not touched).
#[derive(Debug, Default)]
pub struct Removal {
    pub removed: Vec<PathBuf>,
    pub warnings: Vec<String>,
}

/// A managed file's bytes: missing is empty; any other read error fails (the file is left alone).
fn read(path: &Path) -> Result<Vec<u8>> {
    match std::fs::read(path) {
        Ok(b) => Ok(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(EngineError::failed(
            format!("cannot read {}: {e}", path.display()),
            "make it a readable file again (or remove it): it was left unchanged",
        )),
    }
}

fn malformed(path: &Path, m: &blocks::Malformed) -> String {
    format!(
        "{}: the entry of '{}' has a '{}' line but no '{}' line; the file was left unchanged — fix that entry by hand",
        path.display(),
        m.name,
        blocks::begin(&m.name),
        blocks::end(&m.name)
    )
}

/// The sandboxes that have a managed entry in ~/.sandbox/ssh_config.
pub fn entries() -> Vec<String> {
    blocks::names(&std::fs::read(config_path()).unwrap_or_default())
}

/// Adds (or replaces) the entries for a sandbox. `host_key` is its public host key line; `jump`
/// is the server to hop through when the sandbox runs on a remote Incus server. Both files are
/// read and checked before either is written; a file is rewritten only when its entry changes.
/// How ssh gets to a sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Its forwarded SSH port on the Incus host's loopback (through `ProxyJump` for a server).
    Port { port: u16, jump: Option<String> },
    /// `sshd -i` in the sandbox through the Incus API (`sandbox __ssh-pipe`): a cluster, where the
    /// sandbox may run on any member (engine/reach.rs says why).
    Pipe { command: String },
}

pub fn add_entry(name: &str, route: &Route, host_key: &str) -> Result<()> {
    let (begin, end) = (blocks::begin(name), blocks::end(name));
    let key = client_key_path();
    let kh = known_hosts_path();
    let cfg = config_path();
    let alias = host_alias(name);
    let block = format!(
        "{begin}\nHost {name} {alias}\n{how}  User ubuntu\n  IdentityFile {key}\n  IdentitiesOnly yes\n  \
         UserKnownHostsFile {kh}\n  StrictHostKeyChecking yes\n  HostKeyAlias {alias}\n  ForwardAgent no\n  LogLevel ERROR\n{end}\n",
        key = key.display(),
        kh = kh.display(),
        how = match route {
            Route::Port { port, jump } => format!(
                "  HostName 127.0.0.1\n  Port {port}\n{}",
                jump.as_ref().map(|j| format!("  ProxyJump {j}\n")).unwrap_or_default()
            ),
            Route::Pipe { command } => format!("  HostName {alias}\n  ProxyCommand {command}\n"),
        },
    );
    let key_fields: Vec<&str> = host_key.split_whitespace().take(2).collect();
    let host_line = format!("{begin}\n{alias} {}\n{end}\n", key_fields.join(" "));
    let edit = |path: &Path, block: &str, header: &str| -> Result<(Vec<u8>, Vec<u8>)> {
        let old = read(path)?;
        let kept = blocks::without(&old, name).map_err(|m| EngineError::failed(malformed(path, &m), ""))?;
        let kept = if kept.is_empty() { header.as_bytes().to_vec() } else { kept };
        Ok((old, blocks::append(kept, block)))
    };
    let header = "# Managed by Agent Sandboxes (`sandbox`); entries are rewritten on create/start/rm.\n";
    let (old_kh, new_kh) = edit(&kh, &host_line, "")?;
    let (old_cfg, new_cfg) = edit(&cfg, &block, header)?;
    // The host key first: ssh never finds an entry whose key is not there yet.
    if new_kh != old_kh {
        paths::write(&kh, &new_kh, 0o644)?;
    }
    if new_cfg != old_cfg {
        paths::write(&cfg, &new_cfg, 0o644)?;
    }
    Ok(())
}

/// Takes NAME's entries out of both files. An entry without its END line is left, with a warning.
pub fn remove_entry(name: &str) -> Result<Removal> {
    let mut out = Removal::default();
    for path in [config_path(), known_hosts_path()] {
        let old = read(&path)?;
        match blocks::without(&old, name) {
            Ok(new) if new != old => {
                paths::write(&path, &new, 0o644)?;
                out.removed.push(path);
            }
            Ok(_) => {}
            Err(m) => out.warnings.push(malformed(&path, &m)),
        }
    }
    Ok(out)
}

pub fn has_entry(name: &str) -> bool {
    blocks::has(&std::fs::read(config_path()).unwrap_or_default(), name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_uses_at_once_agree_on_one_client_key() {
        let dir = std::env::temp_dir().join(format!("sandbox-key-{:08x}", rand::random::<u32>()));
        let path = dir.join("ssh").join("id_ed25519");
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let p = path.clone();
                std::thread::spawn(move || ensure_key_at(&p).unwrap())
            })
            .collect();
        let keys: std::collections::BTreeSet<String> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(keys.len(), 1, "{keys:?}");
        let on_disk = PrivateKey::from_openssh(std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(keys.first().unwrap(), &on_disk.public_key().to_openssh().unwrap());
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn keys_are_openssh() {
        let (private, public) = generate_ed25519("c").unwrap();
        assert!(private.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
        assert!(public.starts_with("ssh-ed25519 "));
    }
}
