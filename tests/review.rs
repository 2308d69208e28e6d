//! Getting the agent's work back, against real Incus, the real sshd git server and the simulated
//! GitHub API (tests/support/gitfake.rs): `sandbox diff` (commits, uncommitted and untracked
//! files, renames, deletions, binaries, odd paths), `sandbox fetch` into a clone on the host, and
//! `sandbox pr` (the pull request GitHub receives, its state, API errors).
use std::path::Path;
use std::process::{Command, Output};

use sandbox_e2e::gitfake::{Fail, GitHub};
use sandbox_e2e::repo::{Guard, commit, commit_all, create_ok, exec_ok, sb};
use sandbox_e2e::*;
use serde_json::Value;

const REPO: &str = "acme/app";

fn incus_config(name: &str, key: &str) -> String {
    let o = Command::new("incus").args(["config", "get", &format!("agent-{name}"), key]).output().unwrap();
    text(&o.stdout).trim().to_string()
}

fn diff_json(name: &str, extra: &[&str]) -> Value {
    let mut a = vec!["diff", name, "--json"];
    a.extend_from_slice(extra);
    let o = sandbox(&a, &[]);
    assert!(o.status.success(), "diff {name}: {}", text(&o.stderr));
    serde_json::from_slice(&o.stdout).expect("diff --json")
}

fn file<'a>(d: &'a Value, path: &str) -> &'a Value {
    d["files"].as_array().unwrap().iter().find(|f| f["path"] == path).unwrap_or_else(|| panic!("{path} not in {d:#}"))
}

/// A committed rename and edit, then uncommitted: a deleted binary, an untracked binary, an
/// untracked file whose name has a space and a newline, an unstaged edit.
fn make_changes(n: &str) -> String {
    exec_ok(n, &["mkdir", "-p", "new dir"]);
    exec_ok(n, &["git", "mv", "old name.txt", "new dir/renamed file.txt"]);
    exec_ok(n, &["sed", "-i", "s/^step 7$/step seven/", "docs/guide.md"]);
    let head = commit_all(n, "Rename and edit");
    exec_ok(n, &["rm", "logo.png"]);
    exec_ok(n, &["python3", "-c", "open('data.bin','wb').write(bytes(range(256)))"]);
    exec_ok(n, &["python3", "-c", "open('notes\\nday 1.md','w').write('one\\ntwo\\n')"]);
    exec_ok(n, &["sh", "-c", "echo more >> README.md"]);
    head
}

