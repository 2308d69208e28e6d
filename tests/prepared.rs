//! Prepared images against real Incus, a real sshd git server and the simulated GitHub API: the
//! repository's setup runs once in `sandbox prepare`; the next `start` of that repository is a
//! copy of the prepared image (the setup's results there, the setup not run again) with the branch
//! fetched on top; a changed lockfile makes the image stale and `start` falls back to the golden
//! image, saying how to refresh; failures leave no instance, no key and no image behind.
use std::process::{Command, Output};

use sandbox_e2e::gitfake::GitHub;
use sandbox_e2e::*;
use serde_json::Value;

const REPO: &str = "acme/deps";
/// A repository with nothing to prepare (only a README).
const BARE: &str = "acme/bare";

/// Records each run (outside the project, so a copy shows how often it ran) and leaves what an
/// install would (an ignored dependency directory). Needs no network.
const SETUP: &str = "#!/bin/bash\nset -eu\necho \"ran as $(id -un) in $PWD prepare=${SANDBOX_PREPARE:-}\" >> /home/ubuntu/setup-runs\n\
mkdir -p node_modules/dep && echo installed > node_modules/dep/index.js\n";

struct World {
    gh: GitHub,
    env: Vec<(&'static str, String)>,
}

impl World {
    fn new() -> World {
        let gh = GitHub::start(&[REPO, BARE]);
        gh.commit(
            REPO,
            "main",
            &[
                (".sandbox/setup.sh", SETUP),
                ("package-lock.json", "{\"lockfileVersion\": 3, \"v\": 1}\n"),
                (".gitignore", "node_modules/\n"),
            ],
        );
        let env = gh.env();
        World { gh, env }
    }
    fn run(&self, args: &[&str]) -> Output {
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        sandbox(args, &env)
    }
    fn ok(&self, args: &[&str]) -> Output {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "sandbox {args:?}: {}{}\nsshd: {}",
            text(&o.stdout),
            text(&o.stderr),
            self.gh.sshd_log()
        );
        o
    }
    fn json(&self, args: &[&str]) -> Value {
        serde_json::from_slice(&self.ok(args).stdout).expect("json")
    }
}

/// Removes sandboxes (their deploy keys on the fake) and prepared images when dropped.
struct Guard<'a> {
    w: &'a World,
    sandboxes: Vec<String>,
    images: Vec<String>,
}
impl Drop for Guard<'_> {
    fn drop(&mut self) {
        for n in &self.sandboxes {
            if !self.w.run(&["rm", n]).status.success() {
                let _ = Command::new("incus").args(["delete", "--force", &format!("agent-{n}")]).output();
            }
        }
        for i in &self.images {
            let _ = Command::new("incus").args(["delete", "--force", i]).output();
        }
    }
}

fn user(name: &str, cmd: &str) -> String {
    let o = sandbox(&["exec", name, "--", "sh", "-c", cmd], &[]);
    assert!(o.status.success(), "{cmd} in {name}: {}", text(&o.stderr));
    text(&o.stdout)
}

