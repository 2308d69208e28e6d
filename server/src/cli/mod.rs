//! The command line front: parses, validates, calls the engine, renders results.
#[macro_use]
mod output;
mod agents;
mod auth;
mod complete;
mod egress;
mod host;
mod prepared;
mod remote;
mod review;
mod sandboxes;
mod setup;
mod signals;
mod snapshots;
mod terminal;

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::engine::EngineError;

#[derive(Debug, Parser)]
#[command(name = "sandbox", version, about = "Isolated Incus sandboxes for AI coding agents", propagate_version = true)]
pub struct Cli {
    /// More logging on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Incus remote to use (see `sandbox remote list`; default: the one chosen with `remote use`).
    #[arg(long, global = true, env = "SANDBOX_REMOTE", value_name = "NAME")]
    remote: Option<String>,
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start: the size of the largest variant (a create's options) costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Make sure Incus is initialised and golden images exist (builds missing ones).
    Setup(setup::SetupArgs),
    /// Check every piece the product needs and print the command that fixes each missing one.
    Doctor(setup::DoctorArgs),
    /// This machine as a sandbox host: `sandbox host install [--nat on|off]` installs and starts
    /// Incus and the host tools (needs root; asks sudo).
    #[command(subcommand)]
    Host(host::HostCmd),
    /// Create a sandbox (or restart a stopped one) and wait until SSH answers.
    Start(sandboxes::StartArgs),
    /// List sandboxes with their agent's state, ports, egress and health.
    #[command(alias = "ls")]
    List(sandboxes::ListArgs),
    /// Stop sandboxes (idempotent); --rm removes them too.
    Stop(sandboxes::StopArgs),
    /// Remove sandboxes and everything they own on the host.
    Rm(sandboxes::RmArgs),
    /// Forward 127.0.0.1:(PORT+slot) on the host to PORT in the sandbox.
    Expose(sandboxes::ExposeArgs),
    /// Stop forwarding a port.
    Unexpose(sandboxes::UnexposeArgs),
    /// Open a login shell (several names: one tmux pane each).
    Shell(terminal::ShellArgs),
    /// Claude Code in the sandbox, in a session that outlives the terminal (several names: one
    /// tmux pane each).
    ///
    /// Attaches to the sandbox's Claude session (tmux, inside, in /workspace/project), or starts
    /// one — YOLO mode unless --permission-mode says otherwise — continuing the project's last
    /// conversation (after a restart, or after Claude was quit). Closing the terminal detaches;
    /// the agent keeps working. --new ends a running session and starts afresh. --prompt TEXT
    /// starts it on that task (typed into the session when one runs).
    Claude(terminal::ClaudeArgs),
    /// Wait until an agent in one of the sandboxes needs you (waiting) or finished a turn (done).
    ///
    /// Returns at once when one already is; follows Incus's events otherwise (no polling).
    /// Prints `NAME: STATE: MESSAGE` (or --json). Exit status 124 after --timeout.
    Wait(agents::WaitArgs),
    /// Run a command as ubuntu in /workspace/project: sandbox exec NAME… -- CMD…
    Exec(sandboxes::ExecArgs),
    /// Snapshot a whole sandbox: sandbox snapshot NAME [LABEL]; also snapshot rm|pin|unpin NAME
    /// LABEL, snapshot keep NAME N (per-turn checkpoints kept).
    Snapshot(snapshots::SnapshotArgs),
    /// A sandbox's snapshots (manual ones and per-turn checkpoints), oldest first.
    Snapshots(snapshots::SnapshotsArgs),
    /// Put a sandbox's disk back to a snapshot (stopped and started again as needed); its identity,
    /// slot, keys and egress policy stay.
    Restore(snapshots::RestoreArgs),
    /// A new sandbox from another's current state or snapshot, with its own identity, slot, keys
    /// and branch (default NAME-fork-N).
    Fork(snapshots::ForkArgs),
    /// Make a prepared image of a repository: its golden image with the repository cloned and its
    /// setup (.sandbox/setup.sh, or what its lockfiles call for) done; `start` then uses it.
    Prepare(prepared::PrepareArgs),
    /// List prepared images; `prepared rm IMAGE…` removes them.
    Prepared(prepared::PreparedArgs),
    /// Let a restricted sandbox reach more domains, live: sandbox allow NAME DOMAIN…
    Allow(egress::DomainsArgs),
    /// Take domains off a restricted sandbox's allowlist, live.
    Deny(egress::DomainsArgs),
    /// What a restricted sandbox was refused (TLS SNI, HTTP Host, DNS), with counts.
    Denials(egress::DenialsArgs),
    /// A model credential kept on the host (sandboxes use it through the host's proxy, never
    /// holding it): auth set anthropic (reads standard input), auth status, auth rm anthropic.
    #[command(subcommand)]
    Auth(auth::AuthCmd),
    /// Tokens each sandbox used through the host's Anthropic proxy, per model.
    Usage(auth::UsageArgs),
    /// Reach a sandbox another user (or another SANDBOX_HOME) made: adds your SSH keys to it and
    /// its entry to your ~/.sandbox/ssh_config.
    Adopt(sandboxes::AdoptArgs),
    /// What the agent changed since its branch started: commits, uncommitted and untracked files.
    Diff(review::DiffArgs),
    /// Fetch the sandbox's branch into this clone as refs/remotes/sandbox-NAME/BRANCH (no GitHub).
    Fetch(review::FetchArgs),
    /// Push the sandbox's branch and open a pull request against the branch it started from.
    Pr(review::PrArgs),
    /// Remove every sandbox and golden image (asks you to type `yes`).
    Nuke(sandboxes::NukeArgs),
    /// Incus servers and clusters over HTTPS: add (with a trust token), list, use, remove.
    #[command(subcommand)]
    Remote(remote::RemoteCmd),
    /// Print the shell completion script: `source <(sandbox completions bash)` (zsh the same;
    /// fish: `sandbox completions fish | source`). Sandbox names and stacks complete live.
    Completions(complete::CompletionsArgs),
    /// The sidecar for the VS Code extension: the API over stdio with LSP framing.
    Lsp,
    /// (internal) The host's Anthropic proxy; `start` runs it in the background.
    #[command(name = "__anthropic-proxy", hide = true)]
    AnthropicProxy,
    /// (internal) `sshd -i` in a sandbox over the Incus API: the ProxyCommand of its ssh entry on
    /// a cluster (engine/reach.rs).
    #[command(name = "__ssh-pipe", hide = true)]
    SshPipe { name: String },
    /// (internal) Make the stack's warm spare; creates start it in the background.
    #[command(name = "__spare", hide = true)]
    Spare { stack: String },
    /// (internal) Squid's external ACL helper: answers which sandbox a client is and what its
    /// lists allow (engine/egress/squid_acl.rs).
    #[command(name = "__squid-acl", hide = true)]
    SquidAcl { mode: crate::engine::egress::squid_acl::Mode },
    /// (internal) The push gate's check, run by git on the host for each push.
    #[command(name = "__git-gate-hook", hide = true)]
    GitGateHook,
    /// The API for scripts and other editors: JSON-RPC over HTTP/WebSocket on loopback, with a token.
    Serve {
        /// Loopback address to listen on.
        #[arg(long, default_value = "127.0.0.1:7681")]
        listen: std::net::SocketAddr,
    },
}

pub struct Ctx {
    pub engine: crate::engine::Engine,
    pub cancel: CancellationToken,
    pub progress: Arc<dyn crate::progress::Progress>,
}

pub fn main() -> ExitCode {
    signals::ignore_sigpipe();
    complete::answer_if_asked();
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    // Before any runtime or Incus client: Incus may not be there yet, and Ctrl-C must reach the
    // install's steps as it would from a shell.
    let command = match cli.command {
        Command::Host(h) => return host::run(h).unwrap_or_else(|e| report(&e)),
        Command::Completions(a) => return complete::print(a).unwrap_or_else(|e| report(&e)),
        Command::SquidAcl { mode } => return crate::engine::egress::squid_acl::run(mode),
        c => c,
    };
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            errln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    rt.block_on(async move {
        let cancel = CancellationToken::new();
        use signals::OnSignal;
        let on_signal = match &command {
            Command::Start(_) | Command::Setup(_) | Command::Lsp | Command::Serve { .. } => OnSignal::Undo,
            // A fork and a prepare roll back; a restore and a snapshot finish what they started.
            Command::Fork(_) | Command::Prepare(_) | Command::Restore(_) | Command::Snapshot(_) => OnSignal::Undo,
            Command::Wait(_) | Command::Denials(_) => OnSignal::End,
            _ => OnSignal::Exit,
        };
        signals::watch(cancel.clone(), on_signal);
        let command = match command {
            Command::Remote(r) => return remote::run(r).await.unwrap_or_else(|e| report(&e)),
            c => c,
        };
        crate::engine::spares::set_remote(cli.remote.clone());
        let engine = match crate::engine::Engine::for_remote(cli.remote.as_deref()) {
            Ok(e) => e,
            Err(e) => return report(&e),
        };
        let ctx = Ctx { engine, cancel, progress: Arc::new(crate::progress::Stderr::new(true)) };
        match dispatch(&ctx, command).await {
            Ok(code) => code,
            Err(e) => report(&e),
        }
    })
}

/// Runs one command (`remote` is handled before the engine is made).
async fn dispatch(ctx: &Ctx, command: Command) -> crate::engine::Result<ExitCode> {
    match command {
        Command::Setup(a) => setup::setup(ctx, a).await,
        Command::Doctor(a) => setup::doctor(ctx, a).await,
        Command::Start(a) => sandboxes::start(ctx, a).await,
        Command::List(a) => sandboxes::list(ctx, a).await,
        Command::Stop(a) => sandboxes::stop(ctx, a).await,
        Command::Rm(a) => sandboxes::rm(ctx, a).await,
        Command::Expose(a) => sandboxes::expose(ctx, a).await,
        Command::Unexpose(a) => sandboxes::unexpose(ctx, a).await,
        Command::Shell(a) => terminal::shell(ctx, a).await,
        Command::Claude(a) => terminal::claude(ctx, a).await,
        Command::Wait(a) => agents::wait_cmd(ctx, a).await,
        Command::Exec(a) => sandboxes::exec(ctx, a).await,
        Command::Snapshot(a) => snapshots::snapshot(ctx, a).await,
        Command::Snapshots(a) => snapshots::snapshots(ctx, a).await,
        Command::Restore(a) => snapshots::restore(ctx, a).await,
        Command::Fork(a) => snapshots::fork(ctx, a).await,
        Command::Prepare(a) => prepared::prepare(ctx, a).await,
        Command::Prepared(a) => prepared::prepared(ctx, a).await,
        Command::Nuke(a) => sandboxes::nuke(ctx, a).await,
        Command::Adopt(a) => sandboxes::adopt(ctx, a).await,
        Command::Diff(a) => review::diff(ctx, a).await,
        Command::Fetch(a) => review::fetch(ctx, a).await,
        Command::Pr(a) => review::pr(ctx, a).await,
        Command::Allow(a) => egress::change(ctx, a, true).await,
        Command::Deny(a) => egress::change(ctx, a, false).await,
        Command::Denials(a) => egress::denials(ctx, a).await,
        Command::Auth(a) => auth::run(ctx, a).await,
        Command::Usage(a) => auth::usage(ctx, a).await,
        Command::AnthropicProxy => crate::engine::anthropic::run_daemon()
            .await
            .map(|()| ExitCode::SUCCESS)
            .map_err(|e| EngineError::failed(format!("anthropic proxy: {e:#}"), "")),
        Command::Lsp => {
            crate::api::lsp::serve_stdio(crate::api::Api::new(ctx.engine.clone()), ctx.cancel.clone()).await;
            // tokio's stdin reader is a blocking thread that would keep the runtime (and the
            // process) alive until the client closes its end; `exit` means exit now.
            std::process::exit(0);
        }
        Command::Remote(_) | Command::Host(_) | Command::Completions(_) | Command::SquidAcl { .. } => {
            unreachable!("handled before the engine is made")
        }
        Command::SshPipe { name } => ctx.engine.ssh_pipe(&name).await,
        Command::Spare { stack } => {
            crate::engine::stacks::validate_stack_name(&stack)?;
            match crate::engine::spares::refill(&ctx.engine.incus, &stack).await {
                Ok(()) => Ok(ExitCode::SUCCESS),
                Err(e) => Err(EngineError::failed(format!("spare-{stack}: {e:#}"), "")),
            }
        }
        Command::GitGateHook => Ok(crate::engine::gate::hook::main()),
        Command::Serve { listen } => {
            crate::api::serve::serve(crate::api::Api::new(ctx.engine.clone()), listen, ctx.cancel.clone())
                .await
                .map(|_| ExitCode::SUCCESS)
        }
    }
}

fn report(e: &EngineError) -> ExitCode {
    errln!("error: {e}");
    if let Some(h) = e.hint() {
        errln!("  hint: {h}");
    }
    match e {
        EngineError::Cancelled => ExitCode::from(130),
        _ => ExitCode::from(1),
    }
}

fn init_tracing(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "info,sandbox=info",
        _ => "debug,sandbox=debug,hyper=info,reqwest=info",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // Message bodies can carry a credential (sandbox/authSet): never logged, whatever RUST_LOG says.
    let filter = ["tower_lsp_server::codec=off", "jsonrpsee-server=debug", "jsonrpsee_server=debug"]
        .iter()
        .filter_map(|d| d.parse().ok())
        .fold(filter, |f, d| f.add_directive(d));
    // Logs go to stderr only: stdout is for data (and protocol in `lsp`/`serve`).
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
