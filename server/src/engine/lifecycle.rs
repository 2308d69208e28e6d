//! Create (a transaction) and restart; stop/rm/nuke are in teardown.rs, expose in ports.rs.
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::creds::{self, KeySource, RepoRef, Token};
use super::golden::{self, BRIDGE, READY, golden_name};
use super::rollback::Rollback;
use super::sandbox::{self, ALT_PORT_BASE, APP_PORT_BASE, SSH_PORT_BASE, Sandbox};
use super::validate::{self, instance_name};
use super::{Engine, hostnet, identity, keys, lock, spares, sshcfg, stacks};
use crate::error::{EngineError, Result};
use crate::incus::{Config, Devices, FileWrite, InstanceSource, InstancesPost};
use crate::progress::Progress;

/// What `sandbox start` was asked. Options are raw strings: validated here, at the boundary.
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    pub name: String,
    pub repo: Option<String>,
    pub stack: Option<String>,
    pub branch: Option<String>,
    pub from: Option<String>,
    pub ssh_key: Option<PathBuf>,
    pub slot: Option<u32>,
    pub cpu: Option<String>,
    pub memory: Option<String>,
    pub env: Vec<String>,
    pub restrict_domains: bool,
    pub domains_file: Option<PathBuf>,
    /// Cluster member to create on (default: Incus places it).
    pub target: Option<String>,
    /// Register the deploy key read-only (default: write access, so the agent can push).
    pub read_only_key: bool,
    /// GitHub token from the caller (else GH_TOKEN / GITHUB_TOKEN / `gh auth token`).
    pub github_token: Token,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub struct StartResult {
    /// created | restarted | running
    pub action: String,
    pub sandbox: Sandbox,
    pub seconds: f64,
}

struct Validated {
    cpu: Option<u32>,
    memory: Option<String>,
    env: Vec<(String, String)>,
    repo: Option<String>,
    branch: Option<String>,
    ssh_key: Option<PathBuf>,
}

fn validate(o: &StartOptions) -> Result<Validated> {
    validate::sandbox_name(&o.name)?;
    if let Some(s) = &o.stack {
        stacks::validate_stack_name(s)?;
    }
    if let Some(f) = &o.from {
        validate::sandbox_name(f)?;
    }
    if let Some(s) = o.slot {
        validate::slot(s)?;
    }
    if let Some(t) = &o.target {
        validate::member_name(t)?;
    }
    // Stored absolute: restarts from another directory load the same file.
    let ssh_key = match &o.ssh_key {
        Some(k) if k.is_file() => Some(std::fs::canonicalize(k).unwrap_or_else(|_| k.clone())),
        Some(k) => {
            return Err(EngineError::invalid(
                "ssh key",
                format!("{} is not a file", k.display()),
                "give the path of a private key",
            ));
        }
        None => None,
    };
    if o.read_only_key && o.ssh_key.is_some() {
        return Err(EngineError::invalid(
            "options",
            "--read-only-key applies to the deploy key, and --ssh-key uses your own key instead",
            "drop one of them",
        ));
    }
    if let Some(f) = &o.domains_file
        && std::fs::read_to_string(f).is_err()
    {
        return Err(EngineError::invalid(
            "domains file",
            format!("cannot read {}", f.display()),
            "give a readable file with one domain per line",
        ));
    }
    Ok(Validated {
        cpu: o.cpu.as_deref().map(validate::cpu).transpose()?,
        memory: o.memory.as_deref().map(validate::memory).transpose()?,
        env: o.env.iter().map(|e| validate::env_pair(e)).collect::<Result<_>>()?,
        repo: o.repo.as_deref().map(validate::repo_url).transpose()?,
        branch: o.branch.as_deref().map(validate::branch).transpose()?,
        ssh_key,
    })
}

/// `~/.sandbox/env`: `KEY=value` lines (`export ` allowed, `#` comments); values literal.
pub fn user_env() -> Vec<(String, String)> {
    let Ok(text) = std::fs::read_to_string(crate::paths::sandbox_home().join("env")) else { return Vec::new() };
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        if let Ok((k, mut v)) = validate::env_pair(line) {
            if v.len() >= 2 && ((v.starts_with('"') && v.ends_with('"')) || (v.starts_with('\'') && v.ends_with('\'')))
            {
                v = v[1..v.len() - 1].to_string();
            }
            out.push((k, v));
        } else {
            tracing::warn!("~/.sandbox/env: skipping a line that is not NAME=VALUE");
        }
    }
    out
}

