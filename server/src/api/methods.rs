//! Params, results and handlers of the method table. Handlers validate through the engine (the
//! boundary checks live there) and serialise work per sandbox.
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use super::{Api, ApiError, CallCx};
pub use crate::engine::anthropic::credential::CredentialStatus;
use crate::engine::anthropic::credential::{self, CredentialKind, Provider};
pub use crate::engine::create::{CreateOptions, StartResult};
use crate::engine::creds::Token;
pub use crate::engine::doctor::Check;
pub use crate::engine::egress::{Allowlist, denials::Denial};
use crate::engine::golden;
pub use crate::engine::golden::GoldenInfo;
use crate::engine::recover::Found;
pub use crate::engine::sandbox::{PortForward, Sandbox};
pub use crate::engine::setup::SetupReport;
use crate::engine::setup::{Rebuild, SetupOptions};
use crate::engine::{EngineError, doctor, sandbox, sshcfg, validate};
use crate::incus::Stream;
use crate::progress::LineSplitter;

type R<T> = Result<T, ApiError>;

/// No params (send `{}`).
#[derive(Debug, Default, Deserialize, Serialize, TS)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// An empty success.
#[derive(Debug, Default, Deserialize, Serialize, TS)]
pub struct Done {}

#[derive(Debug, Default, Deserialize, Serialize, TS)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[ts(optional_fields)]
pub struct ListParams {
    /// Include health probes (docker, ssh-agent, Claude auth). Default true.
    pub health: Option<bool>,
}

#[derive(Debug, Deserialize, Serialize, TS)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NameParams {
    pub name: String,
}

#[derive(Debug, Deserialize, Serialize, TS)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamesParams {
    pub names: Vec<String>,
}

#[derive(Debug, Deserialize, Serialize, TS)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[ts(optional_fields)]
pub struct DestroyParams {
    pub names: Vec<String>,
    /// GitHub token to delete deploy keys with; else GH_TOKEN, GITHUB_TOKEN, `gh auth token`.
    pub github_token: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize, TS)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[ts(optional_fields)]
pub struct StartParams {
    pub name: String,
    pub cpu: Option<String>,
    pub memory: Option<String>,
    pub env: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, Serialize, TS)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[ts(optional_fields)]
pub struct DomainsParams {
    pub name: String,
    /// `example.com` (exactly that name), `.example.com` (it and every subdomain) or `@LIST`
    /// (an extra list: allowlists/extra/LIST.txt).
    pub domains: Vec<String>,
    /// allow only: also add them to ~/.sandbox/allowed-domains.txt (every sandbox without its
    /// own domains file).
    pub everywhere: Option<bool>,
}

#[derive(Debug, Deserialize, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct NameOutcome {
    pub name: String,
    pub ok: bool,
    pub error: Option<ApiError>,
}

#[derive(Debug, Deserialize, Serialize, TS)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[ts(optional_fields)]
pub struct ExposeParams {
    pub name: String,
    pub port: u32,
    /// Default: tcp.
    pub proto: Option<ExposeProto>,
    pub host_port: Option<u32>,
    /// A host port below 1024 is refused unless this is true.
    pub allow_low_port: Option<bool>,
}

/// Which protocols `expose` forwards.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub enum ExposeProto {
    Tcp,
    Udp,
    Both,
}

#[derive(Debug, Deserialize, Serialize, TS)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UnexposeParams {
    pub name: String,
    pub port: u32,
}

#[derive(Debug, Deserialize, Serialize, TS)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExecParams {
    pub name: String,
    /// argv, run as ubuntu in /workspace/project with a login environment (no shell parsing).
    pub command: Vec<String>,
}

/// How clients reach sandboxes the way the engine set them up (one source of truth: the
/// extension derives none of it).
#[derive(Debug, Deserialize, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct HostInfo {
    /// The sidecar's version.
    pub version: String,
    /// The Incus remote in use.
    pub remote: String,
    /// The managed ssh config: `ssh -F SSH_CONFIG NAME` (or the sandbox's `sshAlias`).
    pub ssh_config: String,
    /// The same file as an `Include` line in ~/.ssh/config names it.
    pub ssh_include: String,
    /// Sandboxes that have an entry in it.
    pub ssh_entries: Vec<String>,
    /// The project directory in every sandbox (Remote-SSH opens it).
    pub project_dir: String,
}

#[derive(Debug, Deserialize, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct ExecResult {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

#[derive(Debug, Default, Deserialize, Serialize, TS)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[ts(optional_fields)]
pub struct SetupParams {
    pub stacks: Option<Vec<String>>,
    /// Stack names, or "all".
    pub rebuild: Option<Vec<String>>,
    pub base_image: Option<String>,
}

