//! The push gate against a sandbox whose root is the attacker, with real Incus, the real sshd git
//! server and the simulated GitHub API: its own branch goes through; main, another branch, a tag,
//! a deletion, a force-push over someone else's commit, a hand-made SSH connection that skips the
//! gate and raw requests to the gate are all refused — and the server's repository is unchanged
//! after each. Also: the gate after a restart, after its daemon was killed, and after rm.
use std::path::Path;
use std::process::{Command, Output};

use sandbox_e2e::gitfake::GitHub;
use sandbox_e2e::repo::{Guard, commit, create_ok, exec, exec_ok, sb};
use sandbox_e2e::*;

const REPO: &str = "acme/app";

/// One test at a time here: one of them kills the host daemon (the gate's endpoints and the
/// Anthropic proxy), which every sandbox of this
/// ~/.sandbox shares (the other suites run in other processes, one after another).
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A shell script as root inside the sandbox, in its checkout (the attacker's view: git as root
/// needs `safe.directory`, which root sets as it likes).
fn root(name: &str, script: &str) -> Output {
    let script = format!("git config --global --add safe.directory '*'; {script}");
    Command::new("incus")
        .args(["exec", &format!("agent-{name}"), "--cwd", "/workspace/project", "--", "sh", "-c", &script])
        .output()
        .unwrap()
}

/// Every ref of the server's repository and its value.
fn server_refs(gh: &GitHub) -> String {
    let o = Command::new("git")
        .arg("--git-dir")
        .arg(gh.repo_dir(REPO))
        .args(["for-each-ref", "--format=%(refname) %(objectname)"])
        .output()
        .unwrap();
    text(&o.stdout)
}

/// `script` as root must fail, saying `says`, and leave the server as it was.
fn refused(gh: &GitHub, name: &str, script: &str, says: &str) {
    let before = server_refs(gh);
    let o = root(name, script);
    let all = format!("{}{}", text(&o.stdout), text(&o.stderr));
    assert!(!o.status.success(), "{script} was let through: {all}");
    assert!(all.contains(says), "{script}: expected {says:?} in: {all}");
    assert_eq!(server_refs(gh), before, "{script} changed the server's repository");
}

/// Someone else pushes a commit to `branch` on the server (straight into its repository).
fn someone_else_pushes(gh: &GitHub, branch: &str) -> String {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let git = |args: &[&str]| {
        let o = Command::new("git")
            .arg("-C")
            .arg(w)
            .args(["-c", "user.name=other", "-c", "user.email=o@example.invalid"])
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{args:?}: {}", text(&o.stderr));
        text(&o.stdout)
    };
    let bare = gh.repo_dir(REPO);
    git(&["clone", "-q", "--branch", branch, bare.to_str().unwrap(), "."]);
    git(&["commit", "-q", "--allow-empty", "-m", "a colleague's fix"]);
    git(&["push", "-q", "origin", branch]);
    git(&["rev-parse", "HEAD"]).trim().to_string()
}

#[test]
fn a_sandbox_pushes_its_own_branch_and_nothing_else_even_as_root() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let gh = GitHub::start(&[REPO]);
    let mut g = Guard::new(&gh);
    let n = g.name("gate");
    create_ok(&gh, &n, &[&gh.url(REPO), "--branch", "feature"]);
    assert_eq!(listed(&n).unwrap()["push"], "gate");
    assert_eq!(exec_ok(&n, &["git", "remote", "get-url", "origin"]).trim(), "git://127.0.0.1/acme/app.git");
    // The key is the gate's alone: no agent inside, nothing in the sandbox signs for the server.
    assert!(!root(&n, "test -e /run/ssh-agent.sock").status.success());
    assert!(!root(&n, "SSH_AUTH_SOCK=/run/ssh-agent.sock ssh-add -l").status.success());

    // Its own branch, as ubuntu and as root: through the gate to the server.
    let head = commit(&n, "mine");
    exec_ok(&n, &["git", "push", "-q", "origin", "feature"]);
    assert_eq!(gh.rev(REPO, "refs/heads/feature").as_deref(), Some(head.as_str()));
    let o =
        root(&n, "git -c user.name=r -c user.email=r@x commit -q --allow-empty -m root && git push -q origin feature");
    assert!(o.status.success(), "{}", text(&o.stderr));
    let head = exec_ok(&n, &["git", "rev-parse", "HEAD"]).trim().to_string();
    assert_eq!(gh.rev(REPO, "refs/heads/feature").as_deref(), Some(head.as_str()));

    refused(&gh, &n, "git push origin HEAD:main", "may push only its own branch feature, not the branch main");
    refused(&gh, &n, "git push origin HEAD:refs/heads/other", "not the branch other");
    refused(&gh, &n, "git tag v1 && git push origin v1", "not the tag v1");
    refused(&gh, &n, "git push origin :feature", "may not delete feature");
    refused(&gh, &n, "git push origin HEAD:feature HEAD:main", "not the branch main");

    // A colleague's commit on the branch: a force-push that drops it is refused...
    let theirs = someone_else_pushes(&gh, "feature");
    exec_ok(&n, &["git", "fetch", "-q", "origin"]);
    assert_eq!(exec_ok(&n, &["git", "rev-parse", "origin/feature"]).trim(), theirs, "fetches see the server now");
    refused(&gh, &n, "git push --force origin HEAD:feature", "did not make");
    // ... while rewriting its own commits is fine (merged with the colleague's first).
    exec_ok(&n, &["git", "merge", "-q", "--ff-only", "origin/feature"]);
    let mine = commit(&n, "draft");
    exec_ok(&n, &["git", "push", "-q", "origin", "feature"]);
    exec_ok(
        &n,
        &[
            "git",
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@x",
            "commit",
            "-q",
            "--amend",
            "--allow-empty",
            "-m",
            "final",
        ],
    );
    let amended = exec_ok(&n, &["git", "rev-parse", "HEAD"]).trim().to_string();
    assert_ne!(amended, mine);
    exec_ok(&n, &["git", "push", "-q", "--force", "origin", "feature"]);
    assert_eq!(gh.rev(REPO, "refs/heads/feature").as_deref(), Some(amended.as_str()));
    assert!(
        Command::new("git")
            .arg("--git-dir")
            .arg(gh.repo_dir(REPO))
            .args(["merge-base", "--is-ancestor", &theirs, "feature"])
            .status()
            .unwrap()
            .success(),
        "the colleague's commit is still on the branch"
    );

    // Skipping the gate: SSH straight to the server has no key it accepts.
    let url = gh.url(REPO);
    refused(
        &gh,
        &n,
        &format!(
            "GIT_SSH_COMMAND='ssh -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes' git push {url} HEAD:main"
        ),
        "Permission denied",
    );
    refused(
        &gh,
        &n,
        &format!(
            "ssh -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes git@{} \"git-receive-pack 'acme/app.git'\" </dev/null",
            gh.ip
        ),
        "Permission denied",
    );
    // Raw requests to the gate itself: another repository, another service, garbage.
    refused(&gh, &n, "git push git://127.0.0.1/acme/other.git HEAD:feature", "serves acme/app only");
    refused(&gh, &n, "git ls-remote git://127.0.0.1/acme/other.git", "serves acme/app only");
    let garbage = "python3 -c \"import socket;s=socket.create_connection(('127.0.0.1',9418));s.sendall(b'0014git-upload-archive');print(s.recv(200))\"; exit 1";
    refused(&gh, &n, garbage, "speaks git only");
}