/// The profile script: every value single-quoted, so nothing in it is ever interpreted.
fn env_script(pairs: &[(String, String)]) -> String {
    let mut s = String::from("# Written by Agent Sandboxes from ~/.sandbox/env and --env; values are literal.\n");
    for (k, v) in pairs {
        s.push_str(&format!("export {k}={}\n", validate::shell_single_quote(v)));
    }
    s
}

/// What `user.sandbox.env-digest` holds: the environment file last written into the sandbox.
fn env_digest(script: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(script.as_bytes()))
}

fn merge_env(base: Vec<(String, String)>, extra: &[(String, String)]) -> Vec<(String, String)> {
    let mut map: Vec<(String, String)> = base;
    for (k, v) in extra {
        map.retain(|(kk, _)| kk != k);
        map.push((k.clone(), v.clone()));
    }
    map
}

pub(super) fn proxy(listen_proto: &str, host_port: u32, ip: Option<&str>, port: u32) -> BTreeMap<String, String> {
    let mut d = BTreeMap::new();
    d.insert("type".into(), "proxy".into());
    d.insert("listen".into(), format!("{listen_proto}:127.0.0.1:{host_port}"));
    match ip {
        // nftables DNAT: no forkproxy process, no start-time cost.
        Some(ip) => {
            d.insert("connect".into(), format!("{listen_proto}:{ip}:{port}"));
            d.insert("nat".into(), "true".into());
        }
        None => {
            d.insert("connect".into(), format!("{listen_proto}:127.0.0.1:{port}"));
        }
    }
    d
}

/// The slot's ssh/app/alt forwards as one NAT proxy device (Incus applies and clears each proxy
/// device's rules separately: three devices cost ~60 ms more per start and ~130 ms per stop).
fn slot_ports(slot: u32, ip: &str) -> BTreeMap<String, String> {
    let listen: Vec<String> = sandbox::SLOT_PORTS.iter().map(|(_, base, _)| (base + slot).to_string()).collect();
    let connect: Vec<String> = sandbox::SLOT_PORTS.iter().map(|(_, _, port)| port.to_string()).collect();
    [
        ("type", "proxy".to_string()),
        ("listen", format!("tcp:127.0.0.1:{}", listen.join(","))),
        ("connect", format!("tcp:{ip}:{}", connect.join(","))),
        ("nat", "true".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The sandbox's pinned address: bridge network + 100 + slot.
fn sandbox_ip(net: &crate::incus::Network, slot: u32) -> Result<(String, String, u32)> {
    let cidr = net.config.get("ipv4.address").cloned().unwrap_or_default();
    let (addr, prefix) = cidr.split_once('/').unwrap_or((&cidr, "24"));
    let addr: Ipv4Addr = addr.parse().map_err(|_| {
        EngineError::failed(format!("bridge {BRIDGE} has no IPv4 address ({cidr})"), "sandbox setup creates it")
    })?;
    let prefix: u32 = prefix.parse().unwrap_or(24);
    if prefix > 24 {
        return Err(EngineError::failed(
            format!("bridge {BRIDGE} subnet /{prefix} is too small"),
            "use a /24 or larger",
        ));
    }
    let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
    let ip = Ipv4Addr::from((u32::from(addr) & mask) + 100 + slot);
    Ok((ip.to_string(), addr.to_string(), prefix))
}

pub(super) fn port_free(port: u32) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port as u16)).is_ok()
}

/// Host ports held by sandbox devices: port → sandbox name.
pub(super) fn ports_in_use(all: &[Sandbox]) -> BTreeMap<u16, String> {
    all.iter().flat_map(|s| s.ports.iter().map(move |p| (p.host_port, s.name.clone()))).collect()
}

