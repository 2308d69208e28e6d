//! Agent state from the real Claude Code's hooks, and sessions that survive: golden-minimal's
//! Claude Code against the simulated Anthropic API (tests/support/anthropic.rs), its hooks
//! reporting through the host's relay into Incus (`user.sandbox.agent.*`), seen by
//! `sandbox list --json`, `sandbox wait` and an LSP client; an interactive session asking for a
//! permission; garbage, oversized and flooding hook messages from inside a sandbox; and
//! `sandbox claude` in a tmux session inside that outlives the terminal and continues after a
//! restart.
//!
//! Each test has its own SANDBOX_HOME (its own host daemon and sandboxes).
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sandbox_e2e::anthropic::Sim;
use sandbox_e2e::home::{Home, Tmux, secret, wait_for};
use sandbox_e2e::watch::Watch;
use sandbox_e2e::{sandbox_bin, text};
use serde_json::Value;

const ANSWER: &str = "First line of the answer.\nA second line that is not shown.";
const FIRST: &str = "First line of the answer.";

fn agent(h: &Home, name: &str) -> Value {
    h.listed(name)["agent"].clone()
}

fn wait_agent(h: &Home, name: &str, state: &str, timeout: Duration) -> Value {
    wait_for(&format!("{name}'s agent to be {state}"), timeout, || {
        let a = agent(h, name);
        (a["state"] == state).then_some(a)
    })
}

/// `incus exec` as root in the sandbox: the attacker's seat.
fn inside(name: &str, script: &str) -> String {
    let o = Command::new("incus").args(["exec", &format!("agent-{name}"), "--", "sh", "-c", script]).output().unwrap();
    text(&o.stdout)
}

/// A sandbox from golden-minimal with a credential on the host and the simulated API.
fn ready(h: &mut Home, prefix: &str, sim: &Sim) -> String {
    h.set_credential(&secret("sk-ant-api03-"));
    let n = h.name(prefix);
    h.create(&n, &sim.url, &[]);
    n
}

/// `sandbox claude NAME ARGS…` in a terminal (a tmux session on the host).
fn open_claude(h: &Home, n: &str, tag: &str, args: &[&str]) -> Tmux {
    let bin = sandbox_bin();
    let home = format!("SANDBOX_HOME={}", h.path().display());
    let mut argv = vec!["env", &home, bin.to_str().unwrap(), "claude", n];
    argv.extend_from_slice(args);
    Tmux::new(&format!("sbx-{tag}-{n}"), &argv)
}

/// Claude Code's input prompt is on screen (the status line under it differs per mode).
fn at_prompt(t: &Tmux) -> Option<()> {
    let s = t.screen();
    (s.contains("for shortcuts") || s.contains("bypass permissions on")).then_some(())
}

/// The Claude Code sessions in the sandbox: (pid, command line). Claude's own short-lived
/// helper processes (also named claude, briefly zombies until it reaps them) are not sessions.
fn claude_processes(n: &str) -> Vec<(String, String)> {
    let o = Command::new("incus")
        .args(["exec", &format!("agent-{n}"), "--", "pgrep", "-u", "ubuntu", "-a", "-x", "claude"])
        .output()
        .unwrap();
    // pgrep: 1 is "none matched"; anything else is the exec failing, not an answer.
    assert!(matches!(o.status.code(), Some(0 | 1)), "pgrep in {n}: {:?} {}", o.status, text(&o.stderr));
    let session = |c: &str| {
        c.starts_with("claude ") && (c.contains(" --dangerously-skip-permissions") || c.contains(" --permission-mode"))
    };
    text(&o.stdout)
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(p, c)| (p.to_string(), c.to_string())))
        .filter(|(_, c)| session(c))
        .collect()
}

/// Every process of ubuntu in the sandbox, for a failure's message.
fn processes(n: &str) -> String {
    let o = Command::new("incus")
        .args(["exec", &format!("agent-{n}"), "--", "ps", "-u", "ubuntu", "-o", "pid,stat,comm,args"])
        .output()
        .unwrap();
    format!("{}{}", text(&o.stdout), text(&o.stderr))
}

