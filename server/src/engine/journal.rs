//! A create in progress, recorded before its first change, so that one ended by kill -9 (or a
//! crash, or a power cut) is recognised afterwards and finished or removed, never mistaken for a
//! sandbox: `~/.sandbox/creating/NAME.json` on the host (who creates it, what was asked, the deploy
//! key once registered), and `user.sandbox.creating` on the instance from its first config on
//! (the same owner, for clients that only see Incus). The record goes once the create is complete
//! or fully rolled back; one whose owner is gone marks an interrupted create.
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::keys;
use crate::error::{EngineError, Result};
use crate::paths::sandbox_home;

fn dir() -> PathBuf {
    sandbox_home().join("creating")
}

pub fn path(name: &str) -> PathBuf {
    dir().join(format!("{name}.json"))
}

/// The process making a create: the machine, its boot, the pid and the pid's start time (a pid
/// reused by another process does not count as the same owner).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub host: String,
    pub boot: String,
    pub pid: u32,
    pub start: u64,
}

/// Whether an owner still runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    Alive,
    Gone,
    /// On another machine: it cannot be asked.
    Elsewhere,
}

fn first_line(path: &str) -> String {
    std::fs::read_to_string(path).ok().and_then(|t| t.lines().next().map(str::to_owned)).unwrap_or_default()
}

/// A process's start time in clock ticks since boot (`/proc/PID/stat`, field 22).
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and ')': fields follow the last ')'.
    stat.rsplit_once(')')?.1.split_whitespace().nth(19)?.parse().ok()
}

impl Owner {
    pub fn me() -> Owner {
        let host = Some(first_line("/etc/machine-id"))
            .filter(|h| !h.is_empty())
            .or_else(|| nix::unistd::gethostname().ok().map(|h| h.to_string_lossy().into_owned()))
            .unwrap_or_default();
        let pid = std::process::id();
        Owner { host, boot: first_line("/proc/sys/kernel/random/boot_id"), pid, start: start_time(pid).unwrap_or(0) }
    }

    pub fn liveness(&self) -> Liveness {
        let me = Owner::me();
        if self.host != me.host {
            return Liveness::Elsewhere;
        }
        if self.boot != me.boot {
            return Liveness::Gone; // the machine rebooted since
        }
        let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid as i32), None).is_ok()
            && (self.start == 0 || start_time(self.pid) == Some(self.start))
            && !is_zombie(self.pid);
        if alive { Liveness::Alive } else { Liveness::Gone }
    }

    /// The value of `user.sandbox.creating`.
    pub fn to_key(&self) -> String {
        format!("{}/{}/{}/{}", self.host, self.boot, self.pid, self.start)
    }

    pub fn from_key(v: &str) -> Option<Owner> {
        let mut f = v.split('/');
        let (host, boot) = (f.next()?.to_string(), f.next()?.to_string());
        let (pid, start) = (f.next()?.parse().ok()?, f.next()?.parse().ok()?);
        f.next().is_none().then_some(Owner { host, boot, pid, start })
    }

    pub fn describe(&self) -> String {
        if self.host == Owner::me().host { format!("process {}", self.pid) } else { "another machine".into() }
    }
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with('Z')))
        .unwrap_or(false)
}

/// A create on another machine that has run longer than this is taken as dead.
const ELSEWHERE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3600);

/// Whether a create started at `started_at` (RFC 3339) by `owner` may still be running.
pub fn busy(owner: &Owner, started_at: &str) -> bool {
    match owner.liveness() {
        Liveness::Alive => true,
        Liveness::Gone => false,
        Liveness::Elsewhere => {
            let t = time::OffsetDateTime::parse(started_at, &time::format_description::well_known::Rfc3339);
            t.is_ok_and(|t| (time::OffsetDateTime::now_utc() - t) < ELSEWHERE_TIMEOUT)
        }
    }
}

/// The instance is not a whole sandbox yet: its create's marker is on it, or it is a warm spare
/// renamed into place whose config was not applied yet.
pub fn half_made(inst: &crate::incus::Instance) -> bool {
    inst.setting(keys::CREATING).is_some() || inst.setting(keys::SPARE_OF).is_some()
}

/// The creator named on an instance, and when its create began.
pub fn marked_owner(inst: &crate::incus::Instance) -> Option<(Owner, String)> {
    let owner = Owner::from_key(inst.setting(keys::CREATING)?)?;
    Some((owner, inst.setting(keys::CREATED_AT).unwrap_or_default().to_string()))
}

/// Whether a half-made instance's create still runs (false: it was interrupted).
pub fn still_creating(name: &str, inst: &crate::incus::Instance) -> bool {
    marked_owner(inst).is_some_and(|(o, t)| busy(&o, &t)) || read(name).is_some_and(|r| busy(&r.owner, &r.started_at))
}

/// What is on disk for a create in progress.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub owner: Owner,
    pub started_at: String,
    /// What was asked (the create's options, without the GitHub token): `start NAME` alone
    /// finishes it with these.
    pub options: serde_json::Value,
    /// The repository a deploy key is registered on, and its id there once known.
    pub repo: Option<String>,
    pub deploy_key_id: Option<u64>,
}

/// Names this process is creating right now (what a second Ctrl-C leaves behind).
static ACTIVE: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

