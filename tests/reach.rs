//! Reaching sandboxes as a user meets them: another HOME (another user) sees every sandbox of the
//! host but reaches only its own until it adopts one; shell completion of live sandbox names;
//! `sandbox claude`/`shell` saying why they cannot start, and keeping the message on screen.
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sandbox_e2e::*;

/// Another SANDBOX_HOME: another user's view of the same Incus.
struct OtherHome(tempfile::TempDir);

impl OtherHome {
    fn new() -> Self {
        Self(tempfile::Builder::new().prefix("sbx-other-home-").tempdir().unwrap())
    }
    fn path(&self) -> &str {
        self.0.path().to_str().unwrap()
    }
    fn sandbox(&self, args: &[&str]) -> std::process::Output {
        sandbox(args, &[("SANDBOX_HOME", self.path())])
    }
    fn listed(&self, name: &str) -> serde_json::Value {
        let out = self.sandbox(&["list", "--json", "--no-health"]);
        let all: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        all.as_array().unwrap().iter().find(|s| s["name"] == name).cloned().expect("listed")
    }
    fn ssh(&self, name: &str) -> std::process::Output {
        let cfg = format!("{}/ssh_config", self.path());
        Command::new("ssh").args(["-F", &cfg, "-o", "BatchMode=yes", name, "hostname"]).output().unwrap()
    }
}

#[test]
fn another_home_sees_a_sandbox_it_cannot_reach_until_it_adopts_it() {
    let mut sb = Sandboxes::new();
    let name = sb.name("adopt");
    create(&name, &[]);
    assert_eq!(listed(&name).unwrap()["reachable"], true, "the maker reaches it");

    let other = OtherHome::new();
    assert_eq!(other.listed(&name)["reachable"], false);
    let table = other.sandbox(&["list", "--no-health"]);
    assert!(text(&table.stdout).lines().any(|l| l.starts_with(&format!("{name}* "))), "{}", text(&table.stdout));
    assert!(text(&table.stderr).contains("sandbox adopt NAME"), "{}", text(&table.stderr));
    assert!(!other.ssh(&name).status.success(), "no entry, no key: not reachable");

    let out = other.sandbox(&["adopt", &name]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(other.listed(&name)["reachable"], true);
    let o = other.ssh(&name);
    assert_eq!(text(&o.stdout).trim(), name, "the other home reaches it: {}", text(&o.stderr));
    // The maker still does, and a second adopt adds nothing.
    assert_eq!(text(&ssh(&name, "hostname").stdout).trim(), name);
    let keys = || text(&sandbox(&["exec", &name, "--", "cat", "/home/ubuntu/.ssh/authorized_keys"], &[]).stdout);
    let before = keys();
    assert!(other.sandbox(&["adopt", &name]).status.success());
    assert_eq!(keys(), before, "nothing added twice");

    let missing = other.sandbox(&["adopt", &format!("{name}-nope")]);
    assert!(!missing.status.success() && text(&missing.stderr).contains("not found"), "{}", text(&missing.stderr));
}

/// bash asks the binary for each completion: the sandbox names come from Incus, live.
#[test]
fn shell_completion_offers_live_sandbox_names() {
    let mut sb = Sandboxes::new();
    let name = sb.name("compl");
    create(&name, &[]);
    let script = text(&sandbox(&["completions", "bash"], &[]).stdout);
    assert!(script.contains("complete ") && script.contains("SANDBOX_COMPLETE"), "{script}");
    let complete = |words: &[&str]| {
        let cword = words.len() - 1;
        let cmd = format!(
            "source /dev/stdin; COMP_WORDS=({}); COMP_CWORD={cword}; COMP_TYPE=9; _clap_complete_sandbox sandbox {} {}; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            words.iter().map(|w| format!("'{w}'")).collect::<Vec<_>>().join(" "),
            words[cword],
            words[cword - 1]
        );
        let mut c =
            Command::new("bash").args(["-c", &cmd]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
        c.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
        let out = c.wait_with_output().unwrap();
        text(&out.stdout).lines().map(str::to_owned).collect::<Vec<_>>()
    };
    let prefix = &name[..name.len() - 3];
    assert!(complete(&["sandbox", "stop", prefix]).contains(&name));
    assert!(complete(&["sandbox", "claude", prefix]).contains(&name));
    assert!(complete(&["sandbox", "start", "x", "--from", prefix]).contains(&name));
    assert!(complete(&["sandbox", "start", "x", "--stack", "mini"]).contains(&"minimal".to_string()));
    assert!(complete(&["sandbox", "ad"]).contains(&"adopt".to_string()));
    for shell in ["zsh", "fish"] {
        let out = sandbox(&["completions", shell], &[]);
        assert!(out.status.success() && text(&out.stdout).contains("SANDBOX_COMPLETE"), "{shell}");
    }
}

/// Runs `sandbox ARGS…` on a pseudo-terminal (as a VS Code terminal does); returns what it
/// printed until `until`, and the running child.
fn on_a_terminal(args: &[&str], until: &str) -> (String, std::process::Child) {
    let cmd = std::iter::once(sandbox_bin().display().to_string())
        .chain(args.iter().map(|a| a.to_string()))
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = Command::new("script")
        .args(["-qefc", &cmd, "/dev/null"])
        .env("SANDBOX_HOME", sandbox_home())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                return;
            }
        }
    });
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !seen.contains(until) {
        let chunk = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("no '{until}' in: {seen}"));
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    (seen, child)
}

/// No `claude` in the sandbox: the terminal says so, with what to do, and stays open until Enter
/// (a VS Code terminal would otherwise close with "exit code 127").
#[test]
fn claude_without_claude_says_why_and_keeps_the_terminal_open() {
    let mut sb = Sandboxes::new();
    let name = sb.name("noclaude");
    create(&name, &[]);
    let rm = Command::new("incus")
        .args(["exec", &format!("agent-{name}"), "--", "rm", "-f", "/usr/local/bin/claude", "/usr/bin/claude"])
        .status()
        .unwrap();
    assert!(rm.success());
    let (seen, mut child) = on_a_terminal(&["claude", &name, "--wait-on-error"], "Press Enter to close this terminal.");
    assert!(seen.contains(&format!("Claude Code is not installed in sandbox '{name}'")), "{seen}");
    assert!(seen.contains("hint: its golden image has none: rebuild it (`sandbox setup --rebuild minimal`"), "{seen}");
    assert!(seen.contains(&format!("`sandbox start {name} --stack minimal`")), "{seen}");
    std::thread::sleep(Duration::from_millis(500));
    assert!(child.try_wait().unwrap().is_none(), "still open, waiting for Enter");
    child.stdin.as_mut().unwrap().write_all(b"\n").unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(1));

    // A stopped sandbox: the same, for shell.
    assert!(sandbox(&["stop", &name], &[]).status.success());
    let (seen, mut child) = on_a_terminal(&["shell", &name, "--wait-on-error"], "Press Enter to close this terminal.");
    assert!(
        seen.contains(&format!("sandbox '{name}' is stopped")) && seen.contains(&format!("sandbox start {name}")),
        "{seen}"
    );
    child.stdin.as_mut().unwrap().write_all(b"\n").unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(1));
}
