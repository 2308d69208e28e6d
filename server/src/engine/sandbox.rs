//! What a sandbox is, read back from Incus (the only source of truth): config keys
//! `user.sandbox.*`, devices, state. Works for sandboxes made by the seed's scripts too.
use std::time::Duration;

use serde::Serialize;

use super::listen::{self, Listener};
use super::ports::{Held, PortRole, SLOT_PORTS, SLOT_PORTS_DEVICE};
use super::review::record::{ChangeSummary, PullRequest};
use super::validate::{INSTANCE_PREFIX, Proto, sandbox_of};
use super::{keys, sshcfg};
use crate::incus::{ExecSpec, Incus, Instance};

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub struct PortForward {
    /// Incus device name (`ports` for ssh/app/alt together; the seed's `ssh-proxy`, `app-proxy`,
    /// `alt-proxy`; `port-PORT-PROTO` for `expose`).
    pub device: String,
    pub role: PortRole,
    pub proto: Proto,
    pub host_port: u16,
    pub container_port: u16,
}

/// Docker in the sandbox (`systemctl is-active docker`, or absent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub enum DockerState {
    Active,
    Inactive,
    Failed,
    /// Not installed (the stack has no Docker).
    Absent,
    Unknown,
}

impl DockerState {
    fn from_systemctl(s: &str) -> Self {
        match s {
            "active" => Self::Active,
            "inactive" => Self::Inactive,
            "failed" => Self::Failed,
            "absent" => Self::Absent,
            _ => Self::Unknown,
        }
    }
}

/// A sandbox's state as Incus reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub enum SandboxState {
    Running,
    Stopped,
    Frozen,
    Error,
    Starting,
    Stopping,
    /// Anything else Incus may say (a state newer than this code).
    Unknown,
}

impl SandboxState {
    /// From Incus's `status` ("Running", "Stopped", …).
    pub fn from_incus(status: &str) -> Self {
        match status.to_ascii_lowercase().as_str() {
            "running" => Self::Running,
            "stopped" => Self::Stopped,
            "frozen" => Self::Frozen,
            "error" => Self::Error,
            "starting" => Self::Starting,
            "stopping" => Self::Stopping,
            _ => Self::Unknown,
        }
    }
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    pub docker: DockerState,
    pub ssh_agent: bool,
    /// Claude Code can reach the API with a credential (host, env or login).
    pub claude_auth: bool,
    pub claude: ClaudeAuth,
    /// The `claude` command is in the sandbox (a stack may lack it).
    pub claude_installed: bool,
    /// TCP ports something listens on in the sandbox (what a forwarded port reaches).
    pub listening: Vec<Listener>,
}

/// Where Claude Code in the sandbox gets its credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, Default, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub enum ClaudeAuth {
    /// From the host, through its proxy: the sandbox holds only a placeholder.
    Host,
    /// Through the host's proxy, but no credential is set there (`sandbox auth set anthropic`).
    HostUnset,
    /// A credential in the sandbox's environment (`--env`, ~/.sandbox/env): works, readable inside.
    Env,
    /// Signed in inside the sandbox (~/.claude/.credentials.json).
    Login,
    #[default]
    None,
}

impl ClaudeAuth {
    fn of(env: bool, login: bool, endpoint: bool, host_set: bool) -> Self {
        match (env, endpoint, host_set, login) {
            (true, ..) => Self::Env,
            (false, true, true, _) => Self::Host,
            (false, true, false, _) => Self::HostUnset,
            (false, false, _, true) => Self::Login,
            _ => Self::None,
        }
    }
    pub fn works(self) -> bool {
        matches!(self, Self::Host | Self::Env | Self::Login)
    }
}

/// What a sandbox may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub enum Egress {
    /// DNS, SSH, HTTP(S) anywhere (never other sandboxes or the host's services).
    Open,
    /// HTTPS and HTTP only to the allowlist, DNS only for its names.
    Filtered,
}