#[test]
fn print_mode_is_working_during_the_call_and_done_with_the_first_line_after() {
    let mut h = Home::new();
    let sim = Sim::loopback(ANSWER);
    let n = ready(&mut h, "print", &sim);
    let watch = Watch::start(h.path());
    assert_eq!(agent(&h, &n)["state"], "none", "a new sandbox has no session");

    sim.set_pause(5000);
    let run = h
        .cmd(&["exec", &n, "--", "claude", "-p", "say hello"], &[])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let working = wait_agent(&h, &n, "working", Duration::from_secs(30));
    assert!(working["since"].as_str().is_some_and(|s| s.contains('T')), "{working}");
    assert_eq!(working["message"], Value::Null);

    // `sandbox wait` returns when the turn ends.
    let t = Instant::now();
    let o = h.sb(&["wait", &n, "--for", "done", "--timeout", "60"], &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), format!("{n}: done: {FIRST}\n"));
    assert!(t.elapsed() > Duration::from_millis(500), "it waited for the answer");
    let out = run.wait_with_output().unwrap();
    assert!(text(&out.stdout).contains(FIRST), "{} {}", text(&out.stdout), text(&out.stderr));
    let done = agent(&h, &n);
    assert_eq!((done["state"].as_str(), done["message"].as_str()), (Some("done"), Some(FIRST)), "{done}");
    assert_eq!(done["dropped"]["malformed"], 0);

    // The LSP client was told: working, then done with the first line.
    let last = watch.wait(&n, Duration::from_secs(5), |s| s["agent"]["state"] == "done");
    assert_eq!(last["agent"]["message"], FIRST);
    let states = watch.agent_states(&n);
    let w = states.iter().position(|s| s == "working").unwrap_or_else(|| panic!("no working in {states:?}"));
    assert!(states[w..].iter().any(|s| s == "done"), "{states:?}");

    // Already done: `wait` returns at once; nobody waiting: it times out with 124.
    let o = h.sb(&["wait", &n, "--timeout", "5", "--json"], &[]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!((v["name"].as_str(), v["agent"]["state"].as_str()), (Some(n.as_str()), Some("done")));
    let o = h.sb(&["wait", &n, "--for", "waiting", "--timeout", "1"], &[]);
    assert_eq!(o.status.code(), Some(124), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("timed out"), "{}", text(&o.stderr));
    // Bad input says what to do.
    let o = h.sb(&["wait", &n, "--timeout=-3"], &[]);
    assert!(!o.status.success() && text(&o.stderr).contains("hint:"), "{}", text(&o.stderr));
    let o = h.sb(&["wait", "t-no-such-sandbox-x"], &[]);
    assert!(!o.status.success() && text(&o.stderr).contains("not found"), "{}", text(&o.stderr));
    let o = h.sb(&["list"], &[]);
    let row = text(&o.stdout).lines().find(|l| l.starts_with(&n)).unwrap_or_default().to_string();
    assert!(row.contains(" done "), "the AGENT column: {row}");

    // Stopped, and started again: no session.
    let o = h.sb(&["stop", &n], &[]);
    assert!(o.status.success(), "stop: {}", text(&o.stderr));
    assert_eq!(agent(&h, &n)["state"], "none");
    let o = h.start(&n, &sim.url);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(agent(&h, &n)["state"], "none");
}

