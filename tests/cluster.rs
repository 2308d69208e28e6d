//! A real three-member Incus cluster on this machine (tests/cluster/up.sh: the system containers
//! `sbx-clu-1..3` on the host's Incus, each running its own incusd, joined with tokens), reached
//! like any server: `sandbox remote add` with a trust token made on one member. CI only (each
//! test is `#[ignore]`d; tests/run.sh brings the cluster up and runs them one at a time under
//! CI=true, then takes it down), because a member is stopped on purpose.
use std::path::Path;
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sandbox_e2e::*;

const MEMBERS: [&str; 3] = ["sbx-clu-1", "sbx-clu-2", "sbx-clu-3"];
const REMOTE: &str = "clu";
/// The members' btrfs pools live in unprivileged containers, where btrfs quotas cannot be turned
/// on: no root disk limit (`start` says so clearly when one is asked for on such a pool).
const DISK: &str = "none";

/// `incus …` run by member 1's own client (the cluster's view), as root there.
fn on_cluster(args: &[&str]) -> Output {
    let mut argv = vec!["exec", MEMBERS[0], "--", "incus"];
    argv.extend_from_slice(args);
    Command::new("incus").args(&argv).output().unwrap()
}

fn member_address(member: &str) -> String {
    let out = Command::new("incus").args(["query", &format!("/1.0/instances/{member}/state")]).output().unwrap();
    let state: serde_json::Value = serde_json::from_slice(&out.stdout).expect("member state");
    state["network"]["eth0"]["addresses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["family"] == "inet")
        .and_then(|a| a["address"].as_str())
        .expect("member address")
        .to_string()
}

/// The member's own Incus daemon stopped (its sandboxes keep running) or started again.
fn member_daemon(member: &str, up: bool) {
    let verb = if up { "start" } else { "stop" };
    let units: &[&str] = if up { &["incus.socket", "incus.service"] } else { &["incus.service", "incus.socket"] };
    let mut argv = vec!["exec", member, "--", "systemctl", verb];
    argv.extend_from_slice(units);
    assert!(Command::new("incus").args(&argv).status().unwrap().success(), "{verb} incusd on {member}");
}

/// One scratch `~/.sandbox` for the whole suite: the remote added with a token from member 1, the
/// golden image built once on the cluster.
struct Home(tempfile::TempDir);

impl Home {
    fn path(&self) -> &Path {
        self.0.path()
    }
    fn run(&self, args: &[&str]) -> Output {
        let home = self.path().to_str().unwrap().to_string();
        let mut argv = vec!["--remote", REMOTE];
        argv.extend_from_slice(args);
        sandbox(&argv, &[("SANDBOX_HOME", home.as_str()), ("SANDBOX_DEFAULT_DISK", DISK)])
    }
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "sandbox {args:?} failed: {}", text(&out.stderr));
        text(&out.stdout)
    }
    fn list(&self) -> Vec<serde_json::Value> {
        serde_json::from_str::<serde_json::Value>(&self.ok(&["list", "--json", "--no-health"]))
            .unwrap()
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
    fn ssh(&self, name: &str, cmd: &str) -> Output {
        let home = self.path().to_str().unwrap().to_string();
        Command::new("ssh")
            .env("SANDBOX_HOME", &home)
            .arg("-F")
            .arg(self.path().join("ssh_config"))
            .args(["-o", "BatchMode=yes", name, cmd])
            .output()
            .unwrap()
    }
}

fn home() -> &'static Home {
    static HOME: OnceLock<Home> = OnceLock::new();
    HOME.get_or_init(|| {
        let h = Home(tempfile::tempdir().unwrap());
        let out = on_cluster(&["config", "trust", "add", &unique("client"), "-q"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let token = text(&out.stdout).lines().last().unwrap().trim().to_string();
        let home = h.path().to_str().unwrap().to_string();
        let env = [("SANDBOX_HOME", home.as_str())];
        let add = sandbox(&["remote", "add", REMOTE, "--token", &token], &env);
        assert!(add.status.success(), "remote add: {}", text(&add.stderr));
        assert!(text(&add.stdout).contains("certificate pinned"), "{}", text(&add.stdout));
        let setup = h.run(&["setup", "--base-image", &base_image(), "--stack", "minimal"]);
        assert!(setup.status.success(), "setup on the cluster: {}", text(&setup.stderr));
        h
    })
}

/// Removes this test's sandboxes through the remote when dropped.
struct Mine(Vec<String>);

impl Drop for Mine {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            let mut args = vec!["rm"];
            args.extend(self.0.iter().map(String::as_str));
            let _ = home().run(&args);
        }
    }
}

fn row<'a>(all: &'a [serde_json::Value], name: &str) -> Option<&'a serde_json::Value> {
    all.iter().find(|s| s["name"] == name)
}

