//! Snapshots, restore and forks of whole sandboxes against real Incus (btrfs), a real sshd git
//! server and the simulated GitHub API (tests/support/gitfake.rs): what a restore undoes and what
//! it keeps, an interrupted restore finished by the next start, forks with their own identity,
//! keys and branch, isolated from their source, and a fork that fails half-way (or is
//! interrupted with Ctrl-C) leaving nothing.
use std::process::{Command, Output};

use sandbox_e2e::gitfake::GitHub;
use sandbox_e2e::inet_probe::tcp_connect;
use sandbox_e2e::*;
use serde_json::Value;

const REPO: &str = "acme/app";

fn sb(args: &[&str], env: &[(&str, &str)]) -> Output {
    sandbox(args, env)
}

fn ok(args: &[&str], env: &[(&str, &str)]) -> String {
    let o = sb(args, env);
    assert!(o.status.success(), "sandbox {args:?}: {}{}", text(&o.stdout), text(&o.stderr));
    text(&o.stdout)
}

fn json(args: &[&str], env: &[(&str, &str)]) -> Value {
    serde_json::from_str(&ok(args, env)).expect("json")
}

/// As root in the sandbox.
fn root(name: &str, cmd: &str) -> String {
    let o = Command::new("incus").args(["exec", &format!("agent-{name}"), "--", "sh", "-c", cmd]).output().unwrap();
    assert!(o.status.success(), "{cmd} in {name}: {}", text(&o.stderr));
    text(&o.stdout)
}

/// A file's contents, read through Incus's files API rather than a command's output: what the
/// test checks is the disk, and a command's output is one more thing that can go missing.
fn file(name: &str, path: &str) -> String {
    let o = Command::new("incus").args(["file", "pull", &format!("agent-{name}{path}"), "-"]).output().unwrap();
    assert!(o.status.success(), "read {path} in {name}: {}", text(&o.stderr));
    text(&o.stdout)
}

/// As ubuntu in /workspace/project (login shell), through the CLI.
fn user(name: &str, argv: &[&str]) -> Output {
    let mut a = vec!["exec", name, "--"];
    a.extend_from_slice(argv);
    sandbox(&a, &[])
}

fn user_ok(name: &str, argv: &[&str]) -> String {
    let o = user(name, argv);
    assert!(o.status.success(), "{argv:?} in {name}: {}{}", text(&o.stdout), text(&o.stderr));
    text(&o.stdout)
}

fn config(name: &str, key: &str) -> String {
    let o = Command::new("incus").args(["config", "get", &format!("agent-{name}"), key]).output().unwrap();
    text(&o.stdout).trim().to_string()
}

fn mac(name: &str) -> String {
    let o =
        Command::new("incus").args(["config", "device", "get", &format!("agent-{name}"), "eth0", "hwaddr"]).output();
    text(&o.unwrap().stdout).trim().to_string()
}

/// Who a sandbox is: host key (recorded and on disk), machine-id, hostname, slot, address, MAC.
fn identity(name: &str) -> Vec<String> {
    let s = listed(name).unwrap();
    vec![
        config(name, "user.sandbox.ssh-host-key"),
        file(name, "/etc/ssh/ssh_host_ed25519_key.pub").split_whitespace().take(2).collect::<Vec<_>>().join(" "),
        file(name, "/etc/machine-id").trim().to_string(),
        root(name, "hostname").trim().to_string(),
        s["slot"].to_string(),
        s["ip"].to_string(),
        mac(name),
    ]
}

/// A package installed with dpkg (no network: built in the sandbox with dpkg-deb).
const INSTALL_PACKAGE: &str = "set -e; d=$(mktemp -d); mkdir -p $d/pkg/DEBIAN $d/pkg/usr/local/bin; \
    printf 'Package: t-snap-pkg\\nVersion: 1.0\\nArchitecture: all\\nMaintainer: t <t@example.invalid>\\nDescription: test\\n' \
    > $d/pkg/DEBIAN/control; printf '#!/bin/sh\\necho installed\\n' > $d/pkg/usr/local/bin/t-snap-tool; \
    chmod 755 $d/pkg/usr/local/bin/t-snap-tool; dpkg-deb --build $d/pkg $d/p.deb >/dev/null; dpkg -i $d/p.deb >/dev/null";

