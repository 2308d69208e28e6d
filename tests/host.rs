//! `sandbox host install`: the host setup the binary carries (what the VSIX's Set Up This Machine
//! runs). As root it runs the real steps on this machine (idempotent: everything is in place on
//! the test bed, so they check and start what is stopped); as another user it says why it needs
//! root before anything else, and what to do when sudo is missing.
use std::process::{Command, Stdio};

use sandbox_e2e::*;

#[test]
fn as_root_it_says_what_it_does_then_runs_the_steps_and_leaves_incus_ready() {
    let out = sandbox(&["host", "install", "--nat", "off"], &[]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    let why = err.find("Installing packages and starting a daemon need root").expect("the reason first");
    let steps = err.find("[install-host").expect("the steps' log");
    assert!(why < steps, "{err}");
    assert!(err.contains("incus ready: "), "{err}");
    assert!(err.contains("This machine is ready for sandboxes"), "{err}");
    // What it promised: the daemon answers, with the pool and the bridge (NAT as asked).
    let nat = Command::new("incus").args(["network", "get", "incusbr0", "ipv4.nat"]).output().unwrap();
    assert_eq!(text(&nat.stdout).trim(), "false");
    assert!(Command::new("incus").args(["storage", "show", "default"]).output().unwrap().status.success());
    // The doctor agrees.
    let doctor = sandbox(&["doctor", "--json"], &[]);
    let checks: serde_json::Value = serde_json::from_slice(&doctor.stdout).unwrap();
    for name in ["incus installed", "incus running", "storage pool", "bridge"] {
        let c = checks.as_array().unwrap().iter().find(|c| c["name"] == name).unwrap_or_else(|| panic!("{name}"));
        assert_eq!(c["ok"], true, "{c}");
    }
    // The local daemon is what it sets up, whatever socket a client of it is pointed at (VS Code's
    // terminal inherits the sidecar's INCUS_SOCKET): the steps ignore it, and do not start a second one.
    let out = sandbox(&["host", "install", "--nat", "off"], &[("INCUS_SOCKET", "/nonexistent/incus.socket")]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("starting incusd"), "{err}");
}

#[test]
fn bad_input_is_refused_before_anything_runs() {
    for (args, want) in [
        (&["host", "install", "--pool-size", "20GB"][..], "not a size like 20GiB"),
        (&["host", "install", "--pool-size", "20GiB;reboot"][..], "not a size like 20GiB"),
        (&["host", "install", "--nat", "maybe"][..], "invalid value 'maybe'"),
    ] {
        let out = sandbox(args, &[]);
        let err = text(&out.stderr);
        assert!(!out.status.success() && err.contains(want), "{args:?}: {err}");
        assert!(!err.contains("[install-host"), "no step ran: {err}");
    }
}

/// As `nobody` (a copy of the binary it may run), with no sudo on its PATH: the reason is said
/// first, then what to do; nothing runs.
#[test]
fn without_root_and_without_sudo_it_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let bin = dir.path().join("sandbox");
    std::fs::copy(sandbox_bin(), &bin).unwrap();
    let out = Command::new("/usr/bin/setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&bin)
        .args(["host", "install"])
        .env_clear()
        .env("PATH", "/nonexistent")
        .env("HOME", dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let why = err.find("need root").expect("the reason");
    let what = err.find("sudo is not installed").expect("what is missing");
    assert!(why < what, "{err}");
    assert!(err.contains("hint: run `sandbox host install` as root"), "{err}");
    assert!(!err.contains("[install-host"), "no step ran: {err}");
}
