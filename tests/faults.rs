//! Reliability under real faults (issue #18): a create killed at any moment (kill -9, TERM, HUP,
//! INT, a closed output pipe, `timeout`), on the copy path and the warm-spare path, and a killed
//! sidecar, end — after the next `start` or `rm` of that name, or a sidecar starting later — in a
//! fully working or a fully absent sandbox, with no secret left in Incus and nothing left on the
//! host. Each test has a `SANDBOX_HOME` of its own.
use std::time::Duration;

use sandbox_e2e::faults::{Home, Moment, exists, killed_by};
use sandbox_e2e::{text, unique};

const SIGKILL: i32 = libc::SIGKILL;

/// When to kill a create: at its progress lines, and at fixed delays spread over its ~0.5 s.
fn moments(spares: bool) -> Vec<Moment> {
    let mut m = vec![Moment::Line("Creating agent-")];
    if spares {
        m.push(Moment::Line("Took the warm spare"));
    }
    m.extend([Moment::Line("Starting agent-"), Moment::Line("Waiting for SSH")]);
    m.extend([0, 40, 90, 150, 220, 300, 400, 520, 700, 900].map(|ms| Moment::After(Duration::from_millis(ms))));
    m
}

/// kill -9 at every moment; then, alternately, `start` (must end fully working, never reported
/// as a restart of a half-made sandbox) or `rm` (must end fully absent).
fn kill_at_every_moment(spares: bool) {
    let home = Home::new(if spares { "k9-spare" } else { "k9-copy" });
    let env: &[(&str, &str)] = &[("SANDBOX_SPARES", if spares { "1" } else { "0" })];
    for (i, moment) in moments(spares).iter().enumerate() {
        let name = unique(&format!("k9{}{i}", if spares { "s" } else { "c" }));
        if spares {
            // A warm spare to take (made now, as a create's background refill would).
            home.warm_spare("minimal");
        }
        let mut run = home.spawn(&["start", &name], env);
        let reached = run.wait_for(moment);
        assert!(
            reached || matches!(moment, Moment::After(_)),
            "the create never reached {moment:?}: {}",
            run.seen.join("\n")
        );
        run.signal(SIGKILL);
        let (_, log) = run.finish(Duration::from_secs(60));
        let context = format!("kill -9 at {moment:?} (spares {spares}); its progress:\n{log}\n");
        if i % 2 == 0 {
            let o = home.run(&["start", &name], env);
            assert!(o.status.success(), "{context}next start: {}", text(&o.stderr));
            assert!(
                !text(&o.stdout).contains("restarted"),
                "{context}a half-made sandbox reported as restarted: {}",
                text(&o.stdout)
            );
            home.assert_working(&name, &context);
            home.remove(&name, &context);
        } else {
            let o = home.run(&["rm", &name], env);
            assert!(
                o.status.success() || text(&o.stderr).contains("not found"),
                "{context}next rm: {}",
                text(&o.stderr)
            );
            home.assert_absent(&name, &context);
        }
    }
}

#[test]
fn kill_9_at_every_moment_of_a_copy_create() {
    kill_at_every_moment(false);
}

#[test]
fn kill_9_at_every_moment_of_a_spare_create() {
    kill_at_every_moment(true);
}

/// TERM, HUP and INT roll a create back by themselves (exit 130), or it had finished (exit 0):
/// no next command is needed to end fully working or fully absent.
#[test]
fn term_hup_and_int_roll_a_create_back() {
    let home = Home::new("sig");
    let moments = [
        Moment::Line("Creating agent-"),
        Moment::Line("Starting agent-"),
        Moment::Line("Waiting for SSH"),
        Moment::After(Duration::from_millis(150)),
    ];
    for (sig, sig_name) in [(libc::SIGTERM, "TERM"), (libc::SIGHUP, "HUP"), (libc::SIGINT, "INT")] {
        for moment in &moments {
            let name = unique("sig");
            let mut run = home.spawn(&["start", &name], &[]);
            let reached = run.wait_for(moment);
            assert!(
                reached || matches!(moment, Moment::After(_)),
                "the create never reached {moment:?}: {}",
                run.seen.join("\n")
            );
            run.signal(sig);
            let (st, log) = run.finish(Duration::from_secs(60));
            let context = format!("{sig_name} at {moment:?}: {st:?}\n{log}\n");
            match st.code() {
                Some(0) => {
                    home.assert_working(&name, &context);
                    home.remove(&name, &context);
                }
                Some(130) => home.assert_absent(&name, &context),
                _ => {
                    let _ = home.run(&["rm", &name], &[]);
                    panic!("{context}ended by {:?} instead of rolling back", killed_by(&st));
                }
            }
        }
    }
    // `timeout` sends TERM the same way.
    let name = unique("sig");
    let o = std::process::Command::new("timeout")
        .args(["0.3", sandbox_e2e::sandbox_bin().to_str().unwrap(), "start", &name])
        .env("SANDBOX_HOME", &home.dir)
        .env("SANDBOX_DEFAULT_STACK", "minimal")
        .output()
        .unwrap();
    let context = format!("timeout 0.3: {:?}\n{}", o.status, text(&o.stderr));
    if exists(&name) {
        home.assert_working(&name, &context);
        home.remove(&name, &context);
    } else {
        home.assert_absent(&name, &context);
    }
}