#[test]
fn restore_undoes_files_and_packages_and_keeps_identity_slot_ports_and_settings() {
    let mut g = Sandboxes::new();
    let n = g.name("snap");
    create(&n, &[]);
    root(&n, "echo before > /home/ubuntu/notes.txt");
    let who = identity(&n);

    let snap = json(&["snapshot", &n, "before", "--json"], &[]);
    assert_eq!((snap["label"].as_str(), snap["kind"].as_str()), (Some("before"), Some("manual")));
    assert_eq!(listed(&n).unwrap()["snapshots"][0]["label"], "before", "the record is in the sandbox's state");

    // After the snapshot: files change, a package goes in; and settings change that must stay.
    root(&n, "echo after > /home/ubuntu/notes.txt; echo new > /home/ubuntu/new.txt");
    root(&n, INSTALL_PACKAGE);
    assert_eq!(root(&n, "t-snap-tool").trim(), "installed");
    ok(&["expose", &n, "7000"], &[]);
    ok(&["snapshot", "keep", &n, "5"], &[]);

    let out = sb(&["restore", &n, "before"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("Restoring"), "progress is shown: {}", text(&out.stderr));

    // Files and the package are undone …
    assert_eq!(file(&n, "/home/ubuntu/notes.txt").trim(), "before");
    assert_eq!(root(&n, "test -e /home/ubuntu/new.txt && echo yes || echo no").trim(), "no");
    assert_eq!(root(&n, "dpkg -s t-snap-pkg >/dev/null 2>&1 && echo yes || echo no").trim(), "no");
    assert_eq!(root(&n, "command -v t-snap-tool || echo none").trim(), "none");
    // … while it is running again, the same sandbox: identity, slot, address, MAC.
    let s = listed(&n).unwrap();
    assert_eq!(s["state"], "running");
    assert_eq!(identity(&n), who);
    // SSH with strict host-key checking still trusts it (same host key).
    let o = ssh(&n, "cat notes.txt");
    assert!(o.status.success(), "ssh after restore: {}", text(&o.stderr));
    assert_eq!(text(&o.stdout).trim(), "before");
    // The forward and the setting made after the snapshot stay; so does the snapshot's record.
    assert!(s["ports"].as_array().unwrap().iter().any(|p| p["containerPort"] == 7000), "{s}");
    assert_eq!(config(&n, "user.sandbox.checkpoint-keep"), "5");
    let snaps = json(&["snapshots", &n, "--json"], &[]);
    assert_eq!(snaps.as_array().unwrap().len(), 1);
    assert_eq!(snaps[0]["label"], "before");
    assert!(!sandbox_home().join("restores").join(format!("{n}.json")).exists(), "no journal left");

    // A stopped sandbox is restored and stays stopped.
    root(&n, "echo again > /home/ubuntu/notes.txt");
    ok(&["stop", &n], &[]);
    ok(&["restore", &n, "before"], &[]);
    assert_eq!(listed(&n).unwrap()["state"], "stopped");
    ok(&["start", &n], &[]);
    assert_eq!(file(&n, "/home/ubuntu/notes.txt").trim(), "before");
}

#[test]
fn snapshot_labels_rm_pin_and_errors() {
    let mut g = Sandboxes::new();
    let n = g.name("snapl");
    create(&n, &[]);
    // Default labels count up; a label is taken once.
    assert_eq!(json(&["snapshot", &n, "--json"], &[])["label"], "snap-1");
    assert_eq!(json(&["snapshot", &n, "--json"], &[])["label"], "snap-2");
    let dup = sb(&["snapshot", &n, "snap-1"], &[]);
    assert!(!dup.status.success());
    assert!(
        text(&dup.stderr).contains("already exists") && text(&dup.stderr).contains("hint:"),
        "{}",
        text(&dup.stderr)
    );
    // Bad labels are refused before anything happens, with what to do.
    // (`-x` is refused too — validate.rs's unit test — but the command line takes it for a flag.)
    for bad in ["a b", "../x", ".x", "turn-3", &"x".repeat(64)] {
        let o = sb(&["snapshot", &n, bad], &[]);
        assert!(!o.status.success(), "{bad} accepted");
        assert!(text(&o.stderr).contains("hint:"), "{bad}: {}", text(&o.stderr));
    }
    assert!(ok(&["snapshot", "pin", &n, "snap-1"], &[]).contains("(pinned)"));
    assert_eq!(json(&["snapshots", &n, "--json"], &[])[0]["pinned"], true);
    ok(&["snapshot", "rm", &n, "snap-1"], &[]);
    let labels: Vec<String> = json(&["snapshots", &n, "--json"], &[])
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["label"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(labels, ["snap-2"]);
    assert!(listed(&n).unwrap()["snapshots"].as_array().unwrap().iter().all(|s| s["label"] != "snap-1"));
    let o = sb(&["restore", &n, "snap-1"], &[]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("not found") && text(&o.stderr).contains("sandbox snapshots"),
        "{}",
        text(&o.stderr)
    );
    let o = sb(&["snapshot", "t-no-such-sandbox-x"], &[]);
    assert!(!o.status.success() && text(&o.stderr).contains("not found"), "{}", text(&o.stderr));
}

#[test]
fn an_interrupted_restore_is_finished_by_the_next_start() {
    let mut g = Sandboxes::new();
    let n = g.name("snapi");
    create(&n, &[]);
    root(&n, "echo before > /home/ubuntu/notes.txt");
    ok(&["snapshot", &n, "s1"], &[]);
    root(&n, "echo after > /home/ubuntu/notes.txt");
    ok(&["expose", &n, "7001"], &[]);
    // Killed right after Incus restored the disk (and, its way, the snapshot's config and devices).
    let o = sb(&["restore", &n, "s1"], &[("SANDBOX_FAULT", "restore-after-restore")]);
    assert!(!o.status.success(), "the fault was not injected");
    let journal = sandbox_home().join("restores").join(format!("{n}.json"));
    assert!(journal.exists(), "the journal outlives the interrupted restore");
    let ports = listed(&n).unwrap()["ports"].clone();
    assert!(
        ports.as_array().unwrap().iter().all(|p| p["containerPort"] != 7001),
        "Incus put the snapshot's devices back"
    );
    // The next start finishes it: the forward is back, the disk is the snapshot's.
    ok(&["start", &n], &[]);
    assert!(!journal.exists());
    let s = listed(&n).unwrap();
    assert_eq!(s["state"], "running");
    assert!(s["ports"].as_array().unwrap().iter().any(|p| p["containerPort"] == 7001), "{s}");
    assert_eq!(file(&n, "/home/ubuntu/notes.txt").trim(), "before");
}

/// Removes sandboxes with the fake's token (their deploy keys go there too).
struct Guard<'a> {
    gh: &'a GitHub,
    names: Vec<String>,
}
impl<'a> Guard<'a> {
    fn name(&mut self, prefix: &str) -> String {
        let n = unique(prefix);
        self.names.push(n.clone());
        n
    }
}
impl Drop for Guard<'_> {
    fn drop(&mut self) {
        let env = self.gh.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        for n in &self.names {
            if !sandbox(&["rm", n], &env).status.success() {
                let _ = Command::new("incus").args(["delete", "--force", &format!("agent-{n}")]).output();
            }
        }
    }
}