impl Engine {
    /// `--target` must name a member of a cluster; said before anything changes.
    async fn check_member(&self, member: &str) -> Result<()> {
        let info = self.incus.server().await?;
        if info["environment"]["server_clustered"] != true {
            return Err(EngineError::invalid(
                "target",
                format!("'{member}': this Incus server is not a cluster"),
                "drop --target (it places sandboxes on cluster members)",
            ));
        }
        let members = self.incus.cluster_members().await?;
        if !members.iter().any(|m| m == member) {
            return Err(EngineError::invalid(
                "target",
                format!("no cluster member '{member}' (members: {})", members.join(", ")),
                "pick one of the members, or drop --target to let Incus place the sandbox",
            ));
        }
        Ok(())
    }

    /// Creates NAME, or restarts it when it exists and is stopped.
    pub async fn start(
        &self,
        o: &StartOptions,
        progress: &dyn Progress,
        cancel: &CancellationToken,
    ) -> Result<StartResult> {
        let started = std::time::Instant::now();
        let v = validate(o)?;
        let existing = sandbox::get(&self.incus, &o.name).await?;
        let (action, sandbox) = match existing {
            Some(s) => self.restart(o, &v, s, progress, cancel).await?,
            None => {
                let mut rb = Rollback::new();
                // Cancellation is checked between steps (and during the long waits), never by
                // dropping an Incus call half-way, so every undo sees the state it expects.
                let res = self.create(o, &v, progress, &mut rb, cancel).await;
                match res {
                    Ok(s) => {
                        rb.commit();
                        ("created".to_string(), s)
                    }
                    Err(e) => {
                        progress.step("Failed; undoing every step");
                        let failures = rb.undo().await;
                        if !failures.is_empty() {
                            return Err(EngineError::failed(
                                format!("{e}; and the rollback could not undo: {}", failures.join("; ")),
                                "remove what is left with `sandbox rm NAME`",
                            ));
                        }
                        return Err(e);
                    }
                }
            }
        };
        Ok(StartResult { action, sandbox, seconds: started.elapsed().as_secs_f64() })
    }

