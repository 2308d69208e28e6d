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

/// The most any file the product reads on the user's behalf may hold (lists, env files).
pub const MAX_INPUT_FILE: u64 = 1 << 20;

/// Reads a file given by the user, bounded: it must be a regular file (not a directory, a device
/// such as /dev/zero, or a pipe) of at most `max` bytes. `None` when it does not exist.
pub fn read_limited(path: &Path, max: u64, what: &str) -> Result<Option<Vec<u8>>> {
    use std::io::Read;
    let bad = |m: String, hint: &str| EngineError::invalid(what, format!("{}: {m}", path.display()), hint);
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(bad(format!("cannot read it: {e}"), "make it a readable file")),
    };
    // The descriptor's own metadata: what was opened is what is checked.
    let meta = f.metadata().map_err(|e| bad(format!("cannot read it: {e}"), "make it a readable file"))?;
    if meta.is_dir() {
        return Err(bad("is a directory".into(), "give a file (or remove the directory)"));
    }
    if !meta.is_file() {
        return Err(bad("is not a regular file".into(), "give a regular file"));
    }
    let limit = format!("larger than {} MiB", max >> 20);
    if meta.len() > max {
        return Err(bad(limit, "give a smaller file"));
    }
    let mut out = Vec::with_capacity(meta.len() as usize);
    f.take(max + 1)
        .read_to_end(&mut out)
        .map_err(|e| bad(format!("cannot read it: {e}"), "make it a readable file"))?;
    if out.len() as u64 > max {
        return Err(bad(limit, "give a smaller file"));
    }
    Ok(Some(out))
}

/// `read_limited` of a text file: every byte UTF-8, or an error naming the first line that is not.
pub fn read_text(path: &Path, max: u64, what: &str) -> Result<Option<String>> {
    let Some(bytes) = read_limited(path, max, what)? else { return Ok(None) };
    String::from_utf8(bytes).map(Some).map_err(|e| {
        let line = e.as_bytes()[..e.utf8_error().valid_up_to()].iter().filter(|b| **b == b'\n').count() + 1;
        EngineError::invalid(
            what,
            format!("{}: line {line} is not UTF-8", path.display()),
            "save the file as UTF-8 (or remove that line): nothing was read from it",
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
    fn user_files_are_read_only_when_regular_small_and_text() {
        let d = scratch();
        let f = d.join("list");
        assert!(read_limited(&f, 10, "list").unwrap().is_none(), "missing: none");
        std::fs::write(&f, b"0123456789").unwrap();
        assert_eq!(read_limited(&f, 10, "list").unwrap().unwrap(), b"0123456789");
        assert!(read_limited(&f, 9, "list").unwrap_err().to_string().contains("larger than"));
        assert!(read_limited(&d, 10, "list").unwrap_err().to_string().contains("is a directory"));
        let zero = read_limited(Path::new("/dev/zero"), 10, "list").unwrap_err().to_string();
        assert!(zero.contains("not a regular file"), "{zero}");
        std::fs::write(&f, b"ok\ncaf\xe9\n").unwrap();
        assert!(read_text(&f, 100, "env").unwrap_err().to_string().contains("line 2 is not UTF-8"));
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
