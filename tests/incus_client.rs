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
    assert_eq!(inst.user_key("sandbox.test"), Some("v1"));
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
    assert_eq!(i.instance(&copy).await.unwrap().user_key("sandbox.test"), Some("v1"));
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
        if let sandbox::incus::EventMsg::Event(ev) = msg {
            if let Some((action, inst)) = ev.lifecycle() {
                if inst == name {
                    actions.push(action.to_string());
                }
            }
        }
    }
}

#[tokio::test]
async fn missing_daemon_socket_says_how_to_start_incus() {
    let i = sandbox::incus::Incus::connect(sandbox::incus::Endpoint::Unix("/nonexistent/incus.sock".into())).unwrap();
    let err = i.server().await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("Incus is not running") && msg.contains("install-host.sh"), "{msg}");
}
