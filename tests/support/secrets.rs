//! Secrets must never be in a sandbox: a scan of its whole filesystem (seen from the host through
//! its init's /proc/PID/root) and of every process environment in it. Used for private keys
//! (credentials.rs) and model credentials (claude.rs).
use std::path::{Path, PathBuf};
use std::process::Command;

/// The init pid of a running sandbox (its filesystem is /proc/PID/root on the host).
pub fn init_pid(name: &str) -> u32 {
    let o = Command::new("incus").args(["query", &format!("/1.0/instances/agent-{name}/state")]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["pid"].as_u64().unwrap() as u32
}

/// Kernel and virtual filesystems mounted in the sandbox (proc, sysfs, lxcfs, cgroups, …, also
/// Incus's /dev/.lxc/proc): not files, so skipped; process environments are checked separately.
pub fn virtual_mounts(pid: u32) -> Vec<String> {
    let virt = [
        "proc",
        "sysfs",
        "cgroup",
        "cgroup2",
        "devpts",
        "mqueue",
        "fuse.lxcfs",
        "securityfs",
        "debugfs",
        "tracefs",
        "pstore",
        "bpf",
        "binfmt_misc",
        "configfs",
        "fusectl",
        "hugetlbfs",
        "efivarfs",
    ];
    let info = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    info.lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let mountpoint = left.split(' ').nth(4)?;
            let fstype = right.split(' ').next()?;
            virt.contains(&fstype).then(|| mountpoint.trim_start_matches('/').to_string())
        })
        .collect()
}

/// Every regular file under `root` (no symlinks followed; `skip`ped mounts left out), with the
/// paths (relative) where a needle occurs.
pub fn scan(root: &Path, skip: &[String], needles: &[Vec<u8>]) -> (usize, Vec<(String, usize)>) {
    let finders: Vec<memchr::memmem::Finder> = needles.iter().map(memchr::memmem::Finder::new).collect();
    let mut hits = Vec::new();
    let mut files = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if skip.contains(&rel) {
                continue;
            }
            let Ok(m) = std::fs::symlink_metadata(&p) else { continue };
            if m.is_dir() {
                stack.push(p);
            } else if m.is_file() {
                files += 1;
                let Ok(data) = std::fs::read(&p) else { continue };
                for (i, f) in finders.iter().enumerate() {
                    if f.find(&data).is_some() {
                        hits.push((rel.clone(), i));
                    }
                }
            }
        }
    }
    (files, hits)
}

/// Pids of every process in the sandbox (those in its init's pid namespace).
pub fn processes(name: &str) -> Vec<u32> {
    let pid = init_pid(name);
    let ns = std::fs::read_link(format!("/proc/{pid}/ns/pid")).unwrap();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok())
        .filter(|p| std::fs::read_link(format!("/proc/{p}/ns/pid")).is_ok_and(|l| l == ns))
        .collect()
}

/// Where needles were found: (relative file path, needle) and (pid, needle).
pub struct Found {
    pub files: Vec<(String, usize)>,
    pub environments: Vec<(u32, usize)>,
}

/// Where the needles are in sandbox NAME: files (relative paths) and process environments.
/// Asserts the scan saw a whole root filesystem and the sandbox's processes.
pub fn find_in_sandbox(name: &str, needles: &[Vec<u8>]) -> Found {
    let pid = init_pid(name);
    let root = PathBuf::from(format!("/proc/{pid}/root"));
    let skip = virtual_mounts(pid);
    assert!(skip.iter().any(|m| m == "proc"), "{skip:?}");
    let t = std::time::Instant::now();
    let (files, hits) = scan(&root, &skip, needles);
    eprintln!("scanned {files} files of {name} in {:.1}s", t.elapsed().as_secs_f64());
    assert!(files > 5000, "scanned only {files} files: is {} the sandbox's root?", root.display());
    let procs = processes(name);
    assert!(procs.len() > 3, "processes of the sandbox: {procs:?}");
    let mut env_hits = Vec::new();
    for p in procs {
        let env = std::fs::read(format!("/proc/{p}/environ")).unwrap_or_default();
        for (i, n) in needles.iter().enumerate() {
            if memchr::memmem::find(&env, n).is_some() {
                env_hits.push((p, i));
            }
        }
    }
    Found { files: hits, environments: env_hits }
}