    async fn create(
        &self,
        o: &StartOptions,
        v: &Validated,
        progress: &dyn Progress,
        rb: &mut Rollback,
        cancel: &CancellationToken,
    ) -> Result<Sandbox> {
        let check = || if cancel.is_cancelled() { Err(EngineError::Cancelled) } else { Ok(()) };
        let name = o.name.as_str();
        let instance = instance_name(name);
        // --from inherits repo, stack and egress settings.
        let mut stack = o.stack.clone();
        let mut repo = v.repo.clone();
        let mut restrict = o.restrict_domains;
        let mut domains_file = o.domains_file.as_ref().map(|p| p.display().to_string());
        if let Some(from) = &o.from {
            let src = sandbox::get(&self.incus, from).await?.ok_or_else(|| {
                EngineError::not_found(
                    format!("sandbox '{from}'"),
                    "`sandbox list` shows the sandboxes you can branch from",
                )
            })?;
            stack = stack.or(src.stack.clone());
            repo = repo.or(src.repo.clone());
            restrict |= src.egress == "filtered";
            if domains_file.is_none() {
                let inst = self.incus.instance(&src.instance).await?;
                domains_file = inst.setting(keys::DOMAINS_FILE).map(str::to_owned);
            }
        }
        if let Some(t) = &o.target {
            self.check_member(t).await?;
        }
        let stack = stack.unwrap_or_else(default_stack);
        let golden = golden_name(&stack);
        let Some(golden_config) = golden::ready_config(&self.incus, &golden).await? else {
            stacks::find(&stack)?; // unknown stack → the list of available ones
            return Err(EngineError::not_found(
                format!("golden image {golden}/{READY}"),
                format!("build it first: sandbox setup --stack {stack}"),
            ));
        };
        // Ours carry identity templates (Incus writes the files); the seed's get them pushed.
        let carried = identity::carried_by(&golden_config);
        if self.fault("before-copy") {
            return Err(EngineError::failed("injected failure before copy (SANDBOX_FAULT)", ""));
        }
        check()?;
        // Credentials before the container: a refused key or a missing token fails fast, and
        // every step registers its undo (key files, GitHub registration, agent).
        let repo_ref = repo.as_deref().map(RepoRef::parse).transpose()?;
        if v.branch.is_some() && repo_ref.is_none() {
            return Err(EngineError::invalid(
                "branch",
                "--branch needs a repository",
                "give REPO_URL (or --from a sandbox that has one)",
            ));
        }
        let source = match &v.ssh_key {
            Some(k) => KeySource::User(k.clone()),
            None => KeySource::Deploy { read_only: o.read_only_key },
        };
        let uses_agent = repo_ref.is_some() || v.ssh_key.is_some();
        let mut cred_config = Vec::new();
        if let Some(r) = &repo_ref {
            cred_config = self.prepare_credentials(name, r, &source, &o.github_token, progress, rb).await?;
        } else if let Some(k) = &v.ssh_key {
            progress.step("Starting the sandbox's ssh-agent on the host");
            let n = name.to_string();
            rb.push(format!("stop ssh-agent of {n}"), async move {
                creds::agent::stop(&n).map_err(|e| anyhow::anyhow!("{e}"))
            });
            creds::agent::fresh(&self.host, name, k).await?;
        }
        check()?;
        hostnet::ensure(&self.host, BRIDGE).await?;
        let env = merge_env(user_env(), &v.env);
        let env_file = env_script(&env);
        let (host_private, host_public) = sshcfg::generate_ed25519(&format!("root@{name}"))?;
        let authorized = sshcfg::authorized_keys()?;

        // Slot, ports and the instance record under one host-wide lock: concurrent creates get
        // distinct slots, and the instance itself then holds the slot.
        progress.step(&format!("Creating {instance} from {golden}/{READY}"));
        let guard = lock::acquire().await?;
        // Independent reads, at once.
        let (all, net, clustered) = futures::future::try_join3(
            async { Ok::<_, EngineError>(sandbox::list(&self.incus).await?) },
            async { Ok::<_, EngineError>(self.incus.network(BRIDGE).await?) },
            golden::is_clustered(&self.incus),
        )
        .await?;
        if all.iter().any(|s| s.name == name) {
            return Err(EngineError::Conflict { what: format!("sandbox '{name}'"), hint: "pick another name".into() });
        }
        let used_slots: BTreeSet<u32> = all.iter().filter_map(|s| s.slot).collect();
        let used_ports = ports_in_use(&all);
        let slot = match o.slot {
            Some(s) => {
                if let Some(holder) = all.iter().find(|x| x.slot == Some(s)) {
                    return Err(EngineError::invalid(
                        "slot",
                        format!("slot {s} is held by sandbox '{}'", holder.name),
                        "omit --slot to get a free one",
                    ));
                }
                for base in [SSH_PORT_BASE, APP_PORT_BASE, ALT_PORT_BASE] {
                    let p = base + s;
                    if let Some(holder) = used_ports.get(&(p as u16)) {
                        return Err(EngineError::invalid(
                            "slot",
                            format!("port {p} is held by sandbox '{holder}'"),
                            "omit --slot",
                        ));
                    }
                    if !port_free(p) {
                        return Err(EngineError::invalid(
                            "slot",
                            format!("host port {p} (slot {s}) is in use by another program"),
                            "omit --slot to get a free one",
                        ));
                    }
                }
                s
            }
            None => (1..=99)
                .find(|s| {
                    !used_slots.contains(s)
                        && [SSH_PORT_BASE, APP_PORT_BASE, ALT_PORT_BASE]
                            .iter()
                            .all(|b| !used_ports.contains_key(&((b + s) as u16)) && port_free(b + s))
                })
                .ok_or_else(|| {
                    EngineError::failed(
                        "all 99 slots are in use",
                        "remove sandboxes you no longer need (`sandbox rm NAME`)",
                    )
                })?,
        };
        let (ip, gateway, prefix) = sandbox_ip(&net, slot)?;
        let mut config = Config::new();
        let mut set = |k: &str, v: String| {
            config.insert(k.to_string(), v);
        };
        set(keys::CREATED_BY, "agent-sandboxes".into());
        // When it was asked for (a spare's instance was made earlier).
        let now = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339);
        set(keys::CREATED_AT, now.unwrap_or_default());
        // Incus restarts whatever was running when the daemon stopped (a host reboot); a sandbox
        // must only ever start through `sandbox start`, which puts its egress policy and
        // ssh-agent in place first.
        set("boot.autostart", "false".into());
        set(keys::SLOT, slot.to_string());
        // LXC configures the pinned address before init runs: the sandbox answers the host's
        // ARP (and so SSH) ~0.1 s sooner than when its own boot applies the address. eth0 is
        // the instance's only NIC, hence lxc.net.0.
        set("raw.lxc", format!("lxc.net.0.ipv4.address = {ip}/{prefix}\nlxc.net.0.ipv4.gateway = {gateway}\n"));
        set(keys::STACK, stack.clone());
        set(keys::SSH_HOST_KEY, host_public.clone());
        set(keys::ENV, serde_json::to_string(&v.env).unwrap_or_default());
        set(keys::ENV_DIGEST, env_digest(&env_file));
        if let Some(r) = &repo {
            set(keys::REPO, r.clone());
        }
        if let Some(b) = &v.branch {
            set(keys::BRANCH, b.clone());
        }
        if let Some(f) = &o.from {
            set(keys::FROM, f.clone());
        }
        if restrict || domains_file.is_some() {
            set(keys::RESTRICT_DOMAINS, "yes".into());
        }
        if let Some(f) = &domains_file {
            set(keys::DOMAINS_FILE, f.clone());
        }
        if let Some(k) = &v.ssh_key {
            set(keys::SSH_KEY, k.display().to_string());
        }
        if uses_agent {
            set(keys::AGENT, "yes".into());
        }
        for (k, val) in &cred_config {
            set(k, val.clone());
        }
        if let Some(c) = v.cpu {
            set("limits.cpu", c.to_string());
        }
        if let Some(m) = &v.memory {
            set("limits.memory", m.clone());
        }
        // The sandbox's own files: in the create request when the golden image has templates.
        let files = identity::files(identity::Identity {
            name,
            ip: &ip,
            prefix,
            gateway: &gateway,
            host_private,
            host_public: &host_public,
            env: env_file,
            authorized_keys: authorized,
        });
        debug_assert!(identity::covers(&files), "the identity templates and the pushed files differ");
        let templated = match identity::config_for(name, &files).filter(|_| carried) {
            Some(c) => {
                config.extend(c);
                true
            }
            None => false,
        };
        let mut devices = Devices::new();
        // A fixed MAC per slot, like the fixed IP: the host's neighbour cache still maps the
        // slot's IP to the MAC of the sandbox that held the slot before, and a new random MAC
        // would leave the forwarded ports silent until that entry expires.
        let mac = format!("0a:5b:5a:00:00:{slot:02x}");
        let nic: BTreeMap<String, String> = [
            ("type", "nic"),
            ("hwaddr", mac.as_str()),
            ("network", BRIDGE),
            ("name", "eth0"),
            ("ipv4.address", ip.as_str()),
            ("security.ipv4_filtering", "true"),
            ("security.mac_filtering", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        devices.insert("eth0".into(), nic);
        devices.insert(sandbox::SLOT_PORTS_DEVICE.into(), slot_ports(slot, &ip));
        let source = if clustered {
            InstanceSource::image_alias(golden::cluster_alias(&stack))
        } else {
            InstanceSource::copy(format!("{golden}/{READY}"))
        };
        let req = InstancesPost {
            name: instance.clone(),
            source,
            config,
            devices,
            kind: "container".into(),
            target: o.target.clone(),
            ..Default::default()
        };
        // The undo is registered before the call: the instance is visible (and must go) as soon
        // as Incus has its record, even if we are cancelled while the copy is still running.
        {
            let (incus, inst) = (self.incus.clone(), instance.clone());
            rb.push(format!("delete {inst}"), async move { Ok(incus.delete_force(&inst).await?) });
        }
        // A warm spare of the golden image when there is one (see spares.rs), else a copy.
        let spare_ok = templated && !clustered && o.target.is_none() && spares::enabled();
        if spare_ok && spares::claim(&self.incus, &stack, &golden_config, &instance).await {
            progress.step(&format!("Took the warm spare {}", spares::name(&stack)));
            let mut config = req.config.clone();
            config.extend(spares::claimed_config());
            self.incus.patch_instance(&instance, config, req.devices.clone()).await?;
        } else {
            self.incus.create_instance(&req).await?;
        }
        if carried && !templated {
            // The files are pushed: the image's templates must not overwrite them at the start.
            identity::disarm(&self.incus, &instance).await?;
        }
        // The ssh entries are written under the same lock (one writer of ~/.sandbox/ssh_config).
        sshcfg::add_entry(name, (SSH_PORT_BASE + slot) as u16, &host_public, self.host.ssh_jump())?;
        {
            let n = name.to_string();
            rb.push(format!("remove ssh entry for {n}"), async move {
                // Under the host lock, like every writer of the ssh files (another create may be
                // adding its entry right now).
                let _g = lock::acquire().await?;
                Ok(sshcfg::remove_entry(&n)?)
            });
        }
        drop(guard);
        if self.fault("after-copy") {
            return Err(EngineError::failed("injected failure after copy (SANDBOX_FAULT)", ""));
        }
        if self.fault("slow-after-copy") {
            // Lets tests cancel a create half-way, deterministically.
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(4)) => {}
                _ = cancel.cancelled() => {}
            }
        }
        check()?;