pub fn active() -> Vec<String> {
    ACTIVE.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect()
}

/// The record of a create this process is making; removed by `finish`.
pub struct Journal {
    name: String,
    record: Record,
}

fn io(what: &str, p: &std::path::Path, e: impl std::fmt::Display) -> EngineError {
    EngineError::failed(format!("cannot {what} {}: {e}", p.display()), "check the permissions of ~/.sandbox")
}

impl Journal {
    /// Records a create of NAME before anything changes (`options`: what was asked, with no
    /// secret in it). Exclusive: when a record exists already (another create of NAME runs, or an
    /// interrupted one was not cleaned up) this fails with it.
    pub fn begin(name: &str, options: serde_json::Value) -> std::result::Result<Journal, Begin> {
        let now = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339);
        let record = Record {
            owner: Owner::me(),
            started_at: now.unwrap_or_default(),
            options,
            repo: None,
            deploy_key_id: None,
        };
        let j = Journal { name: name.to_string(), record };
        let (p, body) = (path(name), j.body());
        let d = dir();
        std::fs::create_dir_all(&d).map_err(|e| Begin::Failed(io("create", &d, e)))?;
        // Written whole under a temporary name, then linked into place: the link fails when a
        // record is there, so two creates of one name never both proceed.
        let tmp = d.join(format!(".{name}.{}.{:08x}", std::process::id(), rand::random::<u32>()));
        crate::paths::write(&tmp, &body, 0o600).map_err(Begin::Failed)?;
        let linked = std::fs::hard_link(&tmp, &p);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                ACTIVE.lock().unwrap_or_else(|e| e.into_inner()).insert(name.to_string());
                Ok(j)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(Begin::Exists(read(name).map(Box::new))),
            Err(e) => Err(Begin::Failed(io("write", &p, e))),
        }
    }

    fn body(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(&self.record).unwrap_or_default()
    }

    pub fn owner(&self) -> &Owner {
        &self.record.owner
    }

    /// The repository a deploy key is about to be registered on (before the call: a kill during
    /// it still leaves the repository to look the key up by title).
    pub fn note_repo(&mut self, repo: &str) -> Result<()> {
        self.record.repo = Some(repo.to_string());
        crate::paths::write(&path(&self.name), &self.body(), 0o600)
    }

    pub fn note_key(&mut self, id: u64) -> Result<()> {
        self.record.deploy_key_id = Some(id);
        crate::paths::write(&path(&self.name), &self.body(), 0o600)
    }

    /// The create is complete, or fully undone: nothing to recover.
    pub fn finish(self) {
        let _ = std::fs::remove_file(path(&self.name));
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        // The record itself stays unless `finish` removed it (a rollback that could not undo
        // everything leaves it for the next `start` or `rm`).
        ACTIVE.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.name);
    }
}

/// Why a create could not be recorded.
#[derive(Debug)]
pub enum Begin {
    /// A record of NAME is there (None: it vanished meanwhile, or cannot be read).
    Exists(Option<Box<Record>>),
    Failed(EngineError),
}

/// The record of NAME, if any (one that cannot be parsed reads as an owner that is gone).
pub fn read(name: &str) -> Option<Record> {
    let bytes = std::fs::read(path(name)).ok()?;
    Some(serde_json::from_slice(&bytes).unwrap_or_else(|_| Record {
        owner: Owner { host: Owner::me().host, boot: String::new(), pid: 0, start: 0 },
        started_at: String::new(),
        options: serde_json::Value::Null,
        repo: None,
        deploy_key_id: None,
    }))
}

pub fn exists(name: &str) -> bool {
    path(name).exists()
}

/// Removes NAME's record (its create is over).
pub fn remove(name: &str) -> Result<bool> {
    match std::fs::remove_file(path(name)) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io("remove", &path(name), e)),
    }
}

/// Every name with a record.
pub fn names() -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(dir()) else { return Vec::new() };
    let mut v: Vec<String> = rd
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".json").map(str::to_owned))
        .filter(|n| super::validate::sandbox_name(n).is_ok())
        .collect();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_round_trip_and_only_this_process_is_alive() {
        let me = Owner::me();
        assert_eq!(me.liveness(), Liveness::Alive);
        assert_eq!(Owner::from_key(&me.to_key()), Some(me.clone()));
        let reused = Owner { start: me.start + 1, ..me.clone() };
        assert_eq!(reused.liveness(), Liveness::Gone, "same pid, another start time");
        let rebooted = Owner { boot: "another-boot".into(), ..me.clone() };
        assert_eq!(rebooted.liveness(), Liveness::Gone);
        let far = Owner { host: "another-machine".into(), ..me.clone() };
        assert_eq!(far.liveness(), Liveness::Elsewhere);
        assert_eq!(Owner::from_key("a/b/c"), None);
        assert_eq!(Owner::from_key("a/b/1/2/3"), None);
    }

    #[test]
    fn a_zombie_is_not_alive() {
        let child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        std::thread::sleep(std::time::Duration::from_millis(200)); // exited, not reaped
        let o = Owner { pid, start: start_time(pid).unwrap_or(0), ..Owner::me() };
        assert_eq!(o.liveness(), Liveness::Gone);
        drop(child);
    }
}