fn daemon_pid() -> Option<i32> {
    let p = sandbox_home().join("anthropic").join("daemon.pid");
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

#[test]
fn the_gate_comes_back_after_a_restart_and_a_killed_daemon_and_goes_with_rm() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let gh = GitHub::start(&[REPO]);
    let mut g = Guard::new(&gh);
    let n = g.name("gate");
    create_ok(&gh, &n, &[&gh.url(REPO), "--branch", "feature"]);
    let mirror = sandbox_home().join("gate").join("mirrors").join(format!("{n}.git"));
    assert!(mirror.join("HEAD").is_file());

    assert!(sandbox(&["stop", &n], &[]).status.success());
    assert!(!sandbox_home().join("anthropic/sandboxes").join(&n).join("git.sock").exists(), "closed on stop");
    let o = sandbox(&["start", &n], &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let head = commit(&n, "after a restart");
    exec_ok(&n, &["git", "push", "-q", "origin", "feature"]);
    assert_eq!(gh.rev(REPO, "refs/heads/feature").as_deref(), Some(head.as_str()));

    // The daemon killed (as by a reboot): `start` of the running sandbox brings it back.
    let pid = daemon_pid().expect("the host daemon runs");
    assert!(Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap().success());
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(!exec(&n, &["git", "fetch", "-q", "origin"]).status.success(), "nothing answers for the sandbox");
    let o = sb(&gh, &["start", &n], &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    exec_ok(&n, &["git", "fetch", "-q", "origin"]);
    assert_ne!(daemon_pid(), Some(pid));

    let o = sb(&gh, &["rm", &n], &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(!mirror.exists(), "the mirror goes with the sandbox");
    assert!(!Path::new(&sandbox_home().join("anthropic/sandboxes").join(&n)).exists());
    assert!(!sandbox_home().join("anthropic/state").join(format!("{n}.json")).exists());
}
