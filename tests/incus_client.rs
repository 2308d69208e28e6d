//! The Incus client against the real daemon.
use std::time::Duration;

use sandbox::incus::{ExecSpec, FileWrite, InstanceSource, InstancesPost};
use sandbox_e2e::*;

async fn launch(name: &str) {
    let i = incus();
    let req = InstancesPost {
        name: name.into(),
        source: InstanceSource::image_alias(base_image()),
        kind: "container".into(),
        ..Default::default()
    };
    i.create_instance(&req).await.expect("create");
    i.start(name).await.expect("start");
}

#[tokio::test]
async fn create_exec_files_config_snapshot_copy_delete() {
    let mut c = Cleanup::new();
    let name = c.add(unique("client"));
    let i = incus();
    launch(&name).await;
    let inst = i.instance(&name).await.unwrap();
    assert!(inst.is_running(), "status {}", inst.status);

    // exec, recorded: output and exit code
    let out = i.exec(&name, &ExecSpec::new(["sh", "-c", "echo out; echo err >&2; exit 3"])).await.unwrap();
    assert_eq!(out.status, 3);
    assert_eq!(out.stdout_str(), "out\n");
    assert_eq!(out.stderr_str(), "err\n");

    // exec, streamed, with stdin and as another user
    let mut seen = Vec::new();
    let spec = ExecSpec::new(["sh", "-c", "cat; id -u"]).as_user(1234, 1234, "/tmp").stdin(b"hello\n".to_vec());
    let out = i.exec_streamed(&name, &spec, |_, d| seen.extend_from_slice(d)).await.unwrap();
    assert_eq!(out.status, 0);
    assert_eq!(out.stdout_str(), "hello\n1234\n");
    assert_eq!(seen, out.stdout);

    // files: push with owner and mode, read back, stat inside
    let content = "line1\n$(rm -rf /) `x` 'q' \"d\" \\ \n".to_string();
    i.push_file(
        &name,
        &FileWrite { path: "/tmp/f.txt", content: content.clone().into_bytes(), uid: 1000, gid: 1000, mode: 0o640 },
    )
    .await
    .unwrap();
    assert_eq!(i.pull_file(&name, "/tmp/f.txt").await.unwrap(), content.as_bytes());
    let st = i.exec(&name, &ExecSpec::new(["stat", "-c", "%u %g %a", "/tmp/f.txt"])).await.unwrap();
    assert_eq!(st.stdout_str().trim(), "1000 1000 640");
    i.push_dir(&name, "/tmp/d", 0, 0, 0o700).await.unwrap();
    assert!(i.pull_file(&name, "/tmp/missing").await.unwrap_err().is_not_found());

    // config and devices
    let cfg = [("user.sandbox.test".to_string(), "v1".to_string())].into();
    let dev = [("extra".to_string(), [("type".to_string(), "none".to_string())].into())].into();
    i.patch_instance(&name, cfg, dev).await.unwrap();
    let inst = i.instance(&name).await.unwrap();
    assert_eq!(inst.setting("user.sandbox.test"), Some("v1"));
    assert!(inst.devices.contains_key("extra"));
    i.remove_devices(&name, &["extra"]).await.unwrap();
    assert!(!i.instance(&name).await.unwrap().devices.contains_key("extra"));

    // snapshots and a copy from one
    i.stop(&name, true).await.unwrap();
    i.create_snapshot(&name, "ready").await.unwrap();
    assert!(i.snapshots(&name).await.unwrap().iter().any(|s| s.name == "ready"));
    let copy = c.add(unique("copy"));
    let req = InstancesPost {
        name: copy.clone(),
        source: InstanceSource::copy(format!("{name}/ready")),
        kind: "container".into(),
        ..Default::default()
    };
    i.create_instance(&req).await.unwrap();
    assert_eq!(i.instance(&copy).await.unwrap().setting("user.sandbox.test"), Some("v1"));
    // The copy starts without the source's snapshots.
    assert!(i.snapshots(&copy).await.unwrap().is_empty());

    // errors are typed
    let err = i.create_instance(&req).await.unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    i.delete_snapshot(&name, "ready").await.unwrap();
    i.delete_instance(&copy).await.unwrap();
    i.delete_instance(&name).await.unwrap();
    assert!(i.instance(&name).await.unwrap_err().is_not_found());
}

