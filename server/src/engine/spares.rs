//! One spare per stack: a copy of the golden image, booted once and stopped, that the next create
//! renames into place instead of copying the golden snapshot.
//!
//! Why booted: a btrfs snapshot shares no page cache with its source, so a fresh copy's first
//! boot reads systemd, sshd and their libraries cold (~40 ms of the create). The spare's boot
//! has read them already. What it booted as does not carry over: the claim sets
//! `volatile.apply_template` again, so Incus renders the sandbox's identity files (hostname,
//! machine-id, SSH host key, network, keys, environment) from the create's values at its first
//! start, exactly as for a copy; the spare has no network device, so it never held an address.
//!
//! Made in the background after each create by a detached `sandbox __spare STACK`; the fixed
//! name `spare-STACK` is the lock (a second refill finds it and stops). A spare made from an
//! older build of the golden image is never claimed and is replaced. `SANDBOX_SPARES=0` turns
//! spares off.
use std::sync::OnceLock;
use std::time::Duration;

use super::golden::{self, READY, golden_name};
use super::identity;
use super::keys::{SPARE_OF as OF, SPARE_WARM as WARM};
use crate::incus::{Config, Devices, ExecSpec, Incus, IncusError, InstanceSource, InstancesPost};

pub const PREFIX: &str = "spare-";
/// A refill that has not finished in this long has died; the next one replaces its spare.
const STALE_AFTER: Duration = Duration::from_secs(120);
/// Run in the booted spare: once boot is over (the journal flush to /var among it), what a first
/// SSH session reads; then no journal of its own.
const WARM_UP: &str = "i=0; while [ $i -lt 200 ]; do case $(systemctl is-system-running 2>/dev/null) in \
    running|degraded) break;; esac; i=$((i+1)); sleep 0.05; done; \
    sshd -t >/dev/null 2>&1; su - ubuntu -c true >/dev/null 2>&1; \
    journalctl --relinquish-var >/dev/null 2>&1; rm -rf /var/log/journal/*; true";

pub fn name(stack: &str) -> String {
    format!("{PREFIX}{stack}")
}

pub fn enabled() -> bool {
    std::env::var("SANDBOX_SPARES").map(|v| v != "0").unwrap_or(true)
}

fn build_of(golden_config: &Config) -> Option<&str> {
    golden_config.get(super::keys::GOLDEN_BUILT_AT).map(String::as_str).filter(|s| !s.is_empty())
}

/// Renames the stack's spare to `instance` when it is warm and made from the current golden
/// build; false (nothing changed) otherwise, or when a concurrent create took it first.
/// `creating`: the create's marker (see journal.rs), put on the spare before the rename, so that
/// under its new name it never looks like a spare nobody is configuring.
pub async fn claim(incus: &Incus, stack: &str, golden_config: &Config, instance: &str, creating: &str) -> bool {
    let Some(build) = build_of(golden_config) else { return false };
    let spare = name(stack);
    let Ok(inst) = incus.instance(&spare).await else { return false };
    let ready = inst.status == "Stopped"
        && inst.config.get(WARM).is_some_and(|v| v == "1")
        && inst.config.get(OF).is_some_and(|v| v == build);
    if !ready {
        return false;
    }
    let mut mark = Config::new();
    mark.insert(super::keys::CREATING.into(), creating.into());
    if let Err(e) = incus.patch_instance(&spare, mark, Default::default()).await {
        tracing::debug!("spare {spare} not claimed: {e}");
        return false;
    }
    match incus.rename_instance(&spare, instance).await {
        Ok(()) => true,
        Err(e) => {
            tracing::debug!("spare {spare} not claimed: {e}");
            false
        }
    }
}

/// Config for a claimed spare on top of the create's own: its identity templates render again at
/// the first start, and the spare's marks go.
pub fn claimed_config() -> Config {
    let mut c = Config::new();
    c.insert("volatile.apply_template".into(), "copy".into());
    c.insert(OF.into(), String::new());
    c.insert(WARM.into(), String::new());
    c
}