#[test]
fn a_fork_gets_the_files_and_its_own_identity_keys_and_branch_and_is_isolated() {
    let gh = GitHub::start(&[REPO]);
    let env_owned = gh.env();
    let env: Vec<(&str, &str)> = env_owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut g = Guard { gh: &gh, names: Vec::new() };
    let a = g.name("fka");
    ok(&["start", &a, &gh.url(REPO), "--stack", "minimal", "--branch", "work"], &env);
    user_ok(&a, &["sh", "-c", "echo draft > draft.txt"]);
    ok(&["snapshot", &a, "early"], &[]);
    user_ok(&a, &["sh", "-c", "echo later > later.txt"]);
    // Token counters and snapshot records are A's own.
    let usage = r#"{"requests":1,"input":1,"output":1,"cacheRead":0,"cacheWrite":0,"models":{}}"#;
    let set =
        Command::new("incus").args(["config", "set", &format!("agent-{a}"), "user.sandbox.usage", usage]).status();
    assert!(set.unwrap().success());

    let b = g.name("fkb");
    let r = json(&["fork", &a, &b, "--json"], &env);
    assert_eq!(r["action"], "created");
    assert_eq!(r["sandbox"]["branch"], format!("{a}-fork-1"));
    // A's files, uncommitted work included, on its own branch made from A's.
    assert_eq!(user_ok(&b, &["cat", "draft.txt", "later.txt"]), "draft\nlater\n");
    assert_eq!(user_ok(&b, &["git", "branch", "--show-current"]).trim(), format!("{a}-fork-1"));
    assert_eq!(user_ok(&b, &["git", "rev-parse", "HEAD"]), user_ok(&a, &["git", "rev-parse", "HEAD"]));
    // Its own identity: every part differs.
    let (ia, ib) = (identity(&a), identity(&b));
    for (i, (x, y)) in ia.iter().zip(&ib).enumerate() {
        assert_ne!(x, y, "identity part {i} is shared: {x}");
    }
    assert_eq!(root(&b, "hostname").trim(), b);
    // Its own deploy key on "GitHub", which pushes its branch.
    let keys = gh.keys(REPO);
    let titles: Vec<&str> = keys.iter().map(|k| k.title.as_str()).collect();
    assert_eq!(keys.len(), 2, "{titles:?}");
    assert!(titles.contains(&format!("sandbox-{b}").as_str()), "{titles:?}");
    assert_eq!(
        config(&b, "user.sandbox.deploy-key-id"),
        keys.iter().find(|k| k.title.ends_with(&b)).unwrap().id.to_string()
    );
    user_ok(
        &b,
        &["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qam", "x", "--allow-empty"],
    );
    user_ok(&b, &["git", "push", "-q", "origin", &format!("{a}-fork-1")]);
    assert!(gh.rev(REPO, &format!("refs/heads/{a}-fork-1")).is_some());
    // No counters, no snapshots of A's; it says where it came from.
    let sb_ = listed(&b).unwrap();
    assert!(sb_["usage"].is_null(), "{sb_}");
    assert_eq!(sb_["snapshots"].as_array().unwrap().len(), 0);
    assert_eq!(config(&b, "user.sandbox.from"), a);
    assert_eq!(json(&["snapshots", &b, "--json"], &[]).as_array().unwrap().len(), 0);
    // Both run at once and cannot reach each other.
    assert_eq!(listed(&a).unwrap()["state"], "running");
    let (ip_a, ip_b) =
        (listed(&a).unwrap()["ip"].as_str().unwrap().to_string(), sb_["ip"].as_str().unwrap().to_string());
    assert_ne!(tcp_connect(&b, &ip_a, "22"), "connected");
    assert_ne!(tcp_connect(&a, &ip_b, "22"), "connected");
    assert!(ssh(&b, "true").status.success() && ssh(&a, "true").status.success());

    // A fork of a snapshot has the files as they were then.
    let c = g.name("fkc");
    let r = json(&["fork", &a, &c, "--at", "early", "--branch", "from-early", "--json"], &env);
    assert_eq!(r["sandbox"]["branch"], "from-early");
    assert_eq!(user_ok(&c, &["cat", "draft.txt"]).trim(), "draft");
    assert!(!user(&c, &["test", "-e", "later.txt"]).status.success(), "later.txt is not in the snapshot");

    // Removing the forks leaves A as it was, with its key.
    ok(&["rm", &b, &c], &env);
    assert_eq!(gh.keys(REPO).len(), 1);
    assert_eq!(gh.keys(REPO)[0].title, format!("sandbox-{a}"));
    assert_eq!(listed(&a).unwrap()["state"], "running");
    assert_eq!(user_ok(&a, &["cat", "later.txt"]).trim(), "later");
    user_ok(&a, &["git", "fetch", "-q", "origin"]);
}

