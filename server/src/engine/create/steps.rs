//! The steps of a create, in order, each with its undo registered beside it (see mod.rs for the
//! list). An undo is registered before the call it undoes whenever that call can leave something
//! behind half-way (the instance record, the egress rules).
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::env;
use super::plan::Plan;
use super::request::{self, Slot};
use crate::engine::creds::{self, KeySource, Token};
use crate::engine::golden::BRIDGE;
use crate::engine::rollback::Rollback;
use crate::engine::{Engine, gate, identity, keys, lock, ports, sandbox, spares, sshcfg};
use crate::error::{EngineError, Result};
use crate::incus::{FileWrite, InstancesPost};
use crate::progress::Progress;

/// Said when a new sandbox never answers over SSH (it is removed again by the rollback).
const CREATE_HINT: &str = "the create was rolled back; `sandbox doctor` checks the host, and `sandbox setup --rebuild STACK` the golden image";

/// The sandbox's own SSH host key, who may log in, its environment: made before the lock.
pub(super) struct IdentityMaterial {
    host_private: String,
    host_public: String,
    authorized_keys: String,
    env_file: String,
    client_key: String,
}

impl IdentityMaterial {
    pub fn new(plan: &Plan) -> Result<Self> {
        let (host_private, host_public) = sshcfg::generate_ed25519(&format!("root@{}", plan.name))?;
        Ok(Self {
            host_private,
            host_public,
            authorized_keys: sshcfg::authorized_keys()?,
            env_file: env::script(&env::merge(plan.user_env.clone(), &plan.env)),
            client_key: sshcfg::ensure_client_key()?,
        })
    }

    /// What `user.sandbox.client-key` records: the managed key let in.
    pub fn client_key_fingerprint(&self) -> String {
        sshcfg::fingerprint(&self.client_key)
    }

    /// The sandbox's identity files: what the templates render, or what is pushed without them.
    pub fn files(&self, plan: &Plan, slot: &Slot) -> Vec<FileWrite<'static>> {
        let (ip, gateway) = (slot.ip.to_string(), slot.gateway.to_string());
        let files = identity::files(identity::Identity {
            name: &plan.name,
            ip: &ip,
            prefix: slot.prefix,
            gateway: &gateway,
            host_private: self.host_private.clone(),
            host_public: &self.host_public,
            env: self.env_file.clone(),
            authorized_keys: self.authorized_keys.clone(),
        });
        debug_assert!(identity::covers(&files), "the identity templates and the pushed files differ");
        files
    }

    /// The create request, and whether Incus renders the identity files at the first start (the
    /// golden image has templates and every file can be carried as a config value).
    pub fn request(
        &self,
        plan: &Plan,
        slot: &Slot,
        files: &[FileWrite<'_>],
        key_config: &[(String, String)],
        clustered: bool,
    ) -> (InstancesPost, bool) {
        let mut config = request::config(plan, slot, &self.host_public, &env::digest(&self.env_file), key_config);
        let rendered = identity::config_for(&plan.name, files).filter(|_| plan.carried);
        let templated = rendered.is_some();
        config.extend(rendered.unwrap_or_default());
        (request::instance(plan, config, request::devices(slot, plan.disk.as_deref()), clustered), templated)
    }
}

impl Engine {
    /// The key the sandbox's agent holds — a deploy key made and registered on the repository, or
    /// the user's own — and the agent. Undo: the agent, the key pair, the registration. Returns
    /// config keys to store.
    pub(super) async fn prepare_key(
        &self,
        plan: &Plan,
        token: &Token,
        progress: &dyn Progress,
        rb: &mut Rollback,
    ) -> Result<Vec<(String, String)>> {
        let source = match &plan.ssh_key {
            Some(k) => KeySource::User(k.clone()),
            None => KeySource::Deploy { read_only: plan.read_only_key },
        };
        if let Some(r) = &plan.repo {
            return self.prepare_credentials(&plan.name, r, &source, token, progress, rb).await;
        }
        if let Some(k) = &plan.ssh_key {
            progress.step("Starting the sandbox's ssh-agent on the host");
            let n = plan.name.clone();
            rb.push(format!("stop ssh-agent of {n}"), async move { Ok(creds::agent::stop(&n).await?) });
            creds::agent::fresh(&self.host, &plan.name, k).await?;
        }
        Ok(Vec::new())
    }

