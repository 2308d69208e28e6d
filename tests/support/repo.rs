//! Sandboxes with a repository on the simulated GitHub (gitfake.rs): the binary run with the
//! fake's API and token, commands in the sandbox's checkout, and cleanup that removes their
//! deploy keys there too.
use std::process::{Command, Output};

use crate::gitfake::GitHub;
use crate::{sandbox, text, unique};

/// Runs the binary with the fake GitHub's API and token (and extra variables).
pub fn sb(gh: &GitHub, args: &[&str], extra: &[(&str, &str)]) -> Output {
    let env = gh.env();
    let mut all: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    all.extend_from_slice(extra);
    sandbox(args, &all)
}

/// `sandbox start NAME --stack minimal ARGS…`, which must succeed.
pub fn create_ok(gh: &GitHub, name: &str, args: &[&str]) {
    let mut a = vec!["start", name, "--stack", "minimal"];
    a.extend_from_slice(args);
    let o = sb(gh, &a, &[]);
    assert!(o.status.success(), "create {name} failed: {}\nsshd: {}", text(&o.stderr), gh.sshd_log());
}

/// `sandbox exec NAME -- ARGV` (ubuntu, login shell, /workspace/project).
pub fn exec(name: &str, argv: &[&str]) -> Output {
    let mut a = vec!["exec", name, "--"];
    a.extend_from_slice(argv);
    sandbox(&a, &[])
}

pub fn exec_ok(name: &str, argv: &[&str]) -> String {
    let o = exec(name, argv);
    assert!(o.status.success(), "{argv:?} in {name}: {}{}", text(&o.stdout), text(&o.stderr));
    text(&o.stdout)
}

/// Commits everything in the sandbox's checkout (as ubuntu); returns the new HEAD.
pub fn commit_all(name: &str, msg: &str) -> String {
    exec_ok(name, &["git", "add", "-A"]);
    commit(name, msg)
}

/// Commits what is staged (an empty commit when nothing is); returns the new HEAD.
pub fn commit(name: &str, msg: &str) -> String {
    exec_ok(
        name,
        &["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-q", "--allow-empty", "-m", msg],
    );
    exec_ok(name, &["git", "rev-parse", "HEAD"]).trim().to_string()
}

/// Removes sandboxes with the fake's token (their deploy keys are deleted there), falling back
/// to deleting the instances. Declare it after the GitHub fixture so it runs first.
pub struct Guard<'a> {
    gh: &'a GitHub,
    names: Vec<String>,
}

impl<'a> Guard<'a> {
    pub fn new(gh: &'a GitHub) -> Self {
        Guard { gh, names: Vec::new() }
    }
    pub fn name(&mut self, prefix: &str) -> String {
        let n = unique(prefix);
        self.names.push(n.clone());
        n
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        for n in &self.names {
            let o = sb(self.gh, &["rm", n], &[]);
            if !o.status.success() {
                let _ = Command::new("incus").args(["delete", "--force", &format!("agent-{n}")]).output();
            }
        }
    }
}
