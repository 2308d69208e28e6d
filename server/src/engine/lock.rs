//! A host-wide lock for the few steps that must not interleave between processes (slot and
//! port allocation, the managed ssh files): the CLI, several sidecars and the API all take it.
//! Slots and host ports belong to the machine, not to one `SANDBOX_HOME`, so the lock lives in
//! `/run/lock` when that exists (two users, or two homes, on one host still get distinct slots).
use std::fs::File;

use nix::fcntl::{Flock, FlockArg};

use crate::error::{EngineError, Result};

pub struct HostLock(#[allow(dead_code)] Flock<File>);

pub async fn acquire() -> Result<HostLock> {
    lock_named("").await
}

/// One instance's lock: a snapshot is never taken while that instance is being deleted. Incus
/// lets the two run at once, and a snapshot made in the middle of a delete is left on disk
/// without its record: the instance can then never be deleted ("Cannot remove a volume that
/// has snapshots").
pub async fn instance(name: &str) -> Result<HostLock> {
    lock_named(name).await
}

async fn lock_named(instance: &str) -> Result<HostLock> {
    let shared = std::path::Path::new("/run/lock");
    let dir = if shared.is_dir() { shared.to_path_buf() } else { crate::paths::sandbox_home() };
    let file = match (dir == shared, instance) {
        (true, "") => "agent-sandboxes.lock".to_string(),
        (false, "") => ".lock".to_string(),
        (true, i) => format!("agent-sandboxes-{i}.lock"),
        (false, i) => format!(".lock-{i}"),
    };
    tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&dir)
            .map_err(|e| EngineError::failed(format!("cannot create {}: {e}", dir.display()), ""))?;
        let path = dir.join(file);
        let f = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            // flock works on a read-only descriptor: another user's lock file is still usable.
            .or_else(|_| File::open(&path))
            .map_err(|e| EngineError::failed(format!("cannot open {}: {e}", path.display()), ""))?;
        Flock::lock(f, FlockArg::LockExclusive)
            .map(HostLock)
            .map_err(|(_, e)| EngineError::failed(format!("cannot lock {}: {e}", path.display()), ""))
    })
    .await
    .map_err(|e| EngineError::failed(format!("lock task: {e}"), ""))?
}
