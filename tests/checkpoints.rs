//! Per-turn checkpoints: golden-minimal's real Claude Code against the simulated Anthropic API
//! (tests/support/anthropic.rs); each turn's Stop hook reaches the host's relay, which takes a
//! `turn-N` checkpoint labelled with the answer's first line; a rewind (`sandbox restore NAME
//! turn-N`) undoes the later turns' files; the retention limit holds (pinned ones kept); a flood
//! of forged Stop events from inside the sandbox does not become a flood of snapshots.
//!
//! Each test has its own SANDBOX_HOME (its own host daemon and sandboxes).
use std::process::Command;
use std::time::Duration;

use sandbox_e2e::anthropic::Sim;
use sandbox_e2e::home::{Home, secret, wait_for};
use sandbox_e2e::text;
use serde_json::Value;

const ANSWER: &str = "Checkpoint me.\nA second line that is not shown.";

fn root(name: &str, script: &str) -> String {
    let o = Command::new("incus").args(["exec", &format!("agent-{name}"), "--", "sh", "-c", script]).output().unwrap();
    assert!(o.status.success(), "{script}: {}", text(&o.stderr));
    text(&o.stdout)
}

fn snapshots(h: &Home, n: &str) -> Vec<Value> {
    let o = h.sb(&["snapshots", n, "--json"], &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    serde_json::from_slice::<Value>(&o.stdout).unwrap().as_array().unwrap().clone()
}

fn labels(h: &Home, n: &str) -> Vec<String> {
    snapshots(h, n).iter().map(|s| s["label"].as_str().unwrap().to_string()).collect()
}

/// One `claude -p` turn, then its checkpoint (taken by the host daemon, shortly after the Stop):
/// the snapshot and its record (the answer's first line), and the older ones beyond the limit gone.
fn turn(h: &Home, n: &str, expect: &str) {
    let o = h.claude_p(n, "do the next step");
    assert!(o.status.success(), "claude -p: {}{}", text(&o.stdout), text(&o.stderr));
    wait_for(&format!("checkpoint {expect} of {n}"), Duration::from_secs(30), || {
        snapshots(h, n).iter().any(|s| s["label"] == expect && s["message"].is_string()).then_some(())
    });
}

/// Waits until NAME's snapshots are `want` (oldest first); says what they were when they never are.
fn wait_labels(h: &Home, n: &str, want: &[&str]) {
    let t = std::time::Instant::now();
    loop {
        let have = labels(h, n);
        if have == want {
            return;
        }
        assert!(t.elapsed() < Duration::from_secs(15), "snapshots of {n}: {have:?}, want {want:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn three_turns_make_three_labelled_checkpoints_and_a_rewind_undoes_the_later_turns() {
    let mut h = Home::new();
    let sim = Sim::loopback(ANSWER);
    h.set_credential(&secret("sk-ant-api03-"));
    let n = h.name("ckpt");
    h.create(&n, &sim.url, &[]);

    // Each turn leaves a file behind it (written between turns, as an agent's edits would be).
    for (i, t) in ["turn-1", "turn-2", "turn-3"].iter().enumerate() {
        turn(&h, &n, t);
        root(&n, &format!("echo {i} > /home/ubuntu/after-{t}.txt"));
    }
    let all = snapshots(&h, &n);
    let cps: Vec<&Value> = all.iter().filter(|s| s["kind"] == "checkpoint").collect();
    assert_eq!(cps.len(), 3, "{all:?}");
    for (i, c) in cps.iter().enumerate() {
        assert_eq!(c["turn"], i as u64 + 1);
        assert_eq!(c["message"], "Checkpoint me.");
        assert_eq!(c["title"], format!("turn {}: Checkpoint me.", i + 1));
    }
    // The tree sees them in the sandbox's own state.
    assert_eq!(h.listed(&n)["snapshots"].as_array().unwrap().len(), 3);

    // Rewind to the first turn: what came after it is gone; the sandbox runs again, same slot.
    let slot = h.listed(&n)["slot"].clone();
    // (A restore starts the sandbox again, which applies the upstream: the simulated API's.)
    let o = h.sb(&["restore", &n, "turn-1"], &[("SANDBOX_ANTHROPIC_UPSTREAM", sim.url.as_str())]);
    assert!(o.status.success(), "rewind: {}", text(&o.stderr));
    assert_eq!(root(&n, "ls /home/ubuntu | grep after- || true").trim(), "");
    let s = h.listed(&n);
    assert_eq!((s["state"].as_str(), &s["slot"]), (Some("running"), &slot));
    // Every checkpoint is still there (a rewind can be undone), and the next turn is turn-4.
    assert_eq!(labels(&h, &n), ["turn-1", "turn-2", "turn-3"]);
    turn(&h, &n, "turn-4");
}

#[test]
fn the_retention_limit_holds_pinned_ones_stay_and_forged_stops_are_bounded() {
    let mut h = Home::new();
    let sim = Sim::loopback(ANSWER);
    h.set_credential(&secret("sk-ant-api03-"));
    let n = h.name("ckpk");
    h.create(&n, &sim.url, &["--checkpoints", "2"]);
    turn(&h, &n, "turn-1");
    let o = h.sb(&["snapshot", "pin", &n, "turn-1"], &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = h.sb(&["snapshot", &n, "mine"], &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    for t in ["turn-2", "turn-3", "turn-4"] {
        turn(&h, &n, t);
    }
    // The last 2, the pinned one and the manual one.
    wait_labels(&h, &n, &["turn-1", "mine", "turn-3", "turn-4"]);

    // A root attacker inside posts 200 Stop events as fast as it can: they are coalesced and
    // rate-bounded, and the limit still holds.
    let flood = "for i in $(seq 200); do curl -s --unix-socket /var/lib/sandbox/anthropic/hooks.sock \
        -H 'content-type: application/json' -d '{\"hook_event_name\":\"UserPromptSubmit\",\"session_id\":\"f\"}' \
        http://x/hook || true; curl -s --unix-socket /var/lib/sandbox/anthropic/hooks.sock -H 'content-type: application/json' \
        -d \"{\\\"hook_event_name\\\":\\\"Stop\\\",\\\"session_id\\\":\\\"f\\\",\\\"last_assistant_message\\\":\\\"forged $i\\\"}\" \
        http://x/hook || true; done; true";
    root(&n, flood);
    std::thread::sleep(Duration::from_secs(3));
    let after = wait_for("the limit to hold after the flood", Duration::from_secs(15), || {
        let l = labels(&h, &n);
        (l.iter().filter(|l| l.starts_with("turn-")).count() <= 3).then_some(l)
    });
    assert!(after.contains(&"turn-1".to_string()) && after.contains(&"mine".to_string()), "{after:?}");
    let highest = after.iter().filter_map(|l| l.strip_prefix("turn-")?.parse::<u32>().ok()).max().unwrap();
    assert!(highest < 4 + 20, "200 forged Stops made {} checkpoints in ~3 s", highest - 4);

    // `snapshot keep 0`: no more checkpoints; those beyond it go (the pinned one stays).
    let o = h.sb(&["snapshot", "keep", &n, "0"], &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    wait_labels(&h, &n, &["turn-1", "mine"]);
    let o = h.claude_p(&n, "one more");
    assert!(o.status.success(), "{}", text(&o.stderr));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(labels(&h, &n), ["turn-1", "mine"]);
}

/// One forged turn from inside (as Claude Code's hooks send it): the host daemon checkpoints it.
fn forged_turn(n: &str, i: u32) {
    let post = |body: &str| {
        format!(
            "curl -s --unix-socket /var/lib/sandbox/anthropic/hooks.sock -H 'content-type: application/json' \
             -d '{body}' http://x/hook >/dev/null || true;"
        )
    };
    let start = post(r#"{"hook_event_name":"UserPromptSubmit","session_id":"race"}"#);
    let stop =
        post(&format!(r#"{{"hook_event_name":"Stop","session_id":"race","last_assistant_message":"race turn {i}"}}"#));
    root(n, &format!("{start} {stop} true"));
}

fn pinned_of(all: &[Value], label: &str) -> Option<bool> {
    all.iter().find(|s| s["label"] == label).map(|s| s["pinned"] == true)
}

/// Every change survives writers that race: the host daemon takes a checkpoint at each forged
/// turn end (and removes the oldest beyond the limit of 2, and writes the agent state); right
/// after each turn ends, while that checkpoint is being taken, the checkpoint the limit removes
/// next is pinned; meanwhile three threads pin and unpin manual snapshots. At the end every
/// checkpoint whose pin was answered with success is there and pinned, every manual snapshot has
/// the state its last answered pin or unpin gave it, no more than 2 unpinned checkpoints are left,
/// and the records and Incus's snapshots agree.
#[test]
fn concurrent_pins_unpins_and_checkpoints_lose_no_change() {
    use rand::Rng;
    let mut h = Home::new();
    let sim = Sim::loopback(ANSWER);
    h.set_credential(&secret("sk-ant-api03-"));
    let n = h.name("ckrace");
    h.create(&n, &sim.url, &["--checkpoints", "2"]);
    let manual = ["m1", "m2", "m3"];
    for m in manual {
        let o = h.sb(&["snapshot", &n, m], &[]);
        assert!(o.status.success(), "{}", text(&o.stderr));
    }
    forged_turn(&n, 1);
    wait_labels(&h, &n, &["m1", "m2", "m3", "turn-1"]);
    std::thread::sleep(Duration::from_millis(1100));
    forged_turn(&n, 2);
    wait_labels(&h, &n, &["m1", "m2", "m3", "turn-1", "turn-2"]);
    const TURNS: u32 = 18;
    let (pinned_cps, manual_final) = std::thread::scope(|sc| {
        // Each turn: the oldest unpinned checkpoint (the one the limit removes at this turn's
        // checkpoint) is pinned a random moment after the Stop went in, while the daemon works.
        let pinner = sc.spawn(|| {
            let mut rng = rand::thread_rng();
            let mut pinned = Vec::new();
            for i in 3..=TURNS {
                let oldest = snapshots(&h, &n)
                    .iter()
                    .filter(|s| s["kind"] == "checkpoint" && s["pinned"] != true)
                    .min_by_key(|s| s["turn"].as_u64().unwrap_or(0))
                    .map(|s| s["label"].as_str().unwrap().to_string());
                let name = n.as_str();
                let stop = sc.spawn(move || forged_turn(name, i));
                std::thread::sleep(Duration::from_millis(rng.gen_range(50..350)));
                if let Some(label) = oldest
                    && h.sb(&["snapshot", "pin", &n, &label], &[]).status.success()
                {
                    pinned.push(label);
                }
                stop.join().unwrap();
                let msg = format!("race turn {i}");
                wait_for(&format!("the checkpoint of '{msg}'"), Duration::from_secs(30), || {
                    snapshots(&h, &n).iter().any(|s| s["message"] == msg.as_str()).then_some(())
                });
                std::thread::sleep(Duration::from_millis(1100));
            }
            pinned
        });
        let togglers: Vec<_> = manual
            .iter()
            .map(|m| {
                let (h, n) = (&h, &n);
                sc.spawn(move || {
                    let mut rng = rand::thread_rng();
                    let mut last = None;
                    for k in 0..30 {
                        std::thread::sleep(Duration::from_millis(rng.gen_range(0..900)));
                        let verb = if (k + m.len() + rng.gen_range(0..2)) % 2 == 0 { "pin" } else { "unpin" };
                        let o = h.sb(&["snapshot", verb, n, m], &[]);
                        assert!(o.status.success(), "{verb} {m}: {}", text(&o.stderr));
                        last = Some(verb == "pin");
                    }
                    (m.to_string(), last.unwrap())
                })
            })
            .collect();
        let pinned = pinner.join().unwrap();
        (pinned, togglers.into_iter().map(|t| t.join().unwrap()).collect::<Vec<_>>())
    });
    // The last checkpoint's older ones are removed shortly after it is listed.
    std::thread::sleep(Duration::from_secs(2));
    let all = snapshots(&h, &n);
    let labels: Vec<&str> = all.iter().map(|s| s["label"].as_str().unwrap()).collect();
    assert!(!pinned_cps.is_empty(), "no pin was answered: {labels:?}");
    for l in &pinned_cps {
        assert_eq!(pinned_of(&all, l), Some(true), "checkpoint {l} was pinned (the pin succeeded): {labels:?}");
    }
    for (m, want) in &manual_final {
        assert_eq!(pinned_of(&all, m), Some(*want), "{m}'s last answered change was pinned={want}: {all:?}");
    }
    let unpinned = all.iter().filter(|s| s["kind"] == "checkpoint" && s["pinned"] != true).count();
    assert!(unpinned <= 2, "the limit of 2 unpinned checkpoints: {labels:?}");
    // The Incus snapshots and their records agree (no record left without its snapshot).
    let listed = h.listed(&n);
    let mut recorded: Vec<&str> =
        listed["snapshots"].as_array().unwrap().iter().map(|s| s["label"].as_str().unwrap()).collect();
    let mut real = labels.clone();
    recorded.sort();
    real.sort();
    assert_eq!(recorded, real, "records vs snapshots");
}
