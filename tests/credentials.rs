//! Repositories and credentials against real Incus, a real sshd git server and a simulated
//! GitHub API (tests/support/gitfake.rs): deploy keys, the host-side agent, clone and branches,
//! `--from`, `--ssh-key`, cleanup, rollback, and no private key material in the sandbox. Tests
//! of the agent inside the sandbox make it with `--allow-push-any` (with the push gate, the key
//! stays on the host: tests/push_gate.rs).
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use sandbox_e2e::gitfake::{Fail, GitHub};
use sandbox_e2e::repo::{Guard, commit, create_ok, exec, exec_ok, sb};
use sandbox_e2e::secrets::{init_pid, scan, virtual_mounts};
use sandbox_e2e::*;

const REPO: &str = "acme/app";
const OTHER: &str = "acme/other";

fn key_path(name: &str) -> PathBuf {
    sandbox_home().join("keys").join(format!("deploy_{name}"))
}
fn agent_sock(name: &str) -> PathBuf {
    sandbox_home().join("agents").join(format!("{name}.sock"))
}
fn agent_pid(name: &str) -> Option<i32> {
    std::fs::read_to_string(sandbox_home().join("agents").join(format!("{name}.pid"))).ok()?.trim().parse().ok()
}
fn alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default().contains("State:\tZ")
}

fn incus_config(name: &str, key: &str) -> String {
    let o = Command::new("incus").args(["config", "get", &format!("agent-{name}"), key]).output().unwrap();
    text(&o.stdout).trim().to_string()
}