        // The files and the egress policy are independent: both go on at once.
        {
            let (engine, n) = (self.clone(), name.to_string());
            rb.push(format!("remove egress rules of {n}"), async move { Ok(engine.egress_unregister(&n).await?) });
        }
        if !templated {
            progress.step("Writing identity, SSH keys and environment");
        }
        let write_files = async {
            if templated {
                return Ok(());
            }
            // ~/.ssh exists in our golden images; made first for the seed's (authorized_keys needs it).
            let (keys_file, rest) = files.split_last().expect("authorized_keys is last");
            let ssh_dir = async {
                self.incus.push_dir(&instance, "/home/ubuntu/.ssh", 1000, 1000, 0o700).await?;
                self.incus.push_file(&instance, keys_file).await
            };
            let pushes = rest.iter().map(|f| self.incus.push_file(&instance, f));
            let (first, others) = futures::future::join(ssh_dir, futures::future::join_all(pushes)).await;
            first?;
            for r in others {
                r?;
            }
            Ok::<_, EngineError>(())
        };
        write_files.await?;
        check()?;
        // The egress policy goes in while the sandbox boots: until it is registered, the host's
        // rules let a sandbox address open nothing (fail closed), and the host can still reach it.
        progress.step(&format!("Starting {instance} and applying its egress policy"));
        if restrict || domains_file.is_some() {
            self.egress_prepare(name).await?;
        }
        futures::future::try_join(self.egress_register(name), async { Ok(self.incus.start(&instance).await?) }).await?;
        if self.fault("after-egress") {
            return Err(EngineError::failed("injected failure after egress (SANDBOX_FAULT)", ""));
        }
        if self.fault("after-start") {
            return Err(EngineError::failed("injected failure after start (SANDBOX_FAULT)", ""));
        }
        check()?;
        progress.step("Waiting for SSH");
        // Meanwhile the secrets the templates were rendered from leave the instance's config.
        let scrub = async {
            if templated {
                identity::scrub(&self.incus, &instance).await?;
            }
            Ok::<_, EngineError>(())
        };
        let ready = futures::future::try_join(
            self.wait_ssh(name, (SSH_PORT_BASE + slot) as u16, Duration::from_secs(40)),
            scrub,
        );
        tokio::select! {
            r = ready => { r?; }
            _ = cancel.cancelled() => return Err(EngineError::Cancelled),
        }
        if uses_agent {
            check()?;
            progress.step("Carrying the agent's socket into the sandbox");
            self.plug_agent(name, &instance).await?;
        }
        if let Some(r) = &repo_ref {
            check()?;
            let base = match &o.from {
                Some(f) => sandbox::get(&self.incus, f).await?.and_then(|s| s.branch),
                None => None,
            };
            self.clone_repo(&instance, r, v.branch.as_deref(), base.as_deref(), progress).await?;
        }
        if self.fault("after-clone") {
            return Err(EngineError::failed("injected failure after clone (SANDBOX_FAULT)", ""));
        }
        if spare_ok {
            // The next create's spare, now that this one no longer needs the CPU.
            spares::refill_in_background(&stack);
        }
        sandbox::get(&self.incus, name).await?.ok_or_else(|| EngineError::failed(format!("{instance} vanished"), ""))
    }

    async fn restart(
        &self,
        o: &StartOptions,
        v: &Validated,
        s: Sandbox,
        progress: &dyn Progress,
        _cancel: &CancellationToken,
    ) -> Result<(String, Sandbox)> {
        let mut refused = Vec::new();
        if o.stack.is_some() {
            refused.push("--stack");
        }
        if o.from.is_some() {
            refused.push("--from");
        }
        if o.branch.is_some() {
            refused.push("--branch");
        }
        if o.slot.is_some() {
            refused.push("--slot");
        }
        if o.target.is_some() {
            refused.push("--target");
        }
        if o.repo.is_some() {
            refused.push("REPO_URL");
        }
        if !refused.is_empty() {
            return Err(EngineError::invalid(
                "options",
                format!("sandbox '{}' exists; {} cannot change on restart", s.name, refused.join(", ")),
                format!(
                    "drop them, or create a new sandbox (e.g. `sandbox start {}-2 --from {} --branch B`)",
                    s.name, s.name
                ),
            ));
        }
        let mut inst = self.incus.instance(&s.instance).await?;
        if let Some(k) = &v.ssh_key {
            // --ssh-key on restart: the agent is started again with that key (never copied).
            progress.step("Switching the sandbox's agent to your key");
            let mut c = Config::new();
            c.insert(keys::SSH_KEY.into(), k.display().to_string());
            c.insert(keys::AGENT.into(), "yes".into());
            self.incus.patch_instance(&s.instance, c, Devices::new()).await?;
            creds::agent::stop(&s.name)?;
            inst = self.incus.instance(&s.instance).await?;
        }
        // The agent answers again (after a reboot, or if it was killed), with the same key.
        let uses_agent = self.revive_agent(&s.name, &inst).await?;
        if s.is_running() {
            // Re-applied every time: after a host reboot the rules are gone while Incus may
            // have started the sandbox again by itself.
            self.egress_register(&s.name).await?;
            // Started by something else (a host reboot, `incus start`): a socket plugged at boot
            // is hidden under /run, so plug it in again when the sandbox cannot see it.
            if uses_agent {
                let mut probe = [s.clone()];
                sandbox::probe_health(&self.incus, &mut probe).await;
                if v.ssh_key.is_some() || !probe[0].health.as_ref().is_some_and(|h| h.ssh_agent) {
                    progress.step("Carrying the agent's socket into the sandbox");
                    self.plug_agent(&s.name, &s.instance).await?;
                }
            }
            return Ok(("running".into(), s));
        }
        if inst.devices.contains_key(creds::AGENT_DEVICE) {
            // Plugged again after boot (see plug_agent).
            self.incus.remove_devices(&s.instance, &[creds::AGENT_DEVICE]).await?;
        }
        let mut config = Config::new();
        if let Some(c) = v.cpu {
            config.insert("limits.cpu".into(), c.to_string());
        }
        if let Some(m) = &v.memory {
            config.insert("limits.memory".into(), m.clone());
        }
        if o.restrict_domains || o.domains_file.is_some() {
            config.insert(keys::RESTRICT_DOMAINS.into(), "yes".into());
        }
        if let Some(f) = &o.domains_file {
            config.insert(keys::DOMAINS_FILE.into(), f.display().to_string());
        }
        // --env on restart adds to (or replaces) what the sandbox was created with.
        let stored: Vec<(String, String)> =
            inst.setting(keys::ENV).and_then(|j| serde_json::from_str(j).ok()).unwrap_or_default();
        let env_pairs = merge_env(stored, &v.env);
        if !v.env.is_empty() {
            config.insert(keys::ENV.into(), serde_json::to_string(&env_pairs).unwrap_or_default());
        }
        if !config.is_empty() {
            progress.step("Applying new settings");
            self.incus.patch_instance(&s.instance, config, Devices::new()).await?;
        }
        if s.managed {
            // Written again only when it changed: a files-API call leaves Incus's file helper
            // running for a while, and a start right after it waits up to a second for it.
            let script = env_script(&merge_env(user_env(), &env_pairs));
            let digest = env_digest(&script);
            if inst.setting(keys::ENV_DIGEST) != Some(digest.as_str()) {
                self.incus
                    .push_file(&s.instance, &FileWrite::root("/etc/profile.d/sandbox-env.sh", script, 0o644))
                    .await?;
                let mut c = Config::new();
                c.insert(keys::ENV_DIGEST.into(), digest);
                self.incus.patch_instance(&s.instance, c, Devices::new()).await?;
            }
        } else if !v.env.is_empty() {
            // Seed sandboxes: append, as the seed does, but quoted.
            let mut cur = self.incus.pull_file(&s.instance, "/etc/profile.d/sandbox-env.sh").await.unwrap_or_default();
            cur.extend_from_slice(env_script(&v.env).as_bytes());
            self.incus.push_file(&s.instance, &FileWrite::root("/etc/profile.d/sandbox-env.sh", cur, 0o644)).await?;
        }
        if !s.managed {
            // Seed sandboxes: let the managed key in too (appended; their own keys stay).
            let mut keys =
                self.incus.pull_file(&s.instance, "/home/ubuntu/.ssh/authorized_keys").await.unwrap_or_default();
            let ours = sshcfg::authorized_keys()?;
            let have = String::from_utf8_lossy(&keys).to_string();
            for line in ours.lines().filter(|l| !have.contains(*l)) {
                keys.extend_from_slice(format!("{line}\n").as_bytes());
            }
            self.incus.push_dir(&s.instance, "/home/ubuntu/.ssh", 1000, 1000, 0o700).await?;
            let f = FileWrite {
                path: "/home/ubuntu/.ssh/authorized_keys",
                content: keys,
                uid: 1000,
                gid: 1000,
                mode: 0o600,
            };
            self.incus.push_file(&s.instance, &f).await?;
        }
        hostnet::ensure(&self.host, BRIDGE).await?;
        // As on create: the policy goes in while it boots (fail closed until then).
        progress.step(&format!("Starting {} and applying its egress policy", s.instance));
        if s.egress == "filtered" || o.restrict_domains || o.domains_file.is_some() {
            self.egress_prepare(&s.name).await?;
        }
        let (policy, started) =
            futures::future::join(self.egress_register(&s.name), self.incus.start(&s.instance)).await;
        if policy.is_err() || started.is_err() {
            // Back to where it was: stopped, with no rules.
            if started.is_ok() {
                let _ = self.incus.stop(&s.instance, true).await;
            }
            let _ = self.egress_unregister(&s.name).await;
            return Err(match started {
                Err(e) => e.into(),
                Ok(()) => policy.expect_err("one of them failed"),
            });
        }
        // The ssh entry: from the stored host key, or (seed sandboxes) read from the sandbox.
        let host_key = match inst.setting(keys::SSH_HOST_KEY) {
            Some(k) => Some(k.to_string()),
            None => self
                .incus
                .pull_file(&s.instance, "/etc/ssh/ssh_host_ed25519_key.pub")
                .await
                .ok()
                .map(|b| String::from_utf8_lossy(&b).trim().to_string()),
        };
        if let (Some(port), Some(key)) = (s.ssh_port(), host_key) {
            {
                let _g = lock::acquire().await?;
                sshcfg::add_entry(&s.name, port, &key, self.host.ssh_jump())?;
            }
            progress.step("Waiting for SSH");
            self.wait_ssh(&s.name, port, Duration::from_secs(40)).await?;
        }
        if uses_agent {
            progress.step("Carrying the agent's socket into the sandbox");
            self.plug_agent(&s.name, &s.instance).await?;
        }
        let s = sandbox::get(&self.incus, &s.name).await?.ok_or_else(|| EngineError::failed("sandbox vanished", ""))?;
        Ok(("restarted".into(), s))
    }

    /// Test-only fault injection: `SANDBOX_FAULT=<point>` makes create fail there.
    pub(crate) fn fault(&self, point: &str) -> bool {
        std::env::var("SANDBOX_FAULT").is_ok_and(|v| v == point)
    }
}

pub fn default_stack() -> String {
    std::env::var("SANDBOX_DEFAULT_STACK").ok().filter(|s| !s.is_empty()).unwrap_or_else(|| "base".into())
}
