//! A sandbox's root disk size is a btrfs qgroup limit (Incus sets it from the root device's
//! `size`). The kernel enforces limits only while qgroup accounting is consistent, and some
//! operations leave it inconsistent (a golden image rebuilt: a subvolume with snapshots dropped).
//! So where a limit must hold — a create or start with a size, after `setup` — the accounting is
//! made consistent again (a rescan, ~1 s on the test pool, only when it is not), and subtree drops
//! are set to be accounted rather than to mark it inconsistent.
use std::path::{Path, PathBuf};

use super::host::Host;
use crate::error::Result;
use crate::progress::Progress;

/// Where Incus mounts a storage pool on its host.
fn pool_path(pool: &str) -> PathBuf {
    let dir = std::env::var_os("INCUS_DIR").map(PathBuf::from).unwrap_or_else(|| "/var/lib/incus".into());
    dir.join("storage-pools").join(pool)
}

/// `struct btrfs_ioctl_fs_info_args` (1024 bytes): only the fsid is read.
#[repr(C)]
struct FsInfo {
    max_id: u64,
    num_devices: u64,
    fsid: [u8; 16],
    rest: [u8; 1000],
}

/// `_IOR(BTRFS_IOCTL_MAGIC, 31, struct btrfs_ioctl_fs_info_args)`.
const BTRFS_IOC_FS_INFO: libc::c_ulong = 0x8400_941f;

/// The sysfs directory of the qgroups of the btrfs filesystem at `path` (None: not btrfs, or
/// quotas not enabled yet).
fn qgroups_dir(path: &Path) -> Option<PathBuf> {
    use std::os::fd::AsRawFd;
    let dir = std::fs::File::open(path).ok()?;
    let mut info = FsInfo { max_id: 0, num_devices: 0, fsid: [0; 16], rest: [0; 1000] };
    // SAFETY: the kernel writes at most sizeof(FsInfo) = 1024 bytes into `info`.
    let r = unsafe { libc::ioctl(dir.as_raw_fd(), BTRFS_IOC_FS_INFO as _, &mut info as *mut FsInfo) };
    if r != 0 {
        return None;
    }
    let h = hex::encode(info.fsid);
    let uuid = format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..]);
    let q = PathBuf::from("/sys/fs/btrfs").join(uuid).join("qgroups");
    q.is_dir().then_some(q)
}

/// Makes the pool's disk limits hold: drops accounted from now on, and a rescan when the
/// accounting is inconsistent. Only where Incus runs on this machine (elsewhere its own
/// `sandbox` does it); best effort on the tuning, an error if the rescan cannot run.
pub async fn ensure_enforced(host: &Host, pool: &str, progress: &dyn Progress) -> Result<()> {
    if *host != Host::Local || !nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    let path = pool_path(pool);
    let Some(q) = qgroups_dir(&path) else { return Ok(()) };
    // BTRFS_MAX_LEVEL: a dropped subtree of any height is accounted, not marked inconsistent.
    let threshold = q.join("drop_subtree_threshold");
    if std::fs::read_to_string(&threshold).is_ok_and(|v| v.trim() != "8") {
        let _ = std::fs::write(&threshold, "8");
    }
    if std::fs::read_to_string(q.join("inconsistent")).is_ok_and(|v| v.trim() == "1") {
        progress.step(&format!("Rescanning the disk accounting of {} (disk limits hold only then)", path.display()));
        let argv = ["btrfs", "quota", "rescan", "-w"].map(String::from).into_iter().chain([path.display().to_string()]);
        let out = host.run(&argv.collect::<Vec<_>>(), None, |_| {}).await?;
        if out.status != 0 {
            return Err(crate::error::EngineError::failed(
                format!("cannot rescan the btrfs quotas of {}: {}", path.display(), out.tail.join(" ")),
                "install btrfs-progs (disk limits are not enforced until the accounting is rescanned)",
            ));
        }
    }
    Ok(())
}