/// How a sandbox's pushes reach its repository's server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub enum Push {
    /// Through the host's push gate: its own branch only.
    Gate,
    /// Straight to the server with its key (`--allow-push-any`): anything the key may.
    Any,
    /// No repository.
    None,
}

/// A sandbox whose create has not finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub enum Incomplete {
    /// A process is creating it now.
    Creating,
    /// Its create was interrupted (the process was killed): `sandbox start NAME` makes it again,
    /// `sandbox rm NAME` removes it; a sidecar starting removes it too.
    Interrupted,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub struct Sandbox {
    pub name: String,
    pub instance: String,
    pub state: SandboxState,
    pub slot: Option<u32>,
    pub stack: Option<String>,
    pub repo: Option<String>,
    pub branch: Option<String>,
    pub ip: Option<String>,
    pub ports: Vec<PortForward>,
    pub egress: Egress,
    pub push: Push,
    pub cpu: Option<String>,
    pub memory: Option<String>,
    pub created_at: String,
    /// Cluster member the sandbox runs on (absent on a single server).
    pub location: Option<String>,
    /// Why it cannot be reached now (its cluster member is down); absent when it can.
    pub unreachable: Option<String>,
    /// Created by this product (false: by the seed's scripts).
    pub managed: bool,
    pub health: Option<Health>,
    /// Its host in ~/.sandbox/ssh_config (`ssh -F CONFIG ALIAS`; Remote-SSH's host name).
    pub ssh_alias: String,
    /// Tokens used through the host's Anthropic proxy (absent before the first request).
    pub usage: Option<crate::engine::anthropic::usage::Usage>,
    /// What its Claude Code sessions are doing (from their hooks).
    pub agent: crate::engine::agents::Agent,
    /// The prepared image it was created from (its repository's dependencies were installed).
    pub prepared: Option<String>,
    /// Its snapshots made through us (checkpoints among them), oldest first.
    pub snapshots: Vec<crate::engine::snapshots::meta::SnapshotInfo>,
    /// Has the host's Anthropic endpoint (the `anthropic` device).
    #[serde(skip)]
    #[ts(skip)]
    pub claude_endpoint: bool,
    /// This user can reach it over SSH: its entry is in this user's ~/.sandbox/ssh_config. False
    /// for a sandbox another user (or another SANDBOX_HOME) made: `sandbox adopt NAME`.
    pub reachable: bool,
    /// The branch a pull request goes to (where the sandbox's branch started).
    pub base_branch: Option<String>,
    /// What the agent changed, as of the last diff (`sandbox diff`, or the end of an agent's turn).
    pub changes: Option<ChangeSummary>,
    /// The pull request opened with `sandbox pr`.
    pub pull_request: Option<PullRequest>,
    /// Its create has not finished (absent once it has).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional, inline)]
    pub incomplete: Option<Incomplete>,
    /// The size of its root disk (`--disk`, else the default), as Incus has it.
    pub disk: Option<String>,
}

impl Sandbox {
    pub fn ssh_port(&self) -> Option<u16> {
        self.ports.iter().find(|p| p.role == PortRole::Ssh).map(|p| p.host_port)
    }
    pub fn is_running(&self) -> bool {
        self.state == SandboxState::Running
    }
}

/// `tcp:127.0.0.1:2201,8001,9001` → (tcp, [2201, 8001, 9001]); ranges (`80-82`) expanded.
pub fn parse_addr_ports(addr: &str) -> Option<(Proto, Vec<u16>)> {
    let (proto, rest) = addr.split_once(':')?;
    let proto = match proto {
        "tcp" => Proto::Tcp,
        "udp" => Proto::Udp,
        _ => return None,
    };
    let mut ports = Vec::new();
    for part in rest.rsplit(':').next()?.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u16, u16) = (a.parse().ok()?, b.parse().ok()?);
                if b < a || b - a > 1000 {
                    return None;
                }
                ports.extend(a..=b);
            }
            None => ports.push(part.parse().ok()?),
        }
    }
    Some((proto, ports))
}