/// How `sandbox __spare` reaches the same Incus as this process (`--remote`, when given).
static REMOTE: OnceLock<Option<String>> = OnceLock::new();

pub fn set_remote(remote: Option<String>) {
    let _ = REMOTE.set(remote);
}

/// Starts a detached `sandbox __spare STACK` (this process may exit long before it is done).
pub fn refill_in_background(stack: &str) {
    if !enabled() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else { return };
    let mut cmd = std::process::Command::new(exe);
    if let Some(Some(r)) = REMOTE.get() {
        cmd.args(["--remote", r]);
    }
    cmd.args(["__spare", stack]);
    // No inherited pipes (a caller reading our output would wait for this one too), its own
    // process group (a Ctrl-C in the terminal is for the command that was typed).
    cmd.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    super::host::inherit_stdio_only(&mut cmd);
    match cmd.spawn() {
        // Reaped by a thread so that a long-lived caller (the sidecar) leaves no zombie.
        Ok(mut child) => {
            std::thread::spawn(move || child.wait());
        }
        Err(e) => tracing::debug!("cannot start the spare refill: {e}"),
    }
}

/// Makes sure `spare-STACK` exists, warm, from the current golden build.
pub async fn refill(incus: &Incus, stack: &str) -> anyhow::Result<()> {
    let golden = golden_name(stack);
    let Some(golden_config) = golden::ready_config(incus, &golden).await? else { return Ok(()) };
    let Some(build) = build_of(&golden_config).map(str::to_owned) else { return Ok(()) };
    if !identity::carried_by(&golden_config) {
        return Ok(()); // the seed's golden images: no templates to render a claimed spare's identity
    }
    let spare = name(stack);
    match incus.instance(&spare).await {
        Ok(inst) => {
            let current = inst.config.get(OF).is_some_and(|v| *v == build);
            let warm = inst.config.get(WARM).is_some_and(|v| v == "1");
            if current && (warm || !older_than(&inst.created_at, STALE_AFTER)) {
                return Ok(()); // ready, or another refill is making it
            }
            incus.delete_force(&spare).await?;
        }
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e.into()),
    }
    let mut config = Config::new();
    config.insert(OF.into(), build.clone());
    config.insert("boot.autostart".into(), "false".into());
    // No network device at all: the spare never takes an address or reaches anything.
    let mut devices = Devices::new();
    devices.insert("eth0".into(), [("type".to_string(), "none".to_string())].into_iter().collect());
    let req = InstancesPost {
        name: spare.clone(),
        source: InstanceSource::copy(format!("{golden}/{READY}")),
        config,
        devices,
        kind: "container".into(),
        ..Default::default()
    };
    if let Err(e) = incus.create_instance(&req).await {
        // Another refill got there first: Incus says "already exists", or "busy running a
        // create operation" while that one's copy runs.
        if matches!(e, IncusError::AlreadyExists { .. }) || incus.exists(&spare).await.unwrap_or(false) {
            return Ok(());
        }
        return Err(e.into());
    }
    let warmed = async {
        incus.start(&spare).await?;
        incus.exec(&spare, &ExecSpec::new(["sh", "-c", WARM_UP])).await?;
        incus.stop(&spare, true).await?;
        // Still the current build? (`sandbox setup` may have replaced the golden image meanwhile.)
        let now = golden::ready_config(incus, &golden).await?;
        if now.as_ref().and_then(build_of) != Some(build.as_str()) {
            anyhow::bail!("{golden} was rebuilt meanwhile");
        }
        let mut mark = Config::new();
        mark.insert(WARM.into(), "1".into());
        incus.patch_instance(&spare, mark, Devices::new()).await?;
        Ok(())
    };
    let res: anyhow::Result<()> = warmed.await;
    if let Err(e) = &res {
        tracing::warn!("spare {spare}: {e:#}; removing it");
        let _ = incus.delete_force(&spare).await;
    }
    res
}

fn older_than(created_at: &str, age: Duration) -> bool {
    let Ok(t) = time::OffsetDateTime::parse(created_at, &time::format_description::well_known::Rfc3339) else {
        return true;
    };
    (time::OffsetDateTime::now_utc() - t) > age
}
