//! Limits on every input (issue #18): files read only when regular and small, environment and
//! exec arguments bounded, CPU, memory and disk checked against what works, host ports below
//! 1024 and host ports taken since refused — each with a clear error, before anything changes.
use std::io::Write;
use std::time::{Duration, Instant};

use sandbox_e2e::faults::{Home, exists};
use sandbox_e2e::{text, unique};

/// Runs a command that must fail fast with `expect` in its error (and a hint), creating nothing.
fn refused(home: &Home, args: &[&str], expect: &str) {
    let t0 = Instant::now();
    let mut child = home
        .command(args, &[])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Bounded: a command that reads /dev/zero must not run (or grow) for ever.
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("{args:?} still running after 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = child.wait_with_output().unwrap();
    let e = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{args:?}: {e}");
    assert!(e.contains(expect), "{args:?}: expected '{expect}' in: {e}");
    assert!(e.contains("hint:"), "{args:?}: says what to do: {e}");
    if args.first() == Some(&"start") {
        assert!(!exists(args[1]), "{args:?} created nothing");
    }
}

#[test]
fn files_are_read_only_when_regular_and_small() {
    let home = Home::new("files");
    let n = unique("lim");
    refused(&home, &["start", &n, "--domains-file", "/dev/zero"], "not a regular file");
    let big = home.dir.join("big-list.txt");
    let mut f = std::fs::File::create(&big).unwrap();
    for i in 0..120_000 {
        writeln!(f, "host-{i}.example.com").unwrap();
    }
    drop(f);
    refused(&home, &["start", &n, "--domains-file", big.to_str().unwrap()], "1 MiB");
    // ~/.sandbox/env: a byte that is not UTF-8, or a directory, is said — never silently dropped.
    std::fs::write(home.dir.join("env"), b"ANTHROPIC_API_KEY=k\nNOTE=caf\xe9\n").unwrap();
    refused(&home, &["start", &n], "not UTF-8");
    std::fs::remove_file(home.dir.join("env")).unwrap();
    std::fs::create_dir(home.dir.join("env")).unwrap();
    refused(&home, &["start", &n], "is a directory");
}

#[test]
fn environment_and_sizes_are_bounded() {
    let home = Home::new("sizes");
    let n = unique("lim");
    let big = format!("BIG={}", "v".repeat(40 << 10));
    refused(&home, &["start", &n, "--env", &big], "32 KiB");
    let many: Vec<String> = (0..300).map(|i| format!("--env=V{i}=x")).collect();
    let mut args = vec!["start", n.as_str()];
    args.extend(many.iter().map(String::as_str));
    refused(&home, &args, "256");
    let total: Vec<String> = (0..10).map(|i| format!("--env=T{i}={}", "t".repeat(30 << 10))).collect();
    let mut args = vec!["start", n.as_str()];
    args.extend(total.iter().map(String::as_str));
    refused(&home, &args, "256 KiB");
    // More CPUs than the host has, less memory than a sandbox needs to boot.
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    refused(&home, &["start", &n, "--cpu", &(cpus + 1).to_string()], &format!("{cpus} CPU"));
    refused(&home, &["start", &n, "--cpu", "1024"], "CPU");
    refused(&home, &["start", &n, "--memory", "4MiB"], "at least");
    refused(&home, &["start", &n, "--disk", "1MiB"], "at least");
}

/// exec arguments: bounded with a clear error, not a raw Incus one (a single argument over 128 KiB
/// cannot even reach the CLI — the kernel refuses it — so that one is checked over the API, in
/// tests/lsp.rs).
#[test]
fn exec_arguments_are_bounded() {
    let home = Home::new("exec");
    let n = unique("lim");
    let o = home.run(&["start", &n], &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let big: Vec<String> = (0..10).map(|_| "a".repeat(120 << 10)).collect();
    let mut args = vec!["exec", n.as_str(), "--", "echo"];
    args.extend(big.iter().map(String::as_str));
    let o = home.run(&args, &[]);
    assert_eq!(o.status.code(), Some(1));
    let e = text(&o.stderr);
    assert!(e.contains("1 MiB") && e.contains("hint:"), "{}", &e[..e.len().min(400)]);
    let o = home.run(&["exec", &n, "--", "echo", "fine"], &[]);
    assert_eq!(text(&o.stdout), "fine\n");
    home.remove(&n, "exec limits");
}

/// A host port below 1024 needs asking for; a host port another program took since is refused
/// at the next start (a NAT forward would hijack it).
#[test]
fn host_ports_are_checked_at_expose_and_at_every_start() {
    let home = Home::new("ports");
    let n = unique("lim");
    let o = home.run(&["start", &n], &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = home.run(&["expose", &n, "22", "--host-port", "80"], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("below 1024"), "{}", text(&o.stderr));
    // A free high port, taken by another program while the sandbox is stopped.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let o = home.run(&["expose", &n, "7000", "--host-port", &port.to_string()], &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(home.run(&["stop", &n], &[]).status.success());
    let squatter = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let o = home.run(&["start", &n], &[]);
    assert_eq!(o.status.code(), Some(1), "start with a host port taken: {}", text(&o.stderr));
    assert!(text(&o.stderr).contains(&port.to_string()), "{}", text(&o.stderr));
    drop(squatter);
    let o = home.run(&["start", &n], &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    home.remove(&n, "ports");
}

/// Every sandbox's root disk has a size: the default, or `--disk`; shown in list; a sandbox
/// cannot write past it (the shared pool is not filled).
#[test]
fn the_root_disk_is_limited() {
    let home = Home::new("disk");
    let (a, b) = (unique("disk"), unique("diskd"));
    let o = home.run(&["start", &a, "--disk", "1GiB"], &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = home.run(&["start", &b], &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(home.listed(&a).unwrap()["disk"], "1GiB");
    assert!(home.listed(&b).unwrap()["disk"].is_string(), "a default size: {}", home.listed(&b).unwrap());
    let o =
        home.run(&["exec", &a, "--", "sh", "-c", "dd if=/dev/zero of=/var/tmp/fill bs=1M count=1500 2>&1; sync"], &[]);
    let out = format!("{}{}", text(&o.stdout), text(&o.stderr));
    assert!(out.contains("quota") || out.contains("No space"), "writing past --disk fails: {out}");
    let o = home.run(&["exec", &a, "--", "rm", "-f", "/var/tmp/fill"], &[]);
    assert!(o.status.success());
    home.remove(&a, "disk");
    home.remove(&b, "disk");
}
