//! Same commands everywhere: an HTTPS remote added with a real Incus trust token (this machine's
//! daemon on a loopback port), the OrbStack path through an `orb` shim that runs the machine's
//! commands here, and cluster placement's request shape against the real daemon.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine as _;
use sandbox::incus::{InstanceSource, InstancesPost};
use sandbox_e2e::*;

/// The daemon's HTTPS API on loopback (never anything else), as the incus_client suite sets it.
fn https_address() -> String {
    let out = Command::new("incus").args(["config", "get", "core.https_address"]).output().unwrap();
    let mut addr = text(&out.stdout).trim().to_string();
    if addr.is_empty() {
        addr = "127.0.0.1:18443".into();
        let ok = Command::new("incus").args(["config", "set", "core.https_address", &addr]).status().unwrap();
        assert!(ok.success());
    }
    assert!(addr.starts_with("127.0.0.1:"), "loopback only: {addr}");
    addr
}

fn trust_token(client: &str) -> String {
    https_address();
    let out = Command::new("incus").args(["config", "trust", "add", client, "-q"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).lines().last().unwrap().trim().to_string()
}

/// A scratch `~/.sandbox`; on drop the daemon stops trusting its client certificate.
struct Home(tempfile::TempDir);

impl Home {
    fn new() -> Self {
        Self(tempfile::tempdir().unwrap())
    }
    fn path(&self) -> &Path {
        self.0.path()
    }
    fn run(&self, args: &[&str], extra: &[(&str, &str)]) -> Output {
        let home = self.path().to_str().unwrap().to_string();
        let mut env: Vec<(&str, &str)> = vec![("SANDBOX_HOME", home.as_str())];
        env.extend_from_slice(extra);
        sandbox(args, &env)
    }
    fn ok(&self, args: &[&str], extra: &[(&str, &str)]) -> String {
        let out = self.run(args, extra);
        assert!(out.status.success(), "sandbox {args:?} failed: {}", text(&out.stderr));
        text(&out.stdout)
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        let Ok(cert) = std::fs::read_to_string(self.path().join("client.crt")) else { return };
        let out = Command::new("incus").args(["config", "trust", "list", "--format", "json"]).output().unwrap();
        let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        for c in list.as_array().into_iter().flatten() {
            if c["certificate"].as_str().map(str::trim) == Some(cert.trim()) {
                let fp = c["fingerprint"].as_str().unwrap_or_default();
                let _ = Command::new("incus").args(["config", "trust", "remove", fp]).output();
            }
        }
    }
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn listed_in(home: &Home, extra: &[&str], name: &str) -> Option<serde_json::Value> {
    let mut args = extra.to_vec();
    args.extend(["list", "--json"]);
    let all: serde_json::Value = serde_json::from_str(&home.ok(&args, &[])).unwrap();
    all.as_array()?.iter().find(|s| s["name"] == name).cloned()
}

#[test]
fn https_remote_added_with_a_trust_token_runs_the_lifecycle() {
    let home = Home::new();
    let remote = unique("lab");
    let token = trust_token(&remote);
    let out = home.ok(&["remote", "add", &remote, "--token", &token], &[]);
    assert!(out.contains("certificate pinned"), "{out}");
    // Credentials and the pinned certificate are private files.
    for f in ["remotes.json", "client.key", "client.crt"] {
        assert_eq!(mode(&home.path().join(f)), 0o600, "{f}");
    }
    let remotes: serde_json::Value = serde_json::from_str(&home.ok(&["remote", "list", "--json"], &[])).unwrap();
    let row = remotes.as_array().unwrap().iter().find(|r| r["name"] == remote).expect("listed").clone();
    assert_eq!(row["url"], format!("https://{}", https_address()));
    assert_eq!(row["current"], false);

    // The whole lifecycle over HTTPS, chosen per command with --remote.
    let mut sb = Sandboxes::new();
    let name = sb.name("rem");
    let via = ["--remote", remote.as_str()];
    let start: Vec<&str> = via.iter().copied().chain(["start", &name, "--stack", "minimal"]).collect();
    home.ok(&start, &[]);
    let s = listed_in(&home, &via, &name).expect("listed through the remote");
    assert_eq!(s["state"], "running");
    assert!(s["location"].is_null(), "a single server has no member: {s}");
    let ssh = Command::new("ssh")
        .arg("-F")
        .arg(home.path().join("ssh_config"))
        .args(["-o", "BatchMode=yes", &name, "hostname"])
        .output()
        .unwrap();
    assert_eq!(text(&ssh.stdout).trim(), name, "{}", text(&ssh.stderr));

    // `remote use` makes it the default; `--remote local` still reaches the unix socket.
    home.ok(&["remote", "use", &remote], &[]);
    home.ok(&["stop", &name], &[]);
    assert_eq!(listed_in(&home, &[], &name).unwrap()["state"], "stopped");
    assert!(listed_in(&home, &["--remote", "local"], &name).is_some());
    home.ok(&["rm", &name], &[]);
    assert!(!incus_names().contains(&format!("agent-{name}")));

    home.ok(&["remote", "remove", &remote], &[]);
    let out = home.run(&["--remote", &remote, "list"], &[]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains(&format!("no remote named '{remote}'")), "{}", text(&out.stderr));
}

#[test]
fn a_token_that_does_not_match_the_server_is_refused() {
    let home = Home::new();
    let client = unique("tok");
    let token = trust_token(&client);
    let revoke = || Command::new("incus").args(["config", "trust", "revoke-token", &client]).output();
    // The same token, but claiming another server's certificate: someone in between, or the wrong URL.
    let mut claims: serde_json::Value =
        serde_json::from_slice(&base64::engine::general_purpose::STANDARD.decode(&token).unwrap()).unwrap();
    claims["fingerprint"] = "00".repeat(32).into();
    let forged = base64::engine::general_purpose::STANDARD.encode(claims.to_string());
    let out = home.run(&["remote", "add", "lab", "--token", &forged], &[]);
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("presented certificate") && err.contains(&"00".repeat(32)), "{err}");
    let out = home.run(&["remote", "add", "lab", "--token", "not-a-token"], &[]);
    assert!(text(&out.stderr).contains("not an Incus trust token"), "{}", text(&out.stderr));
    let out = home.run(&["remote", "add", "local", "--token", &token], &[]);
    assert!(text(&out.stderr).contains("not a usable remote name"), "{}", text(&out.stderr));
    assert!(!home.path().join("remotes.json").exists(), "nothing stored after refusals");
    let _ = revoke();
}

fn shim_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("support/orb-shim")
}