#[tokio::test]
async fn events_see_start_and_stop_done_outside() {
    let mut c = Cleanup::new();
    let name = c.add(unique("events"));
    let i = incus();
    launch(&name).await;
    i.stop(&name, true).await.unwrap();
    let mut rx = i.follow_events("lifecycle");
    // First message: connected.
    assert!(matches!(rx.recv().await, Some(sandbox::incus::EventMsg::Connected)));
    let st = std::process::Command::new("incus").args(["start", &name]).status().unwrap();
    assert!(st.success());
    let st = std::process::Command::new("incus").args(["stop", "--force", &name]).status().unwrap();
    assert!(st.success());
    let mut actions = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !(actions.contains(&"instance-started".to_string()) && actions.contains(&"instance-stopped".to_string())) {
        let msg = tokio::time::timeout_at(deadline, rx.recv()).await.expect("events in time").expect("stream open");
        if let sandbox::incus::EventMsg::Event(ev) = msg
            && let Some((action, inst)) = ev.lifecycle()
            && inst == name
        {
            actions.push(action.to_string());
        }
    }
}

#[tokio::test]
async fn missing_daemon_socket_says_how_to_start_incus() {
    let i = sandbox::incus::Incus::connect(sandbox::incus::Endpoint::Unix("/nonexistent/incus.sock".into())).unwrap();
    let err = i.server().await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("Incus is not running") && msg.contains("sandbox host install"), "{msg}");
}

#[tokio::test]
async fn https_remote_with_a_trusted_client_certificate() {
    use sandbox::incus::{Endpoint, RemoteTls, generate_client_certificate};
    let local = incus();
    // The daemon on a loopback HTTPS address (never anything but loopback).
    let info = local.server().await.unwrap();
    let mut addr = info["config"]["core.https_address"].as_str().unwrap_or("").to_string();
    if addr.is_empty() {
        addr = "127.0.0.1:18443".into();
        local.patch_server_config(serde_json::json!({ "core.https_address": addr })).await.unwrap();
    }
    assert!(addr.starts_with("127.0.0.1:") || addr.starts_with("[::1]:"), "loopback only: {addr}");
    let server_cert = info["environment"]["certificate"].as_str().unwrap().to_string();
    let (cert, key) = generate_client_certificate("sandbox-test").unwrap();
    let trust_name = unique("trust");
    local.add_trusted_certificate(&trust_name, &cert).await.unwrap();
    struct Untrust(String);
    impl Drop for Untrust {
        fn drop(&mut self) {
            let out = std::process::Command::new("incus")
                .args(["config", "trust", "list", "--format", "csv"])
                .output()
                .unwrap();
            for line in text(&out.stdout).lines().filter(|l| l.contains(&self.0)) {
                if let Some(fp) = line.split(',').find(|f| f.len() == 12 && f.chars().all(|c| c.is_ascii_hexdigit())) {
                    let _ = std::process::Command::new("incus").args(["config", "trust", "remove", fp]).output();
                }
            }
        }
    }
    let _untrust = Untrust(trust_name.clone());

    let url = format!("https://{addr}");
    let tls =
        RemoteTls { client_cert_pem: cert.clone(), client_key_pem: key.clone(), server_cert_pem: server_cert.clone() };
    let remote = Incus::connect(Endpoint::Https { url: url.clone(), tls }).unwrap();
    let info = remote.server().await.unwrap();
    assert_eq!(info["auth"], "trusted");

    // Create, exec over a TLS websocket, delete — all through the remote.
    let mut c = Cleanup::new();
    let name = c.add(unique("remote"));
    let req = InstancesPost {
        name: name.clone(),
        source: InstanceSource::image_alias(base_image()),
        kind: "container".into(),
        ..Default::default()
    };
    remote.create_instance(&req).await.unwrap();
    remote.start(&name).await.unwrap();
    let out = remote.exec_streamed(&name, &ExecSpec::new(["echo", "over https"]), |_, _| {}).await.unwrap();
    assert_eq!(out.stdout_str(), "over https\n");
    assert!(remote.instances().await.unwrap().iter().any(|i| i.name == name));
    remote.stop(&name, true).await.unwrap();
    remote.delete_instance(&name).await.unwrap();

    // A client the server does not trust is refused; a server that is not the pinned one too.
    let (other_cert, other_key) = generate_client_certificate("stranger").unwrap();
    let tls =
        RemoteTls { client_cert_pem: other_cert, client_key_pem: other_key.clone(), server_cert_pem: server_cert };
    let stranger = Incus::connect(Endpoint::Https { url: url.clone(), tls }).unwrap();
    assert!(stranger.instances().await.is_err(), "untrusted client refused");
    let tls = RemoteTls {
        client_cert_pem: cert,
        client_key_pem: key,
        server_cert_pem: generate_client_certificate("x").unwrap().0,
    };
    let wrong = Incus::connect(Endpoint::Https { url, tls }).unwrap();
    assert!(wrong.server().await.is_err(), "pinned server certificate enforced");
}