/// One proxy device's forwards, paired listen → connect (a single connect port takes them all).
fn forwards(dev: &str, cfg: &std::collections::BTreeMap<String, String>) -> Vec<PortForward> {
    let (Some((proto, listen)), Some((_, connect))) =
        (cfg.get("listen").and_then(|l| parse_addr_ports(l)), cfg.get("connect").and_then(|c| parse_addr_ports(c)))
    else {
        return Vec::new();
    };
    if connect.len() != 1 && connect.len() != listen.len() {
        return Vec::new();
    }
    let role = |container_port: u16| match dev {
        "ssh-proxy" => Some(PortRole::Ssh),
        "app-proxy" => Some(PortRole::App),
        "alt-proxy" => Some(PortRole::Alt),
        SLOT_PORTS_DEVICE => SLOT_PORTS.iter().find(|(_, _, p)| *p == container_port).map(|(r, _, _)| *r),
        d if d.starts_with("port-") => Some(PortRole::Extra),
        _ => None,
    };
    listen
        .iter()
        .enumerate()
        .filter_map(|(i, &host_port)| {
            let container_port = if connect.len() == 1 { connect[0] } else { connect[i] };
            Some(PortForward { device: dev.to_string(), role: role(container_port)?, proto, host_port, container_port })
        })
        .collect()
}

/// Egress only to an allowlist (`--restrict-domains` or `--domains-file`).
pub fn is_restricted(inst: &Instance) -> bool {
    inst.setting(keys::RESTRICT_DOMAINS).is_some_and(|v| v == "yes" || v == "true")
        || inst.setting(keys::DOMAINS_FILE).is_some()
}

pub fn from_instance(inst: &Instance) -> Option<Sandbox> {
    let name = sandbox_of(&inst.name)?.to_string();
    let ssh_alias = sshcfg::host_alias(&name);
    let reachable = sshcfg::has_entry(&name);
    let devices = if inst.expanded_devices.is_empty() { &inst.devices } else { &inst.expanded_devices };
    let mut ports = Vec::new();
    for (dev, cfg) in devices {
        if cfg.get("type").map(String::as_str) == Some("proxy") {
            ports.extend(forwards(dev, cfg));
        }
    }
    ports.sort_by_key(|p| (p.role, p.container_port, p.proto));
    let ip = devices.get("eth0").and_then(|d| d.get("ipv4.address")).cloned().or_else(|| inst.state.as_ref()?.ipv4());
    let key = |k: &str| inst.setting(k).map(str::to_owned);
    let restricted = is_restricted(inst);
    Some(Sandbox {
        name,
        instance: inst.name.clone(),
        state: SandboxState::from_incus(&inst.status),
        slot: key(keys::SLOT).and_then(|s| s.parse().ok()),
        stack: key(keys::STACK),
        repo: key(keys::REPO),
        branch: key(keys::BRANCH),
        ip,
        ports,
        egress: if restricted { Egress::Filtered } else { Egress::Open },
        push: match inst.setting(keys::PUSH) {
            Some(super::gate::PUSH_GATE) => Push::Gate,
            // A repository from before the gate: its agent is plugged in.
            _ if inst.setting(keys::REPO).is_some() => Push::Any,
            _ => Push::None,
        },
        cpu: inst.config.get("limits.cpu").cloned(),
        memory: inst.config.get("limits.memory").cloned(),
        // A sandbox made from a spare was created (as the spare) earlier than it was asked for.
        created_at: key(keys::CREATED_AT).unwrap_or_else(|| inst.created_at.clone()),
        location: Some(inst.location.clone()).filter(|l| !l.is_empty() && l != "none"),
        unreachable: None,
        managed: key(keys::CREATED_BY).is_some(),
        health: None,
        reachable,
        ssh_alias,
        usage: crate::engine::anthropic::usage::Usage::from_config(
            inst.config.get(crate::engine::anthropic::usage::KEY).map(String::as_str),
        ),
        prepared: key(keys::PREPARED_FROM),
        snapshots: crate::engine::snapshots::meta::from_config(&inst.config),
        claude_endpoint: devices.contains_key(crate::engine::anthropic::DEVICE),
        agent: crate::engine::agents::Agent::from_config(&inst.config, inst.status.eq_ignore_ascii_case("running")),
        base_branch: key(keys::BASE_BRANCH),
        changes: ChangeSummary::from_config(inst.setting(keys::CHANGES)),
        pull_request: PullRequest::from_config(inst.setting(keys::PULL_REQUEST)),
        incomplete: incomplete(inst),
        disk: devices.get("root").and_then(|d| d.get("size")).cloned(),
    })
}