/// `sandbox start x 2>&1 | head -1`: the reader goes away after one line; the create must not die
/// of SIGPIPE half-way, it completes.
#[test]
fn a_closed_output_pipe_does_not_kill_a_create() {
    let home = Home::new("pipe");
    let name = unique("pipe");
    let script = format!("'{}' start '{name}' 2>&1 | head -1", sandbox_e2e::sandbox_bin().display());
    let o = std::process::Command::new("sh")
        .args(["-c", &script])
        .env("SANDBOX_HOME", &home.dir)
        .env("SANDBOX_DEFAULT_STACK", "minimal")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    // The pipeline ends with `head`; the create goes on until it is done.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while home.ssh(&name).status.code() != Some(0) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(300));
    }
    home.assert_working(&name, "after | head -1");
    // An endless output whose reader goes away still ends the command (SIGPIPE is ignored: the
    // write error ends it instead).
    let script = format!("'{}' exec '{name}' -- yes | head -1", sandbox_e2e::sandbox_bin().display());
    let mut child = std::process::Command::new("sh")
        .args(["-c", &script])
        .env("SANDBOX_HOME", &home.dir)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("`sandbox exec {name} -- yes | head -1` still runs after 30 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    home.remove(&name, "after | head -1");
}

/// A second Ctrl-C quits before the rollback is done: the command says what was left and how to
/// remove it, and that command removes it all.
#[test]
fn a_second_ctrl_c_says_what_was_left_and_how_to_remove_it() {
    let home = Home::new("int2");
    let name = unique("int2");
    let run = home.create_held_after_copy(&name);
    run.signal(libc::SIGINT);
    std::thread::sleep(Duration::from_millis(15));
    let second = run.signal_from_another_process(libc::SIGINT);
    let (st, log) = run.finish(Duration::from_secs(60));
    assert_eq!(st.code(), Some(130), "{log}");
    let remove = format!("sandbox rm {name}");
    if second && log.contains(&remove) {
        let o = home.run(&["rm", &name], &[]);
        assert!(o.status.success(), "{}", text(&o.stderr));
    }
    home.assert_absent(&name, &format!("after two Ctrl-C:\n{log}"));
}

/// `timeout` sends its TERM to the command and again to the command's process group: the same
/// signal twice from one sender is one stop, and the create rolls back in full instead of
/// quitting half-way.
#[test]
fn the_same_signal_twice_from_one_sender_is_one_stop() {
    let home = Home::new("term2");
    let name = unique("term2");
    let run = home.create_held_after_copy(&name);
    run.signal(libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(15));
    run.signal(libc::SIGTERM);
    let (st, log) = run.finish(Duration::from_secs(60));
    assert_eq!(st.code(), Some(130), "{log}");
    assert!(!log.contains("left half-made"), "one stop, delivered twice, quit half-way:\n{log}");
    home.assert_absent(&name, &format!("after TERM twice from one sender:\n{log}"));
}

