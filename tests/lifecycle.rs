//! The sandbox lifecycle through the real CLI on the real daemon.
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::process::{Command, Stdio};

use sandbox_e2e::*;

#[tokio::test]
async fn create_gives_a_reachable_sandbox_with_its_own_identity() {
    let mut sb = Sandboxes::new();
    let (a, b) = (sb.name("id"), sb.name("id"));
    let out = create(&a, &[]);
    assert!(text(&out.stdout).contains("created"), "{}", text(&out.stdout));
    create(&b, &[]);
    // Reachable over the forwarded port with strict host-key checking and no prompt.
    for n in [&a, &b] {
        let o = ssh(n, "hostname; cat /etc/machine-id; cat /etc/ssh/ssh_host_ed25519_key.pub; id -un");
        assert!(o.status.success(), "ssh {n}: {}", text(&o.stderr));
        let t = text(&o.stdout);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], n.as_str());
        assert_eq!(lines[3], "ubuntu");
    }
    let ident = |n: &str| text(&ssh(n, "cat /etc/machine-id /etc/ssh/ssh_host_ed25519_key.pub").stdout);
    assert_ne!(ident(&a), ident(&b), "each sandbox has its own machine-id and host key");
    let cfg = std::fs::read_to_string(sandbox_home().join("ssh_config")).unwrap();
    assert!(cfg.contains("StrictHostKeyChecking yes"));
    // Ports on loopback only, IP pinned with anti-spoofing, slot recorded.
    let i = incus();
    let inst = i.instance(&format!("agent-{a}")).await.unwrap();
    for (name, dev) in &inst.devices {
        if dev.get("type").map(String::as_str) == Some("proxy") {
            assert!(dev["listen"].contains(":127.0.0.1:"), "{name} listens on loopback: {dev:?}");
        }
    }
    // The identity came from the golden image's templates; the secrets they were rendered from
    // left the config once the sandbox had started.
    for k in ["user.sandbox.boot.host-key", "user.sandbox.boot.env", "volatile.apply_template"] {
        assert!(!inst.config.contains_key(k), "{k} is still in the config");
    }
    let o = ssh(&a, "stat -c '%a %U' /etc/ssh/ssh_host_ed25519_key ~/.ssh/authorized_keys /etc/hostname");
    assert_eq!(text(&o.stdout), "600 root\n600 ubuntu\n644 root\n", "{}", text(&o.stderr));
    let nic = &inst.devices["eth0"];
    assert_eq!(nic["security.ipv4_filtering"], "true");
    assert_eq!(nic["security.mac_filtering"], "true");
    assert!(nic.contains_key("ipv4.address"));
    let s = listed(&a).expect("listed");
    assert_eq!(s["state"], "running");
    assert_eq!(s["stack"], "minimal");
    assert_eq!(s["ip"], nic["ipv4.address"].as_str());
    let slot = s["slot"].as_u64().unwrap();
    assert_eq!(s["ports"][0]["role"], "ssh");
    assert_eq!(s["ports"][0]["hostPort"], 2200 + slot);
    assert_eq!(s["managed"], true);
    assert_eq!(s["health"]["docker"], "absent", "the minimal stack has no Docker");
    assert_eq!(s["health"]["sshAgent"], false);
    assert_eq!(s["health"]["claudeAuth"], false);
    // Creating it again restarts nothing and says so.
    let o = sandbox(&["start", &a], &[]);
    assert!(o.status.success());
    assert!(text(&o.stdout).contains("already running"));
}

