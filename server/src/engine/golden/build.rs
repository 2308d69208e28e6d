//! Building one golden image: a temporary instance from its source, the stack's script(s) run in
//! it, per-machine identity stripped and the identity templates added, a `ready` snapshot, then
//! swapped in under the golden name. Each step registers its undo: a failure leaves nothing.
use std::time::Duration;

use super::{READY, golden_name};
use crate::engine::base_image::{self, BaseImage};
use crate::engine::rollback::Rollback;
use crate::engine::stacks::{Parent, Shared, Stack};
use crate::engine::{identity, keys};
use crate::error::{EngineError, Result};
use crate::incus::{Config, ExecSpec, FileWrite, Incus, IncusError, InstanceSource, InstancesPost};
use crate::progress::{LineSplitter, Progress};

/// What one build needs.
pub struct Build<'a> {
    pub incus: &'a Incus,
    pub stack: &'a Stack,
    /// `lib/common.sh` and `lib/prelude.sh`.
    pub shared: &'a Shared,
    pub base: &'a BaseImage,
    /// The stack's inputs hash (stale when the script changes).
    pub inputs: String,
    pub progress: &'a dyn Progress,
}

/// Where a build's scripts find `lib/prelude.sh` (`SANDBOX_PRELUDE`).
const PRELUDE: &str = "/root/sandbox-prelude.sh";

/// Run in the finished build: no per-machine identity, /etc and /var marked up to date with /usr
/// (the units that catch up after a package change — ConditionNeedsUpdate: sysusers, ldconfig… —
/// do not run at every boot), and the build's journal does not go into every sandbox.
pub(crate) const STRIP: &str = "rm -f /etc/ssh/ssh_host_* /root/sandbox-*.sh; : > /etc/machine-id; rm -f /var/lib/dbus/machine-id; \
     chmod 0644 /etc/hostname /etc/hosts /etc/resolv.conf /etc/network/interfaces 2>/dev/null; \
     rm -rf /var/lib/apt/lists/* /tmp/* /var/tmp/*; truncate -s0 /root/.bash_history 2>/dev/null; \
     touch /etc/.updated /var/.updated; \
     journalctl --relinquish-var >/dev/null 2>&1; rm -rf /var/log/journal/*; true";

