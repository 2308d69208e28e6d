//! `sandbox setup` and `sandbox doctor`: the real binary building golden images on the real daemon.
use std::path::Path;

use sandbox_e2e::*;

struct Stacks {
    dir: tempfile::TempDir,
}

impl Stacks {
    fn new() -> Self {
        Self { dir: tempfile::tempdir().unwrap() }
    }
    fn write(&self, name: &str, parent: &str, body: &str) {
        let script = format!(
            "#!/usr/bin/env bash\n# sandbox-stack: parent={parent}\n# description: test stack {name}\n{body}\n"
        );
        std::fs::write(self.dir.path().join(format!("{name}.sh")), script).unwrap();
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn setup(&self, args: &[&str]) -> std::process::Output {
        let image = base_image();
        let mut all = vec!["setup", "--base-image", image.as_str()];
        all.extend_from_slice(args);
        sandbox(&all, &[("SANDBOX_STACKS_DIR", self.path().to_str().unwrap())])
    }
}

fn stack_name() -> String {
    // Stack names are lowercase; unique() gives t-<prefix>-<hex>.
    unique("st")
}

async fn marker(golden: &str) -> String {
    let bytes = incus().pull_file(golden, "/etc/test-marker").await.expect("marker file in golden image");
    String::from_utf8(bytes).unwrap().trim().to_string()
}

fn strays(stack: &str) -> Vec<String> {
    incus_names()
        .into_iter()
        .filter(|n| {
            n.starts_with(&format!("tmp-golden-{stack}")) || n.starts_with("tmp-old-golden-") && n.contains(stack)
        })
        .collect()
}

#[tokio::test]
async fn builds_rebuilds_and_keeps_the_old_image_when_a_script_fails() {
    let stacks = Stacks::new();
    let (parent, child) = (stack_name(), stack_name());
    let mut c = Cleanup::new();
    c.add(format!("golden-{parent}"));
    c.add(format!("golden-{child}"));
    stacks.write(&parent, "image", "echo '==> parent v1'; echo v1 > /etc/test-marker; id ubuntu");
    stacks.write(&child, &parent, "echo \"child of $(cat /etc/test-marker)\" > /etc/test-child");

    // Build: the child pulls in its parent, parent first; output is streamed as progress.
    let out = stacks.setup(&["--stack", &child]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "setup failed: {err}");
    assert!(err.contains("==> parent v1"), "script output streamed: {err}");
    assert!(err.find(&format!("stacks/{parent}.sh")).unwrap() < err.find(&format!("stacks/{child}.sh")).unwrap());
    let i = incus();
    for g in [&parent, &child] {
        let snaps = i.snapshots(&format!("golden-{g}")).await.unwrap();
        assert!(snaps.iter().any(|s| s.name == "ready"), "golden-{g} has ready");
        let inst = i.instance(&format!("golden-{g}")).await.unwrap();
        assert_eq!(inst.status, "Stopped");
    }
    assert_eq!(marker(&format!("golden-{parent}")).await, "v1");
    let child_file = i.pull_file(&format!("golden-{child}"), "/etc/test-child").await.unwrap();
    assert_eq!(String::from_utf8_lossy(&child_file).trim(), "child of v1");
    // Identity stripped: no host keys, empty machine-id.
    let mid = i.pull_file(&format!("golden-{parent}"), "/etc/machine-id").await.unwrap();
    assert!(mid.iter().all(|b| b.is_ascii_whitespace()), "machine-id emptied");
    assert!(i.pull_file(&format!("golden-{parent}"), "/etc/ssh/ssh_host_ed25519_key").await.is_err());

    // Every image carries the pinned Claude Code: pushed into the image stack, inherited by the child.
    let pinned: serde_json::Value = serde_json::from_str(include_str!("../stacks/claude-code.json")).unwrap();
    let version = pinned["version"].as_str().unwrap();
    for g in [&parent, &child] {
        let inst = i.instance(&format!("golden-{g}")).await.unwrap();
        assert_eq!(inst.config.get("user.sandbox.golden-claude-code").map(String::as_str), Some(version), "golden-{g}");
        let bin = i.pull_file(&format!("golden-{g}"), "/usr/local/bin/claude").await.unwrap();
        assert!(bin.len() > 100 << 20 && bin.starts_with(b"\x7fELF"), "golden-{g}: the native binary");
    }
    assert!(err.contains(&format!("Installing Claude Code {version}")), "{err}");
    assert!(
        err.contains(&format!("Claude Code {version} is in the parent image")),
        "the child is not pushed again: {err}"
    );

    // A second run skips what is built.
    let out = stacks.setup(&["--stack", &child]);
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("already built"), "{}", text(&out.stdout));

