//! Where egress state lives on the host. Runtime state (who is registered, generated lists and
//! configurations) is under `/run`, so it disappears with the nft rules at a reboot and `sandbox
//! start` rebuilds both; logs (denials) are under `/var/log`.
use std::path::{Path, PathBuf};

use super::domains;
use crate::engine::host::Host;
use crate::error::{EngineError, Result};

pub fn run() -> PathBuf {
    PathBuf::from("/run/agent-sandboxes/egress")
}
pub fn logs() -> PathBuf {
    PathBuf::from("/var/log/agent-sandboxes")
}
pub fn squid_logs() -> PathBuf {
    logs().join("squid")
}
pub fn dns_logs() -> PathBuf {
    logs().join("dns")
}
pub fn list_file(name: &str) -> PathBuf {
    run().join("lists").join(format!("{name}.txt"))
}
fn active_dir() -> PathBuf {
    run().join("active")
}

fn io(path: &Path, e: std::io::Error) -> EngineError {
    EngineError::failed(format!("cannot write {}: {e}", path.display()), "run sandbox as root (sudo)")
}

/// Replaces a file atomically (readers — Squid, dnsmasq — never see half of it).
pub fn write(path: &Path, data: &[u8]) -> Result<()> {
    crate::paths::write_atomic(path, data, 0o644).map_err(|e| io(path, e))
}

/// A key file readable by root and `owner` only (0600 from its creation).
pub fn write_private(path: &Path, data: &[u8], owner: &str) -> Result<()> {
    crate::paths::write_atomic(path, data, 0o600).map_err(|e| io(path, e))?;
    let (uid, gid) = user_ids(owner)?;
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(|e| io(path, e))
}

fn user_ids(owner: &str) -> Result<(u32, u32)> {
    let u = nix::unistd::User::from_name(owner).ok().flatten().ok_or_else(|| {
        EngineError::failed(format!("the system user '{owner}' is missing"), "install squid-openssl and dnsmasq-base")
    })?;
    Ok((u.uid.as_raw(), u.gid.as_raw()))
}

/// `chown -R owner: path` (daemons that drop privileges write their logs there).
pub async fn chown_tree(host: &Host, path: &Path, owner: &str) -> Result<()> {
    let (uid, gid) = user_ids(owner)?;
    let out = host
        .run(&["chown".into(), "-R".into(), format!("{uid}:{gid}"), path.display().to_string()], None, |_| {})
        .await?;
    if out.status != 0 {
        return Err(EngineError::failed(format!("cannot chown {}: {}", path.display(), out.tail.join(" ")), ""));
    }
    Ok(())
}

pub async fn ensure_dir(host: &Host, path: &Path, owner: &str) -> Result<()> {
    if !path.is_dir() {
        std::fs::create_dir_all(path).map_err(|e| io(path, e))?;
        chown_tree(host, path, owner).await?;
    }
    Ok(())
}

/// The names of the list private addresses are allowed for (a separate Squid ACL file).
pub fn private_file(name: &str) -> PathBuf {
    run().join("lists").join(format!("{name}.private.txt"))
}

pub fn write_list(name: &str, list: &domains::List) -> Result<()> {
    let lines = |set: &std::collections::BTreeSet<String>| set.iter().map(|d| format!("{d}\n")).collect::<String>();
    write(&private_file(name), lines(&list.private).as_bytes())?;
    write(&list_file(name), lines(&list.names).as_bytes())
}

/// The generated list, re-validated (a missing one is empty: nothing allowed).
pub fn read_list(name: &str) -> domains::List {
    let read = |p: PathBuf| {
        let text = std::fs::read_to_string(p).unwrap_or_default();
        domains::parse(&text, "list").map(|l| l.names).unwrap_or_default()
    };
    let names = read(list_file(name));
    let private = read(private_file(name)).into_iter().filter(|p| names.contains(p)).collect();
    domains::List { names, private }
}

pub fn remove_stale_lists(keep: &[String]) {
    let Ok(rd) = std::fs::read_dir(run().join("lists")) else { return };
    for e in rd.flatten() {
        let f = e.file_name();
        let Some(stem) = f.to_str().and_then(|f| f.strip_suffix(".txt")) else { continue };
        let n = stem.strip_suffix(".private").unwrap_or(stem);
        if !keep.iter().any(|k| k == n) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Registers a sandbox at its address (Some), or forgets it (None).
pub fn mark(name: &str, ip: Option<std::net::Ipv4Addr>) -> Result<()> {
    let p = active_dir().join(name);
    match ip {
        Some(ip) => write(&p, ip.to_string().as_bytes()),
        None => match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(&p, e)),
            _ => Ok(()),
        },
    }
}

/// The address a registered sandbox had (known even once its instance is gone).
pub fn marked_ip(name: &str) -> Option<std::net::Ipv4Addr> {
    std::fs::read_to_string(active_dir().join(name)).ok()?.trim().parse().ok()
}

pub fn marked() -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(active_dir()) else { return Vec::new() };
    let mut v: Vec<String> = rd
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|n| crate::engine::validate::sandbox_name(n).is_ok())
        .collect();
    v.sort();
    v
}

/// Whether any of our tables is in place (this version's, or the first version's `ip` table).
pub async fn rules_present(host: &Host) -> bool {
    let argv = ["nft", "list", "tables"].map(String::from);
    host.run(&argv, None, |_| {}).await.is_ok_and(|o| {
        o.status == 0 && o.stdout.lines().any(|l| l.split_whitespace().last() == Some(super::nft::TABLE))
    })
}

/// Waits (up to 3 s) until `needle` appears in `log` past `offset`.
pub async fn wait_for_log(log: &Path, offset: u64, needle: &str) {
    use std::io::{Read, Seek, SeekFrom};
    let seen = || async {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(log)
            && f.seek(SeekFrom::Start(offset)).is_ok()
        {
            let _ = f.read_to_string(&mut text);
        }
        text.contains(needle).then_some(())
    };
    let every = std::time::Duration::from_millis(10);
    if crate::poll::until(every * 300, every, seen).await.is_none() {
        tracing::warn!("{} did not report '{needle}' within 3 s", log.display());
    }
}
