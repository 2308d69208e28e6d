//! Agents: the command `sandbox claude` runs inside the sandbox — Claude Code in a tmux session
//! there, so that it outlives the terminal, the editor and the SSH connection (its arguments and
//! checks are terminal.rs's) — and `sandbox wait`, until an agent needs you or is done.
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::{Ctx, output};
use crate::engine::agents::Agent;
use crate::engine::agents::wait::{WaitFor, wait};
use crate::engine::{EngineError, Result};

/// Run inside the sandbox by a login shell, with `$1` = new|attach, `$2` = the permission mode
/// (both from closed sets) and `$3`, optionally, a prompt file we pushed (its name is ours; its
/// text goes to Claude as one argument, or typed into a running session — never through a shell
/// line). The session is tmux's `claude`: attached when it exists; else started, continuing the
/// project's last conversation when there is one (after a restart, or after Claude was quit)
/// unless `new`. Claude Code's interactive `--continue` skips the sessions of `claude -p`
/// (scripts, `sandbox exec`) and exits at once with "No conversation found to continue" when
/// there is no other: `RUN` then starts a fresh Claude instead.
const LAUNCHER: &str = r#"set -u
new=$1 mode=$2 file=${3:-} p=
if [ -n "$file" ]; then p=$(cat -- "$file") && rm -f -- "$file" || exit 1; fi
cd /workspace/project 2>/dev/null || cd
if [ "$mode" = bypassPermissions ]; then set -- claude --dangerously-skip-permissions
else set -- claude --permission-mode "$mode"; fi
project=$(pwd | sed "s/[^A-Za-z0-9]/-/g")
how=fresh
if [ "$new" != new ] && ls "$HOME/.claude/projects/$project/"*.jsonl >/dev/null 2>&1; then how=continue; fi
RUN='how=$1 p=$2; shift 2
if [ "$how" = continue ]; then
  t=$SECONDS; "$@" --continue ${p:+"$p"}; s=$?
  [ "$s" != 0 ] && [ $((SECONDS - t)) -lt 10 ] || exit "$s"
fi
exec "$@" ${p:+"$p"}'
set -- bash -c "$RUN" sandbox-claude-run "$how" "$p" "$@"
if ! command -v tmux >/dev/null 2>&1; then
  echo "sandbox: there is no tmux in this sandbox, so this Claude session ends with the terminal" >&2
  exec "$@"
fi
# The server stays up once the session is gone: an exiting one fails the new-session just below
# ("server exited unexpectedly") and the terminal closed at once.
[ "$new" = new ] && tmux set-option -g exit-empty off \; kill-session -t =claude 2>/dev/null
if tmux has-session -t =claude 2>/dev/null; then
  # Typed in, then Enter on its own: text and a newline in one write are a paste to Claude Code.
  if [ -n "$file" ]; then tmux send-keys -t =claude -l -- "$p"; sleep 0.3; tmux send-keys -t =claude Enter; fi
else
  tmux start-server \; set-option -g history-limit 50000 \; set-option -g focus-events on \; \
    new-session -d -s claude -c "$PWD" "$@" 2>/dev/null
  tmux set-option -t =claude status-right " Ctrl-b d: detach (Claude keeps working) " >/dev/null 2>&1
fi
exec tmux attach-session -t =claude
"#;

/// Claude Code's permission modes, as it spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PermissionMode {
    #[value(name = "default")]
    Default,
    #[value(name = "acceptEdits")]
    AcceptEdits,
    #[value(name = "plan")]
    Plan,
    #[value(name = "auto")]
    Auto,
    #[value(name = "dontAsk")]
    DontAsk,
    /// YOLO mode (`--dangerously-skip-permissions`): the sandbox is the boundary.
    #[value(name = "bypassPermissions")]
    BypassPermissions,
}

impl PermissionMode {
    fn word(self) -> String {
        self.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default()
    }
}

