//! `sandbox shell | claude`: interactive sessions over the managed ssh config. One name: this
//! process becomes ssh (or, with `--wait-on-error`, waits for it to say how it ended). Several:
//! one tmux session, a pane each. Claude runs in a tmux session inside the sandbox that outlives
//! the connection (the command it runs there: agents.rs).
//!
//! VS Code runs these as a terminal's program, and such a terminal closes when its program
//! exits: `--wait-on-error` keeps a failure's message on screen until Enter.
use std::io::{BufRead, IsTerminal};
use std::os::unix::process::CommandExt;
use std::process::ExitCode;

use clap::Args;

use super::Ctx;
use super::agents::{PermissionMode, launcher};
use super::sandboxes::require_running;
use crate::engine::sandbox::{self, Sandbox};
use crate::engine::{EngineError, Result, sshcfg};
use crate::incus::FileWrite;

#[derive(Debug, Args)]
pub struct ShellArgs {
    #[arg(required = true)]
    names: Vec<String>,
    #[command(flatten)]
    hold: Hold,
}

#[derive(Debug, Args)]
pub struct ClaudeArgs {
    #[arg(required = true)]
    names: Vec<String>,
    /// Start Claude Code with this prompt (its first message, as if typed; typed into the
    /// session when one runs). It travels into the sandbox as a file, never through a shell
    /// command line.
    #[arg(long, value_name = "TEXT")]
    prompt: Option<String>,
    /// End the sandbox's Claude session if one runs, and start a fresh conversation.
    #[arg(long)]
    new: bool,
    /// Claude Code's permission mode for a session this starts (an attached one keeps its own).
    #[arg(long, value_enum, default_value_t = PermissionMode::BypassPermissions)]
    permission_mode: PermissionMode,
    #[command(flatten)]
    hold: Hold,
}

#[derive(Debug, Args)]
pub(super) struct Hold {
    /// On failure, print what went wrong and wait for Enter before exiting (a terminal that
    /// closes with its program keeps the message; VS Code's terminals use it).
    #[arg(long)]
    pub(super) wait_on_error: bool,
}

/// A prompt longer than this is refused (Claude Code takes long prompts; a command line of the
/// terminal does not need more).
const MAX_PROMPT: usize = 64 * 1024;

pub async fn shell(ctx: &Ctx, a: ShellArgs) -> Result<ExitCode> {
    let wait = a.hold.wait_on_error;
    held(
        wait,
        async {
            require_running(ctx, &a.names).await?;
            interactive(&a.names, None, wait)
        }
        .await,
    )
}

pub async fn claude(ctx: &Ctx, a: ClaudeArgs) -> Result<ExitCode> {
    let wait = a.hold.wait_on_error;
    held(wait, claude_inner(ctx, a).await)
}

async fn claude_inner(ctx: &Ctx, a: ClaudeArgs) -> Result<ExitCode> {
    if let Some(p) = &a.prompt {
        validate_prompt(p)?;
    }
    let sandboxes = require_running(ctx, &a.names).await?;
    for s in &sandboxes {
        require_claude(ctx, s).await?;
    }
    // One prompt file per sandbox; a single name gets its file's command, several share one name.
    let file = a.prompt.as_ref().map(|_| format!("/tmp/sandbox-prompt-{:016x}", rand::random::<u64>()));
    if let (Some(p), Some(f)) = (&a.prompt, &file) {
        for s in &sandboxes {
            let w = FileWrite { path: f, content: p.clone().into_bytes(), uid: 1000, gid: 1000, mode: 0o600 };
            ctx.engine.incus.push_file(&s.instance, &w).await?;
        }
    }
    interactive(&a.names, Some(&launcher(a.new, a.permission_mode, file.as_deref())), a.hold.wait_on_error)
}

fn validate_prompt(p: &str) -> Result<()> {
    if p.trim().is_empty() || p.len() > MAX_PROMPT || p.contains('\0') {
        return Err(EngineError::invalid(
            "prompt",
            format!("the prompt must be 1 to {MAX_PROMPT} bytes of text"),
            "give the task in words, e.g. --prompt 'fix the failing test in src/date.rs'",
        ));
    }
    Ok(())
}