#[test]
fn clone_and_push_over_the_agent_and_another_sandboxs_key_cannot_push() {
    let gh = GitHub::start(&[REPO, OTHER]);
    let mut g = Guard::new(&gh);
    let a = g.name("cred");
    create_ok(&gh, &a, &[&gh.url(REPO), "--allow-push-any"]);

    // One key on "GitHub", titled sandbox-NAME, with write access; its id stored on the instance.
    let keys = gh.keys(REPO);
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(keys[0].title, format!("sandbox-{a}"));
    assert!(!keys[0].read_only);
    assert_eq!(incus_config(&a, "user.sandbox.deploy-key-id"), keys[0].id.to_string());
    // The pair on the host, seed-compatible, private 0600; it is the registered key.
    let mode = std::fs::metadata(key_path(&a)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let public = std::fs::read_to_string(key_path(&a).with_extension("pub")).unwrap();
    assert!(public.starts_with(&keys[0].key), "{public} vs {}", keys[0].key);

    // The clone is there, owned by ubuntu, on the default branch.
    assert_eq!(exec_ok(&a, &["cat", "README.md"]), "hello from the fake GitHub\n");
    assert_eq!(exec_ok(&a, &["git", "branch", "--show-current"]).trim(), "main");
    assert_eq!(exec_ok(&a, &["stat", "-c", "%U", "/workspace/project/.git"]).trim(), "ubuntu");
    // Login shells get the agent; list shows it.
    assert_eq!(exec_ok(&a, &["sh", "-c", "echo $SSH_AUTH_SOCK"]).trim(), "/run/ssh-agent.sock");
    assert_eq!(listed(&a).unwrap()["health"]["sshAgent"], true);

    // Push works, and lands on the server.
    let head = commit(&a, "from the sandbox");
    exec_ok(&a, &["git", "push", "-q", "origin", "HEAD:refs/heads/pushed"]);
    assert_eq!(gh.rev(REPO, "refs/heads/pushed").as_deref(), Some(head.as_str()));

    // Another sandbox, with a deploy key for another repository, cannot push to this one.
    let b = g.name("cred");
    create_ok(&gh, &b, &[&gh.url(OTHER), "--allow-push-any"]);
    assert_eq!(gh.keys(OTHER).len(), 1);
    assert_eq!(gh.keys(REPO).len(), 1, "b's key went to its own repository");
    commit(&b, "intruder");
    let o = exec(&b, &["git", "push", &gh.url(REPO), "HEAD:refs/heads/evil"]);
    assert!(!o.status.success(), "b pushed to a's repository");
    assert!(text(&o.stderr).contains("Repository not found"), "{}", text(&o.stderr));
    assert_eq!(gh.rev(REPO, "refs/heads/evil"), None);
    // ... and its own repository works for it.
    exec_ok(&b, &["git", "push", "-q", "origin", "HEAD:refs/heads/mine"]);
    assert!(gh.rev(OTHER, "refs/heads/mine").is_some());
}

#[test]
fn read_only_key_clones_but_cannot_push() {
    let gh = GitHub::start(&[REPO]);
    let mut g = Guard::new(&gh);
    let n = g.name("cred");
    create_ok(&gh, &n, &[&gh.url(REPO), "--read-only-key", "--allow-push-any"]);
    assert!(gh.keys(REPO)[0].read_only);
    commit(&n, "x");
    let o = exec(&n, &["git", "push", "origin", "HEAD:refs/heads/ro"]);
    assert!(!o.status.success());
    assert_eq!(gh.rev(REPO, "refs/heads/ro"), None);
    // Through the push gate, its own branch: the server refuses the read-only key, and says so.
    let m = g.name("cred");
    create_ok(&gh, &m, &[&gh.url(REPO), "--read-only-key", "--branch", "ro2"]);
    commit(&m, "y");
    let o = exec(&m, &["git", "push", "origin", "ro2"]);
    assert!(!o.status.success() && text(&o.stderr).contains("read only"), "{}", text(&o.stderr));
    assert_eq!(gh.rev(REPO, "refs/heads/ro2"), None);
}

/// What in a private key must never be in a sandbox: the ed25519 seed, every line of the
/// OpenSSH PEM body that carries private data, and the PEM marker.
fn secrets_of(private_pem: &str) -> Vec<Vec<u8>> {
    let key = ssh_key::PrivateKey::from_openssh(private_pem).unwrap();
    let seed = key.key_data().ed25519().unwrap().private.to_bytes().to_vec();
    let mut needles = vec![b"PRIVATE KEY".to_vec(), seed];
    // The body's first line is the header and the public key; the rest is private.
    for l in private_pem.lines().filter(|l| !l.starts_with("-----")).skip(1) {
        if l.len() >= 20 {
            needles.push(l.as_bytes().to_vec());
        }
    }
    needles
}

/// Scans the sandbox's whole filesystem and every process environment in it for `private_pem`.
/// PEM markers are allowed only in the sandbox's own SSH host key and in files shipped,
/// byte-identical, in the golden image (libraries that parse PEM).
fn assert_no_key_material(name: &str, private_pem: &str) {
    let needles = secrets_of(private_pem);
    let pid = init_pid(name);
    let root = PathBuf::from(format!("/proc/{pid}/root"));
    let skip = virtual_mounts(pid);
    assert!(skip.iter().any(|m| m == "proc"), "{skip:?}");
    let t = std::time::Instant::now();
    let (files, hits) = scan(&root, &skip, &needles);
    eprintln!("scanned {files} files in {:.1}s", t.elapsed().as_secs_f64());
    assert!(files > 5000, "scanned only {files} files: is {} the sandbox's root?", root.display());
    let golden = Path::new("/var/lib/incus/storage-pools/default/containers-snapshots/golden-minimal/ready/rootfs");
    for (path, i) in &hits {
        if *i == 0 {
            let allowed = path == "etc/ssh/ssh_host_ed25519_key"
                || std::fs::read(golden.join(path)).ok() == std::fs::read(root.join(path)).ok();
            assert!(allowed, "a PRIVATE KEY marker in {path}, not from the image");
        } else {
            panic!("the private key's bytes (needle {i}) are in the sandbox at /{path}");
        }
    }
    // Environments of every process in the sandbox: those in its init's pid namespace.
    let ns = std::fs::read_link(format!("/proc/{pid}/ns/pid")).unwrap();
    let pids: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
        .filter(|p| std::fs::read_link(format!("/proc/{p}/ns/pid")).is_ok_and(|l| l == ns))
        .collect();
    assert!(pids.len() > 3, "processes of the sandbox: {pids:?}");
    for pid in pids {
        let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        for (i, n) in needles.iter().enumerate() {
            assert!(memchr::memmem::find(&env, n).is_none(), "needle {i} in the environment of pid {pid}");
        }
    }
}

#[test]
fn no_private_key_material_in_the_sandbox_yet_the_agent_signs() {
    let gh = GitHub::start(&[REPO]);
    let mut g = Guard::new(&gh);
    let n = g.name("cred");
    create_ok(&gh, &n, &[&gh.url(REPO), "--allow-push-any"]);
    let private = std::fs::read_to_string(key_path(&n)).unwrap();
    let public = std::fs::read_to_string(key_path(&n).with_extension("pub")).unwrap();
    // The needles do find a key where one is (the scanner can fail).
    let probe = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(probe.path().join("deep/er")).unwrap();
    std::fs::write(probe.path().join("deep/er/x"), private.as_bytes()).unwrap();
    assert!(!scan(probe.path(), &[], &secrets_of(&private)).1.is_empty());

    assert_no_key_material(&n, &private);
    // The agent inside lists exactly the deploy key, and no key file exists anywhere.
    let listed_keys = exec_ok(&n, &["ssh-add", "-L"]);
    assert_eq!(listed_keys.lines().count(), 1, "{listed_keys}");
    assert!(public.starts_with(listed_keys.split_whitespace().take(2).collect::<Vec<_>>().join(" ").as_str()));
    let found = exec_ok(&n, &["sudo", "find", "/", "-xdev", "-name", "deploy_*", "-o", "-name", "id_ed25519"]);
    assert_eq!(found.trim(), "", "key files in the sandbox");
    // The socket is ubuntu's only.
    assert_eq!(exec_ok(&n, &["stat", "-c", "%U %a %F", "/run/ssh-agent.sock"]).trim(), "ubuntu 600 socket");
    // And it signs: a fetch over SSH works.
    exec_ok(&n, &["git", "fetch", "-q", "origin"]);
}

#[test]
fn branches_existing_and_new_and_from_over_the_api_with_a_callers_token() {
    let gh = GitHub::start(&[REPO]);
    let mut g = Guard::new(&gh);
    let a = g.name("cred");
    // Existing branch, through the CLI.
    create_ok(&gh, &a, &[&gh.url(REPO), "--branch", "existing"]);
    assert_eq!(exec_ok(&a, &["git", "branch", "--show-current"]).trim(), "existing");
    assert_eq!(
        exec_ok(&a, &["git", "rev-parse", "--abbrev-ref", "@{upstream}"]).trim(),
        "origin/existing",
        "tracks the remote branch"
    );
    let a_head = commit(&a, "work on existing");
    exec_ok(&a, &["git", "push", "-q", "origin", "existing"]);
    assert_eq!(gh.rev(REPO, "refs/heads/existing").as_deref(), Some(a_head.as_str()));

    // --from a --branch new, through `sandbox serve`, the token passed by the caller only (no
    // GH_TOKEN in the server's environment).
    let b = g.name("cred");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut server = Command::new(sandbox_bin())
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("SANDBOX_GITHUB_API", &gh.api)
        .env_remove("GH_TOKEN")
        .env_remove("GITHUB_TOKEN")
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin") // no gh
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let res = rt.block_on(async {
        use jsonrpsee::core::client::ClientT;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "serve did not listen");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let token = std::fs::read_to_string(sandbox_home().join("serve.token")).unwrap();
        let mut headers = http::HeaderMap::new();
        headers.insert("Authorization", format!("Bearer {}", token.trim()).parse().unwrap());
        let c = jsonrpsee::ws_client::WsClientBuilder::default()
            .set_headers(headers)
            .request_timeout(std::time::Duration::from_secs(120))
            .build(format!("ws://127.0.0.1:{port}"))
            .await
            .unwrap();
        let mut p = jsonrpsee::core::params::ObjectParams::new();
        p.insert("name", &b).unwrap();
        p.insert("from", &a).unwrap();
        p.insert("branch", "feature/new").unwrap();
        // Without a token anywhere: a clear error naming every source, and nothing made.
        let e = c.request::<serde_json::Value, _>("sandbox/create", p.clone()).await.unwrap_err().to_string();
        for word in ["GH_TOKEN", "GITHUB_TOKEN", "gh auth login"] {
            assert!(e.contains(word), "{word} named: {e}");
        }
        p.insert("githubToken", &gh.token).unwrap();
        c.request::<serde_json::Value, _>("sandbox/create", p).await
    });
    let _ = server.kill();
    let _ = server.wait();
    let res = res.expect("create over the API");
    assert_eq!(res["sandbox"]["repo"], gh.url(REPO), "repo inherited");
    assert_eq!(res["sandbox"]["stack"], "minimal", "stack inherited");
    assert_eq!(res["sandbox"]["branch"], "feature/new");
    // Always a new key.
    let keys = gh.keys(REPO);
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.iter().any(|k| k.title == format!("sandbox-{b}")));
    assert_ne!(keys[0].key, keys[1].key);
    // The new branch starts from the other sandbox's branch, and pushes.
    assert_eq!(exec_ok(&b, &["git", "branch", "--show-current"]).trim(), "feature/new");
    assert_eq!(exec_ok(&b, &["git", "rev-parse", "HEAD"]).trim(), a_head);
    let b_head = commit(&b, "on the new branch");
    exec_ok(&b, &["git", "push", "-q", "origin", "feature/new"]);
    assert_eq!(gh.rev(REPO, "refs/heads/feature/new").as_deref(), Some(b_head.as_str()));

    // A new branch without --from starts from the default branch.
    let c = g.name("cred");
    create_ok(&gh, &c, &[&gh.url(REPO), "--branch", "fresh"]);
    assert_eq!(exec_ok(&c, &["git", "branch", "--show-current"]).trim(), "fresh");
    assert_eq!(exec_ok(&c, &["git", "rev-parse", "HEAD"]).trim(), gh.rev(REPO, "refs/heads/main").unwrap());
}