#[test]
fn a_fork_that_fails_half_way_leaves_nothing_and_bad_forks_are_refused() {
    let gh = GitHub::start(&[REPO]);
    let env_owned = gh.env();
    let mut env: Vec<(&str, &str)> = env_owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut g = Guard { gh: &gh, names: Vec::new() };
    let a = g.name("fkf");
    ok(&["start", &a, &gh.url(REPO), "--stack", "minimal"], &env);
    for point in ["after-place", "after-clone", "ctrl-c"] {
        let d = unique("fkd");
        let o = if point == "ctrl-c" {
            interrupted_fork(&a, &d, &env)
        } else {
            env.push(("SANDBOX_FAULT", point));
            let o = sb(&["fork", &a, &d], &env);
            env.pop();
            o
        };
        assert!(!o.status.success(), "{point}: the fault was not injected");
        assert!(text(&o.stderr).contains("undoing"), "{}", text(&o.stderr));
        assert!(!incus_names().contains(&format!("agent-{d}")), "{point}: the instance was left");
        assert_eq!(gh.keys(REPO).len(), 1, "{point}: the fork's deploy key was left on GitHub");
        assert!(!sandbox_home().join("keys").join(format!("deploy_{d}")).exists(), "{point}: key pair left");
        assert!(!sandbox_home().join("agents").join(format!("{d}.sock")).exists(), "{point}: agent left");
        let cfg = std::fs::read_to_string(sandbox_home().join("ssh_config")).unwrap_or_default();
        assert!(!cfg.contains(&format!("Host {d} ")), "{point}: ssh entry left");
    }
    assert_eq!(listed(&a).unwrap()["state"], "running");
    // Refused before anything happens.
    for (args, want) in [
        (vec!["fork", &a, &a], "new name"),
        (vec!["fork", "t-no-such-x", "t-new-x"], "not found"),
        (vec!["fork", &a, "bad name"], "invalid name"),
        (vec!["fork", &a, "t-new-y", "--at", "nope"], "not found"),
        (vec!["fork", &a, &a.clone(), "--branch", "a..b"], "branch"),
    ] {
        let o = sb(&args, &env);
        assert!(!o.status.success(), "{args:?} accepted");
        assert!(text(&o.stderr).contains(want), "{args:?}: {}", text(&o.stderr));
    }
    assert_eq!(gh.keys(REPO).len(), 1);
}