#[test]
fn a_permission_prompt_is_waiting_with_its_message_then_working_then_done() {
    let mut h = Home::new();
    let sim = Sim::loopback(ANSWER);
    let n = ready(&mut h, "perm", &sim);
    let watch = Watch::start(h.path());
    // A careful session: Bash needs the user's permission.
    let term = open_claude(&h, &n, "perm", &["--permission-mode", "default"]);
    wait_for("Claude Code's prompt", Duration::from_secs(40), || at_prompt(&term));
    term.keys(&["please sim:tool:Bash:/usr/bin/id", "Enter"]);
    let w = wait_agent(&h, &n, "waiting", Duration::from_secs(30));
    assert_eq!(w["message"], "Claude needs your permission to use Bash", "{w}");
    let o = h.sb(&["wait", &n, "--for", "waiting", "--timeout", "5"], &[]);
    assert_eq!(text(&o.stdout), format!("{n}: waiting: Claude needs your permission to use Bash\n"));
    wait_for("the permission dialog", Duration::from_secs(10), || {
        term.screen().contains("Do you want to proceed?").then_some(())
    });

    // Answered (Yes): working while the next answer takes its time, then done. The dialog can
    // be drawn a moment before it reads keys: Enter again while it is still there.
    sim.set_pause(3000);
    let dialog = || term.screen().contains("Do you want to proceed?");
    for _ in 0..5 {
        term.keys(&["Enter"]);
        let t = Instant::now();
        while dialog() && t.elapsed() < Duration::from_secs(3) {
            std::thread::sleep(Duration::from_millis(200));
        }
        if !dialog() {
            break;
        }
    }
    let seen = |what: &str| format!("{what}; states {:?}; screen:\n{}", watch.agent_states(&n), term.screen());
    let done = wait_for(&seen("done"), Duration::from_secs(40), || {
        let a = agent(&h, &n);
        (a["state"] == "done").then_some(a)
    });
    assert_eq!(done["message"], FIRST);
    watch.wait(&n, Duration::from_secs(5), |s| s["agent"]["state"] == "done");
    let states = watch.agent_states(&n);
    let last_wait = states.iter().rposition(|s| s == "waiting").unwrap_or_else(|| panic!("{states:?}"));
    assert_eq!(&states[last_wait..], ["waiting", "working", "done"], "{states:?}");
    // The tool ran (as ubuntu), and its result went back to the API.
    let tool_result = sim.messages().iter().any(|m| m.json()["messages"].to_string().contains("tool_result"));
    assert!(tool_result);
}