#[test]
fn env_values_are_stored_literally_and_exec_runs_as_ubuntu() {
    let mut sb = Sandboxes::new();
    let n = sb.name("env");
    let tricky = "$(touch /tmp/pwned) `touch /tmp/pwned2` 'single' \"double\" back\\slash";
    create(
        &n,
        &[
            "--env",
            &format!("TRICKY={tricky}"),
            "--env",
            "MULTI=line1\nline2",
            "--env",
            "PLAIN=x=y",
            "--env",
            "ANTHROPIC_API_KEY=k",
        ],
    );
    assert_eq!(listed(&n).unwrap()["health"]["claudeAuth"], true, "an API key counts as Claude auth");
    let o = sandbox(&["exec", &n, "--", "printenv", "TRICKY"], &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), format!("{tricky}\n"));
    assert_eq!(text(&sandbox(&["exec", &n, "--", "printenv", "MULTI"], &[]).stdout), "line1\nline2\n");
    assert_eq!(text(&sandbox(&["exec", &n, "--", "printenv", "PLAIN"], &[]).stdout), "x=y\n");
    // Restarts: --env adds to the environment; a plain restart keeps it (the file is rewritten
    // only when it changes).
    for extra in [&["--env", "ADDED=yes"][..], &[]] {
        assert!(sandbox(&["stop", &n], &[]).status.success());
        let mut args = vec!["start", n.as_str()];
        args.extend_from_slice(extra);
        let o = sandbox(&args, &[]);
        assert!(o.status.success(), "{}", text(&o.stderr));
        let o = sandbox(&["exec", &n, "--", "printenv", "ADDED", "TRICKY"], &[]);
        assert_eq!(text(&o.stdout), format!("yes\n{tricky}\n"), "{}", text(&o.stderr));
    }
    let o = sandbox(&["exec", &n, "--", "sh", "-c", "ls /tmp/pwned /tmp/pwned2 2>&1; id -un; pwd"], &[]);
    let t = text(&o.stdout);
    assert!(t.contains("No such file"), "nothing was executed: {t}");
    assert!(t.contains("ubuntu\n/workspace/project\n"), "{t}");
    // Arguments are passed as words, not through a shell.
    let o = sandbox(&["exec", &n, "--", "echo", "a;b", "$(id)"], &[]);
    assert_eq!(text(&o.stdout), "a;b $(id)\n");
    // The exit code comes through.
    let o = sandbox(&["exec", &n, "--", "sh", "-c", "exit 3"], &[]);
    assert_eq!(o.status.code(), Some(3));
    // So do 127 and 126, which Incus reports as a failed operation: the command's status, never
    // "instance not found" (one sandbox streams, several are recorded: both ways).
    for (cmd, code) in [("exit 127", 127), ("exit 126", 126)] {
        let o = sandbox(&["exec", &n, "--", "sh", "-c", cmd], &[]);
        assert_eq!(o.status.code(), Some(code), "{cmd}: {}", text(&o.stderr));
        let o = sandbox(&["exec", &n, &n, "--", "sh", "-c", cmd], &[]);
        assert!(
            text(&o.stdout).contains(&format!("(exit {code})")) && !text(&o.stderr).contains("instance"),
            "{cmd}: {}",
            text(&o.stderr)
        );
    }
}

#[test]
fn stop_restart_and_remove() {
    let mut sb = Sandboxes::new();
    let n = sb.name("life");
    create(&n, &[]);
    for _ in 0..2 {
        let o = sandbox(&["stop", &n], &[]);
        assert!(o.status.success(), "stop is idempotent: {}", text(&o.stderr));
    }
    assert_eq!(listed(&n).unwrap()["state"], "stopped");
    // Immutable flags are refused, all named at once; nothing changes.
    let o = sandbox(&["start", &n, "git@github.com:o/r.git", "--stack", "base", "--slot", "5", "--branch", "x"], &[]);
    assert_eq!(o.status.code(), Some(1));
    let e = text(&o.stderr);
    for flag in ["--stack", "--slot", "--branch", "REPO_URL"] {
        assert!(e.contains(flag), "{flag} named: {e}");
    }
    assert_eq!(listed(&n).unwrap()["state"], "stopped");
    // Mutable ones are applied on restart.
    let o = sandbox(&["start", &n, "--cpu", "1", "--memory", "1GiB", "--env", "ADDED=yes"], &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("restarted"));
    let s = listed(&n).unwrap();
    assert_eq!(s["state"], "running");
    assert_eq!(s["cpu"], "1");
    assert_eq!(s["memory"], "1GiB");
    assert!(ssh(&n, "true").status.success());
    assert_eq!(text(&sandbox(&["exec", &n, "--", "printenv", "ADDED"], &[]).stdout), "yes\n");
    // Remove: gone from Incus and from the managed ssh files.
    let o = sandbox(&["rm", &n], &[]);
    assert!(o.status.success());
    assert!(listed(&n).is_none());
    let cfg = std::fs::read_to_string(sandbox_home().join("ssh_config")).unwrap_or_default();
    assert!(!cfg.contains(&format!("Host {n} ")), "ssh entry removed");
    let kh = std::fs::read_to_string(sandbox_home().join("known_hosts")).unwrap_or_default();
    assert!(!kh.contains(&format!("sandbox-{n} ")), "known_hosts entry removed");
    // Missing sandboxes: exit 1, "not found".
    for cmd in [vec!["stop", n.as_str()], vec!["rm", n.as_str()]] {
        let o = sandbox(&cmd, &[]);
        assert_eq!(o.status.code(), Some(1));
        assert!(text(&o.stderr).contains("not found"));
    }
}