#[test]
#[ignore = "needs the test cluster (tests/cluster/up.sh); CI runs it"]
fn setup_publishes_the_golden_image_once_for_every_member() {
    let h = home();
    let images = text(&on_cluster(&["image", "list", "--format", "csv", "-c", "l"]).stdout);
    assert_eq!(images.lines().filter(|l| l.split(',').any(|a| a == "sandbox-golden/minimal")).count(), 1, "{images}");
    // A second setup finds it: nothing is built or published again.
    let before = text(&on_cluster(&["image", "list", "sandbox-golden/minimal", "--format", "csv", "-c", "f"]).stdout);
    h.ok(&["setup", "--base-image", &base_image(), "--stack", "minimal"]);
    let after = text(&on_cluster(&["image", "list", "sandbox-golden/minimal", "--format", "csv", "-c", "f"]).stdout);
    assert_eq!(before, after);
}

#[test]
#[ignore = "needs the test cluster (tests/cluster/up.sh); CI runs it"]
fn sandboxes_spread_over_the_members_and_each_answers_ssh_with_its_own_host_key() {
    let h = home();
    let mut mine = Mine(Vec::new());
    // One on each member by name, two placed by Incus.
    let mut wanted = Vec::new();
    for m in MEMBERS {
        let n = unique("on");
        mine.0.push(n.clone());
        h.ok(&["start", &n, "--stack", "minimal", "--target", m]);
        wanted.push((n, Some(m)));
    }
    for _ in 0..2 {
        let n = unique("placed");
        mine.0.push(n.clone());
        h.ok(&["start", &n, "--stack", "minimal"]);
        wanted.push((n, None));
    }
    // One list call shows where every one of them runs.
    let all = h.list();
    for (n, m) in &wanted {
        let s = row(&all, n).unwrap_or_else(|| panic!("{n} listed"));
        assert_eq!(s["state"], "running", "{s}");
        let loc = s["location"].as_str().unwrap_or_else(|| panic!("{n} has a location: {s}"));
        assert!(MEMBERS.contains(&loc), "{s}");
        if let Some(m) = m {
            assert_eq!(loc, *m, "--target placed it: {s}");
        }
        assert!(s["unreachable"].is_null(), "{s}");
        let out = h.ssh(n, "hostname");
        assert_eq!(text(&out.stdout).trim(), n, "ssh {n}: {}", text(&out.stderr));
    }
    // The human list names the member.
    let table = h.ok(&["list", "--no-health"]);
    assert!(table.lines().next().unwrap().contains("MEMBER"), "{table}");
    // Strict host keys through the Incus API too: a sandbox presenting another key is refused.
    let (a, b) = (&wanted[0].0, &wanted[1].0);
    let kh = h.path().join("known_hosts");
    let orig = std::fs::read_to_string(&kh).unwrap();
    let key_of = |n: &str| {
        orig.lines().find(|l| l.starts_with(&format!("sandbox-{n} "))).unwrap().split_once(' ').unwrap().1.to_string()
    };
    let swapped = orig.replace(&key_of(a), &key_of(b));
    std::fs::write(&kh, swapped).unwrap();
    let out = h.ssh(a, "true");
    std::fs::write(&kh, &orig).unwrap();
    assert!(!out.status.success(), "a wrong host key must be refused");
    assert!(text(&out.stderr).to_lowercase().contains("host key"), "{}", text(&out.stderr));
}

