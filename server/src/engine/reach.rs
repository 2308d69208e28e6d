//! How SSH reaches a sandbox. On one machine or a server: its forwarded port on the Incus host's
//! loopback (through `ProxyJump` for a server). On a cluster the sandbox may run on any member,
//! and each member's loopback is its own: a ProxyJump would need an SSH login and a pinned host
//! key for every member — a second credential per member next to the Incus certificate. Instead
//! the entry's `ProxyCommand` is `sandbox __ssh-pipe NAME`, which runs `sshd -i` in the sandbox
//! through the Incus API (the exec websockets Incus forwards to whichever member runs it): one
//! trust path, the pinned Incus certificate, and the sandbox's own host key is still checked
//! strictly end to end.
use std::process::ExitCode;

use tokio::io::{stdin, stdout};

use super::sshcfg::Route;
use super::validate::{instance_name, sandbox_name, shell_single_quote};
use super::{Engine, golden};
use crate::error::{EngineError, Result};
use crate::incus::ExecSpec;

impl Engine {
    /// The route for NAME whose SSH port is `port` (one GET of the server on a remote).
    pub(crate) async fn ssh_route(&self, name: &str, port: u16) -> Result<Route> {
        let clustered = golden::is_clustered(&self.incus).await?;
        self.route_for(name, port, clustered)
    }

    pub(crate) fn route_for(&self, name: &str, port: u16, clustered: bool) -> Result<Route> {
        if !clustered {
            return Ok(Route::Port { port, jump: self.host.ssh_jump().map(String::from) });
        }
        Ok(Route::Pipe { command: pipe_command(&self.remote, name)? })
    }

    /// `sandbox __ssh-pipe NAME`: this process's stdin/stdout become `sshd -i` in the sandbox.
    pub async fn ssh_pipe(&self, name: &str) -> Result<ExitCode> {
        sandbox_name(name)?;
        // As the sandbox's socket-activated sshd runs (sandbox-ssh@.service: `sshd -i` with
        // RuntimeDirectory=sshd); a fixed command line, nothing from input in it.
        let spec = ExecSpec::new(["sh", "-c", "mkdir -p -m 0755 /run/sshd && exec /usr/sbin/sshd -i"]);
        let status = self.incus.exec_pipe(&instance_name(name), &spec, stdin(), stdout()).await?;
        Ok(ExitCode::from(u8::try_from(status).unwrap_or(1)))
    }
}

/// The `ProxyCommand` (ssh runs it through a shell): this binary, the remote and where its
/// credentials live, each single-quoted; ssh expands `%` tokens, so paths with one are refused.
fn pipe_command(remote: &str, name: &str) -> Result<String> {
    sandbox_name(name)?;
    let exe = std::env::current_exe()
        .map_err(|e| EngineError::failed(format!("cannot find this program's path: {e}"), ""))?;
    let home = crate::paths::sandbox_home();
    let quote = |s: &str| -> Result<String> {
        if s.contains('\n') || s.contains('%') {
            return Err(EngineError::failed(
                format!("the path {s} cannot go into an ssh_config ProxyCommand"),
                "install sandbox (and SANDBOX_HOME) under a path without newlines or %",
            ));
        }
        Ok(shell_single_quote(s))
    };
    Ok(format!(
        "env SANDBOX_HOME={} {} --remote {} __ssh-pipe {name}",
        quote(&home.display().to_string())?,
        quote(&exe.display().to_string())?,
        quote(remote)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pipe_command_quotes_every_path_and_refuses_bad_names() {
        let c = pipe_command("lab", "demo").unwrap();
        assert!(c.starts_with("env SANDBOX_HOME='"), "{c}");
        assert!(c.ends_with("' --remote 'lab' __ssh-pipe demo"), "{c}");
        assert!(pipe_command("lab", "x; rm -rf /").is_err());
        assert!(pipe_command("it's", "demo").unwrap().contains("--remote 'it'\\''s'"));
    }
}