/// Stores a model credential on the host (sandboxes use it through the host's proxy).
#[derive(Deserialize, Serialize, TS)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[ts(optional_fields)]
pub struct AuthSetParams {
    pub provider: Provider,
    /// The API key or the OAuth token from `claude setup-token`: one line, never logged.
    pub credential: String,
    /// Default: from the prefix (sk-ant-oat… is an OAuth token, anything else an API key).
    pub kind: Option<CredentialKind>,
}

impl std::fmt::Debug for AuthSetParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuthSetParams({:?}, ***, {:?})", self.provider, self.kind)
    }
}

#[derive(Debug, Deserialize, Serialize, TS)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProviderParams {
    pub provider: Provider,
}

fn outcome(name: String, r: Result<(), EngineError>) -> NameOutcome {
    match r {
        Ok(()) => NameOutcome { name, ok: true, error: None },
        Err(e) => NameOutcome { name, ok: false, error: Some(e.into()) },
    }
}

impl Api {
    pub async fn list(&self, p: ListParams, _cx: CallCx) -> R<Vec<Sandbox>> {
        let mut all = sandbox::list(&self.engine.incus).await.map_err(EngineError::from)?;
        if p.health.unwrap_or(true) {
            sandbox::probe_health(&self.engine.incus, &mut all).await;
        }
        Ok(all)
    }

    pub async fn get(&self, p: NameParams, _cx: CallCx) -> R<Option<Sandbox>> {
        validate::sandbox_name(&p.name)?;
        let mut s = sandbox::get(&self.engine.incus, &p.name).await.map_err(EngineError::from)?;
        if let Some(s) = s.as_mut() {
            sandbox::probe_health(&self.engine.incus, std::slice::from_mut(s)).await;
        }
        Ok(s)
    }

    pub async fn create(&self, p: CreateOptions, cx: CallCx) -> R<StartResult> {
        validate::sandbox_name(&p.name)?;
        let _g = self.lock(&p.name).await;
        // What an interrupted create left is no sandbox: the create removes it and goes on.
        if let Found::Exists(_) = self.engine.inspect(&p.name).await? {
            return Err(EngineError::Conflict {
                what: format!("sandbox '{}'", p.name),
                hint: "pick another name, or use sandbox/start to restart it".into(),
            }
            .into());
        }
        Ok(self.engine.start(&p, cx.progress.as_ref(), &cx.cancel).await?)
    }

    pub async fn start(&self, p: StartParams, cx: CallCx) -> R<StartResult> {
        validate::sandbox_name(&p.name)?;
        let _g = self.lock(&p.name).await;
        if let Found::Absent = self.engine.inspect(&p.name).await? {
            return Err(EngineError::sandbox_not_found(&p.name).into());
        }
        let o = CreateOptions {
            name: p.name,
            cpu: p.cpu,
            memory: p.memory,
            env: p.env.unwrap_or_default(),
            ..Default::default()
        };
        Ok(self.engine.start(&o, cx.progress.as_ref(), &cx.cancel).await?)
    }

    async fn stop_or_destroy(&self, names: Vec<String>, remove: bool, token: Token) -> R<Vec<NameOutcome>> {
        let token = &token;
        let futs = names.into_iter().map(|n| async move {
            let _g = self.lock(&n).await;
            let mut r = self.engine.stop(std::slice::from_ref(&n), remove, token).await;
            let (name, res) = r.pop().unwrap_or((n, Ok(Default::default())));
            outcome(name, res.map(|_| ()))
        });
        Ok(futures::future::join_all(futs).await)
    }

    pub async fn stop(&self, p: NamesParams, _cx: CallCx) -> R<Vec<NameOutcome>> {
        self.stop_or_destroy(p.names, false, Token::default()).await
    }

    pub async fn destroy(&self, p: DestroyParams, _cx: CallCx) -> R<Vec<NameOutcome>> {
        self.stop_or_destroy(p.names, true, Token(p.github_token)).await
    }

    pub async fn expose(&self, p: ExposeParams, _cx: CallCx) -> R<Vec<PortForward>> {
        validate::sandbox_name(&p.name)?;
        let _g = self.lock(&p.name).await;
        let host = p.host_port.map(|h| h.to_string());
        let proto = match p.proto.unwrap_or(ExposeProto::Tcp) {
            ExposeProto::Tcp => "tcp",
            ExposeProto::Udp => "udp",
            ExposeProto::Both => "both",
        };
        let allow_low = p.allow_low_port.unwrap_or(false);
        Ok(self.engine.expose(&p.name, &p.port.to_string(), proto, host.as_deref(), allow_low).await?)
    }

