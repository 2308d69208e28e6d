//! `sandbox nuke --yes` for real. Destructive for the whole daemon (every agent-* and golden-*),
//! so it is ignored by default: tests/run.sh runs it last, and only on CI (CI=true).
use sandbox_e2e::*;

#[test]
#[ignore = "removes every sandbox and golden image on the daemon; run by tests/run.sh on CI only"]
fn nuke_removes_every_sandbox_and_golden_image_and_their_host_leftovers() {
    let n = unique("nuke");
    create(&n, &[]);
    // One with a repository: its deploy key on (simulated) GitHub goes too.
    let gh = sandbox_e2e::gitfake::GitHub::start(&["acme/nuke"]);
    let env = gh.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let k = unique("nukek");
    let o = sandbox(&["start", &k, &gh.url("acme/nuke"), "--stack", "minimal"], &env);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(gh.keys("acme/nuke").len(), 1);
    assert!(incus_names().iter().any(|i| i.starts_with("golden-")));
    let o = sandbox(&["nuke", "--yes"], &env);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let left: Vec<String> = incus_names()
        .into_iter()
        .filter(|i| {
            i.starts_with("agent-")
                || i.starts_with("golden-")
                || i.starts_with("tmp-golden-")
                || i.starts_with("spare-")
        })
        .collect();
    assert!(left.is_empty(), "left: {left:?}");
    let cfg = std::fs::read_to_string(sandbox_home().join("ssh_config")).unwrap_or_default();
    assert!(!cfg.contains("# BEGIN sandbox"), "no ssh entries left: {cfg}");
    let kh = std::fs::read_to_string(sandbox_home().join("known_hosts")).unwrap_or_default();
    assert!(!kh.contains("# BEGIN sandbox"), "no known_hosts entries left");
    assert!(gh.keys("acme/nuke").is_empty(), "the deploy key is deleted on GitHub");
    assert!(!sandbox_home().join("keys").join(format!("deploy_{k}")).exists(), "the key pair is gone");
}