#[test]
fn expose_forwards_a_port_on_loopback_and_unexpose_removes_it() {
    let mut sb = Sandboxes::new();
    let (n, m) = (sb.name("port"), sb.name("port"));
    create(&n, &[]);
    create(&m, &[]);
    let slot = listed(&n).unwrap()["slot"].as_u64().unwrap() as u16;
    let o =
        sandbox(&["exec", &n, "--", "sh", "-c", "nohup python3 -m http.server 7000 >/dev/null 2>&1 & sleep 0.5"], &[]);
    assert!(o.status.success());
    let o = sandbox(&["expose", &n, "7000", "--json"], &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let host_port = 7000 + slot;
    let inst_dev =
        listed(&n).unwrap()["ports"].as_array().unwrap().iter().find(|p| p["device"] == "port-7000-tcp").cloned();
    assert_eq!(inst_dev.expect("device")["hostPort"], host_port);
    // An HTTP request from the host reaches the server in the sandbox.
    let mut body = String::new();
    for _ in 0..50 {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", host_port)) {
            s.set_read_timeout(Some(std::time::Duration::from_secs(3))).unwrap();
            s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
            let _ = s.read_to_string(&mut body);
            if body.contains("200") {
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(body.starts_with("HTTP/1.0 200"), "{body}");
    // A host port held by another sandbox is refused, naming it.
    let o = sandbox(&["expose", &m, "7100", "--host-port", &host_port.to_string()], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains(&n), "{}", text(&o.stderr));
    // Bad ports.
    for bad in ["0", "65536", "abc"] {
        let o = sandbox(&["expose", &n, bad], &[]);
        assert_eq!(o.status.code(), Some(1), "{bad}");
        assert!(text(&o.stderr).contains("not a port number"));
    }
    let o = sandbox(&["expose", &n, "7001", "sctp"], &[]);
    assert!(text(&o.stderr).contains("tcp, udp or both"));
    // both → two devices; unexpose removes all of that port.
    assert!(sandbox(&["expose", &n, "7002", "both"], &[]).status.success());
    let devs: BTreeSet<String> = listed(&n).unwrap()["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["device"].as_str().unwrap().to_string())
        .collect();
    assert!(devs.contains("port-7002-tcp") && devs.contains("port-7002-udp"));
    assert!(sandbox(&["unexpose", &n, "7002"], &[]).status.success());
    assert!(sandbox(&["unexpose", &n, "7000"], &[]).status.success());
    let left = listed(&n).unwrap()["ports"].as_array().unwrap().iter().filter(|p| p["role"] == "extra").count();
    assert_eq!(left, 0);
    let o = sandbox(&["unexpose", &n, "7000"], &[]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn bad_input_gets_a_clear_error_and_changes_nothing() {
    // Only this test's own names are looked at afterwards: other tests (and the spare refills
    // they start) create and remove instances meanwhile.
    let ok = unique("bad");
    let okname = ok.as_str();
    let long = "x".repeat(61);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["start", "a b"], "invalid name"),
        (vec!["start", "a;b"], "invalid name"),
        (vec!["start", "a/b"], "invalid name"),
        (vec!["start", ".."], "invalid name"),
        (vec!["start", "--", "-lead"], "invalid name"),
        (vec!["start", "héllo"], "non-ASCII"),
        (vec!["start", &long], "longer than"),
        (vec!["start", okname, "--cpu", "2;rm -rf /"], "not a CPU count"),
        (vec!["start", okname, "--memory", "lots"], "not a memory size"),
        (vec!["start", okname, "--env", "NOEQUALS"], "has no '='"),
        (vec!["start", okname, "--stack", "nope-stack"], "unknown stack 'nope-stack'"),
        (vec!["start", okname, "--slot", "100"], "slots are 1 to 99"),
        (vec!["start", okname, "not-a-url"], "not a repository URL"),
        (vec!["expose", okname, "abc"], "not a port number"),
    ];
    for (args, expect) in cases {
        let o = sandbox(&args, &[("SANDBOX_DEFAULT_STACK", "minimal")]);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", text(&o.stderr));
        let e = text(&o.stderr);
        assert!(e.contains(expect), "{args:?}: expected '{expect}' in: {e}");
        assert!(e.contains("hint:"), "{args:?} says what to do: {e}");
    }
    let left: Vec<String> = incus_names().into_iter().filter(|n| n.contains(okname)).collect();
    assert!(left.is_empty(), "nothing was created: {left:?}");
    assert!(!std::fs::read_to_string(sandbox_home().join("ssh_config")).unwrap_or_default().contains(okname));
}

#[test]
fn a_failing_create_rolls_everything_back() {
    for point in ["after-copy", "after-start"] {
        let n = unique("fault");
        let o = sandbox(&["start", &n, "--stack", "minimal"], &[("SANDBOX_FAULT", point)]);
        assert_eq!(o.status.code(), Some(1), "{point}");
        assert!(text(&o.stderr).contains("injected failure"), "{}", text(&o.stderr));
        assert!(!incus_names().contains(&format!("agent-{n}")), "{point}: no container left");
        let cfg = std::fs::read_to_string(sandbox_home().join("ssh_config")).unwrap_or_default();
        assert!(!cfg.contains(&n), "{point}: no ssh_config entry left");
    }
}

/// spare-minimal's `volatile.uuid` once it is warm (made now if need be, as creates do in the
/// background), or None while a refill is still making it.
async fn warm_spare(i: &Incus) -> Option<String> {
    let o = sandbox(&["__spare", "minimal"], &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let spare = i.instance("spare-minimal").await.ok()?;
    (spare.config.get("user.sandbox.spare-warm").map(String::as_str) == Some("1"))
        .then(|| spare.config["volatile.uuid"].clone())
}

#[tokio::test]
async fn a_create_takes_the_warm_spare_and_makes_it_its_own() {
    let i = incus();
    let mut sb = Sandboxes::new();
    // Other tests create from the same stack at the same time and may take the spare first.
    let mut took = None;
    for _ in 0..10 {
        let Some(uuid) = warm_spare(&i).await else {
            std::thread::sleep(std::time::Duration::from_millis(500));
            continue;
        };
        let n = sb.name("claim");
        create(&n, &[]);
        let inst = i.instance(&format!("agent-{n}")).await.unwrap();
        if inst.config["volatile.uuid"] == uuid {
            took = Some((n, inst));
            break;
        }
    }
    let (n, inst) = took.expect("a create took the warm spare");
    // Its own identity, rendered at its first start: name, host key (strict checking passed),
    // a machine-id, and no journal but its own (the spare's boot left none; its own may not be
    // flushed to /var yet).
    let o = ssh(
        &n,
        "hostname; cat /etc/machine-id; ls /var/log/journal | grep -cvx \"$(cat /etc/machine-id)\"; ip -4 -br addr show eth0",
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let t = text(&o.stdout);
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(lines[0], n);
    assert_eq!(lines[1].len(), 32, "machine-id: {t}");
    assert_eq!(lines[2], "0", "no other journal: {t}");
    assert!(lines[3].contains(&inst.devices["eth0"]["ipv4.address"]), "{t}");
    for k in
        ["user.sandbox.spare-of", "user.sandbox.spare-warm", "volatile.apply_template", "user.sandbox.boot.host-key"]
    {
        assert!(!inst.config.contains_key(k), "{k} is still in the config");
    }
    let nic = &inst.devices["eth0"];
    assert_eq!((nic["type"].as_str(), nic["security.ipv4_filtering"].as_str()), ("nic", "true"));
    let s = listed(&n).expect("listed");
    assert_eq!(s["state"], "running");
    assert_eq!(s["createdAt"], inst.config["user.sandbox.created-at"].as_str(), "created when asked, not as the spare");
    // Spares are not sandboxes: never listed.
    let out = sandbox(&["list", "--json", "--no-health"], &[]);
    let all: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let spares = all.as_array().unwrap().iter().filter(|s| s["instance"].as_str().unwrap().starts_with("spare-"));
    assert_eq!(spares.count(), 0, "{all}");

    // A spare from an older build of the golden image is not taken, and is replaced.
    let mut uuid = None;
    for _ in 0..20 {
        uuid = warm_spare(&i).await;
        if uuid.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let stale = uuid.expect("a warm spare again");
    let o = Command::new("incus")
        .args(["config", "set", "spare-minimal", "user.sandbox.spare-of=an-older-build"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let m = sb.name("claim");
    create(&m, &[]);
    let inst = i.instance(&format!("agent-{m}")).await.unwrap();
    assert_ne!(inst.config["volatile.uuid"], stale, "the stale spare was not taken");
    let built = i.instance("golden-minimal").await.unwrap().config["user.sandbox.golden-built-at"].clone();
    let mut replaced = false;
    for _ in 0..40 {
        if let Ok(s) = i.instance("spare-minimal").await
            && s.config["volatile.uuid"] != stale
            && s.config.get("user.sandbox.spare-of") == Some(&built)
        {
            replaced = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    assert!(replaced, "the stale spare is replaced by one of the current build");
}

#[test]
fn twenty_concurrent_creates_get_twenty_distinct_slots() {
    let names: Vec<String> = (0..20).map(|_| unique("par")).collect();
    let _guard = Sandboxes(names.clone());
    let children: Vec<_> = names
        .iter()
        .map(|n| {
            Command::new(sandbox_bin())
                .args(["start", n, "--stack", "minimal"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (n, c) in names.iter().zip(children) {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{n}: {}", text(&o.stderr));
    }
    let out = sandbox(&["list", "--json", "--no-health"], &[]);
    let all: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let slots: BTreeSet<u64> = all
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| names.contains(&s["name"].as_str().unwrap().to_string()))
        .map(|s| s["slot"].as_u64().unwrap())
        .collect();
    assert_eq!(slots.len(), 20, "distinct slots: {slots:?}");
    // exec across several: each output under its name; non-zero if any failed.
    let o = sandbox(&["exec", &names[0], &names[1], "--", "hostname"], &[]);
    assert!(o.status.success());
    let t = text(&o.stdout);
    assert!(t.contains(&format!("=== {} (exit 0) ===\n{}\n", names[0], names[0])), "{t}");
    let o = sandbox(&["exec", &names[0], &names[1], "--", "sh", "-c", &format!("[ $(hostname) = {} ]", names[0])], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stdout).contains(&format!("=== {} (exit 1) ===", names[1])));
    let mut args = vec!["rm"];
    args.extend(names.iter().map(String::as_str));
    let o = sandbox(&args, &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
}

#[tokio::test]
async fn a_golden_image_made_the_seed_way_is_a_valid_source() {
    // What the seed's scripts leave: golden-STACK with a `ready` snapshot, no identity templates.
    let stack = format!("seedgold-{:06x}", rand::random::<u32>() & 0xff_ffff);
    let golden = format!("golden-{stack}");
    let _g = Cleanup(vec![golden.clone()]);
    let run = |args: &[&str]| {
        let o = Command::new("incus").args(args).output().unwrap();
        assert!(o.status.success(), "incus {args:?}: {}", text(&o.stderr));
    };
    run(&["copy", "golden-minimal/ready", &golden]);
    let i = incus();
    let mut meta = i.instance_metadata(&golden).await.unwrap();
    meta["templates"] = serde_json::json!({});
    i.put_instance_metadata(&golden, &meta).await.unwrap();
    for k in ["user.sandbox.golden-identity", "user.sandbox.boot.interfaces", "user.sandbox.boot.resolv"] {
        run(&["config", "unset", &golden, k]);
    }
    run(&["snapshot", "create", &golden, "ready"]);
    let mut sb = Sandboxes::new();
    let (a, b) = (sb.name("sg"), sb.name("sg"));
    for n in [&a, &b] {
        let o = sandbox(&["start", n, "--stack", &stack, "--env", "K=v 'q' $(x)"], &[]);
        assert!(o.status.success(), "create {n} from {golden}: {}", text(&o.stderr));
    }
    // Its files were pushed: own hostname, machine-id and host key (strict checking), the env.
    let ident = |n: &str| {
        let o = ssh(
            n,
            "hostname; cat /etc/machine-id /etc/ssh/ssh_host_ed25519_key.pub; . /etc/profile.d/sandbox-env.sh; printf '%s' \"$K\"",
        );
        assert!(o.status.success(), "ssh {n}: {}", text(&o.stderr));
        text(&o.stdout)
    };
    let (ia, ib) = (ident(&a), ident(&b));
    assert!(ia.starts_with(&format!("{a}\n")) && ia.ends_with("v 'q' $(x)"), "{ia}");
    assert_ne!(ia.lines().nth(1), ib.lines().nth(1), "own machine-id");
    assert_ne!(ia.lines().nth(2), ib.lines().nth(2), "own host key");
    assert!(!i.instance(&format!("agent-{a}")).await.unwrap().config.contains_key("user.sandbox.boot.host-key"));
}

#[tokio::test]
async fn a_sandbox_made_the_seed_way_is_listed_stopped_restarted_and_removed() {
    let name = unique("seed");
    let inst = format!("agent-{name}");
    let _c = Cleanup(vec![inst.clone()]);
    let slot = 90 + (rand::random::<u32>() % 9);
    let run = |args: &[&str]| {
        let o = Command::new("incus").args(args).output().unwrap();
        assert!(o.status.success(), "incus {args:?}: {}", text(&o.stderr));
    };
    // Exactly what sandbox-claude does: a copy of golden-STACK/ready, user.sandbox.* keys and
    // forkproxy devices to 127.0.0.1 inside; host keys made inside the container.
    run(&["copy", "golden-minimal/ready", &inst]);
    run(&[
        "config",
        "set",
        &inst,
        &format!("user.sandbox.slot={slot}"),
        "user.sandbox.stack=minimal",
        "user.sandbox.repo=git@github.com:o/r.git",
    ]);
    for (dev, base, port) in [("ssh-proxy", 2200, 22), ("app-proxy", 8000, 8080), ("alt-proxy", 9000, 9090)] {
        run(&[
            "config",
            "device",
            "add",
            &inst,
            dev,
            "proxy",
            &format!("listen=tcp:127.0.0.1:{}", base + slot),
            &format!("connect=tcp:127.0.0.1:{port}"),
        ]);
    }
    run(&["start", &inst]);
    run(&["exec", &inst, "--", "ssh-keygen", "-A"]);
    let s = listed(&name).expect("seed sandbox listed");
    assert_eq!(s["slot"], slot);
    assert_eq!(s["managed"], false);
    assert_eq!(s["repo"], "git@github.com:o/r.git");
    assert_eq!(s["ports"][0]["hostPort"], 2200 + slot);
    let o = sandbox(&["stop", &name], &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(listed(&name).unwrap()["state"], "stopped");
    let o = sandbox(&["start", &name], &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(ssh(&name, "true").status.success(), "reachable after our restart");
    let o = sandbox(&["rm", &name], &[]);
    assert!(o.status.success());
    assert!(!incus_names().contains(&inst));
}

#[test]
fn shell_runs_a_login_shell_in_the_project_and_nuke_wants_confirmation() {
    let mut sb = Sandboxes::new();
    let n = sb.name("sh");
    create(&n, &[]);
    let mut child = Command::new(sandbox_bin())
        .args(["shell", &n])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"echo \"$(hostname):$(whoami):$PWD\"; exit\n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(
        text(&o.stdout).contains(&format!("{n}:ubuntu:/workspace/project")),
        "{} {}",
        text(&o.stdout),
        text(&o.stderr)
    );
    // `sandbox claude` runs the real Claude Code: tests/claude.rs (interactive, in tmux).
    // No terminal and no --yes: nuke refuses and removes nothing.
    let o = sandbox(&["nuke"], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("--yes"));
    assert!(listed(&n).is_some());
}