#[test]
fn ssh_key_is_used_through_the_agent_and_never_copied() {
    let gh = GitHub::start(&[REPO]);
    let mut g = Guard::new(&gh);
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("id_user");
    let o = Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(&key).output().unwrap();
    assert!(o.status.success());
    gh.add_user_key(REPO, &std::fs::read_to_string(key.with_extension("pub")).unwrap());
    let n = g.name("cred");
    create_ok(&gh, &n, &[&gh.url(REPO), "--ssh-key", key.to_str().unwrap(), "--allow-push-any"]);
    // No deploy key: nothing registered, no key pair made.
    assert!(gh.keys(REPO).is_empty());
    assert!(gh.requests().is_empty(), "no GitHub call: {:?}", gh.requests());
    assert!(!key_path(&n).exists());
    let head = commit(&n, "with my own key");
    exec_ok(&n, &["git", "push", "-q", "origin", "HEAD:refs/heads/mine"]);
    assert_eq!(gh.rev(REPO, "refs/heads/mine").as_deref(), Some(head.as_str()));
    assert_no_key_material(&n, &std::fs::read_to_string(&key).unwrap());
    // rm leaves the user's key alone.
    let o = sb(&gh, &["rm", &n], &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(key.exists());
}

#[test]
fn agent_is_ended_on_stop_back_on_start_and_everything_goes_on_rm() {
    let gh = GitHub::start(&[REPO]);
    let mut g = Guard::new(&gh);
    let n = g.name("cred");
    create_ok(&gh, &n, &[&gh.url(REPO), "--allow-push-any"]);
    let pid = agent_pid(&n).expect("agent pid file");
    assert!(alive(pid));
    // The agent outlived the CLI that started it (it is in its own session).
    let sid = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = sid.rsplit(')').next().unwrap().split_whitespace().collect();
    assert_eq!(fields[3], pid.to_string(), "ssh-agent leads its own session");

    // stop ends it; start brings a new one, plugged in again.
    let o = sandbox(&["stop", &n], &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(!alive(pid), "agent ended on stop");
    assert!(!agent_sock(&n).exists());
    let o = sandbox(&["start", &n], &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let pid2 = agent_pid(&n).unwrap();
    assert!(alive(pid2) && pid2 != pid);
    assert_eq!(exec_ok(&n, &["ssh-add", "-L"]).lines().count(), 1);
    exec_ok(&n, &["git", "fetch", "-q", "origin"]);

    // A dead agent with its socket left behind (as after a host reboot): `start` replaces it.
    let o = Command::new("kill").args(["-9", &pid2.to_string()]).output().unwrap();
    assert!(o.status.success());
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(agent_sock(&n).exists(), "stale socket stays");
    assert!(!exec(&n, &["ssh-add", "-L"]).status.success(), "no agent behind the socket");
    let o = sandbox(&["start", &n], &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("already running"));
    assert_eq!(exec_ok(&n, &["ssh-add", "-L"]).lines().count(), 1, "agent back");
    exec_ok(&n, &["git", "fetch", "-q", "origin"]);
    let pid3 = agent_pid(&n).unwrap();

    // Restarted by something else (as after a host reboot): `start` carries the socket in again.
    let o = Command::new("incus").args(["restart", &format!("agent-{n}")]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = sandbox(&["start", &n], &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(exec_ok(&n, &["ssh-add", "-L"]).lines().count(), 1, "socket back after an outside restart");
    assert_eq!(agent_pid(&n), Some(pid3), "the live agent was kept");

    // rm: the key on "GitHub", the key pair and the agent all go.
    assert_eq!(gh.keys(REPO).len(), 1);
    let o = sb(&gh, &["rm", &n], &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(gh.keys(REPO).is_empty(), "key deleted on GitHub");
    assert!(!key_path(&n).exists() && !key_path(&n).with_extension("pub").exists());
    assert!(!alive(pid3) && !agent_sock(&n).exists());
    assert!(listed(&n).is_none());
}

/// Nothing of NAME is left on the host: instance, key pair, agent (process, socket, pid file),
/// ssh entry.
fn assert_nothing_left(name: &str) {
    assert!(!incus_names().contains(&format!("agent-{name}")), "instance of {name} left");
    assert!(!key_path(name).exists() && !key_path(name).with_extension("pub").exists(), "key pair of {name} left");
    assert!(!agent_sock(name).exists() && agent_pid(name).is_none(), "agent files of {name} left");
    let sock = agent_sock(name).display().to_string();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        assert!(memchr::memmem::find(&cmd, sock.as_bytes()).is_none(), "an agent of {name} still runs");
    }
    let cfg = std::fs::read_to_string(sandbox_home().join("ssh_config")).unwrap_or_default();
    assert!(!cfg.contains(&format!("Host {name} ")), "ssh entry of {name} left");
}

fn create_fails(gh: &GitHub, name: &str, extra_args: &[&str], env: &[(&str, &str)]) -> String {
    let mut a = vec!["start", name, "--stack", "minimal"];
    a.extend_from_slice(extra_args);
    let o = sb(gh, &a, env);
    assert_eq!(o.status.code(), Some(1), "create {name} should fail: {}", text(&o.stdout));
    text(&o.stderr)
}

#[test]
fn github_errors_and_late_failures_leave_nothing_on_github_or_the_host() {
    let gh = GitHub::start(&[REPO]);
    let mut g = Guard::new(&gh);
    let url = gh.url(REPO);
    for (fail, expect) in [
        (Fail::Status(500), "(500)"),
        (Fail::AfterCreate, "(500)"),
        (Fail::Status(403), "you need admin rights on acme/app to add a deploy key"),
        (Fail::Status(404), "you need admin rights on acme/app to add a deploy key"),
        (Fail::Status(422), "(422): Validation Failed"),
    ] {
        gh.set_fail(Some(fail));
        let n = g.name("cred");
        let e = create_fails(&gh, &n, &[&url], &[]);
        gh.set_fail(None);
        assert!(e.contains(expect), "{fail:?}: {e}");
        assert!(gh.keys(REPO).is_empty(), "{fail:?}: a key was left on GitHub");
        assert_nothing_left(&n);
    }
    let taken = g.name("cred");
    create_ok(&gh, &taken, &[&url]);
    // Wrong token; no token at all; a repository the token cannot see.
    let n = g.name("cred");
    let e = create_fails(&gh, &n, &[&url], &[("GH_TOKEN", "wrong")]);
    assert!(e.contains("(401)") && e.contains("token was refused"), "{e}");
    assert_nothing_left(&n);
    let e = create_fails(&gh, &n, &[&url], &[("GH_TOKEN", ""), ("GITHUB_TOKEN", ""), ("PATH", "/usr/bin:/bin")]);
    for word in ["GH_TOKEN", "GITHUB_TOKEN", "gh auth login", "--ssh-key"] {
        assert!(e.contains(word), "{word} named: {e}");
    }
    assert_nothing_left(&n);
    let e = create_fails(&gh, &n, &[&gh.url("acme/secret")], &[]);
    assert!(e.contains("admin rights on acme/secret"), "{e}");
    assert_nothing_left(&n);
    // Bad URLs never reach GitHub.
    let before = gh.requests().len();
    let e = create_fails(&gh, &n, &["https://github.com/acme"], &[]);
    assert!(e.contains("not a repository URL"), "{e}");
    assert_eq!(gh.requests().len(), before);

    // A failure after the key was registered, the container made and the clone done: all undone.
    let n = g.name("cred");
    let e = create_fails(&gh, &n, &[&url], &[("SANDBOX_FAULT", "after-clone")]);
    assert!(e.contains("injected failure after clone"), "{e}");
    let keys = gh.keys(REPO);
    assert_eq!(keys.len(), 1, "only the other sandbox's key: {keys:?}");
    assert_eq!(keys[0].title, format!("sandbox-{taken}"));
    assert!(gh.requests().iter().any(|r| r.starts_with("DELETE")), "{:?}", gh.requests());
    assert_nothing_left(&n);
}

#[test]
fn ssh_key_applies_on_restart_and_rm_finds_a_key_without_stored_id_by_title() {
    let gh = GitHub::start(&[REPO]);
    let mut g = Guard::new(&gh);
    let n = g.name("cred");
    create_ok(&gh, &n, &[&gh.url(REPO), "--allow-push-any"]);
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("id_user");
    assert!(
        Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(&key).status().unwrap().success()
    );
    let user_pub = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    // --ssh-key on restart: the agent now holds the user's key (and only it).
    assert!(sandbox(&["stop", &n], &[]).status.success());
    let o = sandbox(&["start", &n, "--ssh-key", key.to_str().unwrap()], &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let held = exec_ok(&n, &["ssh-add", "-L"]);
    assert_eq!(held.lines().count(), 1);
    assert!(user_pub.starts_with(held.split_whitespace().take(2).collect::<Vec<_>>().join(" ").as_str()), "{held}");
    // Sandboxes made by the seed store no key id: rm finds the key by its title.
    assert!(
        Command::new("incus")
            .args(["config", "unset", &format!("agent-{n}"), "user.sandbox.deploy-key-id"])
            .status()
            .unwrap()
            .success()
    );
    assert_eq!(gh.keys(REPO).len(), 1);
    let o = sb(&gh, &["rm", &n], &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(gh.keys(REPO).is_empty(), "found by title and deleted");
    assert!(gh.requests().iter().any(|r| r.starts_with("GET")), "listed to find it");
    assert_nothing_left(&n);
    assert!(key.exists(), "the user's key stays");
}

/// kill -9 of a create with a repository at every step that touches GitHub or the host (the key
/// made, registered, the agent, the push gate or the agent's socket carried in, the instance, the
/// clone): the next `rm` deletes the key on GitHub, the key pair and the agent; the next `start`
/// ends with exactly one key registered.
#[test]
fn a_create_killed_at_any_step_leaves_no_deploy_key_or_agent_behind() {
    use sandbox_e2e::faults::{Home, Moment};
    let gh = GitHub::start(&[REPO]);
    let home = Home::new("credk9");
    // The fake git server's host key, pinned in this home too (its own line: a copy of the shared
    // file could catch another test's server rewriting it).
    gh.pin_host_key(&home.dir);
    let mut env: Vec<(&str, &str)> = Vec::new();
    let gh_env = gh.env();
    env.extend(gh_env.iter().map(|(k, v)| (*k, v.as_str())));
    // Behind the push gate (the default) the agent stays on the host and the gate opens; with
    // --allow-push-any its socket is carried into the sandbox.
    let any: &[&str] = &["--allow-push-any"];
    let moments = [
        (Moment::Line("Making deploy key"), &[][..]),
        (Moment::Line("Starting the sandbox's ssh-agent"), &[]),
        (Moment::Line("Opening the push gate"), &[]),
        (Moment::Line("Creating agent-"), &[]),
        (Moment::Line("Cloning"), &[]),
        (Moment::After(std::time::Duration::from_millis(250)), &[]),
        (Moment::Line("Carrying the agent's socket"), any),
        (Moment::Line("Cloning"), any),
    ];
    for (i, (moment, extra)) in moments.iter().enumerate() {
        let name = unique(&format!("credk{i}"));
        let url = gh.url(REPO);
        let args: Vec<&str> = ["start", name.as_str(), url.as_str()].into_iter().chain(extra.iter().copied()).collect();
        let mut run = home.spawn(&args, &env);
        let reached = run.wait_for(moment);
        assert!(
            reached || matches!(moment, Moment::After(_)),
            "the create never reached {moment:?}: {}",
            run.seen.join("\n")
        );
        run.signal(libc::SIGKILL);
        let (_, log) = run.finish(std::time::Duration::from_secs(60));
        let context = format!("kill -9 at {moment:?}:\n{log}\n");
        if i % 2 == 0 {
            let o = home.run(&["rm", &name], &env);
            assert!(o.status.success() || text(&o.stderr).contains("not found"), "{context}{}", text(&o.stderr));
            home.assert_absent(&name, &context);
            let left: Vec<_> = gh.keys(REPO).into_iter().filter(|k| k.title == format!("sandbox-{name}")).collect();
            assert!(left.is_empty(), "{context}keys left on GitHub: {left:?}");
        } else {
            let o = home.run(&args, &env);
            assert!(o.status.success(), "{context}{}", text(&o.stderr));
            home.assert_working(&name, &context);
            let mine: Vec<_> = gh.keys(REPO).into_iter().filter(|k| k.title == format!("sandbox-{name}")).collect();
            assert_eq!(mine.len(), 1, "{context}exactly one key registered: {mine:?}");
            let o = home.run(&["rm", &name], &env);
            assert!(o.status.success(), "{context}{}", text(&o.stderr));
            home.assert_absent(&name, &context);
            assert!(gh.keys(REPO).iter().all(|k| k.title != format!("sandbox-{name}")), "{context}");
        }
    }
}