/// Incus answers 409 for more than names taken: a NIC address held by another instance keeps
/// Incus's own message (it is no "already exists"); a create of a name that exists still is one.
#[tokio::test]
async fn a_conflict_that_is_not_a_name_taken_keeps_incus_s_message() {
    use std::collections::BTreeMap;
    let mut c = Cleanup::new();
    let (a, b) = (c.add(unique("nica")), c.add(unique("nicb")));
    let i = incus();
    for n in [&a, &b] {
        let req = InstancesPost {
            name: n.clone(),
            source: InstanceSource::copy("golden-minimal/ready"),
            kind: "container".into(),
            ..Default::default()
        };
        i.create_instance(&req).await.unwrap();
    }
    let ip = format!("10.100.0.{}", 200 + rand::random::<u8>() % 50);
    let nic = |ip: &str| -> BTreeMap<String, String> {
        [("type", "nic"), ("network", "incusbr0"), ("name", "eth0"), ("ipv4.address", ip)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    i.patch_instance(&a, Default::default(), [("eth0".to_string(), nic(&ip))].into()).await.unwrap();
    let err = i.patch_instance(&b, Default::default(), [("eth0".to_string(), nic(&ip))].into()).await.unwrap_err();
    let msg = err.to_string();
    assert!(!matches!(err, sandbox::incus::IncusError::AlreadyExists { .. }), "{msg}");
    assert!(msg.contains("already defined on another NIC"), "Incus's own words: {msg}");
    let e = sandbox::error::EngineError::from(err);
    assert_ne!(e.code(), sandbox::error::ErrorCode::Conflict, "{e}");
}

/// A proxy in front of Incus's socket that counts every connection that sends nothing (closed
/// without a byte, or quiet for a second), and holds back the first answer on each websocket (the 101)
/// for 300 ms: by then a quick command has ended and its output streams close as soon as they
/// are open — the moment a streamed exec's own wait for the operation has just connected.
async fn silent_connection_proxy(dir: &std::path::Path) -> (std::path::PathBuf, std::sync::Arc<std::sync::Mutex<u32>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let path = dir.join("incus-proxy.sock");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let silent = std::sync::Arc::new(std::sync::Mutex::new(0u32));
    let count = silent.clone();
    tokio::spawn(async move {
        while let Ok((mut c, _)) = listener.accept().await {
            let silent = count.clone();
            tokio::spawn(async move {
                let mut first = vec![0u8; 8192];
                // One that never sends (or closes without sending): while it is open, Incus
                // accepts nothing else.
                let n = match tokio::time::timeout(Duration::from_secs(1), c.read(&mut first)).await {
                    Ok(Ok(n)) if n > 0 => n,
                    _ => {
                        *silent.lock().unwrap() += 1;
                        return;
                    }
                };
                let websocket = first[..n].windows(10).any(|w| w == b"/websocket");
                let mut up = tokio::net::UnixStream::connect(sandbox::incus::DEFAULT_SOCKET).await.unwrap();
                up.write_all(&first[..n]).await.unwrap();
                if websocket {
                    let mut answer = vec![0u8; 8192];
                    let Ok(m) = up.read(&mut answer).await else { return };
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    if c.write_all(&answer[..m]).await.is_err() {
                        return;
                    }
                }
                let _ = tokio::io::copy_bidirectional(&mut c, &mut up).await;
            });
        }
    });
    (path, silent)
}

/// A streamed exec whose output ended before its wait for the operation had sent its request
/// used to start a second wait and keep the first connection open, silent: Incus 6.0 accepts
/// nothing else on its socket until a new connection sends, so every Incus client on the machine
/// hung (and this exec with them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_exec_never_leaves_a_connection_to_incus_silent() {
    let mut c = Cleanup::new();
    let name = c.add(unique("silent"));
    launch(&name).await;
    let dir = tempfile::tempdir().unwrap();
    let (socket, silent) = silent_connection_proxy(dir.path()).await;
    let via = sandbox::incus::Incus::connect(sandbox::incus::Endpoint::Unix(socket)).unwrap();
    let spec = ExecSpec::new(["true"]);
    for _ in 0..12 {
        let run = via.exec_streamed(&name, &spec, |_, _| {});
        let out = tokio::time::timeout(Duration::from_secs(20), run).await.expect("the exec hung").unwrap();
        assert_eq!(out.status, 0);
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(*silent.lock().unwrap(), 0, "connections to Incus that sent nothing");
}
