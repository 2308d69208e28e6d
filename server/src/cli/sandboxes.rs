//! `sandbox start | list | stop | rm | expose | unexpose | exec | adopt | nuke`.
use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use clap::Args;

use super::{Ctx, output};
use crate::engine::create::{CreateOptions, StartAction};
use crate::engine::creds::Token;
use crate::engine::ports::PortRole;
use crate::engine::sandbox::{self, ClaudeAuth, Sandbox};
use crate::engine::teardown::Outcome;
use crate::engine::{EngineError, Result, sshcfg, validate};

#[derive(Debug, Args)]
pub struct StartArgs {
    #[command(flatten)]
    options: CreateOptions,
    /// Print the result (action, sandbox, seconds) as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long)]
    json: bool,
    /// Skip the health probes (docker, ssh-agent, Claude auth).
    #[arg(long)]
    no_health: bool,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    #[arg(required = true)]
    names: Vec<String>,
    /// Remove the sandbox too (same as `sandbox rm`).
    #[arg(long)]
    rm: bool,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    #[arg(required = true)]
    names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ExposeArgs {
    name: String,
    port: String,
    /// tcp, udp or both.
    #[arg(default_value = "tcp")]
    proto: String,
    /// Host port (default: PORT + slot). Always bound on 127.0.0.1.
    #[arg(long)]
    host_port: Option<String>,
    /// Allow a host port below 1024 (refused otherwise: a system service may want it).
    #[arg(long)]
    allow_low_port: bool,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct UnexposeArgs {
    name: String,
    port: String,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Sandboxes, then `--`, then the command.
    #[arg(required = true)]
    names: Vec<String>,
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct AdoptArgs {
    name: String,
}

#[derive(Debug, Args)]
pub struct NukeArgs {
    /// Do not ask for confirmation.
    #[arg(long)]
    yes: bool,
    /// macOS: also delete the OrbStack machine that runs Incus (asked separately otherwise).
    #[arg(long)]
    delete_vm: bool,
}

pub async fn start(ctx: &Ctx, a: StartArgs) -> Result<ExitCode> {
    let r = ctx.engine.start(&a.options, ctx.progress.as_ref(), &ctx.cancel).await?;
    print_start(&r, a.json);
    Ok(ExitCode::SUCCESS)
}

/// A start's (or fork's) result: JSON, or how to reach the sandbox.
pub fn print_start(r: &crate::engine::create::StartResult, json: bool) {
    if json {
        output::json(r);
    } else {
        let s = &r.sandbox;
        match r.action {
            StartAction::Running => outln!("{} is already running", s.name),
            act => outln!("{} {} in {:.2}s", s.name, output::word(&act), r.seconds),
        }
        outln!("  ssh:   ssh -F {} {}", sshcfg::config_path().display(), s.name);
        for p in &s.ports {
            outln!(
                "  {:<6} 127.0.0.1:{} → {}/{}",
                format!("{}:", output::word(&p.role)),
                p.host_port,
                p.container_port,
                output::word(&p.proto)
            );
        }
        if let Some(p) = &s.prepared {
            println!("  from the prepared image {p} (dependencies installed)");
        }
    }
}

pub async fn list(ctx: &Ctx, a: ListArgs) -> Result<ExitCode> {
    let mut all = sandbox::list(&ctx.engine.incus).await?;
    if !a.no_health {
        sandbox::probe_health(&ctx.engine.incus, &mut all).await;
    }
    if a.json {
        output::json(&all);
        return Ok(ExitCode::SUCCESS);
    }
    if all.is_empty() {
        outln!("no sandboxes — create one with `sandbox start NAME [REPO_URL] --stack STACK`");
        return Ok(ExitCode::SUCCESS);
    }
    // A cluster: where each runs, second column.
    let clustered = all.iter().any(|s| s.location.is_some());
    let mut rows: Vec<Vec<String>> = all.iter().map(row).collect();
    let mut header = vec![
        "NAME",
        "STATE",
        "AGENT",
        "SLOT",
        "SSH",
        "APP",
        "ALT",
        "EXTRA",
        "EGRESS",
        "PUSH",
        "DISK",
        "DOCKER",
        "SSH-AGENT",
        "CLAUDE",
        "TOKENS",
        "REPO",
        "CHANGES",
        "IP",
    ];
    if clustered {
        header.insert(2, "MEMBER");
        for (r, s) in rows.iter_mut().zip(&all) {
            r.insert(2, s.location.clone().unwrap_or("-".into()));
        }
    }
    output::table(&header, &rows);
    for s in all.iter() {
        if let Some(why) = &s.unreachable {
            errln!("{}: unreachable: {why}", s.name);
        }
    }
    let claude = |c: ClaudeAuth| all.iter().any(|s| s.health.as_ref().is_some_and(|h| h.claude == c));
    if claude(ClaudeAuth::HostUnset) {
        errln!("hint: no Anthropic credential on the host for Claude Code: sandbox auth set anthropic");
    }
    if claude(ClaudeAuth::Env) {
        errln!(
            "warning: CLAUDE 'env': a credential in the sandbox's environment is readable inside; sandbox auth set anthropic keeps it on the host"
        );
    }
    if all.iter().any(|s| !s.reachable) {
        errln!(
            "* not reachable from here: made by another user (or SANDBOX_HOME); `sandbox adopt NAME` adds your SSH key and entry"
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn row(s: &Sandbox) -> Vec<String> {
    let port =
        |role: PortRole| s.ports.iter().find(|p| p.role == role).map(|p| p.host_port.to_string()).unwrap_or("-".into());
    let extra: Vec<String> = s
        .ports
        .iter()
        .filter(|p| p.role == PortRole::Extra)
        .map(|p| format!("{}→{}/{}", p.host_port, p.container_port, output::word(&p.proto)))
        .collect();
    let (docker, ssh_agent, claude) = match &s.health {
        Some(h) => (output::word(&h.docker), yes_no(h.ssh_agent), claude_cell(h.claude).into()),
        None => ("-".into(), "-".into(), "-".into()),
    };
    let repo = match (&s.repo, &s.branch) {
        (Some(r), Some(b)) => format!("{r} ({b})"),
        (Some(r), None) => r.clone(),
        _ => "-".into(),
    };
    // A create that has not finished says so (`sandbox start NAME` makes it again, `rm` removes it).
    let state = s.incomplete.map(|i| output::word(&i)).unwrap_or_else(|| output::word(&s.state));
    vec![
        if s.reachable { s.name.clone() } else { format!("{}*", s.name) },
        if s.unreachable.is_some() { "unreachable".into() } else { state },
        output::agent_cell(&s.agent),
        s.slot.map(|x| x.to_string()).unwrap_or("-".into()),
        port(PortRole::Ssh),
        port(PortRole::App),
        port(PortRole::Alt),
        if extra.is_empty() { "-".into() } else { extra.join(",") },
        output::word(&s.egress),
        output::word(&s.push),
        s.disk.clone().unwrap_or("-".into()),
        docker,
        ssh_agent,
        claude,
        super::auth::tokens_cell(s),
        repo,
        changes(s),
        s.ip.clone().unwrap_or("-".into()),
    ]
}

fn claude_cell(c: ClaudeAuth) -> &'static str {
    match c {
        ClaudeAuth::Host => "host",
        ClaudeAuth::HostUnset => "no credential",
        ClaudeAuth::Env => "env",
        ClaudeAuth::Login => "login",
        ClaudeAuth::None => "no",
    }
}

/// `+12 −3 · 4 files · 2 commits`, and the pull request's number and state.
fn changes(s: &Sandbox) -> String {
    let mut parts = Vec::new();
    if let Some(c) = &s.changes {
        parts.push(c.line());
    }
    if let Some(p) = &s.pull_request {
        parts.push(format!("PR #{} {}", p.number, output::word(&p.state)));
    }
    if parts.is_empty() { "-".into() } else { parts.join(" · ") }
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.into()
}

/// Reports per-name results (what rm removed, what it had to leave); exit 1 if any failed.
fn per_name(results: Vec<(String, Result<Outcome>)>, verb: &str) -> ExitCode {
    let mut failed = false;
    for (n, r) in results {
        match r {
            Ok(o) => {
                let host: Vec<&str> = o.host.removed.iter().map(|l| l.describe()).collect();
                match (o.instance, host.is_empty()) {
                    (false, false) => outln!("{n}: removed what was left on the host: {}", host.join(", ")),
                    (true, false) => outln!("{n}: {verb} (and its {})", host.join(", ")),
                    _ if o.host.warnings.is_empty() || o.instance => outln!("{n}: {verb}"),
                    _ => {}
                }
                for w in &o.host.warnings {
                    errln!("warning: {w}");
                }
            }
            Err(e) => {
                failed = true;
                errln!("error: {e}");
                if let Some(h) = e.hint() {
                    errln!("  hint: {h}");
                }
            }
        }
    }
    if failed { ExitCode::from(1) } else { ExitCode::SUCCESS }
}

pub async fn stop(ctx: &Ctx, a: StopArgs) -> Result<ExitCode> {
    let results = ctx.engine.stop(&a.names, a.rm, &Token::default()).await;
    Ok(per_name(results, if a.rm { "removed" } else { "stopped" }))
}

pub async fn rm(ctx: &Ctx, a: RmArgs) -> Result<ExitCode> {
    let results = ctx.engine.stop(&a.names, true, &Token::default()).await;
    Ok(per_name(results, "removed"))
}

pub async fn expose(ctx: &Ctx, a: ExposeArgs) -> Result<ExitCode> {
    let ports = ctx.engine.expose(&a.name, &a.port, &a.proto, a.host_port.as_deref(), a.allow_low_port).await?;
    if a.json {
        output::json(&ports);
    } else {
        for p in ports {
            outln!("{}: 127.0.0.1:{} → {}/{}", a.name, p.host_port, p.container_port, output::word(&p.proto));
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn unexpose(ctx: &Ctx, a: UnexposeArgs) -> Result<ExitCode> {
    ctx.engine.unexpose(&a.name, &a.port).await?;
    outln!("{}: port {} no longer forwarded", a.name, a.port);
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn require_running(ctx: &Ctx, names: &[String]) -> Result<Vec<Sandbox>> {
    let mut out = Vec::new();
    for n in names {
        validate::sandbox_name(n)?;
        let s = sandbox::get(&ctx.engine.incus, n).await?.ok_or_else(|| EngineError::sandbox_not_found(n))?;
        if !s.is_running() {
            return Err(EngineError::failed(
                format!("sandbox '{n}' is {}", output::word(&s.state)),
                format!("start it: sandbox start {n}"),
            ));
        }
        out.push(s);
    }
    Ok(out)
}

/// Runs CMD as ubuntu in /workspace/project with a login environment; the command's words are
/// passed as arguments, never parsed by a shell.
pub async fn exec(ctx: &Ctx, a: ExecArgs) -> Result<ExitCode> {
    validate::command(&a.command)?;
    let sandboxes = require_running(ctx, &a.names).await?;
    let spec = sandbox::project_exec(a.command.iter().cloned());
    if sandboxes.len() == 1 {
        let s = &sandboxes[0];
        let out = ctx
            .engine
            .incus
            .exec_streamed(&s.instance, &spec, |stream, data| match stream {
                crate::incus::Stream::Stdout => output::stream(&mut std::io::stdout(), data, true),
                crate::incus::Stream::Stderr => output::stream(&mut std::io::stderr(), data, false),
            })
            .await?;
        return Ok(ExitCode::from(out.status.clamp(0, 255) as u8));
    }
    let futs = sandboxes.iter().map(|s| ctx.engine.incus.exec(&s.instance, &spec));
    let results = futures::future::join_all(futs).await;
    let mut failed = false;
    for (s, r) in sandboxes.iter().zip(results) {
        match r {
            Ok(out) => {
                outln!("=== {} (exit {}) ===", s.name, out.status);
                out!("{}", out.stdout_str());
                err!("{}", out.stderr_str());
                failed |= out.status != 0;
            }
            Err(e) => {
                outln!("=== {} (error) ===", s.name);
                errln!("error: {e}");
                failed = true;
            }
        }
    }
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

pub async fn nuke(ctx: &Ctx, a: NukeArgs) -> Result<ExitCode> {
    if !a.yes {
        if !std::io::stdin().is_terminal() {
            return Err(EngineError::invalid(
                "confirmation",
                "nuke needs confirmation",
                "type `yes` at the prompt, or pass --yes",
            ));
        }
        if !typed_yes("This removes EVERY sandbox and golden image on this host. Type 'yes' to continue: ") {
            errln!("nothing removed");
            return Ok(ExitCode::from(1));
        }
    }
    let removed = ctx.engine.nuke(ctx.progress.as_ref()).await?;
    outln!("removed {} instances", removed.len());
    if let crate::engine::host::Host::Orb { machine } = &ctx.engine.host {
        let delete = a.delete_vm
            || (!a.yes
                && std::io::stdin().is_terminal()
                && typed_yes(&format!(
                    "Also delete the OrbStack machine '{machine}' (Incus and everything in it)? Type 'yes': "
                )));
        if delete {
            crate::engine::orb::delete_machine(machine).await?;
            outln!("deleted OrbStack machine {machine}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn typed_yes(prompt: &str) -> bool {
    err!("{prompt}");
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).ok();
    line.trim() == "yes"
}

pub async fn adopt(ctx: &Ctx, a: AdoptArgs) -> Result<ExitCode> {
    let s = ctx.engine.adopt(&a.name).await?;
    outln!("{}: reachable — ssh -F {} {}", s.name, sshcfg::config_path().display(), s.name);
    Ok(ExitCode::SUCCESS)
}