    /// The sandbox's endpoints on the host daemon — the Anthropic API and, when its
    /// repository's fetches and pushes go through the host, the push gate — and the device that
    /// carries them in. Undo: the endpoints, their directory and the gate's mirror.
    pub(super) async fn prepare_endpoint(
        &self,
        plan: &Plan,
        progress: &dyn Progress,
        rb: &mut Rollback,
    ) -> Result<Option<(String, std::collections::BTreeMap<String, String>)>> {
        let git = match (plan.gated, &plan.repo) {
            (true, Some(repo)) => {
                progress.step(&format!("Opening the push gate: {} may push only its own branch", plan.name));
                Some(gate::Register::new(&plan.name, repo, plan.branch.as_deref()))
            }
            _ => None,
        };
        self.anthropic_prepare(&plan.name, &plan.golden_config, git, rb).await
    }

    /// The gate's socket units, into a sandbox whose golden image does not carry them (built
    /// before the gate, or by the seed's scripts): before its first start, so systemd has them.
    pub(super) async fn push_gate_units(&self, plan: &Plan) -> Result<()> {
        if plan.gated && !gate::units::carried_by(&plan.golden_config) {
            gate::units::install(&self.incus, &plan.instance).await?;
        }
        Ok(())
    }

    /// The slot and its address. The caller holds the host lock until the instance exists.
    pub(super) async fn allocate_slot(&self, plan: &Plan) -> Result<(Slot, bool)> {
        // Independent reads, at once.
        let (all, net, clustered) = futures::future::try_join3(
            async { Ok::<_, EngineError>(sandbox::list(&self.incus).await?) },
            async { Ok::<_, EngineError>(self.incus.network(BRIDGE).await?) },
            crate::engine::golden::is_clustered(&self.incus),
        )
        .await?;
        if all.iter().any(|s| s.name == plan.name) {
            return Err(EngineError::Conflict {
                what: format!("sandbox '{}'", plan.name),
                hint: "pick another name".into(),
            });
        }
        let slot = ports::allocate_slot(plan.slot, &sandbox::held(&all), ports::port_free)?;
        let cidr = net.config.get("ipv4.address").cloned().unwrap_or_default();
        let (ip, gateway, prefix) = ports::slot_address(BRIDGE, &cidr, slot)?;
        Ok((Slot { slot, ip, gateway, prefix }, clustered))
    }

    /// The instance: a warm spare of the golden image renamed into place when there is one (see
    /// spares.rs), else a copy. Undo: delete it — registered before the call, since the instance
    /// exists as soon as Incus has its record, even if we are cancelled while the copy runs.
    pub(super) async fn place_instance(
        &self,
        plan: &Plan,
        req: &InstancesPost,
        templated: bool,
        clustered: bool,
        progress: &dyn Progress,
        rb: &mut Rollback,
    ) -> Result<()> {
        let (incus, inst) = (self.incus.clone(), plan.instance.clone());
        rb.push(format!("delete {inst}"), async move { Ok(incus.delete_force(&inst).await?) });
        let spare_ok = templated && plan.spare_ok(clustered);
        let creating = req.config.get(keys::CREATING).map(String::as_str).unwrap_or_default();
        if spare_ok && spares::claim(&self.incus, &plan.stack, &plan.golden_config, &plan.instance, creating).await {
            progress.step(&format!("Took the warm spare {}", spares::name(&plan.stack)));
            let mut config = req.config.clone();
            config.extend(spares::claimed_config());
            self.incus.patch_instance(&plan.instance, config, req.devices.clone()).await?;
        } else {
            self.incus.create_instance(req).await.map_err(|e| {
                // A btrfs pool without quotas (a nested member, say) cannot hold the root disk
                // size every sandbox gets by default: say what to do instead of btrfs's words.
                let m = e.to_string();
                if m.contains("qgroup") {
                    return EngineError::failed(
                        format!("the storage pool cannot limit this sandbox's disk size: {m}"),
                        "enable quotas on the pool (btrfs quota enable), or create without a limit: SANDBOX_DEFAULT_DISK=none",
                    );
                }
                e.into()
            })?;
            self.keep_own_record(plan, req).await?;
        }
        if plan.carried && !templated {
            // The files are pushed: the image's templates must not overwrite them at the start.
            identity::disarm(&self.incus, &plan.instance).await?;
        }
        Ok(())
    }