#[test]
fn diff_sees_commits_uncommitted_untracked_renames_deletions_binaries_and_odd_paths() {
    let gh = GitHub::start(&[REPO]);
    let mut g = Guard::new(&gh);
    let n = g.name("diff");
    create_ok(&gh, &n, &[&gh.url(REPO), "--branch", "feature"]);
    let base = gh.rev(REPO, "refs/heads/main").unwrap();
    assert_eq!(incus_config(&n, "user.sandbox.base-commit"), base);
    assert_eq!(incus_config(&n, "user.sandbox.base-branch"), "main");

    let head = make_changes(&n);
    let status_before = exec_ok(&n, &["git", "status", "--porcelain", "-z"]);
    let d = diff_json(&n, &[]);
    assert_eq!((d["base"].as_str(), d["head"].as_str()), (Some(base.as_str()), Some(head.as_str())));
    assert_eq!((d["branch"].as_str(), d["baseBranch"].as_str()), (Some("feature"), Some("main")));
    assert_eq!((d["commits"].as_u64(), d["uncommitted"].as_bool()), (Some(1), Some(true)));

    let renamed = file(&d, "new dir/renamed file.txt");
    assert_eq!((renamed["kind"].as_str(), renamed["oldPath"].as_str()), (Some("renamed"), Some("old name.txt")));
    let guide = file(&d, "docs/guide.md");
    assert_eq!(
        (guide["kind"].as_str(), guide["added"].as_u64(), guide["deleted"].as_u64()),
        (Some("modified"), Some(1), Some(1))
    );
    let logo = file(&d, "logo.png");
    assert_eq!((logo["kind"].as_str(), logo["binary"].as_bool()), (Some("deleted"), Some(true)));
    assert!(logo["newBlob"].is_null() && logo["oldBlob"].is_string());
    let bin = file(&d, "data.bin");
    assert_eq!(
        (bin["kind"].as_str(), bin["binary"].as_bool(), bin["added"].as_u64()),
        (Some("added"), Some(true), None)
    );
    let odd = file(&d, "notes\nday 1.md");
    assert_eq!((odd["kind"].as_str(), odd["added"].as_u64()), (Some("added"), Some(2)));
    let readme = file(&d, "README.md");
    assert_eq!((readme["added"].as_u64(), readme["deleted"].as_u64()), (Some(1), Some(0)));
    assert_eq!(d["files"].as_array().unwrap().len(), 6, "{d:#}");
    let sum = |k: &str| d["files"].as_array().unwrap().iter().filter_map(|f| f[k].as_u64()).sum::<u64>();
    assert_eq!((d["added"].as_u64(), d["deleted"].as_u64()), (Some(sum("added")), Some(sum("deleted"))));

    // The sandbox's own index and working tree are as they were: nothing got staged.
    assert_eq!(exec_ok(&n, &["git", "status", "--porcelain", "-z"]), status_before);
    // The summary is in Incus, so every client's tree has it.
    let listed = listed(&n).unwrap();
    assert_eq!((listed["changes"]["files"].as_u64(), listed["changes"]["commits"].as_u64()), (Some(6), Some(1)));
    assert!(incus_config(&n, "user.sandbox.changes").contains("\"files\":6"));

    let stat = sandbox(&["diff", &n, "--stat"], &[]);
    let out = text(&stat.stdout);
    assert!(stat.status.success() && out.contains("old name.txt → new dir/renamed file.txt"), "{out}");
    assert!(out.contains("notes\\nday 1.md") && out.contains("logo.png") && out.contains("binary (deleted)"), "{out}");
    assert!(out.contains(&format!("+{} −{} · 6 files · 1 commit", d["added"], d["deleted"])), "{out}");

    let patch = sandbox(&["diff", &n], &[]);
    let p = text(&patch.stdout);
    assert!(
        patch.status.success()
            && p.contains("-step 7\n+step seven\n")
            && p.contains("rename to new dir/renamed file.txt"),
        "{p}"
    );
    assert!(p.contains("Binary files a/logo.png and /dev/null differ"), "{p}");

    // Another base: only what is not committed.
    let since_head = diff_json(&n, &["--base", "HEAD"]);
    assert_eq!(since_head["commits"].as_u64(), Some(0));
    assert!(since_head["files"].as_array().unwrap().iter().all(|f| f["path"] != "docs/guide.md"));
    for (bad, says) in [("--output=/tmp/x", "is not a revision we accept"), ("nope", "does not know the base revision")]
    {
        // `--base=…`: a value that looks like an option reaches the engine's own check.
        let o = sandbox(&["diff", &n, &format!("--base={bad}")], &[]);
        assert!(
            !o.status.success() && text(&o.stderr).contains(says) && text(&o.stderr).contains("hint:"),
            "{}",
            text(&o.stderr)
        );
    }
}

#[test]
fn diff_of_a_sandbox_without_a_repository_or_not_running_says_so() {
    let mut s = Sandboxes::new();
    let n = s.name("diff");
    create(&n, &[]);
    let o = sandbox(&["diff", &n], &[]);
    let err = text(&o.stderr);
    assert!(!o.status.success() && err.contains("has no git repository in /workspace/project"), "{err}");
    assert!(err.contains("hint: create the sandbox with a REPO_URL"), "{err}");
    assert!(sandbox(&["stop", &n], &[]).status.success());
    let o = sandbox(&["diff", &n, "--stat"], &[]);
    assert!(!o.status.success() && text(&o.stderr).contains("is not running"), "{}", text(&o.stderr));
    let o = sandbox(&["diff", "t-no-such-sandbox-x"], &[]);
    assert!(!o.status.success() && text(&o.stderr).contains("not found"), "{}", text(&o.stderr));
}

