//! `sandbox serve`: the jsonrpsee client against the real binary and real Incus.
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jsonrpsee::core::client::{ClientT, SubscriptionClientT};
use jsonrpsee::core::params::ObjectParams;
use jsonrpsee::rpc_params;
use jsonrpsee::ws_client::{WsClient, WsClientBuilder};
use sandbox_e2e::*;
use serde_json::Value;

struct Served(Child, u16);
impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

fn serve() -> Served {
    serve_with(&[])
}

fn serve_with(env: &[(&str, &str)]) -> Served {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(sandbox_bin())
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .envs(env.iter().copied())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "serve did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    Served(child, port)
}

async fn client(port: u16, token: Option<&str>) -> Result<WsClient, jsonrpsee::core::ClientError> {
    let mut headers = http::HeaderMap::new();
    if let Some(t) = token {
        headers.insert("Authorization", format!("Bearer {t}").parse().unwrap());
    }
    WsClientBuilder::default().set_headers(headers).build(format!("ws://127.0.0.1:{port}")).await
}

fn params(pairs: &[(&str, Value)]) -> ObjectParams {
    let mut p = ObjectParams::new();
    for (k, v) in pairs {
        p.insert(k, v.clone()).unwrap();
    }
    p
}

#[tokio::test]
async fn the_method_table_over_jsonrpsee_with_a_token_and_live_changes() {
    let s = serve();
    // No token, wrong token: refused.
    assert!(client(s.1, None).await.is_err(), "no token refused");
    assert!(client(s.1, Some("wrong")).await.is_err(), "wrong token refused");
    let token = std::fs::read_to_string(sandbox_home().join("serve.token")).unwrap();
    let meta = std::fs::metadata(sandbox_home().join("serve.token")).unwrap();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777, 0o600);
    let c = client(s.1, Some(token.trim())).await.expect("connect with the token");

    let list: Vec<Value> = c.request("sandbox/list", params(&[("health", false.into())])).await.unwrap();
    let _ = list;
    let mut changes =
        c.subscribe::<Value, _>("sandbox/subscribeChanges", rpc_params![], "sandbox/unsubscribeChanges").await.unwrap();
    // The server status: sent at once to a new subscriber.
    let mut status =
        c.subscribe::<Value, _>("sandbox/subscribeStatus", rpc_params![], "sandbox/unsubscribeStatus").await.unwrap();
    let st =
        tokio::time::timeout(Duration::from_secs(10), status.next()).await.expect("a status in time").unwrap().unwrap();
    assert_eq!((st["incusReachable"].as_bool(), st["remote"].as_str()), (Some(true), Some("local")), "{st}");
    let mut sb = Sandboxes::new();
    let name = sb.name("serve");
    let r: Value = c
        .request("sandbox/create", params(&[("name", name.clone().into()), ("stack", "minimal".into())]))
        .await
        .unwrap();
    assert_eq!(r["action"], "created");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let v = tokio::time::timeout_at(deadline, changes.next()).await.expect("a change in time").unwrap().unwrap();
        if v["name"] == name.as_str() && v["sandbox"]["state"] == "running" {
            break;
        }
    }
    // Typed errors with a stable code and a hint.
    let err = c.request::<Value, _>("sandbox/create", params(&[("name", "bad name".into())])).await.unwrap_err();
    let jsonrpsee::core::ClientError::Call(obj) = err else { panic!("call error expected: {err:?}") };
    let data: Value = serde_json::from_str(obj.data().unwrap().get()).unwrap();
    assert_eq!(data["code"], "invalid_input");
    assert!(data["hint"].is_string());
    let err = c.request::<Value, _>("sandbox/nope", params(&[])).await.unwrap_err();
    assert!(matches!(err, jsonrpsee::core::ClientError::Call(ref o) if o.code() == -32601), "{err:?}");
    // Two clients see the same state.
    let c2 = client(s.1, Some(token.trim())).await.unwrap();
    let got: Value = c2.request("sandbox/get", params(&[("name", name.clone().into())])).await.unwrap();
    assert_eq!(got["state"], "running");
    let r: Vec<Value> = c.request("sandbox/destroy", params(&[("names", serde_json::json!([name]))])).await.unwrap();
    assert_eq!(r[0]["ok"], true);
    loop {
        let v = tokio::time::timeout_at(deadline, changes.next()).await.expect("a change in time").unwrap().unwrap();
        if v["name"] == name.as_str() && v["sandbox"].is_null() {
            break;
        }
    }
}

#[test]
fn serve_refuses_non_loopback_addresses() {
    let o = sandbox(&["serve", "--listen", "0.0.0.0:7699"], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("not a loopback address"), "{}", text(&o.stderr));
}

