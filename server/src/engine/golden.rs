//! Golden images (`golden-STACK` with a `ready` snapshot): built under a temporary name and
//! swapped in only on success, so a failed or interrupted build never leaves a half-built image
//! holding `ready`, and the previous image stays intact.
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::base_image::{self, BaseImage};
use super::host::Host;
use super::rollback::Rollback;
use super::stacks::{self, Parent, Stack};
use super::{identity, keys};
use crate::error::{EngineError, Result};
use crate::incus::{Config, ExecSpec, FileWrite, Incus, IncusError, InstanceSource, InstancesPost};
use crate::progress::{LineSplitter, Progress};

pub const READY: &str = "ready";
pub const STORAGE_POOL: &str = "default";
pub const BRIDGE: &str = "incusbr0";

pub fn golden_name(stack: &str) -> String {
    format!("golden-{stack}")
}

/// On a cluster, sandboxes are created from an image rather than by copying the golden instance:
/// instance names are cluster-wide, so the golden lives on one member and a copy to any other
/// member is a full migration; an image is cached by each member on first use (a btrfs image
/// volume) and every later sandbox there is a copy-on-write clone of it.
pub fn cluster_alias(stack: &str) -> String {
    format!("{CLUSTER_ALIAS_PREFIX}{stack}")
}
pub const CLUSTER_ALIAS_PREFIX: &str = "sandbox-golden/";

pub async fn is_clustered(incus: &Incus) -> Result<bool> {
    Ok(incus.server().await?["environment"]["server_clustered"] == true)
}

/// (Re)publishes `golden-STACK/ready` as the cluster image `sandbox-golden/STACK`; the previous
/// image stays in place until the new one exists.
pub async fn publish_for_cluster(incus: &Incus, stack: &str, progress: &dyn Progress) -> Result<()> {
    let alias = cluster_alias(stack);
    progress.step(&format!("Publishing {}/{READY} as image {alias} for every cluster member", golden_name(stack)));
    let old = incus.image_alias(&alias).await.ok().map(|a| a.target);
    if old.is_some() {
        incus.delete_image_alias(&alias).await?;
    }
    match incus.publish_snapshot(&golden_name(stack), READY, &alias).await {
        Ok(new) => {
            if let Some(fp) = old.filter(|fp| *fp != new) {
                let _ = incus.delete_image(&fp).await;
            }
            Ok(())
        }
        Err(e) => {
            if let Some(fp) = old {
                let _ = incus.create_image_alias(&alias, &fp).await;
            }
            Err(e.into())
        }
    }
}