/// `rm` when the instance is gone (deleted behind its back): whatever exists of NAME on the host
/// goes — ssh entries, the egress registration, the agent — it says what it removed and exits 0;
/// a second `rm` finds nothing. `doctor` lists such orphans and `doctor --fix` removes them.
#[test]
fn rm_and_doctor_fix_remove_host_leftovers_when_the_instance_is_gone() {
    let home = Home::new("orphan");
    let key = home.own_key();
    let (plain, agent, orphan) = (unique("orph"), unique("orpha"), unique("orphd"));
    for (n, extra) in [(&plain, vec![]), (&agent, vec!["--ssh-key", key.to_str().unwrap()]), (&orphan, vec![])] {
        let mut args = vec!["start", n.as_str()];
        args.extend(extra);
        let o = home.run(&args, &[]);
        assert!(o.status.success(), "create {n}: {}", text(&o.stderr));
    }
    let agent_pid: i32 =
        std::fs::read_to_string(home.dir.join("agents").join(format!("{agent}.pid"))).unwrap().trim().parse().unwrap();
    for n in [&plain, &agent, &orphan] {
        let o =
            std::process::Command::new("incus").args(["delete", "--force", &format!("agent-{n}")]).output().unwrap();
        assert!(o.status.success());
        assert!(!home.leftovers(n).is_empty(), "{n} left something on the host");
    }
    for n in [&plain, &agent] {
        let o = home.run(&["rm", n], &[]);
        assert!(o.status.success(), "rm {n} without its instance: {}", text(&o.stderr));
        let said = format!("{}{}", text(&o.stdout), text(&o.stderr));
        assert!(said.contains("ssh"), "rm says what it removed: {said}");
        home.assert_absent(n, "rm of leftovers");
        let o = home.run(&["rm", n], &[]);
        assert_eq!(o.status.code(), Some(1), "nothing left the second time");
        assert!(text(&o.stderr).contains("not found"), "{}", text(&o.stderr));
    }
    assert!(!sandbox_e2e::faults::alive(agent_pid), "the agent of {agent} was ended");
    // doctor: the orphan is listed, --fix removes it.
    let o = home.run(&["doctor", "--json"], &[]);
    let checks = text(&o.stdout);
    assert!(checks.contains(&orphan), "doctor lists the orphan {orphan}: {checks}");
    let o = home.run(&["doctor", "--fix"], &[]);
    assert!(text(&o.stdout).contains(&orphan) || text(&o.stderr).contains(&orphan), "{}", text(&o.stderr));
    home.assert_absent(&orphan, "doctor --fix");
}