/// `sandbox fork A D` interrupted (SIGINT, as Ctrl-C) once D's instance is there: its key made on
/// "GitHub", its agent started, its disk copied, its slot taken (the create's test pause
/// `slow-after-copy` holds it there until the cancel).
fn interrupted_fork(a: &str, d: &str, env: &[(&str, &str)]) -> Output {
    use std::process::Stdio;
    let mut c = Command::new(sandbox_bin());
    c.args(["fork", a, d]).env("SANDBOX_FAULT", "slow-after-copy");
    c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    let child = c.spawn().unwrap();
    let t = std::time::Instant::now();
    while !incus_names().contains(&format!("agent-{d}")) {
        assert!(t.elapsed() < std::time::Duration::from_secs(30), "the fork's instance never appeared");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "interrupted: {}", text(&o.stderr));
    o
}

/// `rm` while a snapshot is being taken (the host daemon's checkpoint at a turn's end): Incus
/// lets the two run at once, and a snapshot made in the middle of a delete stayed on disk
/// without its record — the sandbox could then never be removed ("Cannot remove a volume that
/// has snapshots", seen in a full run). Both orders, several times: `rm` always removes it.
#[test]
fn rm_during_a_snapshot_removes_the_sandbox() {
    let mut g = Sandboxes::new();
    for round in 0..6 {
        let n = g.name("snaprm");
        create(&n, &[]);
        // Stopped first half the time: then the delete starts at once.
        if round % 2 == 0 {
            ok(&["stop", &n], &[]);
        }
        let (snap, rm) = std::thread::scope(|sc| {
            let snap = sc.spawn(|| sb(&["snapshot", &n, "s1"], &[]));
            std::thread::sleep(std::time::Duration::from_millis(10 * (round / 2)));
            let rm = sb(&["rm", &n], &[]);
            (snap.join().unwrap(), rm)
        });
        assert!(rm.status.success(), "round {round}: rm: {}{}", text(&rm.stderr), text(&snap.stderr));
        assert!(listed(&n).is_none(), "round {round}: {n} is still there");
        let o = Command::new("incus").args(["info", &format!("agent-{n}")]).output().unwrap();
        assert!(!o.status.success(), "round {round}: Incus still has agent-{n}");
    }
}