/// A word for a POSIX shell, single-quoted.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r#"'\''"#))
}

/// The remote command ssh runs: a fixed script, two words from closed sets and our own file name.
pub(super) fn launcher(new: bool, mode: PermissionMode, prompt_file: Option<&str>) -> String {
    let mut cmd = format!(
        "bash -lc {} sandbox-claude {} {}",
        sh_quote(LAUNCHER),
        if new { "new" } else { "attach" },
        mode.word()
    );
    if let Some(f) = prompt_file {
        assert!(f.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'/' || b == b'-'), "prompt file {f}");
        cmd.push(' ');
        cmd.push_str(f);
    }
    cmd
}

#[derive(Debug, Args)]
pub struct WaitArgs {
    #[arg(required = true)]
    names: Vec<String>,
    /// waiting (Claude needs you), done (a turn finished) or any of the two.
    #[arg(long = "for", value_enum, default_value = "any")]
    target: WaitFor,
    /// Give up after this many seconds (exit status 124).
    #[arg(long, value_name = "S")]
    timeout: Option<f64>,
    /// Print the sandbox and its agent as JSON.
    #[arg(long)]
    json: bool,
}

const MAX_TIMEOUT: f64 = 7.0 * 24.0 * 3600.0;

pub async fn wait_cmd(ctx: &Ctx, a: WaitArgs) -> Result<ExitCode> {
    let timeout = match a.timeout {
        None => None,
        Some(s) if s.is_finite() && s > 0.0 && s <= MAX_TIMEOUT => Some(Duration::from_secs_f64(s)),
        Some(s) => {
            return Err(EngineError::invalid(
                "timeout",
                format!("--timeout {s} is not a number of seconds between 0 and a week"),
                "e.g. --timeout 600",
            ));
        }
    };
    let got = tokio::select! {
        r = wait(&ctx.engine.incus, &a.names, a.target, timeout) => r?,
        _ = ctx.cancel.cancelled() => return Err(EngineError::Cancelled),
    };
    let Some(r) = got else {
        errln!(
            "timed out: no agent in {} got to {} within {}s",
            a.names.join(", "),
            a.target.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default(),
            a.timeout.unwrap_or_default()
        );
        return Ok(ExitCode::from(124));
    };
    if a.json {
        output::json(&r);
    } else {
        outln!("{}: {}", r.name, agent_line(&r.agent));
    }
    Ok(ExitCode::SUCCESS)
}

/// "waiting: Claude needs your permission to use Bash", "done: All tests pass.", "working".
pub fn agent_line(a: &Agent) -> String {
    match &a.message {
        Some(m) => format!("{}: {m}", a.state.as_str()),
        None => a.state.as_str().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_remote_command_is_one_quoted_script_and_two_fixed_words() {
        let cmd = launcher(true, PermissionMode::AcceptEdits, None);
        assert!(cmd.ends_with("' sandbox-claude new acceptEdits"), "{cmd}");
        // What the remote shell sees: bash, -lc, the script unchanged, then $0 $1 $2.
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf '%s\\n' {}", cmd.trim_start_matches("bash ")))
            .output()
            .unwrap();
        let words: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().split('\n').collect();
        assert_eq!(words[0], "-lc");
        assert_eq!(&words[words.len() - 4..], ["sandbox-claude", "new", "acceptEdits", ""]);
        let script = words[1..words.len() - 4].join("\n");
        assert_eq!(script, LAUNCHER);
        let st = std::process::Command::new("bash").args(["-n", "-c", LAUNCHER]).status().unwrap();
        assert!(st.success(), "the launcher parses");
        assert_eq!(sh_quote("a'b"), r#"'a'\''b'"#);
        let with = launcher(false, PermissionMode::BypassPermissions, Some("/tmp/sandbox-prompt-00ff"));
        assert!(with.ends_with("' sandbox-claude attach bypassPermissions /tmp/sandbox-prompt-00ff"), "{with}");
    }
}