/// Claude Code must be on the sandbox's PATH (a login shell's, as ubuntu): say so plainly
/// instead of letting the terminal end with "exit code 127".
async fn require_claude(ctx: &Ctx, s: &Sandbox) -> Result<()> {
    let probe = sandbox::project_exec(["sh".into(), "-c".into(), "command -v claude >/dev/null".into()]);
    let out = ctx.engine.incus.exec_streamed(&s.instance, &probe, |_, _| {}).await?;
    if out.status == 0 {
        return Ok(());
    }
    let stack = s.stack.as_deref().unwrap_or("STACK");
    Err(EngineError::failed(
        format!("Claude Code is not installed in sandbox '{}' (no `claude` on its PATH)", s.name),
        format!(
            "its golden image has none: rebuild it (`sandbox setup --rebuild {stack}`: every image built now \
             carries Claude Code), then make the sandbox again from it (`sandbox rm {name}`, `sandbox start {name} --stack {stack}`)",
            name = s.name
        ),
    ))
}

/// With `--wait-on-error`: a failure is printed here and waits for Enter (then exits 1).
pub(super) fn held(wait: bool, r: Result<ExitCode>) -> Result<ExitCode> {
    if !wait {
        return r;
    }
    match r {
        Err(e) => {
            super::report(&e);
            wait_for_enter();
            Ok(ExitCode::from(if matches!(e, EngineError::Cancelled) { 130 } else { 1 }))
        }
        ok => ok,
    }
}

fn wait_for_enter() {
    if std::io::stdin().is_terminal() {
        err!("\nPress Enter to close this terminal.");
        let _ = std::io::stdin().lock().read_line(&mut String::new());
    }
}

/// ssh argv for an interactive session, optionally running a fixed remote command.
fn ssh_argv(name: &str, remote: Option<&str>) -> Vec<String> {
    let mut v = vec![
        "ssh".to_string(),
        "-F".into(),
        sshcfg::config_path().display().to_string(),
        "-t".into(),
        name.to_string(),
    ];
    if let Some(r) = remote {
        v.push(r.to_string());
    }
    v
}

/// One sandbox: ssh (this process becomes it, unless a failure must be shown). Several: one
/// tmux session, one pane each.
fn interactive(names: &[String], remote: Option<&str>, wait: bool) -> Result<ExitCode> {
    if names.len() == 1 {
        let argv = ssh_argv(&names[0], remote);
        let mut cmd = std::process::Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        if !wait {
            let err = cmd.exec();
            return Err(EngineError::failed(format!("cannot run ssh: {err}"), "install openssh-client"));
        }
        let st =
            cmd.status().map_err(|e| EngineError::failed(format!("cannot run ssh: {e}"), "install openssh-client"))?;
        return match st.code() {
            Some(0) => Ok(ExitCode::SUCCESS),
            code => Err(EngineError::failed(
                format!(
                    "the session in {} ended: {}",
                    names[0],
                    code.map_or("killed by a signal".into(), |c| format!("exit code {c}"))
                ),
                format!(
                    "is it still running? `sandbox list`; reconnect with `sandbox {} {}`",
                    if remote.is_some() { "claude" } else { "shell" },
                    names[0]
                ),
            )),
        };
    }
    let session = format!("sandboxes-{}", std::process::id());
    let mut first = true;
    for n in names {
        // Names are validated ([A-Za-z0-9-]); tmux gets argv, not a shell string.
        let mut cmd = std::process::Command::new("tmux");
        if first {
            cmd.args(["new-session", "-d", "-s", &session, "-x", "200", "-y", "50"]);
        } else {
            cmd.args(["split-window", "-t", &session]);
        }
        cmd.args(ssh_argv(n, remote));
        let st = cmd.status().map_err(|e| EngineError::failed(format!("cannot run tmux: {e}"), "install tmux"))?;
        if !st.success() {
            return Err(EngineError::failed("tmux failed to open a pane", ""));
        }
        let _ = std::process::Command::new("tmux").args(["select-layout", "-t", &session, "tiled"]).status();
        first = false;
    }
    let err = std::process::Command::new("tmux").args(["attach-session", "-t", &session]).exec();
    Err(EngineError::failed(format!("cannot attach tmux: {err}"), "install tmux"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_are_bounded_and_never_in_the_command() {
        assert!(validate_prompt("fix the bug").is_ok());
        assert!(validate_prompt("  ").is_err());
        assert!(validate_prompt(&"x".repeat(MAX_PROMPT + 1)).is_err());
        assert!(validate_prompt("a\0b").is_err());
        // The prompt's text stays in its file: the command names the file only.
        let c = launcher(false, PermissionMode::BypassPermissions, Some("/tmp/sandbox-prompt-00ff"));
        assert!(c.ends_with(" /tmp/sandbox-prompt-00ff"), "{c}");
    }
}