#[test]
fn garbage_oversized_and_flooding_hook_messages_are_dropped_and_counted() {
    let mut h = Home::new();
    let sim = Sim::loopback(ANSWER);
    let victim = ready(&mut h, "calm", &sim);
    let attacker = h.name("flood");
    h.create(&attacker, &sim.url, &[]);
    let o = h.claude_p(&victim, "hi");
    assert!(o.status.success(), "{}", text(&o.stderr));
    let before = wait_agent(&h, &victim, "done", Duration::from_secs(15));
    let daemon = h.daemon_pid().expect("the host daemon runs");

    let post = |body: &str| {
        let script = format!(
            "{body} | curl -s -o /dev/null -w '%{{http_code}}' --unix-socket /var/lib/sandbox/anthropic/hooks.sock \
             --data-binary @- http://x/hook"
        );
        inside(&attacker, &script)
    };
    assert_eq!(post("printf 'not json at all'"), "400");
    assert_eq!(post(r#"printf '{"hook_event_name":"rm -rf /","session_id":"x"}'"#), "400");
    // Refused while it is still being sent: curl may see the answer, or only the closed socket.
    let big = post("head -c 3000000 /dev/zero | tr '\\0' a");
    assert!(big == "413" || big == "000", "{big}");
    // A flood: 400 connections at once, from root inside.
    inside(
        &attacker,
        "for i in $(seq 400); do curl -s -o /dev/null -m 5 --unix-socket /var/lib/sandbox/anthropic/hooks.sock \
         -d x http://x/hook & done; wait",
    );
    let dropped = wait_for("the counters in Incus", Duration::from_secs(15), || {
        let d = agent(&h, &attacker)["dropped"].clone();
        (d["rateLimited"].as_u64() > Some(0) && d["tooBig"] == 1 && d["unknownEvent"] == 1).then_some(d)
    });
    assert!(dropped["malformed"].as_u64() >= Some(1), "{dropped}");

    // The host daemon is the same, the other sandbox's state untouched and its hooks still heard.
    assert_eq!(h.daemon_pid(), Some(daemon));
    assert_eq!(agent(&h, &victim), before);
    let o = h.claude_p(&victim, "again");
    assert!(o.status.success(), "{}", text(&o.stderr));
    wait_for("the victim's next turn", Duration::from_secs(15), || {
        (agent(&h, &victim)["since"] != before["since"]).then_some(())
    });
    assert_eq!(agent(&h, &victim)["dropped"]["rateLimited"], 0);

    // Once the flood is over, the attacker's own hooks are heard again — as data: one printable
    // line, no terminal escape or bidi override reaches a client.
    std::thread::sleep(Duration::from_secs(4));
    let hostile = r#"{"hook_event_name":"Stop","session_id":"s-1","last_assistant_message":"\u001b[2J\u001b]0;pwned\u0007ok \u202eevil\nsecond"}"#;
    assert_eq!(post(&format!("printf '%s' '{hostile}'")), "204");
    let a = wait_agent(&h, &attacker, "done", Duration::from_secs(10));
    let m = a["message"].as_str().unwrap();
    assert!(!m.chars().any(|c| c.is_control() || c == '\u{202e}'), "{m:?}");
    assert!(m.ends_with("ok evil"), "{m:?}");
}

#[test]
fn claude_sessions_outlive_the_terminal_and_continue_after_a_restart() {
    let mut h = Home::new();
    let answer = format!("persistent-{:08x}", rand::random::<u32>());
    let sim = Sim::loopback(&answer);
    let n = ready(&mut h, "keep", &sim);
    // A scripted `claude -p` ran first: Claude Code's interactive --continue skips such sessions
    // ("No conversation found to continue"), so Open Claude must still give a running Claude.
    let o = h.claude_p(&n, "scripted");
    assert!(o.status.success(), "{}", text(&o.stderr));

    let term = open_claude(&h, &n, "a", &[]);
    wait_for("Claude Code's prompt", Duration::from_secs(40), || at_prompt(&term));
    term.keys(&["say something", "Enter"]);
    wait_for("the answer", Duration::from_secs(40), || term.screen().contains(&answer).then_some(()));
    let first = claude_processes(&n);
    assert_eq!(first.len(), 1, "{first:?}");
    assert!(!first[0].1.contains("--continue"), "no interactive conversation to continue yet: {first:?}");

    // The terminal closes: Claude keeps running inside.
    term.kill();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(claude_processes(&n), first, "the same Claude process is still there");

    // Open Claude again: the same session (same process), with the conversation on screen.
    let again = open_claude(&h, &n, "b", &[]);
    wait_for("the conversation", Duration::from_secs(20), || again.screen().contains(&answer).then_some(()));
    assert_eq!(
        claude_processes(&n),
        first,
        "attached, not started a second time; {}\n{}",
        processes(&n),
        again.screen()
    );
    drop(again);

    // After a restart the session is gone: Open Claude continues the last conversation.
    let o = h.sb(&["stop", &n], &[]);
    assert!(o.status.success(), "stop: {}", text(&o.stderr));
    assert!(h.start(&n, &sim.url).status.success());
    let after = open_claude(&h, &n, "c", &[]);
    wait_for("the continued conversation", Duration::from_secs(40), || after.screen().contains(&answer).then_some(()));
    let continued = claude_processes(&n);
    assert_eq!(continued.len(), 1, "{continued:?}");
    assert!(continued[0].1.contains("--continue"), "{continued:?}");
    drop(after);

    // --new ends that session and starts afresh.
    let fresh = open_claude(&h, &n, "d", &["--new"]);
    wait_for("a fresh Claude", Duration::from_secs(40), || {
        let p = claude_processes(&n);
        (p.len() == 1 && p[0].0 != continued[0].0).then_some(())
    });
    let p = claude_processes(&n);
    assert!(!p[0].1.contains("--continue"), "{p:?}");
    wait_for("its prompt", Duration::from_secs(40), || at_prompt(&fresh));
    assert!(!fresh.screen().contains(&answer), "a fresh conversation: {}", fresh.screen());
}