impl Build<'_> {
    /// The whole build; `rb` gets the undo of the temporary instance.
    pub async fn run(&self, source: InstanceSource, rb: &mut Rollback) -> Result<()> {
        let tmp = format!("tmp-golden-{}-{:06x}", self.stack.name, rand::random::<u32>() & 0xff_ffff);
        self.create(&tmp, source, rb).await?;
        self.incus.start(&tmp).await?;
        wait_booted(self.incus, &tmp).await;
        // Once, for every script of this build (removed with them before the snapshot).
        let prelude = FileWrite::root(PRELUDE, self.shared.prelude.as_bytes().to_vec(), 0o644);
        self.incus.push_file(&tmp, &prelude).await?;
        if self.stack.parent == Parent::Image {
            self.run_script(&tmp, "lib/common.sh", &self.shared.common).await?;
        }
        // Before the stack script, which may use it; a clone of a parent that has it skips this.
        let claude = crate::engine::claude::install(self.incus, &tmp, self.progress).await?;
        self.run_script(&tmp, &format!("{}.sh", self.stack.name), &self.stack.script).await?;
        self.progress.step("Removing per-machine identity (SSH host keys, machine-id)");
        self.incus.exec(&tmp, &ExecSpec::new(["sh", "-c", STRIP])).await?;
        self.progress.step("Adding the identity templates (Incus writes each sandbox's files at its first start)");
        let mut recorded = identity::install(self.incus, &tmp).await?;
        recorded.extend(claude);
        recorded.extend(crate::engine::gate::units::install(self.incus, &tmp).await?);
        self.snapshot(&tmp, recorded).await?;
        let target = golden_name(&self.stack.name);
        self.progress.step(&format!("Swapping {tmp} in as {target}"));
        swap(self.incus, &tmp, &target).await
    }

    /// The temporary instance. Undo: delete it — registered before the call, since a partial (or
    /// cancelled) create must go too.
    async fn create(&self, tmp: &str, source: InstanceSource, rb: &mut Rollback) -> Result<()> {
        let from = source.source.as_deref().or(source.alias.as_deref()).unwrap_or("image").to_string();
        self.progress.step(&format!("Creating {tmp} from {from}"));
        let mut config = Config::new();
        config.insert(keys::GOLDEN_BUILDING.into(), self.stack.name.clone());
        let from_image = self.stack.parent == Parent::Image;
        if from_image {
            // Docker inside sandboxes needs nesting; copies inherit it. (The seed's syscall
            // interception costs ~1 s per start, so it is not set.)
            config.insert("security.nesting".into(), "true".into());
        }
        let req = InstancesPost { name: tmp.into(), source, config, kind: "container".into(), ..Default::default() };
        let (incus, t) = (self.incus.clone(), tmp.to_string());
        rb.push(format!("delete {tmp}"), async move { Ok(incus.delete_force(&t).await?) });
        self.incus.create_instance(&req).await.map_err(|e| match (&e, self.base) {
            (IncusError::Operation { message } | IncusError::Api { message, .. }, BaseImage::Remote { .. })
                if from_image =>
            {
                base_image::unreachable(&self.base.describe(), message)
            }
            (IncusError::NotFound { .. }, _) if from_image => base_image::not_found(&self.base.describe()),
            _ => e.into(),
        })
    }

    /// Stopped, marked as built from these inputs (plus `extra`: what the build recorded),
    /// snapshot `ready` taken.
    async fn snapshot(&self, tmp: &str, extra: Config) -> Result<()> {
        self.progress.step(&format!("Stopping {tmp} and taking snapshot '{READY}'"));
        self.incus.stop(tmp, false).await?;
        let built_at =
            time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
        let mut cfg = Config::new();
        cfg.insert(keys::GOLDEN_BUILDING.into(), String::new());
        cfg.insert(keys::GOLDEN_STACK.into(), self.stack.name.clone());
        cfg.insert(keys::GOLDEN_INPUTS.into(), self.inputs.clone());
        cfg.insert(keys::GOLDEN_BASE_IMAGE.into(), self.base.describe());
        cfg.insert(keys::GOLDEN_BUILT_AT.into(), built_at);
        cfg.extend(extra);
        self.incus.patch_instance(tmp, cfg, Default::default()).await?;
        Ok(self.incus.create_snapshot(tmp, READY).await?)
    }

    /// Pushes a script and runs it as root, its output streamed as progress lines.
    async fn run_script(&self, name: &str, label: &str, script: &str) -> Result<()> {
        self.progress.step(&format!("Running stacks/{label}"));
        let path = format!("/root/sandbox-{}.sh", label.replace('/', "-").trim_end_matches(".sh"));
        self.incus.push_file(name, &FileWrite::root(&path, script.as_bytes().to_vec(), 0o700)).await?;
        let spec = ExecSpec::new(["bash", "-euo", "pipefail", path.as_str()])
            .env("HOME", "/root")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .env("SANDBOX_STACK", &self.stack.name)
            .env("SANDBOX_PRELUDE", PRELUDE)
            .env("LANG", "C.UTF-8")
            .cwd("/root");
        let mut lines = LineSplitter::new(30);
        let progress = self.progress;
        let out = self.incus.exec_streamed(name, &spec, |_, data| lines.feed(data, |l| progress.line(l))).await?;
        lines.finish(|l| progress.line(l));
        if out.status != 0 {
            return Err(EngineError::failed(
                format!("stacks/{label} failed (exit {}); its last lines:\n{}", out.status, lines.tail().join("\n")),
                "fix the script and run `sandbox setup` again; the previous golden image is untouched",
            ));
        }
        Ok(())
    }
}

/// Puts `tmp` in place of `target`; the previous `target` is kept until the rename succeeded.
pub(crate) async fn swap(incus: &Incus, tmp: &str, target: &str) -> Result<()> {
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
pub(crate) async fn wait_booted(incus: &Incus, name: &str) {
    let spec = ExecSpec::new(["systemctl", "is-system-running"]);
    let booted = crate::poll::until(Duration::from_secs(20), Duration::from_millis(100), || async {
        let out = incus.exec(name, &spec).await.ok()?;
        matches!(out.stdout_str().trim(), "running" | "degraded" | "maintenance" | "offline").then_some(())
    })
    .await;
    if booted.is_none() {
        tracing::warn!("{name}: systemd did not finish booting in 20 s; continuing");
    }
}