/// `start` of an existing sandbox re-creates what it must have: its ports device (from its slot),
/// its ssh entry and known_hosts line, and the managed key among its authorized keys — also when
/// ~/.sandbox was deleted — and never reports success for a sandbox it cannot reach.
#[test]
fn start_repairs_what_a_sandbox_must_have() {
    let home = Home::new("repair");
    let name = unique("repair");
    let o = home.run(&["start", &name], &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    // The ports device removed behind its back, while it runs.
    let o = std::process::Command::new("incus")
        .args(["config", "device", "remove", &format!("agent-{name}"), "ports"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    if home.ssh(&name).status.success() {
        let show = std::process::Command::new("incus")
            .args(["config", "show", "--expanded", &format!("agent-{name}")])
            .output()
            .unwrap();
        let nft = std::process::Command::new("nft").args(["list", "ruleset"]).output().unwrap();
        let port = home.listed(&name).map(|s| s.to_string()).unwrap_or_default();
        let rules: Vec<&str> =
            std::str::from_utf8(&nft.stdout).unwrap_or("").lines().filter(|l| l.contains("dnat")).collect();
        panic!(
            "still reachable without its ports device:\n{}\nlisted: {port}\nNAT rules: {rules:#?}",
            text(&show.stdout)
        );
    }
    let o = home.run(&["start", &name], &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(home.ssh(&name).status.success(), "start put the ports back");
    // Its ssh entry lost while it runs.
    let cfg = home.dir.join("ssh_config");
    std::fs::write(&cfg, b"").unwrap();
    std::fs::write(home.dir.join("known_hosts"), b"").unwrap();
    let o = home.run(&["start", &name], &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(home.ssh(&name).status.success(), "start wrote the entry again");
    // ~/.sandbox deleted (a new managed key is made): a restart lets the new key in.
    assert!(home.run(&["stop", &name], &[]).status.success());
    for e in std::fs::read_dir(&home.dir).unwrap().flatten() {
        let p = e.path();
        let _ = if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
    }
    let t0 = std::time::Instant::now();
    let o = home.run(&["start", &name], &[]);
    assert!(o.status.success(), "restart after ~/.sandbox was deleted ({:?}): {}", t0.elapsed(), text(&o.stderr));
    assert!(home.ssh(&name).status.success(), "reachable with the new managed key");
    home.remove(&name, "repaired");
}

fn find(hay: &[u8], needle: &str) -> bool {
    memchr::memmem::find(hay, needle.as_bytes()).is_some()
}

/// ~/.sandbox/ssh_config and known_hosts are edited as bytes: a byte that is not UTF-8, or an
/// entry without its `# END` marker, costs no other entry; a file that cannot be read fails the
/// command and is left as it was.
#[test]
fn the_managed_ssh_files_lose_no_entry_to_one_bad_byte_or_a_missing_marker() {
    let home = Home::new("bytes");
    let (a, b, c) = (unique("byta"), unique("bytb"), unique("bytc"));
    for n in [&a, &b] {
        let o = home.run(&["start", n], &[]);
        assert!(o.status.success(), "{}", text(&o.stderr));
    }
    let (cfg, kh) = (home.dir.join("ssh_config"), home.dir.join("known_hosts"));
    let mut bytes = std::fs::read(&cfg).unwrap();
    bytes.extend_from_slice(b"# caf\xe9 (a user's own note)\n");
    std::fs::write(&cfg, &bytes).unwrap();
    let mut hosts = std::fs::read(&kh).unwrap();
    hosts.extend_from_slice(b"# \xff\xfe not UTF-8\n");
    std::fs::write(&kh, &hosts).unwrap();
    let o = home.run(&["start", &c], &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let (cfg_now, kh_now) = (std::fs::read(&cfg).unwrap(), std::fs::read(&kh).unwrap());
    assert!(cfg_now.starts_with(&bytes), "every line of ssh_config kept as it was");
    assert!(kh_now.starts_with(&hosts), "every line of known_hosts kept as it was");
    assert!(find(&cfg_now, &format!("# BEGIN sandbox {c}\n")), "c's entry added");
    for n in [&a, &b, &c] {
        assert!(home.ssh(n).status.success(), "ssh {n} with strict host-key checking");
    }
    home.remove(&c, "rm c");
    assert_eq!(std::fs::read(&cfg).unwrap(), bytes, "rm took out c's entry only");
    assert_eq!(std::fs::read(&kh).unwrap(), hosts);

    // a's entry loses its END marker (b's comes after it): rm a keeps the file as it was, warns.
    let end = format!("# END sandbox {a}\n");
    let at = memchr::memmem::find(&bytes, end.as_bytes()).expect("a's END marker");
    let broken = [&bytes[..at], &bytes[at + end.len()..]].concat();
    std::fs::write(&cfg, &broken).unwrap();
    let o = home.run(&["rm", &a], &[]);
    assert!(text(&o.stderr).contains(&format!("# END sandbox {a}")), "warns: {}", text(&o.stderr));
    assert_eq!(std::fs::read(&cfg).unwrap(), broken, "the file is left unchanged");
    assert!(home.ssh(&b).status.success(), "b's entry is still there");

    // A file that cannot be read (a directory where known_hosts should be): the create fails,
    // says which file, and leaves nothing behind; ssh_config is untouched.
    std::fs::remove_file(&kh).unwrap();
    std::fs::create_dir(&kh).unwrap();
    let d = unique("bytd");
    let o = home.run(&["start", &d], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("known_hosts"), "{}", text(&o.stderr));
    assert_eq!(std::fs::read(&cfg).unwrap(), broken, "ssh_config untouched");
    assert!(!exists(&d), "nothing created");
    std::fs::remove_dir(&kh).unwrap();
    let _ = home.run(&["rm", &b], &[]);
    let _ = std::process::Command::new("incus").args(["delete", "--force", &format!("agent-{a}")]).output();
}

/// Daemons a command starts (the sandbox's ssh-agent) outlive it, and must hold none of the
/// descriptors its caller gave it: a pipe the caller waits on, a lock it holds.
#[test]
fn daemons_a_command_starts_hold_none_of_its_callers_descriptors() {
    use std::os::unix::process::CommandExt;
    let home = Home::new("fds");
    let key = home.own_key();
    // A file held open by the caller as descriptor 9, inherited (not close-on-exec).
    let held = home.dir.join("held.lock");
    let f = std::fs::File::create(&held).unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&f);
    let name = unique("fds");
    let mut cmd = home.command(&["start", &name, "--ssh-key", key.to_str().unwrap()], &[]);
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(fd, 9) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let o = cmd.stdin(std::process::Stdio::null()).output().unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let pid: i32 =
        std::fs::read_to_string(home.dir.join("agents").join(format!("{name}.pid"))).unwrap().trim().parse().unwrap();
    let holds: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .map(|p| p.display().to_string())
        .filter(|p| p.contains("held.lock"))
        .collect();
    assert!(holds.is_empty(), "the agent holds the caller's descriptor: {holds:?}");
    home.remove(&name, "fds");
}