fn host_git(dir: &Path, args: &[&str]) -> String {
    let o = Command::new("git").arg("-C").arg(dir).args(args).output().unwrap();
    assert!(o.status.success(), "git {args:?}: {}", text(&o.stderr));
    text(&o.stdout)
}

fn fetch_in(dir: &Path, name: &str, json: bool) -> Output {
    let mut c = Command::new(sandbox_bin());
    c.current_dir(dir).args(["fetch", name]);
    if json {
        c.arg("--json");
    }
    c.output().unwrap()
}

#[test]
fn fetch_brings_the_sandboxs_branch_into_the_local_clone_and_changes_nothing_else() {
    let gh = GitHub::start(&[REPO]);
    let mut g = Guard::new(&gh);
    let n = g.name("fetch");
    create_ok(&gh, &n, &[&gh.url(REPO), "--branch", "feature"]);
    let work = tempfile::tempdir().unwrap();
    let clone = work.path().join("my clone");
    let o = Command::new("git").arg("clone").arg("-q").arg(gh.repo_dir(REPO)).arg(&clone).output().unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    std::fs::write(clone.join("README.md"), "my own unsaved work\n").unwrap();
    let before = ["rev-parse HEAD", "symbolic-ref HEAD", "for-each-ref refs/heads", "status --porcelain"]
        .map(|a| host_git(&clone, &a.split(' ').collect::<Vec<_>>()));

    let head = commit(&n, "work in the sandbox");
    let o = fetch_in(&clone.join("docs"), &n, true);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    let tracking = format!("refs/remotes/sandbox-{n}/feature");
    assert_eq!(
        (r["ref"].as_str(), r["commit"].as_str(), r["branch"].as_str()),
        (Some(tracking.as_str()), Some(head.as_str()), Some("feature"))
    );
    assert_eq!(host_git(&clone, &["rev-parse", &tracking]).trim(), head);
    assert_eq!(
        host_git(&clone, &["remote", "get-url", &format!("sandbox-{n}")]).trim(),
        format!("sandbox-{n}:/workspace/project")
    );
    let after = ["rev-parse HEAD", "symbolic-ref HEAD", "for-each-ref refs/heads", "status --porcelain"]
        .map(|a| host_git(&clone, &a.split(' ').collect::<Vec<_>>()));
    assert_eq!(before, after, "the working tree, HEAD and branches are the user's");
    assert_eq!(std::fs::read_to_string(clone.join("README.md")).unwrap(), "my own unsaved work\n");

    // Again, after more work: the same remote, the ref moves; uncommitted work is mentioned.
    let head2 = commit(&n, "more");
    exec_ok(&n, &["sh", "-c", "echo wip > wip.txt"]);
    let o = fetch_in(&clone, &n, false);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("1 changed files in the sandbox are not committed"), "{}", text(&o.stderr));
    assert_eq!(host_git(&clone, &["rev-parse", &tracking]).trim(), head2);

    let outside = tempfile::tempdir().unwrap();
    let o = fetch_in(outside.path(), &n, false);
    let err = text(&o.stderr);
    assert!(!o.status.success() && err.contains("is not inside a git repository") && err.contains("hint:"), "{err}");
}

