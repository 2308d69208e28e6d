//! `sandbox __git-gate-hook`: the mirror's pre-receive hook, run by the gate's `git receive-pack`
//! on the host with the pushed objects in quarantine. It decides every ref update of the push,
//! then forwards the allowed ones to the server with the sandbox's key; only when the server took
//! them does it exit 0 (and receive-pack then moves the mirror's refs). Whatever it prints reaches
//! the pushing git as `remote: …`.
//!
//! The rules — a sandbox pushes its own branch and nothing else:
//! - only `refs/heads/BRANCH` (its branch); no other branch, no tag, no other ref;
//! - no deletion;
//! - a fast-forward, or a force-push that drops only commits this sandbox put on its branch
//!   through the gate (recorded at each push), never anyone else's.
use std::collections::HashSet;
use std::io::{Read, Write};
use std::process::{Command, ExitCode, Stdio};

use super::mirror;
use crate::engine::validate;

const MAX_UPDATES: usize = 100;
/// Recorded commits kept per sandbox (past this, a force-push over older ones is refused).
const MAX_MADE: usize = 200_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    pub old: String,
    pub new: String,
    pub r#ref: String,
}

fn is_zero(oid: &str) -> bool {
    oid.bytes().all(|b| b == b'0')
}

fn is_oid(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// receive-pack's stdin: `OLD NEW REF` per line.
pub fn parse_updates(text: &str) -> Result<Vec<Update>, String> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let mut f = line.split(' ');
        let (Some(old), Some(new), Some(r), None) = (f.next(), f.next(), f.next(), f.next()) else {
            return Err(format!("unexpected update line {line:?}"));
        };
        if !is_oid(old) || !is_oid(new) || r.is_empty() {
            return Err(format!("unexpected update line {line:?}"));
        }
        out.push(Update { old: old.into(), new: new.into(), r#ref: r.into() });
        if out.len() > MAX_UPDATES {
            return Err(format!("more than {MAX_UPDATES} ref updates in one push"));
        }
    }
    Ok(out)
}

/// What the rules need to ask git about the mirror (with the push's objects).
pub trait History {
    fn is_ancestor(&self, old: &str, new: &str) -> Result<bool, String>;
    /// Commits only `r#ref` reaches at `old` that `new` does not (what a force-push drops).
    fn dropped(&self, old: &str, new: &str, r#ref: &str) -> Result<Vec<String>, String>;
}

/// The decision for one update; Err is the refusal the pusher reads.
pub fn check(
    u: &Update,
    name: &str,
    branch: Option<&str>,
    made: &HashSet<String>,
    h: &dyn History,
) -> Result<(), String> {
    let Some(branch) = branch else {
        return Err(format!("push gate: sandbox '{name}' has no branch of its own to push yet"));
    };
    let own = format!("refs/heads/{branch}");
    if u.r#ref != own {
        let what = match u.r#ref.strip_prefix("refs/tags/") {
            Some(t) => format!("the tag {t}"),
            None => u.r#ref.strip_prefix("refs/heads/").map(|b| format!("the branch {b}")).unwrap_or(u.r#ref.clone()),
        };
        return Err(format!("push gate: sandbox '{name}' may push only its own branch {branch}, not {what}"));
    }
    if is_zero(&u.new) {
        return Err(format!("push gate: sandbox '{name}' may not delete {branch}"));
    }
    if is_zero(&u.old) || h.is_ancestor(&u.old, &u.new)? {
        return Ok(());
    }
    let dropped = h.dropped(&u.old, &u.new, &u.r#ref)?;
    let theirs: Vec<&String> = dropped.iter().filter(|c| !made.contains(*c)).collect();
    if theirs.is_empty() {
        return Ok(());
    }
    let shown: Vec<&str> = theirs.iter().take(5).map(|c| &c[..12.min(c.len())]).collect();
    Err(format!(
        "push gate: refusing a force-push of {branch} that drops {} commit(s) sandbox '{name}' did not make ({}{})",
        theirs.len(),
        shown.join(", "),
        if theirs.len() > 5 { ", …" } else { "" }
    ))
}

/// git in the mirror (the hook's working directory), with receive-pack's quarantine.
struct Mirror;

fn git(args: &[&str]) -> Result<std::process::Output, String> {
    Command::new("git").args(args).stdin(Stdio::null()).output().map_err(|e| format!("cannot run git: {e}"))
}

impl History for Mirror {
    fn is_ancestor(&self, old: &str, new: &str) -> Result<bool, String> {
        let out = git(&["merge-base", "--is-ancestor", old, new])?;
        match out.status.code() {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => Err(format!("git merge-base: {}", String::from_utf8_lossy(&out.stderr).trim())),
        }
    }

    fn dropped(&self, old: &str, new: &str, r#ref: &str) -> Result<Vec<String>, String> {
        let exclude = format!("--exclude={ref}");
        let out = git(&["rev-list", "--max-count=100001", old, "--not", new, &exclude, "--all"])?;
        if !out.status.success() {
            return Err(format!("git rev-list: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect())
    }
}

/// Sends one allowed update to the server: only if the server's ref is still `old` (a lease), so
/// nothing that arrived there since is overwritten unseen.
fn forward(u: &Update, url: &str) -> Result<(), String> {
    let expect = if is_zero(&u.old) { String::new() } else { u.old.clone() };
    let lease = format!("--force-with-lease={}:{expect}", u.r#ref);
    let refspec = format!("{}:{}", u.new, u.r#ref);
    let out = Command::new("git")
        .args(["push", "--porcelain", "--no-verify", &lease, "--", url, &refspec])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run git push: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let said: Vec<String> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .chain(String::from_utf8_lossy(&out.stdout).lines())
        .filter(|l| !l.trim().is_empty() && !l.starts_with("To "))
        .take(6)
        .map(str::to_owned)
        .collect();
    let stale = said.iter().any(|l| l.contains("stale info") || l.contains("fetch first"));
    let hint = if stale { " (the branch moved on the server: fetch, rebase or merge, and push again)" } else { "" };
    Err(format!("push gate: the server refused {}{hint}: {}", u.r#ref, said.join(" / ")))
}

fn load_made(name: &str) -> HashSet<String> {
    std::fs::read_to_string(mirror::made_file(name))
        .map(|t| t.lines().filter(|l| is_oid(l)).map(str::to_owned).collect())
        .unwrap_or_default()
}

/// Adds the commits an accepted update brought (those no ref of the mirror had before it).
fn record_made(name: &str, u: &Update, known: usize) -> Result<(), String> {
    let out = git(&["rev-list", "--max-count=100000", &u.new, "--not", "--all"])?;
    let new: Vec<String> =
        String::from_utf8_lossy(&out.stdout).lines().filter(|l| is_oid(l)).map(str::to_owned).collect();
    let room = MAX_MADE.saturating_sub(known);
    if new.is_empty() || room == 0 {
        return Ok(());
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(mirror::made_file(name))
        .map_err(|e| format!("cannot record the pushed commits: {e}"))?;
    let text: String = new.iter().take(room).map(|c| format!("{c}\n")).collect();
    f.write_all(text.as_bytes()).map_err(|e| format!("cannot record the pushed commits: {e}"))
}

fn run() -> Result<(), String> {
    let name = std::env::var("SANDBOX_GATE_NAME").map_err(|_| "push gate: not run by the gate")?;
    validate::sandbox_name(&name).map_err(|e| e.to_string())?;
    let url = std::env::var("SANDBOX_GATE_URL").map_err(|_| "push gate: no server")?;
    let branch = std::env::var("SANDBOX_GATE_BRANCH").ok().filter(|b| validate::branch(b).is_ok());
    let mut input = String::new();
    std::io::stdin().lock().take(64 * 1024).read_to_string(&mut input).map_err(|e| format!("push gate: {e}"))?;
    let updates = parse_updates(&input)?;
    let made = load_made(&name);
    for u in &updates {
        check(u, &name, branch.as_deref(), &made, &Mirror)?;
    }
    for u in &updates {
        forward(u, &url)?;
        if let Err(e) = record_made(&name, u, made.len()) {
            eprintln!("push gate: warning: {e}");
        }
        eprintln!("push gate: {} → {} on the server", &u.new[..12], u.r#ref);
    }
    Ok(())
}

/// The hook's entry point.
pub fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let stderr = std::io::stderr();
            let mut w = stderr.lock();
            for line in e.lines() {
                let _ = writeln!(w, "{line}");
            }
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "1111111111111111111111111111111111111111";
    const B: &str = "2222222222222222222222222222222222222222";
    const Z: &str = "0000000000000000000000000000000000000000";

    /// A history where B is not a descendant of A, and a force-push A → B drops `dropped`.
    struct Fake {
        ff: bool,
        dropped: Vec<String>,
    }
    impl History for Fake {
        fn is_ancestor(&self, _: &str, _: &str) -> Result<bool, String> {
            Ok(self.ff)
        }
        fn dropped(&self, _: &str, _: &str, _: &str) -> Result<Vec<String>, String> {
            Ok(self.dropped.clone())
        }
    }

    fn up(old: &str, new: &str, r: &str) -> Update {
        Update { old: old.into(), new: new.into(), r#ref: r.into() }
    }

    #[test]
    fn its_own_branch_only_never_a_deletion_and_force_only_over_its_own_commits() {
        let made: HashSet<String> = [A.to_string()].into();
        let ff = Fake { ff: true, dropped: vec![] };
        let c = |u: &Update, h: &dyn History| check(u, "t", Some("feature"), &made, h);
        assert!(c(&up(A, B, "refs/heads/feature"), &ff).is_ok());
        assert!(c(&up(Z, B, "refs/heads/feature"), &ff).is_ok(), "creating it");
        let e = c(&up(A, B, "refs/heads/main"), &ff).unwrap_err();
        assert!(e.contains("only its own branch feature, not the branch main"), "{e}");
        assert!(c(&up(Z, B, "refs/tags/v1"), &ff).unwrap_err().contains("not the tag v1"));
        assert!(c(&up(A, B, "refs/notes/x"), &ff).is_err());
        assert!(c(&up(A, Z, "refs/heads/feature"), &ff).unwrap_err().contains("may not delete feature"));
        let own = Fake { ff: false, dropped: vec![A.into()] };
        assert!(c(&up(B, A, "refs/heads/feature"), &own).is_ok(), "rewriting its own commit");
        let theirs = Fake { ff: false, dropped: vec![A.into(), B.into()] };
        let e = c(&up(B, A, "refs/heads/feature"), &theirs).unwrap_err();
        assert!(e.contains("drops 1 commit(s) sandbox 't' did not make (222222222222)"), "{e}");
        assert!(check(&up(A, B, "refs/heads/x"), "t", None, &made, &ff).unwrap_err().contains("no branch of its own"));
    }

    #[test]
    fn update_lines_are_checked() {
        let ok = parse_updates(&format!("{A} {B} refs/heads/feature\n")).unwrap();
        assert_eq!(ok, vec![up(A, B, "refs/heads/feature")]);
        for bad in ["x y z\n", &format!("{A} {B}\n"), &format!("{A} {B} r extra\n")] {
            assert!(parse_updates(bad).is_err(), "{bad}");
        }
        let many: String = (0..=MAX_UPDATES).map(|i| format!("{A} {B} refs/heads/b{i}\n")).collect();
        assert!(parse_updates(&many).is_err());
    }
}