/// Instances that belong to prepares of URL (temporary ones, images): only this test's.
fn leftovers(url: &str) -> Vec<String> {
    let o = Command::new("incus").args(["list", "--format", "json"]).output().unwrap();
    let all: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    all.as_array()
        .into_iter()
        .flatten()
        .filter(|i| {
            let c = &i["config"];
            c["user.sandbox.preparing"] == url || c["user.sandbox.prepared-url"] == url
        })
        .map(|i| i["name"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn prepare_once_then_start_from_it_until_a_lockfile_changes() {
    let w = World::new();
    let url = w.gh.url(REPO);
    let mut g = Guard { w: &w, sandboxes: Vec::new(), images: Vec::new() };

    let out = w.ok(&["prepare", &url, "--stack", "minimal", "--json"]);
    let p: Value = serde_json::from_slice(&out.stdout).unwrap();
    let image = p["name"].as_str().unwrap().to_string();
    g.images.push(image.clone());
    let log = text(&out.stderr);
    assert!(log.contains("bash .sandbox/setup.sh"), "the setup's progress is shown: {log}");
    assert!(image.starts_with("prepared-minimal-"), "{image}");
    assert_eq!(p["repo"], url.as_str());
    assert_eq!(p["state"], "current");
    assert_eq!(p["files"], serde_json::json!([".sandbox/setup.sh", "package-lock.json"]));
    assert_eq!(p["commit"], w.gh.rev(REPO, "refs/heads/main").unwrap().as_str());
    // The temporary instance and deploy key are gone; the image is listed.
    assert!(leftovers(&url).iter().all(|n| !n.starts_with("tmp-prep-")), "{:?}", leftovers(&url));
    assert!(w.gh.keys(REPO).is_empty(), "the temporary key stayed: {:?}", w.gh.keys(REPO));
    let listed_images = w.json(&["prepared", "--json"]);
    assert!(listed_images.as_array().unwrap().iter().any(|i| i["name"] == image.as_str()));
    // Prepared again with the same files: up to date, nothing run.
    let again = w.ok(&["prepare", &url, "--stack", "minimal", "--json"]);
    assert!(text(&again.stderr).contains("up to date"), "{}", text(&again.stderr));
    assert!(w.gh.keys(REPO).is_empty());

    // A sandbox of that repository starts from it: the setup's results are there, it did not run
    // again, and the sandbox has its own key and the default branch's current commit.
    let a = unique("prep");
    g.sandboxes.push(a.clone());
    let r = w.json(&["start", &a, &url, "--stack", "minimal", "--json"]);
    assert_eq!(r["sandbox"]["prepared"], image.as_str());
    assert_eq!(user(&a, "cat /home/ubuntu/setup-runs").lines().count(), 1, "the setup ran again");
    assert!(user(&a, "cat /home/ubuntu/setup-runs").contains("ran as ubuntu in /workspace/project prepare=1"));
    assert_eq!(user(&a, "cat node_modules/dep/index.js").trim(), "installed");
    assert_eq!(user(&a, "git branch --show-current").trim(), "main");
    assert_eq!(user(&a, "git status --porcelain").trim(), "", "a clean checkout");
    assert_eq!(w.gh.keys(REPO).len(), 1);
    assert_eq!(w.gh.keys(REPO)[0].title, format!("sandbox-{a}"));
    user(&a, "git fetch -q origin");

    // A commit that leaves the lockfiles alone: still the image, the new commit fetched on top.
    let head = w.gh.commit(REPO, "main", &[("README.md", "changed\n")]);
    let b = unique("prep");
    g.sandboxes.push(b.clone());
    let r = w.json(&["start", &b, &url, "--stack", "minimal", "--branch", "feature", "--json"]);
    assert_eq!(r["sandbox"]["prepared"], image.as_str());
    assert_eq!(user(&b, "git branch --show-current").trim(), "feature");
    assert_eq!(user(&b, "git rev-parse HEAD").trim(), head);
    assert_eq!(user(&b, "cat README.md").trim(), "changed");

    // The lockfile changes: the image is stale, the start falls back to the golden image and says
    // how to refresh it.
    w.gh.commit(REPO, "main", &[("package-lock.json", "{\"lockfileVersion\": 3, \"v\": 2}\n")]);
    let c = unique("prep");
    g.sandboxes.push(c.clone());
    let out = w.ok(&["start", &c, &url, "--stack", "minimal", "--json"]);
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(r["sandbox"]["prepared"].is_null(), "{r}");
    let log = text(&out.stderr);
    assert!(log.contains("stale") && log.contains(&format!("sandbox prepare {url}")), "{log}");
    assert!(!user(&c, "test -e /home/ubuntu/setup-runs && echo yes || echo no").contains("yes"));
    assert!(user(&c, "cat package-lock.json").contains("\"v\": 2"));

    // Refreshed: a new image for the new lockfile; the old one stays until removed.
    let p2 = w.json(&["prepare", &url, "--stack", "minimal", "--json"]);
    let image2 = p2["name"].as_str().unwrap().to_string();
    g.images.push(image2.clone());
    assert_ne!(image2, image);
    let d = unique("prep");
    g.sandboxes.push(d.clone());
    assert_eq!(w.json(&["start", &d, &url, "--stack", "minimal", "--json"])["sandbox"]["prepared"], image2.as_str());
    w.ok(&["prepared", "rm", &image]);
    assert!(!incus_names().contains(&image));
    assert_eq!(listed(&a).unwrap()["state"], "running", "a sandbox made from a removed image stays");
}

#[test]
fn failed_prepares_leave_nothing_behind() {
    let w = World::new();
    let url = w.gh.url(REPO);
    // A failing setup on a branch: the error names it with its last lines.
    w.gh.commit(REPO, "broken", &[(".sandbox/setup.sh", "#!/bin/bash\necho about to fail\nexit 3\n")]);
    let o = w.run(&["prepare", &url, "--stack", "minimal", "--branch", "broken"]);
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(err.contains("exit 3") && err.contains("about to fail") && err.contains("hint:"), "{err}");
    // A repository with nothing to prepare.
    let bare = w.gh.url(BARE);
    let o = w.run(&["prepare", &bare, "--stack", "minimal"]);
    let err = text(&o.stderr);
    assert!(!o.status.success() && err.contains("nothing to prepare") && err.contains("hint:"), "{err}");
    // A branch that does not exist, and bad input.
    let o = w.run(&["prepare", &url, "--stack", "minimal", "--branch", "no-such-branch"]);
    assert!(!o.status.success(), "{}", text(&o.stderr));
    for args in [
        vec!["prepare", "not a url"],
        vec!["prepare", &url, "--stack", "Bad!"],
        vec!["prepared", "rm", "golden-minimal"],
    ] {
        let o = w.run(&args);
        assert!(!o.status.success() && text(&o.stderr).contains("hint:"), "{args:?}: {}", text(&o.stderr));
    }
    // Interrupted after the setup ran: the same.
    let o = w.run_with_fault(&url, "prepare-after-setup");
    assert!(!o.status.success() && text(&o.stderr).contains("injected"), "{}", text(&o.stderr));
    for u in [&url, &bare] {
        assert!(leftovers(u).is_empty(), "{:?}", leftovers(u));
    }
    assert!(w.gh.keys(REPO).is_empty() && w.gh.keys(BARE).is_empty(), "temporary keys left: {:?}", w.gh.keys(REPO));
}

/// A prepare killed (kill -9) with its temporary instance and deploy key in place: the next
/// prepare removes both, and the key pair and record on the host, before it makes its own.
#[test]
fn a_killed_prepare_leaves_nothing_once_the_next_one_runs() {
    use std::io::{BufRead, BufReader};
    let w = World::new();
    let url = w.gh.url(REPO);
    let mut g = Guard { w: &w, sandboxes: Vec::new(), images: Vec::new() };
    let mut cmd = Command::new(sandbox_bin());
    cmd.args(["prepare", &url, "--stack", "minimal", "--rebuild"]).env("SANDBOX_FAULT", "slow-prepare-after-clone");
    cmd.envs(w.env.iter().map(|(k, v)| (*k, v.as_str())));
    let mut child = cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let mut seen = String::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("Pausing at prepare-after-clone") {
            break;
        }
    }
    assert!(seen.contains("Pausing at prepare-after-clone"), "{seen}");
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let _ = child.wait();
    let tmp: Vec<String> = leftovers(&url).into_iter().filter(|n| n.starts_with("tmp-prep-")).collect();
    assert_eq!(tmp.len(), 1, "the killed prepare's instance: {tmp:?}");
    let tag = tmp[0].strip_prefix("tmp-prep-").unwrap().to_string();
    assert_eq!(w.gh.keys(REPO).len(), 1, "the killed prepare's key is registered");
    let record = sandbox_home().join("creating").join(format!("prep-{tag}.json"));
    assert!(record.exists(), "the killed prepare's record: {}", record.display());

    let out = w.json(&["prepare", &url, "--stack", "minimal", "--rebuild", "--json"]);
    g.images.push(out["name"].as_str().unwrap().to_string());
    assert!(leftovers(&url).iter().all(|n| !n.starts_with("tmp-prep-")), "{:?}", leftovers(&url));
    assert!(w.gh.keys(REPO).is_empty(), "a temporary key stayed: {:?}", w.gh.keys(REPO));
    assert!(!record.exists(), "the record stayed");
    assert!(!sandbox_home().join("keys").join(format!("deploy_prep-{tag}")).exists(), "the key pair stayed");
}

impl World {
    fn run_with_fault(&self, url: &str, point: &str) -> Output {
        let mut env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        env.push(("SANDBOX_FAULT", point));
        sandbox(&["prepare", url, "--stack", "minimal", "--rebuild"], &env)
    }
}

/// Benchmark (tests/bench/prepared.sh runs it; ignored otherwise): how long until a new agent
/// has its repository's dependencies, with a prepared image (`start` alone) and without one
/// (`start` from the golden image, then the setup) — on a repository whose setup takes 10 s (a
/// sleep standing in for a slow dependency install; no network). Two repositories with the
/// same files: only the first one is prepared.
#[test]
#[ignore]
fn bench_start_with_and_without_a_prepared_image() {
    const WITH: &str = "acme/slow";
    const WITHOUT: &str = "acme/slow-unprepared";
    const SLOW: &str =
        "#!/bin/bash\nset -eu\nsleep 10\nmkdir -p node_modules/dep && echo installed > node_modules/dep/index.js\n";
    let runs: usize = std::env::var("BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let gh = GitHub::start(&[WITH, WITHOUT]);
    for r in [WITH, WITHOUT] {
        gh.commit(
            r,
            "main",
            &[(".sandbox/setup.sh", SLOW), ("package-lock.json", "{}\n"), (".gitignore", "node_modules/\n")],
        );
    }
    let w = World { env: gh.env(), gh };
    let mut g = Guard { w: &w, sandboxes: Vec::new(), images: Vec::new() };
    let t = std::time::Instant::now();
    let p = w.json(&["prepare", &w.gh.url(WITH), "--stack", "minimal", "--json"]);
    let prepare = t.elapsed().as_secs_f64();
    g.images.push(p["name"].as_str().unwrap().to_string());
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let a = unique("bprep");
        g.sandboxes.push(a.clone());
        let t = std::time::Instant::now();
        let r = w.json(&["start", &a, &w.gh.url(WITH), "--stack", "minimal", "--json"]);
        with.push(t.elapsed().as_secs_f64());
        assert!(r["sandbox"]["prepared"].is_string(), "{r}");
        assert_eq!(user(&a, "cat node_modules/dep/index.js").trim(), "installed");
        let b = unique("bprep");
        g.sandboxes.push(b.clone());
        let t = std::time::Instant::now();
        let r = w.json(&["start", &b, &w.gh.url(WITHOUT), "--stack", "minimal", "--json"]);
        assert!(r["sandbox"]["prepared"].is_null(), "{r}");
        user(&b, "bash .sandbox/setup.sh");
        without.push(t.elapsed().as_secs_f64());
        for n in [&a, &b] {
            assert!(w.run(&["rm", n]).status.success());
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (mw, mo) = (median(&mut with), median(&mut without));
    println!("prepare (once, setup 10 s):                        {prepare:.2} s");
    println!("start → dependencies there, prepared image:        {mw:.2} s median  runs {with:.2?}");
    println!("start → dependencies there, golden image + setup:  {mo:.2} s median  runs {without:.2?}");
    println!("ratio: {:.1}× faster with the prepared image", mo / mw);
}