#[test]
fn orbstack_machine_through_a_shim_sets_up_and_runs_the_lifecycle() {
    let home = Home::new();
    let log = home.path().join("orb.log");
    let state = home.path().join("orb.state");
    let path = format!("{}:{}", shim_dir().display(), std::env::var("PATH").unwrap_or_default());
    let (log_s, state_s) = (log.display().to_string(), state.display().to_string());
    let env = [
        ("PATH", path.as_str()),
        ("ORB_SHIM_LOG", log_s.as_str()),
        ("ORB_SHIM_STATE", state_s.as_str()),
        ("SANDBOX_NAT", "off"),
    ];
    let machine = unique("orb");
    let image = base_image();
    home.ok(&["setup", "--orb", &machine, "--stack", "minimal", "--base-image", &image], &env);
    let calls = std::fs::read_to_string(&log).unwrap();
    for expected in [
        "list".to_string(),
        format!("create debian:bookworm {machine}"),
        format!("run -m {machine} -u root bash -s -- --nat off"),
        format!("run -m {machine} -u root incus config get core.https_address"),
        format!("run -m {machine} -u root incus config trust add"),
    ] {
        assert!(calls.lines().any(|l| l.starts_with(&expected)), "missing `orb {expected}` in:\n{calls}");
    }
    let remotes: serde_json::Value = serde_json::from_str(&home.ok(&["remote", "list", "--json"], &env)).unwrap();
    let row = remotes.as_array().unwrap().iter().find(|r| r["current"] == true).unwrap().clone();
    assert_eq!(row["name"], format!("orb-{machine}"));
    assert_eq!(row["host"], format!("orb machine {machine}"));

    // Create, list, stop, rm: Incus over HTTPS, host-side steps through `orb run`.
    std::fs::write(&log, "").unwrap();
    let mut sb = Sandboxes::new();
    let name = sb.name("orb");
    home.ok(&["start", &name, "--stack", "minimal"], &env);
    let calls = std::fs::read_to_string(&log).unwrap();
    assert!(
        calls.lines().any(|l| l.starts_with(&format!("run -m {machine} -u root nft list table ip agent_sandboxes"))),
        "host-side rules go through orb run:\n{calls}"
    );
    assert!(calls.lines().any(|l| l == format!("run -m {machine} -u root nft -f -")), "egress rules: {calls}");
    let s = listed_in(&home, &[], &name).unwrap();
    assert_eq!(s["state"], "running");
    // The default egress policy (isolation, ports) is in place in the "machine" for this sandbox.
    let ip = s["ip"].as_str().unwrap().to_string();
    let rules = Command::new("nft").args(["list", "table", "inet", "agent_sandboxes_egress"]).output().unwrap();
    assert!(text(&rules.stdout).contains(&ip), "{ip} not in the egress rules");
    home.ok(&["stop", &name], &env);
    assert_eq!(listed_in(&home, &[], &name).unwrap()["state"], "stopped");
    home.ok(&["rm", &name], &env);
    assert!(listed_in(&home, &[], &name).is_none());

    // A second setup finds the machine and the remote: nothing is created twice.
    std::fs::write(&log, "").unwrap();
    home.ok(&["setup", "--orb", &machine, "--stack", "minimal", "--base-image", &image], &env);
    let calls = std::fs::read_to_string(&log).unwrap();
    assert!(!calls.contains("create "), "{calls}");
}