#[test]
#[ignore = "needs the test cluster (tests/cluster/up.sh); CI runs it"]
fn a_lost_member_is_marked_within_5s_creates_go_elsewhere_and_it_comes_back() {
    let h = home();
    let mut mine = Mine(Vec::new());
    let lost = unique("lost");
    let kept = unique("kept");
    mine.0.extend([lost.clone(), kept.clone()]);
    h.ok(&["start", &lost, "--stack", "minimal", "--target", MEMBERS[2]]);
    h.ok(&["start", &kept, "--stack", "minimal", "--target", MEMBERS[1]]);

    member_daemon(MEMBERS[2], false);
    struct Revive;
    impl Drop for Revive {
        fn drop(&mut self) {
            member_daemon(MEMBERS[2], true);
        }
    }
    let revive = Revive;
    let t0 = Instant::now();
    let marked = loop {
        let all = h.list();
        let l = row(&all, &lost).cloned();
        if l.as_ref().is_some_and(|l| !l["unreachable"].is_null()) || t0.elapsed() > Duration::from_secs(5) {
            break (l, all);
        }
    };
    let (l, all) = marked;
    let l = l.expect("the lost member's sandbox is still listed");
    let why = l["unreachable"].as_str().unwrap_or_else(|| panic!("marked unreachable within 5 s: {l}"));
    assert!(why.contains(MEMBERS[2]), "the reason names the member: {why}");
    assert_eq!(row(&all, &kept).unwrap()["state"], "running", "the others are listed as they are");
    let table = h.run(&["list", "--no-health"]);
    assert!(text(&table.stderr).contains(&format!("{lost}: unreachable")), "{}", text(&table.stderr));

    // Creates go to the members that answer.
    for _ in 0..2 {
        let n = unique("after");
        mine.0.push(n.clone());
        h.ok(&["start", &n, "--stack", "minimal"]);
        let all = h.list();
        let s = row(&all, &n).unwrap();
        assert_ne!(s["location"], MEMBERS[2], "{s}");
        assert_eq!(h.ssh(&n, "hostname").status.code(), Some(0));
    }

    // The member returns: its sandbox is back in the list, running again. While the member's
    // daemon is still starting, Incus reports its instances as stopped ("Server isn't ready yet"
    // to a start): wait for running; should it stay stopped, `start` it as a user would.
    drop(revive);
    let t0 = Instant::now();
    let back = loop {
        let all = h.list();
        let l = row(&all, &lost).cloned().unwrap();
        if (l["unreachable"].is_null() && l["state"] == "running") || t0.elapsed() > Duration::from_secs(120) {
            break l;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(back["unreachable"].is_null(), "{back}");
    assert_eq!(back["location"], MEMBERS[2], "{back}");
    assert!(back["state"] == "running" || back["state"] == "stopped", "back with a state: {back}");
    if back["state"] == "stopped" {
        eprintln!("{lost} came back stopped; starting it");
        let t0 = Instant::now();
        loop {
            let o = h.run(&["start", &lost]);
            if o.status.success() {
                break;
            }
            let err = text(&o.stderr);
            assert!(err.contains("isn't ready") && t0.elapsed() < Duration::from_secs(60), "{err}");
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    // SSH answers again once the member's daemon serves exec again (a few seconds after the list).
    let t0 = Instant::now();
    let out = loop {
        let o = h.ssh(&lost, "hostname");
        if o.status.success() || t0.elapsed() > Duration::from_secs(60) {
            break o;
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    assert_eq!(text(&out.stdout).trim(), lost, "{}", text(&out.stderr));
}

#[test]
#[ignore = "needs the test cluster (tests/cluster/up.sh); CI runs it"]
fn an_unknown_member_is_refused_before_anything_changes() {
    let h = home();
    let n = unique("nomember");
    let out = h.run(&["start", &n, "--stack", "minimal", "--target", "sbx-clu-9"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("no cluster member 'sbx-clu-9'") && err.contains(MEMBERS[1]), "{err}");
    assert!(row(&h.list(), &n).is_none());
    // The members' addresses stay on this machine (network rule).
    for m in MEMBERS {
        assert!(member_address(m).starts_with("10.100.0."), "{m}");
    }
}

/// `sandbox` run on a member (as with Remote-SSH into it): its sandboxes land on that member, and
/// their egress rules are in that member's own nftables.
#[test]
#[ignore = "needs the test cluster (tests/cluster/up.sh); CI runs it"]
fn run_on_a_member_sandbox_places_there_and_its_egress_rules_are_there() {
    home(); // the golden image exists on the cluster
    let m = MEMBERS[1];
    let bin = sandbox_bin();
    let push = Command::new("incus")
        .args(["file", "push", "-q", bin.to_str().unwrap(), &format!("{m}/usr/local/bin/sandbox")])
        .status();
    assert!(push.unwrap().success());
    let on_member = |args: &[&str]| {
        let mut argv = vec![
            "exec",
            m,
            "--env",
            "SANDBOX_HOME=/root/.sandbox",
            "--env",
            "SANDBOX_NAT=off",
            "--env",
            "SANDBOX_DEFAULT_DISK=none",
            "--",
            "sandbox",
        ];
        argv.extend_from_slice(args);
        Command::new("incus").args(&argv).output().unwrap()
    };
    let n = unique("here");
    struct Rm(&'static str, String);
    impl Drop for Rm {
        fn drop(&mut self) {
            let _ = Command::new("incus").args(["exec", self.0, "--", "sandbox", "rm", &self.1]).output();
        }
    }
    let _rm = Rm(m, n.clone());
    let out = on_member(&["start", &n, "--stack", "minimal"]);
    assert!(out.status.success(), "start on {m}: {}", text(&out.stderr));
    let all: serde_json::Value = serde_json::from_slice(&on_member(&["list", "--json", "--no-health"]).stdout).unwrap();
    let s = all.as_array().unwrap().iter().find(|s| s["name"] == n).cloned().unwrap();
    assert_eq!(s["location"], m, "{s}");
    let ip = s["ip"].as_str().unwrap().to_string();
    let rules = Command::new("incus")
        .args(["exec", m, "--", "nft", "list", "table", "inet", "agent_sandboxes_egress"])
        .output()
        .unwrap();
    assert!(text(&rules.stdout).contains(&ip), "{m}'s own rules hold {ip}: {}", text(&rules.stdout));
    // Another member is refused before anything changes, with the member to run it on.
    let other = unique("there");
    let out = on_member(&["start", &other, "--stack", "minimal", "--target", MEMBERS[2]]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains(&format!("run `sandbox` on {}", MEMBERS[2])), "{}", text(&out.stderr));
    let out = on_member(&["list", "--json", "--no-health"]);
    assert!(!text(&out.stdout).contains(&other));
}