#[tokio::test]
async fn a_client_vanishing_mid_create_leaves_no_orphan() {
    let s = serve_with(&[("SANDBOX_FAULT", "slow-after-copy")]);
    let token = std::fs::read_to_string(sandbox_home().join("serve.token")).unwrap();
    let c = client(s.1, Some(token.trim())).await.unwrap();
    let name = unique("svanish");
    let _c = Cleanup(vec![format!("agent-{name}")]);
    let call = {
        let name = name.clone();
        tokio::spawn(async move {
            let _ = c
                .request::<Value, _>("sandbox/create", params(&[("name", name.into()), ("stack", "minimal".into())]))
                .await;
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !incus_names().contains(&format!("agent-{name}")) {
        assert!(Instant::now() < deadline, "create never started");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    call.abort(); // the client (and its connection) goes away mid-create
    // The server finishes the create: the sandbox ends complete and reachable, not half-made.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if listed(&name).is_some_and(|s| s["state"] == "running") && ssh(&name, "true").status.success() {
            break;
        }
        assert!(Instant::now() < deadline, "the create was completed after the client left");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let _ = sandbox(&["rm", &name], &[]);
}

/// Open sockets, threads and resident memory of a process, from its own /proc entries.
fn usage(pid: u32) -> (usize, usize, u64) {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |k: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (fds, field("Threads:") as usize, field("VmRSS:"))
}

/// CPU time a process uses over `window` (clock ticks of /proc/PID/stat: utime + stime).
async fn cpu_ticks(pid: u32, window: Duration) -> u64 {
    let ticks = || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let after_name = stat.rsplit_once(')').map(|(_, r)| r.to_string()).unwrap_or_default();
        let f: Vec<u64> = after_name.split_whitespace().map(|v| v.parse().unwrap_or(0)).collect();
        f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)
    };
    let t0 = ticks();
    tokio::time::sleep(window).await;
    ticks() - t0
}

/// Subscribers that subscribe (to changes and to denials) and vanish leave nothing running in
/// `sandbox serve`: its open sockets, threads, memory and idle CPU come back to where they were.
#[tokio::test]
async fn vanished_subscribers_leave_no_socket_thread_or_memory_behind() {
    let s = serve();
    let pid = s.0.id();
    let token = std::fs::read_to_string(sandbox_home().join("serve.token")).unwrap();
    let vanish = |n: usize| {
        let token = token.trim().to_string();
        async move {
            for i in 0..n {
                let c = client(s.1, Some(&token)).await.expect("connect");
                let (sub, unsub) = if i % 2 == 0 {
                    ("sandbox/subscribeChanges", "sandbox/unsubscribeChanges")
                } else {
                    ("sandbox/subscribeDenials", "sandbox/unsubscribeDenials")
                };
                let sub = c.subscribe::<Value, _>(sub, rpc_params![], unsub).await.expect("subscribe");
                // Gone without unsubscribing: the connection just drops.
                std::mem::forget(sub);
                drop(c);
            }
        }
    };
    // Settled: what the server holds after one round (lazy set-up, allocator pools) and idle.
    let settled = || async {
        let mut last = usage(pid);
        for _ in 0..30 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let now = usage(pid);
            if now.0 == last.0 && now.1 == last.1 {
                return now;
            }
            last = now;
        }
        last
    };
    vanish(20).await;
    let before = settled().await;
    let idle_before = cpu_ticks(pid, Duration::from_secs(5)).await;
    vanish(200).await;
    // Threads of tokio's blocking pool linger up to 10 s after their last task.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut after = usage(pid);
    while (after.0 > before.0 + 2 || after.1 > before.1 + 1) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        after = usage(pid);
    }
    // A task left per vanished subscriber (a denial poller wakes every second) costs idle CPU.
    let idle_after = cpu_ticks(pid, Duration::from_secs(5)).await;
    eprintln!(
        "serve before: {before:?} (fds, threads, RSS KiB), {idle_before} ticks idle in 5 s; \
         after 200 vanished subscribers: {after:?}, {idle_after} ticks"
    );
    assert!(idle_after <= idle_before + 5, "idle CPU back to {idle_before} ticks in 5 s: {idle_after}");
    assert!(after.0 <= before.0 + 2, "open files back to {}: {}", before.0, after.0);
    assert!(after.1 <= before.1 + 1, "threads back to {}: {}", before.1, after.1);
    assert!(after.2 <= before.2 + 8 * 1024, "memory back to {} KiB: {} KiB", before.2, after.2);
}
