//! User files under `~/.sandbox/` (seed-compatible layout), and the one way files are written.
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{EngineError, Result};

/// `SANDBOX_HOME`, else `~/.sandbox`.
pub fn sandbox_home() -> PathBuf {
    if let Some(p) = std::env::var_os("SANDBOX_HOME") {
        return PathBuf::from(p);
    }
    dirs::home_dir().unwrap_or_else(|| PathBuf::from("/root")).join(".sandbox")
}

/// Where user stacks live: `~/.sandbox/stacks/`.
pub fn user_stacks_dir() -> PathBuf {
    sandbox_home().join("stacks")
}

/// Replaces a file atomically: a temporary file with a name unique to this call, in the same
/// directory, created with `mode` (a key is never readable by others, not even for a moment),
/// flushed to disk, then renamed over the target (readers such as Squid never see half a file;
/// a crash leaves the old file or the new one).
pub fn write_atomic(path: &Path, content: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.{:016x}.tmp", std::process::id(), rand::random::<u64>()));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
        // The umask may have narrowed `mode` at creation; readers such as dnsmasq need it exact.
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.write_all(content)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    // The rename itself survives a crash once the directory is on disk too.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// `write_atomic`, with an error that says which file and what to check.
pub fn write(path: &Path, content: &[u8], mode: u32) -> Result<()> {
    write_atomic(path, content, mode).map_err(|e| {
        EngineError::failed(
            format!("cannot write {}: {e}", path.display()),
            "check the permissions of its directory (~/.sandbox, or run as root for files under /run)",
        )
    })
}

/// Runs `f` holding an exclusive lock on `lock_file` (created if missing): first uses of shared
/// files (a key pair, a certificate) by several processes at once make them exactly once.
pub fn with_file_lock<T>(lock_file: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    use nix::fcntl::{Flock, FlockArg};
    let fail = |e: &dyn std::fmt::Display| {
        EngineError::failed(format!("cannot lock {}: {e}", lock_file.display()), "check the permissions of ~/.sandbox")
    };
    if let Some(dir) = lock_file.parent() {
        std::fs::create_dir_all(dir).map_err(|e| fail(&e))?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(lock_file)
        .map_err(|e| fail(&e))?;
    let _lock = Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| fail(&e))?;
    f()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    fn scratch() -> PathBuf {
        let d = std::env::temp_dir().join(format!("sandbox-paths-{:08x}", rand::random::<u32>()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn writes_at_once_from_many_threads_leave_one_whole_file_and_no_temporaries() {
        let d = scratch();
        let p = d.join("f");
        let threads: Vec<_> = (0..16u8)
            .map(|i| {
                let p = p.clone();
                std::thread::spawn(move || write_atomic(&p, &[i; 4096], 0o600).unwrap())
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        let got = std::fs::read(&p).unwrap();
        assert!(got.len() == 4096 && got.iter().all(|b| *b == got[0]), "one writer's whole content");
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 1, "no temporary file left");
        write_atomic(&p, b"x", 0o644).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o777, 0o644);
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn the_file_lock_serialises_first_uses() {
        let d = scratch();
        let (lock, made) = (d.join(".lock"), d.join("made"));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (lock, made) = (lock.clone(), made.clone());
                std::thread::spawn(move || {
                    with_file_lock(&lock, || {
                        if !made.exists() {
                            std::thread::sleep(std::time::Duration::from_millis(5));
                            write(&made, format!("{:?}", std::thread::current().id()).as_bytes(), 0o600)?;
                        }
                        Ok(std::fs::read_to_string(&made).unwrap())
                    })
                    .unwrap()
                })
            })
            .collect();
        let seen: std::collections::BTreeSet<String> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(seen.len(), 1, "every caller saw the one file made: {seen:?}");
        let _ = std::fs::remove_dir_all(d);
    }
}
