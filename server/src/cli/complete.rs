//! Shell completions (clap_complete): `sandbox completions bash|zsh|fish|elvish|powershell`
//! prints a script that asks this binary for each completion (`SANDBOX_COMPLETE=SHELL sandbox
//! -- WORDS…`), so subcommands and flags are always current, and sandbox names, stacks and
//! remotes are completed from what exists right now.
use std::ffi::OsString;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, CommandFactory};
use clap_complete::engine::{ArgValueCandidates, CompletionCandidate};
use clap_complete::env::{CompleteEnv, Shells};

use super::Cli;
use crate::engine::{EngineError, Result};

/// The variable that turns a run into a completion request.
const VAR: &str = "SANDBOX_COMPLETE";

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell.
    #[arg(value_parser = ["bash", "zsh", "fish", "elvish", "powershell"])]
    shell: String,
}

/// Where a value's candidates come from.
type Source = fn() -> Vec<CompletionCandidate>;

/// Where each dynamic value is completed from: (subcommand, argument id, source).
const DYNAMIC: &[(&str, &str, Source)] = &[
    ("start", "name", sandbox_names),
    ("start", "from", sandbox_names),
    ("start", "stack", stack_names),
    ("stop", "names", sandbox_names),
    ("rm", "names", sandbox_names),
    ("expose", "name", sandbox_names),
    ("unexpose", "name", sandbox_names),
    ("shell", "names", sandbox_names),
    ("claude", "names", sandbox_names),
    ("exec", "names", sandbox_names),
    ("allow", "name", sandbox_names),
    ("deny", "name", sandbox_names),
    ("denials", "name", sandbox_names),
    ("adopt", "name", sandbox_names),
    ("setup", "stacks", stack_names),
    ("setup", "rebuild", stack_names),
];

/// The command line, with the dynamic completers attached.
fn command() -> clap::Command {
    let mut cmd = Cli::command();
    for (sub, arg, source) in DYNAMIC {
        // In place: `mut_arg` would move a positional to the end (and renumber it).
        cmd = cmd.mut_subcommand(*sub, |c| {
            c.mut_args(|a| if a.get_id() == *arg { a.add(ArgValueCandidates::new(*source)) } else { a })
        });
    }
    cmd
}

/// Answers a completion request and exits, when this run is one (before anything else runs).
pub fn answer_if_asked() {
    CompleteEnv::with_factory(command).var(VAR).complete();
}

/// `sandbox completions SHELL`: the registration script for that shell.
pub fn print(a: CompletionsArgs) -> Result<ExitCode> {
    let shells = Shells::builtins();
    let shell = shells.completer(&a.shell).ok_or_else(|| {
        EngineError::invalid("shell", format!("unknown shell '{}'", a.shell), "bash, zsh, fish, elvish or powershell")
    })?;
    // The script calls this very binary back (it may not be on PATH: VS Code's bundled copy).
    let exe = std::env::current_exe().map(OsString::from).unwrap_or_else(|_| "sandbox".into());
    let mut out = Vec::new();
    shell
        .write_registration(VAR, "sandbox", "sandbox", &exe.to_string_lossy(), &mut out)
        .map_err(|e| EngineError::failed(format!("cannot write the script: {e}"), ""))?;
    std::io::Write::write_all(&mut std::io::stdout(), &out)
        .map_err(|e| EngineError::failed(format!("cannot write the script: {e}"), ""))?;
    Ok(ExitCode::SUCCESS)
}

/// Runs a small query against Incus for a completion, bounded in time (a shell must not hang).
fn query<T>(f: impl AsyncFnOnce(&crate::engine::Engine) -> Option<T>) -> Option<T> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
    rt.block_on(async {
        let remote = std::env::var("SANDBOX_REMOTE").ok();
        let engine = crate::engine::Engine::for_remote(remote.as_deref()).ok()?;
        tokio::time::timeout(Duration::from_secs(2), f(&engine)).await.ok().flatten()
    })
}

fn sandbox_names() -> Vec<CompletionCandidate> {
    query(async |e| crate::engine::sandbox::list(&e.incus).await.ok())
        .unwrap_or_default()
        .into_iter()
        .map(|s| {
            let what = [super::output::word(&s.state), s.stack.unwrap_or_default(), s.branch.unwrap_or_default()];
            let help = what.into_iter().filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" · ");
            CompletionCandidate::new(s.name).help(Some(help.into()))
        })
        .collect()
}

fn stack_names() -> Vec<CompletionCandidate> {
    crate::engine::stacks::all()
        .into_values()
        .map(|s| CompletionCandidate::new(s.name).help(Some(s.description.into())))
        .collect()
}