    /// Its entries in ~/.sandbox/ssh_config and known_hosts (the caller holds the host lock: one
    /// writer of those files). Undo: remove them, under the lock too.
    pub(super) fn add_ssh_entry(
        &self,
        plan: &Plan,
        slot: &Slot,
        id: &IdentityMaterial,
        clustered: bool,
        rb: &mut Rollback,
    ) -> Result<()> {
        let route = self.route_for(&plan.name, slot.ssh_port(), clustered)?;
        sshcfg::add_entry(&plan.name, &route, &id.host_public)?;
        let n = plan.name.clone();
        rb.push(format!("remove ssh entry for {n}"), async move {
            let _g = lock::acquire().await?;
            sshcfg::remove_entry(&n)?;
            Ok(())
        });
        Ok(())
    }

    /// Golden images without templates (the seed's): the identity files through the files API.
    pub(super) async fn push_identity(
        &self,
        plan: &Plan,
        files: &[FileWrite<'_>],
        progress: &dyn Progress,
    ) -> Result<()> {
        progress.step("Writing identity, SSH keys and environment");
        let instance = plan.instance.as_str();
        // ~/.ssh exists in our golden images; made first for the seed's (authorized_keys needs it).
        let (keys_file, rest) = files.split_last().expect("authorized_keys is last");
        let ssh_dir = async {
            self.incus.push_dir(instance, "/home/ubuntu/.ssh", 1000, 1000, 0o700).await?;
            self.incus.push_file(instance, keys_file).await
        };
        let pushes = rest.iter().map(|f| self.incus.push_file(instance, f));
        let (first, others) = futures::future::join(ssh_dir, futures::future::join_all(pushes)).await;
        first?;
        others.into_iter().collect::<crate::incus::Result<Vec<()>>>()?;
        Ok(())
    }

    /// Starts it while its egress policy goes in: until registered, the host's rules let a
    /// sandbox address open nothing (fail closed). Undo: its rules (registered first).
    pub(super) async fn start_with_egress(
        &self,
        plan: &Plan,
        progress: &dyn Progress,
        rb: &mut Rollback,
    ) -> Result<()> {
        let (engine, n) = (self.clone(), plan.name.clone());
        rb.push(format!("remove egress rules of {n}"), async move { Ok(engine.egress_unregister(&n).await?) });
        progress.step(&format!("Starting {} and applying its egress policy", plan.instance));
        if plan.restrict {
            self.egress_prepare(&plan.name).await?;
        }
        let start = async { Ok(self.incus.start(&plan.instance).await?) };
        futures::future::try_join(self.egress_register(&plan.name), start).await?;
        Ok(())
    }

    /// Ready = an SSH session through the forwarded port succeeds. Meanwhile the secrets the
    /// templates were rendered from leave the instance's config.
    /// `complete`: nothing is left after this step, so the create's marker goes with the secrets.
    /// `probe`: its forwarded SSH port (None on a cluster: SSH goes through the Incus API).
    pub(super) async fn wait_ready(
        &self,
        plan: &Plan,
        probe: Option<u16>,
        templated: bool,
        complete: bool,
        progress: &dyn Progress,
        cancel: &CancellationToken,
    ) -> Result<()> {
        progress.step("Waiting for SSH");
        let scrub = async {
            if templated {
                identity::scrub(&self.incus, &plan.instance, complete).await?;
            }
            Ok::<_, EngineError>(())
        };
        let ready =
            futures::future::try_join(self.wait_ssh(&plan.name, probe, Duration::from_secs(40), CREATE_HINT), scrub);
        tokio::select! {
            r = ready => r.map(|_| ()),
            _ = cancel.cancelled() => Err(EngineError::Cancelled),
        }
    }

    /// The agent's socket into the sandbox (unless the push gate holds its key), then the
    /// checkout (source.rs: a clone, a fetch on top of a prepared image, a fork's new branch) and
    /// its base, recorded for `sandbox diff` and `sandbox pr`.
    pub(super) async fn attach_repo(
        &self,
        plan: &Plan,
        progress: &dyn Progress,
        cancel: &CancellationToken,
    ) -> Result<()> {
        if plan.plugs_agent() {
            if cancel.is_cancelled() {
                return Err(EngineError::Cancelled);
            }
            progress.step("Carrying the agent's socket into the sandbox");
            self.plug_agent(&plan.name, &plan.instance).await?;
        }
        self.checkout(plan, progress, cancel).await
    }
}