    // --rebuild replaces the image, and the previous build's warm spare goes with it.
    let o = sandbox(&["__spare", &parent], &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(incus_names().contains(&format!("spare-{parent}")), "a spare of the first build");
    stacks.write(&parent, "image", "echo v2 > /etc/test-marker");
    let out = stacks.setup(&["--stack", &parent, "--rebuild", &parent]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("rebuilt"));
    assert_eq!(marker(&format!("golden-{parent}")).await, "v2");
    assert!(!incus_names().contains(&format!("spare-{parent}")), "the old build's spare is gone");
    assert!(strays(&parent).is_empty(), "no temporary instances: {:?}", strays(&parent));

    // A rebuild without --base-image starts from the base image the golden image records (the
    // default one is on an image server, which is not reachable here).
    let recorded = |inst: &sandbox::incus::Instance| inst.config.get("user.sandbox.golden-base-image").cloned();
    let before = recorded(&i.instance(&format!("golden-{parent}")).await.unwrap());
    assert_eq!(before.as_deref(), Some(base_image().as_str()));
    let out = sandbox(
        &["setup", "--rebuild", &parent],
        &[("SANDBOX_STACKS_DIR", stacks.path().to_str().unwrap()), ("SANDBOX_IMAGES_SERVER", "http://127.0.0.1:9")],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(recorded(&i.instance(&format!("golden-{parent}")).await.unwrap()), before);

    // A failing script: clear error with its last lines, old image intact, nothing left behind.
    stacks.write(&parent, "image", "echo v3 > /etc/test-marker; echo 'boom: the build broke here' >&2; exit 7");
    let out = stacks.setup(&["--stack", &parent, "--rebuild", &parent]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("failed (exit 7)") && err.contains("boom: the build broke here"), "{err}");
    assert!(err.contains("previous golden image is untouched"), "{err}");
    assert_eq!(marker(&format!("golden-{parent}")).await, "v2");
    assert!(strays(&parent).is_empty(), "no temporary instances: {:?}", strays(&parent));

    // The list shows both, built.
    let out = sandbox(&["setup", "--list", "--json"], &[("SANDBOX_STACKS_DIR", stacks.path().to_str().unwrap())]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for g in [&parent, &child] {
        let e = list.as_array().unwrap().iter().find(|e| e["stack"] == g.as_str()).expect("listed");
        assert_eq!(e["built"], true);
        assert_eq!(e["managed"], true);
    }
}

#[tokio::test]
async fn unknown_stack_lists_the_available_ones_and_changes_nothing() {
    let out = sandbox(&["setup", "--stack", "no-such-stack", "--base-image", &base_image()], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("unknown stack 'no-such-stack'") && err.contains("minimal") && err.contains("base"), "{err}");
    let out = sandbox(&["setup", "--stack", "Bad;Name"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("not a valid stack name"));
    // This test's own names only: other tests create and remove instances meanwhile.
    let left: Vec<String> = incus_names().into_iter().filter(|n| n.contains("no-such-stack")).collect();
    assert!(left.is_empty(), "nothing was created: {left:?}");
}

#[tokio::test]
async fn missing_base_image_names_the_alternatives() {
    let stacks = Stacks::new();
    let name = stack_name();
    stacks.write(&name, "image", "true");
    let out = sandbox(
        &["setup", "--stack", &name, "--base-image", "no-such-local-image"],
        &[("SANDBOX_STACKS_DIR", stacks.path().to_str().unwrap())],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("base image 'no-such-local-image' not found"), "{err}");
    assert!(err.contains("debootstrap:bookworm") && err.contains("incus image list"), "{err}");
    // An image server that cannot be reached (a closed loopback port; no traffic leaves the host).
    let out = sandbox(
        &["setup", "--stack", &name, "--base-image", "images:ubuntu/24.04"],
        &[("SANDBOX_STACKS_DIR", stacks.path().to_str().unwrap()), ("SANDBOX_IMAGES_SERVER", "https://127.0.0.1:9")],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("cannot fetch base image 'images:ubuntu/24.04'") && err.contains("debootstrap:bookworm"),
        "{err}"
    );
    assert!(!incus_names().iter().any(|n| n.contains(&name)), "nothing left behind");
}

#[test]
fn doctor_reports_each_piece_with_a_fix() {
    let out = sandbox(&["doctor", "--json"], &[]);
    let checks: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let get = |n: &str| {
        checks.as_array().unwrap().iter().find(|c| c["name"] == n).cloned().unwrap_or_else(|| panic!("check {n}"))
    };
    assert_eq!(get("incus running")["ok"], true);
    assert_eq!(get("storage pool")["ok"], true);
    assert_eq!(get("bridge")["ok"], true);
    assert_eq!(get("golden images")["ok"], true, "the test bed built golden-minimal");
    // With Incus unreachable, doctor fails and names the command that starts it.
    let out = sandbox(&["doctor"], &[("INCUS_SOCKET", "/nonexistent.sock")]);
    assert_eq!(out.status.code(), Some(1));
    let s = text(&out.stdout);
    assert!(s.contains("FAIL") && s.contains("incus running") && s.contains("sandbox host install"), "{s}");
}

#[tokio::test]
async fn ctrl_c_during_a_build_removes_the_temporary_instance() {
    let stacks = Stacks::new();
    let name = stack_name();
    stacks.write(&name, "image", "echo '==> sleeping'; sleep 60");
    let image = base_image();
    let child = std::process::Command::new(sandbox_bin())
        .args(["setup", "--base-image", &image, "--stack", &name])
        .env("SANDBOX_STACKS_DIR", stacks.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the script runs, then interrupt like a terminal would.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !incus_names().iter().any(|n| n.starts_with(&format!("tmp-golden-{name}"))) {
        assert!(std::time::Instant::now() < deadline, "build never started");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    std::thread::sleep(std::time::Duration::from_secs(2));
    nix_kill(child.id());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("cancelled"), "{}", text(&out.stderr));
    assert!(strays(&name).is_empty(), "no temporary instance left: {:?}", strays(&name));
    assert!(!incus_names().contains(&format!("golden-{name}")));
}

fn nix_kill(pid: u32) {
    std::process::Command::new("kill").args(["-INT", &pid.to_string()]).status().unwrap();
}
