//! Git in a sandbox's checkout, through the Incus exec API: argv only (never a shell string), as
//! ubuntu, with bounded output and time. The sandbox controls what comes back (root inside can
//! replace git), so callers parse it as untrusted input.
use std::time::Duration;

use crate::engine::creds::PROJECT;
use crate::error::{EngineError, Result};
use crate::incus::{ExecOutput, ExecSpec, Incus};

/// More than this from one git command is refused (a diff of that size is not reviewable).
pub const MAX_OUTPUT: usize = 64 << 20;
const TIMEOUT: Duration = Duration::from_secs(120);

pub struct Git<'a> {
    pub incus: &'a Incus,
    pub instance: &'a str,
    pub name: &'a str,
}

/// `git -C /workspace/project ARGS…` as ubuntu. The options keep the sandbox's git config from
/// changing the output we parse (colour, quoting, external diff drivers).
pub fn spec<S: AsRef<str>>(args: &[S]) -> ExecSpec {
    let mut argv: Vec<String> = ["git", "-C", PROJECT, "-c", "core.quotePath=false", "-c", "color.ui=never"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    argv.extend(args.iter().map(|a| a.as_ref().to_string()));
    ExecSpec::new(argv)
        .as_user(1000, 1000, "/home/ubuntu")
        .env("USER", "ubuntu")
        .env("LC_ALL", "C")
        .env("GIT_TERMINAL_PROMPT", "0")
        // Read-only commands never take index.lock (the agent may be running git right now).
        .env("GIT_OPTIONAL_LOCKS", "0")
        .max_output(MAX_OUTPUT)
}

/// `sh -c SCRIPT sh ARGS…` as ubuntu: a constant script of ours, the values only as its positional
/// parameters (never in the script's text).
pub fn script(script: &'static str, args: &[&str]) -> ExecSpec {
    let mut argv = vec!["sh".to_string(), "-c".into(), script.into(), "sh".into()];
    argv.extend(args.iter().map(|a| a.to_string()));
    ExecSpec::new(argv)
        .as_user(1000, 1000, "/home/ubuntu")
        .env("USER", "ubuntu")
        .env("LC_ALL", "C")
        .env("GIT_TERMINAL_PROMPT", "0")
        .max_output(MAX_OUTPUT)
}

impl Git<'_> {
    /// Runs a command; its output whatever the exit status (bounded in size and time).
    pub async fn run(&self, spec: &ExecSpec) -> Result<ExecOutput> {
        let out = tokio::time::timeout(TIMEOUT, self.incus.exec(self.instance, spec)).await.map_err(|_| {
            EngineError::failed(
                format!("git in sandbox '{}' did not finish within {}s", self.name, TIMEOUT.as_secs()),
                "is the sandbox busy? try again",
            )
        })??;
        if out.truncated {
            return Err(EngineError::failed(
                format!("git in sandbox '{}' answered more than {} MiB", self.name, MAX_OUTPUT >> 20),
                "the change is too large to review here; look at it inside the sandbox",
            ));
        }
        Ok(out)
    }

    /// Runs `git ARGS…`; its stdout when it succeeds, else an error with git's message.
    pub async fn ok<S: AsRef<str>>(&self, args: &[S]) -> Result<Vec<u8>> {
        self.ok_spec(spec(args)).await
    }

    pub async fn ok_spec(&self, spec: ExecSpec) -> Result<Vec<u8>> {
        let out = self.run(&spec).await?;
        if !out.ok() {
            let verb = spec.command.iter().skip(7).take(2).cloned().collect::<Vec<_>>().join(" ");
            return Err(EngineError::failed(
                format!("git {verb} in sandbox '{}' failed: {}", self.name, first_line(&out.stderr_str())),
                "",
            ));
        }
        Ok(out.stdout)
    }
}

/// The first line of git's message, bounded (it comes from the sandbox).
pub fn first_line(s: &str) -> String {
    let line = s.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
    line.chars().filter(|c| !c.is_control()).take(300).collect()
}