/// What `--rebuild` asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Rebuild {
    #[default]
    None,
    All,
    Some(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct SetupOptions {
    /// Stacks to make sure exist (default: base).
    pub stacks: Vec<String>,
    pub rebuild: Rebuild,
    pub base_image: String,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub struct GoldenInfo {
    pub stack: String,
    pub instance: String,
    pub description: String,
    /// Has a `ready` snapshot.
    pub built: bool,
    /// The stack script changed since the image was built.
    pub stale: bool,
    pub built_at: Option<String>,
    pub base_image: Option<String>,
    /// Built by this product (false for golden images made by the seed's scripts).
    pub managed: bool,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub struct SetupReport {
    pub stack: String,
    /// "built", "rebuilt" or "skipped".
    pub action: String,
    pub seconds: f64,
}

/// Every known stack with the state of its golden image (also golden images without a script).
pub async fn list(incus: &Incus) -> Result<Vec<GoldenInfo>> {
    let instances = incus.instances_full().await?;
    let all = stacks::all();
    let common = stacks::common_script();
    let mut out: BTreeMap<String, GoldenInfo> = BTreeMap::new();
    for (name, s) in &all {
        out.insert(
            name.clone(),
            GoldenInfo {
                stack: name.clone(),
                instance: golden_name(name),
                description: s.description.clone(),
                built: false,
                stale: false,
                built_at: None,
                base_image: None,
                managed: false,
            },
        );
    }
    for inst in instances {
        let Some(stack) = inst.name.strip_prefix("golden-") else {
            continue;
        };
        let has_ready = inst.snapshots.as_ref().is_some_and(|s| s.iter().any(|s| s.name == READY));
        let entry = out.entry(stack.to_string()).or_insert_with(|| GoldenInfo {
            stack: stack.to_string(),
            instance: inst.name.clone(),
            description: String::new(),
            built: false,
            stale: false,
            built_at: None,
            base_image: None,
            managed: false,
        });
        entry.built = has_ready;
        entry.managed = inst.setting(keys::GOLDEN_INPUTS).is_some();
        entry.built_at = inst.setting(keys::GOLDEN_BUILT_AT).map(str::to_owned);
        entry.base_image = inst.setting(keys::GOLDEN_BASE_IMAGE).map(str::to_owned);
        if let (Some(s), Some(inputs)) = (all.get(stack), inst.setting(keys::GOLDEN_INPUTS)) {
            entry.stale = s.inputs_hash(&common) != inputs;
        }
    }
    Ok(out.into_values().collect())
}

/// Creates the storage pool, bridge and default-profile devices when missing.
pub async fn ensure_initialised(incus: &Incus, progress: &dyn Progress) -> Result<()> {
    incus.server().await?;
    if let Err(e) = incus.storage_pool(STORAGE_POOL).await {
        if !e.is_not_found() {
            return Err(e.into());
        }
        progress.step("Creating the btrfs storage pool 'default'");
        let cfg: Config = [("size".to_string(), "20GiB".to_string())].into();
        incus.create_storage_pool(STORAGE_POOL, "btrfs", cfg).await?;
    }
    if let Err(e) = incus.network(BRIDGE).await {
        if !e.is_not_found() {
            return Err(e.into());
        }
        progress.step(&format!("Creating the bridge '{BRIDGE}' (no NAT)"));
        let cfg: Config = [
            ("ipv4.address".to_string(), "10.100.0.1/24".to_string()),
            ("ipv4.nat".to_string(), "false".to_string()),
            ("ipv6.address".to_string(), "none".to_string()),
        ]
        .into();
        incus.create_network(BRIDGE, cfg).await?;
    }
    let profile = incus.profile("default").await?;
    let devices = profile.get("devices").cloned().unwrap_or_default();
    let mut add = serde_json::Map::new();
    if devices.get("root").is_none() {
        add.insert("root".into(), serde_json::json!({"type": "disk", "path": "/", "pool": STORAGE_POOL}));
    }
    if devices.get("eth0").is_none() {
        add.insert("eth0".into(), serde_json::json!({"type": "nic", "network": BRIDGE, "name": "eth0"}));
    }
    if !add.is_empty() {
        progress.step("Adding root disk and network to the default profile");
        let mut all = devices.as_object().cloned().unwrap_or_default();
        all.extend(add);
        incus.patch_profile("default", serde_json::json!({ "devices": all })).await?;
    }
    Ok(())
}

/// `sandbox setup`: makes sure Incus is initialised and the requested golden images exist.
pub async fn setup(
    incus: &Incus,
    host: &Host,
    opts: &SetupOptions,
    progress: Arc<dyn Progress>,
    cancel: &CancellationToken,
) -> Result<Vec<SetupReport>> {
    let base = BaseImage::parse(&opts.base_image)?;
    let mut requested = if opts.stacks.is_empty() { vec!["base".to_string()] } else { opts.stacks.clone() };
    match &opts.rebuild {
        Rebuild::All => {
            let existing = list(incus).await?;
            requested.extend(existing.into_iter().filter(|g| g.built && g.managed).map(|g| g.stack));
        }
        Rebuild::Some(names) => requested.extend(names.iter().cloned()),
        Rebuild::None => {}
    }
    requested.dedup();
    let order = stacks::build_order(&requested)?;
    ensure_initialised(incus, progress.as_ref()).await?;

    let clustered = is_clustered(incus).await?;
    let common = stacks::common_script();
    let mut base_source: Option<InstanceSource> = None;
    let mut reports = Vec::new();
    for stack in order {
        let name = golden_name(&stack.name);
        let rebuild = match &opts.rebuild {
            Rebuild::All => true,
            Rebuild::Some(v) => v.contains(&stack.name),
            Rebuild::None => false,
        };
        let exists = has_ready(incus, &name).await?;
        if exists && !rebuild {
            if clustered && incus.image_alias(&cluster_alias(&stack.name)).await.is_err() {
                publish_for_cluster(incus, &stack.name, progress.as_ref()).await?;
            }
            progress.step(&format!("{name} is built (use --rebuild {} to rebuild)", stack.name));
            reports.push(SetupReport { stack: stack.name.clone(), action: "skipped".into(), seconds: 0.0 });
            continue;
        }
        let source = match &stack.parent {
            Parent::Image => {
                if base_source.is_none() {
                    base_source = Some(base.ensure(incus, host, progress.as_ref()).await?);
                }
                base_source.clone().expect("set above")
            }
            Parent::Stack(p) => {
                if !has_ready(incus, &golden_name(p)).await? {
                    return Err(EngineError::failed(
                        format!("{} has no '{READY}' snapshot", golden_name(p)),
                        format!("build it first: sandbox setup --stack {p}"),
                    ));
                }
                InstanceSource::copy(format!("{}/{READY}", golden_name(p)))
            }
        };
        let started = std::time::Instant::now();
        let inputs = stack.inputs_hash(&common);
        let mut rb = Rollback::new();
        let res = tokio::select! {
            r = build(incus, &stack, &common, source, &base, &inputs, progress.as_ref(), &mut rb) => r,
            _ = cancel.cancelled() => Err(EngineError::Cancelled),
        };
        if let Err(e) = res {
            progress.step(&format!("Build of {name} failed; removing the temporary instance"));
            rb.undo().await;
            return Err(e);
        }
        rb.commit();
        if clustered {
            publish_for_cluster(incus, &stack.name, progress.as_ref()).await?;
        }
        reports.push(SetupReport {
            stack: stack.name.clone(),
            action: if exists { "rebuilt" } else { "built" }.into(),
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    Ok(reports)
}

pub async fn has_ready(incus: &Incus, instance: &str) -> Result<bool> {
    Ok(ready_config(incus, instance).await?.is_some())
}

/// The `ready` snapshot's config (what copies start from), if there is one.
pub async fn ready_config(incus: &Incus, instance: &str) -> Result<Option<Config>> {
    match incus.snapshots(instance).await {
        Ok(snaps) => Ok(snaps.into_iter().find(|s| s.name == READY).map(|s| s.config)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[allow(clippy::too_many_arguments)]
async fn build(
    incus: &Incus,
    stack: &Stack,
    common: &str,
    source: InstanceSource,
    base: &BaseImage,
    inputs: &str,
    progress: &dyn Progress,
    rb: &mut Rollback,
) -> Result<()> {
    let target = golden_name(&stack.name);
    let tmp = format!("tmp-golden-{}-{:06x}", stack.name, rand::random::<u32>() & 0xff_ffff);
    progress.step(&format!(
        "Creating {tmp} from {}",
        source.source.as_deref().or(source.alias.as_deref()).unwrap_or("image")
    ));
    let mut config = Config::new();
    config.insert(keys::GOLDEN_BUILDING.into(), stack.name.clone());
    if stack.parent == Parent::Image {
        // Docker inside sandboxes needs nesting; copies inherit it. (The seed's syscall
        // interception costs ~1 s per start, so it is not set.)
        config.insert("security.nesting".into(), "true".into());
    }
    let req = InstancesPost { name: tmp.clone(), source, config, kind: "container".into(), ..Default::default() };
    {
        // Registered before the call: a partial (or cancelled) create must go too.
        let (incus, tmp) = (incus.clone(), tmp.clone());
        rb.push(format!("delete {tmp}"), async move { Ok(incus.delete_force(&tmp).await?) });
    }
    let created = incus.create_instance(&req).await;
    if let Err(e) = created {
        return Err(match (&e, base) {
            (IncusError::Operation { message } | IncusError::Api { message, .. }, BaseImage::Remote { .. })
                if stack.parent == Parent::Image =>
            {
                base_image::unreachable(&base.describe(), message)
            }
            (IncusError::NotFound { .. }, _) if stack.parent == Parent::Image => {
                base_image::not_found(&base.describe())
            }
            _ => e.into(),
        });
    }
    incus.start(&tmp).await?;
    wait_booted(incus, &tmp).await;

    if stack.parent == Parent::Image {
        run_script(incus, &tmp, "lib/common.sh", common, &stack.name, progress).await?;
    }
    run_script(incus, &tmp, &format!("{}.sh", stack.name), &stack.script, &stack.name, progress).await?;

    // Also: /etc and /var are marked up to date with /usr, so the units that catch up after a
    // package change (ConditionNeedsUpdate: sysusers, ldconfig…) do not run at every boot; and the
    // build's journal does not go into every sandbox.
    progress.step("Removing per-machine identity (SSH host keys, machine-id)");
    let strip = ExecSpec::new([
        "sh",
        "-c",
        "rm -f /etc/ssh/ssh_host_* /root/sandbox-*.sh; : > /etc/machine-id; rm -f /var/lib/dbus/machine-id; \
         chmod 0644 /etc/hostname /etc/hosts /etc/resolv.conf /etc/network/interfaces 2>/dev/null; \
         rm -rf /var/lib/apt/lists/* /tmp/* /var/tmp/*; truncate -s0 /root/.bash_history 2>/dev/null; \
         touch /etc/.updated /var/.updated; \
         journalctl --relinquish-var >/dev/null 2>&1; rm -rf /var/log/journal/*; true",
    ]);
    incus.exec(&tmp, &strip).await?;
    progress.step("Adding the identity templates (Incus writes each sandbox's files at its first start)");
    let identity = identity::install(incus, &tmp).await?;
    progress.step(&format!("Stopping {tmp} and taking snapshot '{READY}'"));
    incus.stop(&tmp, false).await?;
    let built_at =
        time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    let mut cfg = Config::new();
    cfg.insert(keys::GOLDEN_BUILDING.into(), String::new());
    cfg.insert(keys::GOLDEN_STACK.into(), stack.name.clone());
    cfg.insert(keys::GOLDEN_INPUTS.into(), inputs.to_string());
    cfg.insert(keys::GOLDEN_BASE_IMAGE.into(), base.describe());
    cfg.insert(keys::GOLDEN_BUILT_AT.into(), built_at);
    cfg.extend(identity);
    incus.patch_instance(&tmp, cfg, Default::default()).await?;
    incus.create_snapshot(&tmp, READY).await?;

    progress.step(&format!("Swapping {tmp} in as {target}"));
    swap(incus, &tmp, &target).await?;
    // The previous build's spare would never be taken again (see spares.rs).
    if let Err(e) = incus.delete_force(&super::spares::name(&stack.name)).await {
        tracing::warn!("could not remove the previous build's spare: {e:#}");
    }
    Ok(())
}

/// Puts `tmp` in place of `target`; the previous `target` is kept until the rename succeeded.
async fn swap(incus: &Incus, tmp: &str, target: &str) -> Result<()> {
    if !incus.exists(target).await? {
        incus.rename_instance(tmp, target).await?;
        return Ok(());
    }
    let old = format!("tmp-old-{}-{:06x}", target, rand::random::<u32>() & 0xff_ffff);
    let old = if old.len() > 63 { format!("tmp-old-{:06x}", rand::random::<u32>() & 0xff_ffff) } else { old };
    incus.stop(target, true).await.or_else(ignore_not_running)?;
    incus.rename_instance(target, &old).await?;
    if let Err(e) = incus.rename_instance(tmp, target).await {
        let _ = incus.rename_instance(&old, target).await;
        return Err(e.into());
    }
    if let Err(e) = incus.delete_instance(&old).await {
        tracing::warn!("could not delete the previous golden image {old}: {e}");
    }
    Ok(())
}

fn ignore_not_running(e: IncusError) -> Result<(), IncusError> {
    match &e {
        IncusError::Api { message, .. } | IncusError::Operation { message }
            if message.contains("already stopped") || message.contains("not running") =>
        {
            Ok(())
        }
        _ => Err(e),
    }
}

/// Waits until systemd finished booting (running or degraded; at most 20 s), so scripts do not
/// race early boot. Polls: `is-system-running --wait` was seen to hang past the end of boot.
async fn wait_booted(incus: &Incus, name: &str) {
    let spec = ExecSpec::new(["systemctl", "is-system-running"]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::time::Instant::now() < deadline {
        if let Ok(out) = incus.exec(name, &spec).await {
            let state = out.stdout_str();
            if matches!(state.trim(), "running" | "degraded" | "maintenance" | "offline") {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tracing::warn!("{name}: systemd did not finish booting in 20 s; continuing");
}

async fn run_script(
    incus: &Incus,
    name: &str,
    label: &str,
    script: &str,
    stack: &str,
    progress: &dyn Progress,
) -> Result<()> {
    progress.step(&format!("Running stacks/{label}"));
    let path = format!("/root/sandbox-{}.sh", label.replace('/', "-").trim_end_matches(".sh"));
    incus.push_file(name, &FileWrite::root(&path, script.as_bytes().to_vec(), 0o700)).await?;
    let spec = ExecSpec::new(["bash", "-euo", "pipefail", path.as_str()])
        .env("HOME", "/root")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .env("SANDBOX_STACK", stack)
        .env("LANG", "C.UTF-8")
        .cwd("/root");
    let mut lines = LineSplitter::new(30);
    let out = incus.exec_streamed(name, &spec, |_, data| lines.feed(data, |l| progress.line(l))).await?;
    lines.finish(|l| progress.line(l));
    if out.status != 0 {
        return Err(EngineError::failed(
            format!("stacks/{label} failed (exit {}); its last lines:\n{}", out.status, lines.tail().join("\n")),
            "fix the script and run `sandbox setup` again; the previous golden image is untouched",
        ));
    }
    Ok(())
}