#[test]
fn orb_missing_is_a_clear_error() {
    let home = Home::new();
    let out = home.run(&["setup", "--orb", "x"], &[("PATH", "/usr/bin:/bin")]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("install OrbStack"), "{}", text(&out.stderr));
}

#[test]
fn target_on_a_single_server_is_refused_before_anything_changes() {
    let name = unique("tgt");
    let out = sandbox(&["start", &name, "--stack", "minimal", "--target", "member1"], &[]);
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("not a cluster") && err.contains("drop --target"), "{err}");
    assert!(!incus_names().contains(&format!("agent-{name}")));
    let out = sandbox(&["start", &name, "--target", "bad name"], &[]);
    assert!(text(&out.stderr).contains("not a cluster member name"), "{}", text(&out.stderr));
}

/// The placement request itself: `POST /1.0/instances?target=MEMBER` reaches the daemon (which,
/// not being clustered, answers that target needs a cluster — proof the parameter arrived).
#[tokio::test]
async fn placement_request_carries_the_target_member() {
    let name = unique("place");
    let mut c = Cleanup::new();
    c.add(name.clone());
    let req = InstancesPost {
        name,
        source: InstanceSource::image_alias(base_image()),
        kind: "container".into(),
        target: Some("member1".into()),
        ..Default::default()
    };
    let err = incus().create_instance(&req).await.unwrap_err().to_string();
    assert!(err.contains("Target only allowed when clustered"), "{err}");
}

/// A cluster's golden images: `golden-STACK/ready` published as `sandbox-golden/STACK`, which
/// every member can clone from. Exercised against the real daemon (a single server here).
#[tokio::test]
async fn cluster_golden_image_is_published_and_clonable() {
    use sandbox::engine::golden;
    let incus = incus();
    let alias = golden::cluster_alias("minimal");
    struct DropImage(String);
    impl Drop for DropImage {
        fn drop(&mut self) {
            let _ = Command::new("incus").args(["image", "delete", &self.0]).output();
        }
    }
    let _img = DropImage(alias.clone());
    golden::publish_for_cluster(&incus, "minimal", &sandbox::progress::Silent).await.unwrap();
    let first = incus.image_alias(&alias).await.unwrap().target;
    // Republishing replaces the image and removes the old one.
    golden::publish_for_cluster(&incus, "minimal", &sandbox::progress::Silent).await.unwrap();
    let second = incus.image_alias(&alias).await.unwrap().target;
    assert!(incus.image(&first).await.is_err() || first == second, "the old image is gone");
    let name = unique("fromimg");
    let mut c = Cleanup::new();
    c.add(name.clone());
    let req = InstancesPost {
        name: name.clone(),
        source: InstanceSource::image_alias(alias.clone()),
        kind: "container".into(),
        ..Default::default()
    };
    incus.create_instance(&req).await.unwrap();
    assert!(incus.instance(&name).await.is_ok());
}