    pub async fn unexpose(&self, p: UnexposeParams, _cx: CallCx) -> R<Done> {
        validate::sandbox_name(&p.name)?;
        let _g = self.lock(&p.name).await;
        self.engine.unexpose(&p.name, &p.port.to_string()).await?;
        Ok(Done {})
    }

    pub async fn exec(&self, p: ExecParams, cx: CallCx) -> R<ExecResult> {
        validate::sandbox_name(&p.name)?;
        validate::command(&p.command)?;
        let s = sandbox::get(&self.engine.incus, &p.name)
            .await
            .map_err(EngineError::from)?
            .ok_or_else(|| EngineError::sandbox_not_found(&p.name))?;
        let spec = sandbox::project_exec(p.command);
        // Each line goes out as progress as soon as it is printed (stdout and stderr as they
        // come); the result still carries both in full.
        let (mut out_lines, mut err_lines) = (LineSplitter::new(0), LineSplitter::new(0));
        let progress = cx.progress.clone();
        let out = self
            .engine
            .incus
            .exec_streamed(&s.instance, &spec, |stream, data| match stream {
                Stream::Stdout => out_lines.feed(data, |l| progress.line(l)),
                Stream::Stderr => err_lines.feed(data, |l| progress.line(l)),
            })
            .await
            .map_err(EngineError::from)?;
        out_lines.finish(|l| cx.progress.line(l));
        err_lines.finish(|l| cx.progress.line(l));
        Ok(ExecResult { status: out.status, stdout: out.stdout_str(), stderr: out.stderr_str() })
    }

    pub async fn setup(&self, p: SetupParams, cx: CallCx) -> R<Vec<SetupReport>> {
        let rebuild = match p.rebuild {
            Some(v) if v.iter().any(|r| r == "all") => Rebuild::All,
            Some(v) if !v.is_empty() => Rebuild::Some(v),
            _ => Rebuild::None,
        };
        let opts = SetupOptions { stacks: p.stacks.unwrap_or_default(), rebuild, base_image: p.base_image };
        let _g = self.lock("\0setup").await;
        Ok(self.engine.setup(&opts, cx.progress.clone(), &cx.cancel).await?)
    }

    pub async fn doctor(&self, _p: Empty, _cx: CallCx) -> R<Vec<Check>> {
        let mut checks = doctor::run(&self.engine.incus, &self.engine.host).await;
        if checks.iter().any(|c| c.name == "incus running" && c.ok) {
            checks.push(self.engine.orphans_check().await);
        }
        Ok(checks)
    }

    pub async fn host_info(&self, _p: Empty, _cx: CallCx) -> R<HostInfo> {
        Ok(HostInfo {
            version: env!("CARGO_PKG_VERSION").into(),
            remote: self.engine.remote.clone(),
            ssh_config: sshcfg::config_path().display().to_string(),
            ssh_include: sshcfg::include_path(),
            ssh_entries: sshcfg::entries(),
            project_dir: crate::engine::creds::PROJECT.into(),
        })
    }

    pub async fn golden_images(&self, _p: Empty, _cx: CallCx) -> R<Vec<GoldenInfo>> {
        Ok(golden::list(&self.engine.incus).await?)
    }

    pub async fn allow(&self, p: DomainsParams, _cx: CallCx) -> R<Allowlist> {
        validate::sandbox_name(&p.name)?;
        let _g = self.lock(&p.name).await;
        Ok(self.engine.change_allowlist(&p.name, &p.domains, true, p.everywhere.unwrap_or(false)).await?)
    }

    pub async fn deny(&self, p: DomainsParams, _cx: CallCx) -> R<Allowlist> {
        validate::sandbox_name(&p.name)?;
        let _g = self.lock(&p.name).await;
        Ok(self.engine.change_allowlist(&p.name, &p.domains, false, p.everywhere.unwrap_or(false)).await?)
    }

    pub async fn adopt(&self, p: NameParams, _cx: CallCx) -> R<Sandbox> {
        validate::sandbox_name(&p.name)?;
        let _g = self.lock(&p.name).await;
        Ok(self.engine.adopt(&p.name).await?)
    }

    pub async fn denials(&self, p: NameParams, _cx: CallCx) -> R<Vec<Denial>> {
        Ok(self.engine.denials(&p.name).await?)
    }

    pub async fn auth_status(&self, _p: Empty, _cx: CallCx) -> R<Vec<CredentialStatus>> {
        Ok(vec![credential::status(Provider::Anthropic)])
    }

    pub async fn auth_set(&self, p: AuthSetParams, _cx: CallCx) -> R<CredentialStatus> {
        Ok(credential::store(p.provider, &p.credential, p.kind)?)
    }

    pub async fn auth_remove(&self, p: ProviderParams, _cx: CallCx) -> R<CredentialStatus> {
        Ok(credential::remove(p.provider)?)
    }
}