/// How a command runs in a sandbox: as ubuntu, in /workspace/project, with a login environment.
/// The command's words are passed as arguments (`"$@"`), never parsed by a shell.
pub fn project_exec(command: impl IntoIterator<Item = String>) -> ExecSpec {
    let mut argv = vec![
        "bash".to_string(),
        "-lc".into(),
        r#"cd /workspace/project 2>/dev/null || cd; exec "$@""#.into(),
        "sandbox-exec".into(),
    ];
    argv.extend(command);
    ExecSpec::new(argv).as_user(1000, 1000, "/home/ubuntu").env("USER", "ubuntu").env("LOGNAME", "ubuntu")
}

/// How `list` marks a sandbox whose create has not finished (see journal.rs).
fn incomplete(inst: &Instance) -> Option<Incomplete> {
    if !super::journal::half_made(inst) {
        return None;
    }
    let name = sandbox_of(&inst.name)?;
    Some(if super::journal::still_creating(name, inst) { Incomplete::Creating } else { Incomplete::Interrupted })
}

/// The slots and host ports these sandboxes hold.
pub fn held(all: &[Sandbox]) -> Held {
    Held {
        slots: all.iter().filter_map(|s| Some((s.slot?, s.name.clone()))).collect(),
        ports: all.iter().flat_map(|s| s.ports.iter().map(move |p| (p.host_port, s.name.clone()))).collect(),
    }
}

/// Every sandbox, in one Incus call.
pub async fn list(incus: &Incus) -> crate::incus::Result<Vec<Sandbox>> {
    let mut out: Vec<Sandbox> = incus
        .instances()
        .await?
        .iter()
        .filter(|i| i.name.starts_with(INSTANCE_PREFIX))
        .filter_map(from_instance)
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    mark_unreachable(incus, &mut out).await;
    Ok(out)
}

/// On a cluster, Incus still lists the sandboxes of a member it cannot reach (from its database),
/// in state Error. Say which member and why: the members' own status once they have missed their
/// heartbeats (~20 s), before that a state request that does not come back within a second (a
/// sandbox in a real error on a live member answers at once). Calls made only for such sandboxes.
async fn mark_unreachable(incus: &Incus, sandboxes: &mut [Sandbox]) {
    let lost = |s: &Sandbox| s.state == SandboxState::Error && s.location.is_some();
    if !sandboxes.iter().any(lost) {
        return;
    }
    let members = incus.cluster_members().await.unwrap_or_default();
    let reasons = futures::future::join_all(sandboxes.iter().filter(|s| lost(s)).map(|s| {
        let loc = s.location.clone().unwrap_or_default();
        let member = members.iter().find(|m| m.server_name == loc);
        async move {
            if let Some(m) = member.filter(|m| !m.status.eq_ignore_ascii_case("online")) {
                return Some(format!("its cluster member {loc} is {}: {}", m.status.to_lowercase(), m.message));
            }
            match tokio::time::timeout(Duration::from_secs(1), incus.instance_state(&s.instance)).await {
                Ok(Ok(_)) => None,
                _ => Some(format!(
                    "its cluster member {loc} does not answer (its Incus daemon is stopped or unreachable)"
                )),
            }
        }
    }))
    .await;
    for (s, why) in sandboxes.iter_mut().filter(|s| lost(s)).zip(reasons) {
        s.unreachable = why;
    }
}