#[test]
fn pr_opens_a_pull_request_against_the_base_and_records_its_state() {
    let gh = GitHub::start(&[REPO]);
    let mut g = Guard::new(&gh);
    let n = g.name("pr");
    create_ok(&gh, &n, &[&gh.url(REPO), "--branch", "feature"]);
    exec_ok(&n, &["sh", "-c", "echo feature > feature.txt"]);
    let head = commit_all(&n, "Add the feature\n\nIt does the thing.");

    let o = sb(&gh, &["pr", &n, "--json"], &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let pr: Value = serde_json::from_slice(&o.stdout).unwrap();
    let pulls = gh.pulls(REPO);
    assert_eq!(pulls.len(), 1);
    let p = &pulls[0];
    assert_eq!(
        (p.head.as_str(), p.base.as_str(), p.title.as_str(), p.body.as_str()),
        ("feature", "main", "Add the feature", "It does the thing.")
    );
    assert_eq!(gh.rev(REPO, "refs/heads/feature").as_deref(), Some(head.as_str()), "the branch was pushed");
    assert_eq!((pr["number"].as_u64(), pr["state"].as_str()), (Some(p.number), Some("open")));
    let l = listed(&n).unwrap();
    assert_eq!(
        (l["pullRequest"]["number"].as_u64(), l["pullRequest"]["url"].as_str()),
        (Some(p.number), pr["url"].as_str())
    );

    // Again, with a new commit: the open pull request is named, nothing else is opened or pushed.
    commit(&n, "more");
    let o = sb(&gh, &["pr", &n, "--title", "Another"], &[]);
    let err = text(&o.stderr);
    assert!(!o.status.success() && err.contains("already exists") && err.contains(&format!("#{}", p.number)), "{err}");
    assert_eq!(gh.pulls(REPO).len(), 1);
    assert_eq!(gh.rev(REPO, "refs/heads/feature").as_deref(), Some(head.as_str()), "nothing pushed");

    // Merged on GitHub: --status reads it again and records it.
    gh.set_pull_state(REPO, p.number, "merged");
    let o = sb(&gh, &["pr", &n, "--status", "--json"], &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(listed(&n).unwrap()["pullRequest"]["state"], "merged");
}

#[test]
fn pr_errors_are_clear_and_leave_nothing_half_done() {
    let gh = GitHub::start(&[REPO]);
    let mut g = Guard::new(&gh);
    let n = g.name("pr");
    create_ok(&gh, &n, &[&gh.url(REPO), "--branch", "feature"]);
    // No commit yet: nothing to open.
    let o = sb(&gh, &["pr", &n], &[]);
    assert!(!o.status.success() && text(&o.stderr).contains("has no commit since it started"), "{}", text(&o.stderr));

    commit(&n, "work");
    gh.set_fail(Some(Fail::Status(403)));
    let o = sb(&gh, &["pr", &n], &[]);
    let err = text(&o.stderr);
    gh.set_fail(None);
    assert!(!o.status.success() && err.contains("(403)") && err.contains("Pull requests: write"), "{err}");
    assert!(gh.pulls(REPO).is_empty());
    assert_eq!(gh.rev(REPO, "refs/heads/feature"), None, "GitHub refused before anything was pushed");
    assert_eq!(incus_config(&n, "user.sandbox.pull-request"), "", "no pull request recorded");
    assert!(listed(&n).unwrap()["pullRequest"].is_null());

    // A sandbox on the default branch itself has no branch to propose.
    let m = g.name("pr");
    create_ok(&gh, &m, &[&gh.url(REPO)]);
    commit(&m, "on main");
    let o = sb(&gh, &["pr", &m], &[]);
    assert!(!o.status.success() && text(&o.stderr).contains("works on main itself"), "{}", text(&o.stderr));
    assert!(gh.pulls(REPO).is_empty());

    // GitHub's own 422 when it opens it (the base branch went away meanwhile): its message, said.
    let o = Command::new("git")
        .arg("--git-dir")
        .arg(gh.repo_dir(REPO))
        .args(["branch", "-m", "main", "trunk"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = sb(&gh, &["pr", &n], &[]);
    let err = text(&o.stderr);
    assert!(!o.status.success() && err.contains("(422)") && err.contains("base 'main' does not exist"), "{err}");
    assert!(err.contains("hint: GitHub refused the pull request"), "{err}");
    assert!(gh.pulls(REPO).is_empty());
    assert_eq!(incus_config(&n, "user.sandbox.pull-request"), "", "no pull request recorded");
}