pub async fn get(incus: &Incus, name: &str) -> crate::incus::Result<Option<Sandbox>> {
    match incus.instance(&super::validate::instance_name(name)).await {
        Ok(i) => Ok(from_instance(&i)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

const HEALTH_PROBE: &str = r#"
if command -v docker >/dev/null 2>&1; then d=$(systemctl is-active docker 2>/dev/null); echo "docker=${d:-unknown}"; else echo docker=absent; fi
if [ -S /run/ssh-agent.sock ]; then echo agent=yes; else echo agent=no; fi
if [ -s /home/ubuntu/.claude/.credentials.json ]; then echo login=yes; else echo login=no; fi
if grep -Eqs '(ANTHROPIC_API_KEY|ANTHROPIC_AUTH_TOKEN|CLAUDE_CODE_OAUTH_TOKEN)=' /etc/profile.d/sandbox-env.sh; then echo env=yes; else echo env=no; fi
for p in /usr/local/bin/claude /usr/bin/claude /home/ubuntu/.local/bin/claude; do [ -e "$p" ] && echo claude-bin=yes; done
"#;

/// Where stacks put the `claude` command (npm -g, the native installer).
const CLAUDE_PATHS: [&str; 3] = ["usr/local/bin/claude", "usr/bin/claude", "home/ubuntu/.local/bin/claude"];

/// Health of every running sandbox, all at once, each bounded in time. On a local daemon the
/// sandbox's filesystem is read through `/proc/<init pid>/root` (no process started in it);
/// otherwise one exec per sandbox.
pub async fn probe_health(incus: &Incus, sandboxes: &mut [Sandbox]) {
    let local = matches!(incus.endpoint(), crate::incus::Endpoint::Unix(_)) && nix::unistd::geteuid().is_root();
    tracing::debug!("health probes: {}", if local { "host-side" } else { "exec" });
    let host_set =
        crate::engine::anthropic::credential::load(crate::engine::anthropic::credential::Provider::Anthropic).is_some();
    let futs = sandboxes.iter().map(|s| {
        let incus = incus.clone();
        let endpoint = s.claude_endpoint;
        let (inst, running) = (s.instance.clone(), s.is_running());
        async move {
            if !running {
                return None;
            }
            if local {
                let pid = match init_pid_from_cgroup(&inst) {
                    Some(p) => Some(p),
                    None => match tokio::time::timeout(Duration::from_secs(3), incus.instance_state(&inst)).await {
                        Ok(Ok(state)) if state.pid > 0 => Some(state.pid as u32),
                        _ => None,
                    },
                };
                let root = pid.map(|p| std::path::PathBuf::from(format!("/proc/{p}/root")));
                if let (Some(pid), Some(root)) = (pid, root.filter(|r| r.join("etc").is_dir())) {
                    let (mut h, env, login) = health_from_root(&root);
                    h.claude = ClaudeAuth::of(env, login, endpoint, host_set);
                    h.claude_auth = h.claude.works();
                    h.listening = listen::of_pid(pid);
                    return Some(h);
                }
            }
            let spec = ExecSpec::new(["sh", "-c", &format!("{HEALTH_PROBE}{}", listen::PROBE)]);
            let out = tokio::time::timeout(Duration::from_secs(3), incus.exec(&inst, &spec)).await.ok()?.ok()?;
            let text = out.stdout_str();
            let field = |k: &str| text.lines().find_map(|l| l.strip_prefix(&format!("{k}="))).unwrap_or("").to_string();
            let claude = ClaudeAuth::of(field("env") == "yes", field("login") == "yes", endpoint, host_set);
            Some(Health {
                docker: DockerState::from_systemctl(&field("docker")),
                ssh_agent: field("agent") == "yes",
                claude_auth: claude.works(),
                claude,
                claude_installed: field("claude-bin") == "yes",
                listening: listen::parse(&text),
            })
        }
    });
    let results = futures::future::join_all(futs).await;
    for (s, h) in sandboxes.iter_mut().zip(results) {
        s.health = h;
    }
}

/// The container's init, from its cgroup (cheaper than asking Incus for the instance state).
fn init_pid_from_cgroup(instance: &str) -> Option<u32> {
    // cgroup v2 at the root, or the unified/v1 hierarchies of a hybrid layout.
    ["", "unified/", "pids/", "systemd/"].iter().find_map(|h| {
        ["init.scope/cgroup.procs", "cgroup.procs"].iter().find_map(|f| {
            let path = format!("/sys/fs/cgroup/{h}lxc.payload.{instance}/{f}");
            std::fs::read_to_string(path).ok()?.lines().next()?.trim().parse().ok()
        })
    })
}

/// The same checks as HEALTH_PROBE, read from the host side. Only booleans come out, and no
/// symlink the sandbox controls is followed at the last component. Also: (env credential, login).
fn health_from_root(root: &std::path::Path) -> (Health, bool, bool) {
    use std::os::unix::fs::FileTypeExt;
    let meta = |p: &str| std::fs::symlink_metadata(root.join(p)).ok();
    let exists = |p: &str| meta(p).is_some();
    let docker = if !exists("usr/bin/docker") && !exists("usr/bin/dockerd") {
        DockerState::Absent
    } else if exists("run/docker.pid") {
        DockerState::Active
    } else {
        DockerState::Inactive
    };
    let ssh_agent = meta("run/ssh-agent.sock").is_some_and(|m| m.file_type().is_socket());
    let login = meta("home/ubuntu/.claude/.credentials.json").is_some_and(|m| m.is_file() && m.len() > 0);
    let env = "etc/profile.d/sandbox-env.sh";
    let in_env = meta(env).is_some_and(|m| m.is_file() && m.len() < 1 << 20)
        && std::fs::read_to_string(root.join(env))
            .is_ok_and(|t| crate::engine::anthropic::CREDENTIAL_VARS.iter().any(|v| t.contains(&format!("{v}="))));
    let claude_installed = CLAUDE_PATHS.iter().any(|p| exists(p));
    let h = Health {
        docker,
        ssh_agent,
        claude_auth: false,
        claude: ClaudeAuth::None,
        claude_installed,
        listening: Vec::new(),
    };
    (h, in_env, login)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(listen: &str, connect: &str) -> std::collections::BTreeMap<String, String> {
        [("type", "proxy"), ("listen", listen), ("connect", connect)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn one_device_for_the_slot_ports_pairs_listen_with_connect() {
        let f = forwards(SLOT_PORTS_DEVICE, &dev("tcp:127.0.0.1:2203,8003,9003", "tcp:10.0.0.103:22,8080,9090"));
        let got: Vec<_> = f.iter().map(|p| (p.role, p.host_port, p.container_port)).collect();
        assert_eq!(got, [(PortRole::Ssh, 2203, 22), (PortRole::App, 8003, 8080), (PortRole::Alt, 9003, 9090)]);
    }

    #[test]
    fn seed_devices_extra_ports_ranges_and_mismatches() {
        let f = forwards("ssh-proxy", &dev("tcp:127.0.0.1:2201", "tcp:127.0.0.1:22"));
        assert_eq!((f[0].role, f[0].host_port, f[0].container_port), (PortRole::Ssh, 2201, 22));
        let f = forwards("port-7000-udp", &dev("udp:127.0.0.1:7001-7003", "udp:10.0.0.1:7000"));
        assert_eq!(f.iter().map(|p| p.host_port).collect::<Vec<_>>(), [7001, 7002, 7003]);
        assert!(f.iter().all(|p| p.role == PortRole::Extra && p.container_port == 7000 && p.proto == Proto::Udp));
        assert!(forwards("port-1-tcp", &dev("tcp:127.0.0.1:1,2,3", "tcp:10.0.0.1:4,5")).is_empty());
        assert!(forwards("somebody-elses", &dev("tcp:127.0.0.1:1", "tcp:10.0.0.1:1")).is_empty());
        assert!(forwards("port-1-tcp", &dev("tcp:127.0.0.1:x", "tcp:10.0.0.1:1")).is_empty());
    }
}
