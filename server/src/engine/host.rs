//! The host seam: processes that must run where Incus runs (debootstrap, ssh-agent, nft, squid).
//! Always argv vectors; never a shell string built from input.
//!
//! - `Local`: Incus runs on this machine (Linux, or the sidecar running on a remote server through
//!   VS Code Remote-SSH — the extension runs there, so does its sidecar).
//! - `Orb`: Incus runs in an OrbStack machine on this Mac: `orb run -m MACHINE -u root ARGV…`.
//! - `Unavailable`: an HTTPS remote this client has no way to run processes on. We do not SSH
//!   into servers behind the user's back (a second credential and a second trust path to manage):
//!   operations that need the host say to run `sandbox` on that server instead.
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

use crate::error::{EngineError, Result};
use crate::progress::LineSplitter;

/// A child inherits nothing but its stdio from us: daemons started here (ssh-agent, squid,
/// dnsmasq, a spare refill) outlive this process, and a descriptor our caller gave us (a pipe it
/// waits on, a lock it holds) must not live on in them.
pub fn inherit_stdio_only(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: close_range is a single system call, safe between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::close_range(3, libc::c_uint::MAX, libc::CLOSE_RANGE_CLOEXEC as libc::c_int);
            Ok(())
        });
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Host {
    #[default]
    Local,
    Orb {
        machine: String,
    },
    Unavailable {
        remote: String,
        /// `ProxyJump` for SSH into its sandboxes (their ports listen on the server's loopback).
        ssh_jump: Option<String>,
    },
}

#[derive(Debug, Clone, Default)]
pub struct HostOutput {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
    /// The last lines of combined output, for error messages.
    pub tail: Vec<String>,
}

impl Host {
    pub fn local() -> Self {
        Host::Local
    }

    /// The SSH jump host that reaches the server's loopback ports, if any.
    pub fn ssh_jump(&self) -> Option<&str> {
        match self {
            Host::Unavailable { ssh_jump, .. } => ssh_jump.as_deref(),
            _ => None,
        }
    }

    /// Whether host-side processes can run at all (false for a bare HTTPS remote).
    pub fn is_available(&self) -> bool {
        !matches!(self, Host::Unavailable { .. })
    }

    /// The argv that runs `argv` where Incus runs.
    fn wrap(&self, argv: &[String]) -> Result<Vec<String>> {
        match self {
            Host::Local => Ok(argv.to_vec()),
            Host::Orb { machine } => {
                let orb = ["orb", "run", "-m", machine.as_str(), "-u", "root"].map(String::from);
                Ok(orb.into_iter().chain(argv.iter().cloned()).collect())
            }
            Host::Unavailable { remote, .. } => Err(EngineError::failed(
                format!(
                    "`{}` must run on the Incus server of remote '{remote}', and this client cannot run programs there",
                    argv.first().map(String::as_str).unwrap_or("?")
                ),
                "run `sandbox` on that server itself (in VS Code: Remote-SSH into it, the extension and its sidecar run there)",
            )),
        }
    }

    /// Finds a program on PATH (or a standard sbin dir) of this machine.
    pub fn which(&self, program: &str) -> Option<std::path::PathBuf> {
        let path = std::env::var("PATH").unwrap_or_default();
        path.split(':')
            .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"])
            .map(|d| std::path::Path::new(d).join(program))
            .find(|p| p.is_file())
    }

    /// Starts a program that puts itself in the background (squid, dnsmasq) and waits for the
    /// foreground part to exit. Its output goes nowhere: a daemon holding our pipes open would
    /// keep `run` waiting forever; such programs log to their own files.
    pub async fn spawn_daemon(&self, argv: &[String]) -> Result<()> {
        let argv = self.wrap(argv)?;
        let (prog, args) = argv.split_first().ok_or_else(|| EngineError::failed("empty command", ""))?;
        let mut cmd = std::process::Command::new(prog);
        inherit_stdio_only(&mut cmd);
        let status = Command::from(cmd)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .map_err(|e| {
                EngineError::failed(format!("cannot run {prog}: {e}"), format!("install {prog} on the host"))
            })?;
        if !status.success() {
            return Err(EngineError::failed(format!("{prog} exited with {status}"), "see its log file"));
        }
        Ok(())
    }

    /// Reads a (small, text) file where Incus runs.
    pub async fn read_file(&self, path: &str) -> Result<String> {
        if *self == Host::Local {
            return std::fs::read_to_string(path).map_err(|e| EngineError::failed(format!("{path}: {e}"), ""));
        }
        let out = self.run(&["cat".into(), path.into()], None, |_| {}).await?;
        if out.status != 0 {
            return Err(EngineError::failed(format!("{path}: {}", out.stderr.trim()), ""));
        }
        Ok(out.stdout)
    }

    /// Writes a file where Incus runs (content through stdin, never through a command line).
    pub async fn write_file(&self, path: &str, content: &[u8]) -> Result<()> {
        if *self == Host::Local {
            return std::fs::write(path, content).map_err(|e| EngineError::failed(format!("{path}: {e}"), ""));
        }
        let out = self.run(&["dd".into(), "status=none".into(), format!("of={path}")], Some(content), |_| {}).await?;
        if out.status != 0 {
            return Err(EngineError::failed(format!("{path}: {}", out.stderr.trim()), ""));
        }
        Ok(())
    }

    /// Runs a program, streaming each output line to `on_line`.
    pub async fn run(&self, argv: &[String], stdin: Option<&[u8]>, on_line: impl FnMut(&str)) -> Result<HostOutput> {
        self.run_env(argv, &[], stdin, on_line).await
    }

    /// `run` with extra environment variables (e.g. SSH_AUTH_SOCK for ssh-add).
    pub async fn run_env(
        &self,
        argv: &[String],
        env: &[(&str, String)],
        stdin: Option<&[u8]>,
        mut on_line: impl FnMut(&str),
    ) -> Result<HostOutput> {
        // Elsewhere the environment must travel in the argv (`orb run` does not pass ours on).
        let argv = if *self == Host::Local || env.is_empty() {
            self.wrap(argv)?
        } else {
            let with_env: Vec<String> = std::iter::once("env".to_string())
                .chain(env.iter().map(|(k, v)| format!("{k}={v}")))
                .chain(argv.iter().cloned())
                .collect();
            self.wrap(&with_env)?
        };
        let env: &[(&str, String)] = if *self == Host::Local { env } else { &[] };
        let (prog, args) = argv.split_first().ok_or_else(|| EngineError::failed("empty command", ""))?;
        let mut cmd = std::process::Command::new(prog);
        inherit_stdio_only(&mut cmd);
        let mut child = Command::from(cmd)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                EngineError::failed(format!("cannot run {prog}: {e}"), format!("install {prog} on the host"))
            })?;
        if let (Some(data), Some(mut w)) = (stdin, child.stdin.take()) {
            w.write_all(data).await.ok();
        }
        let mut out = BufReader::new(child.stdout.take().expect("piped")).lines();
        let mut err = BufReader::new(child.stderr.take().expect("piped")).lines();
        let mut result = HostOutput::default();
        let mut tail = LineSplitter::new(30);
        let (mut out_open, mut err_open) = (true, true);
        while out_open || err_open {
            tokio::select! {
                l = out.next_line(), if out_open => match l {
                    Ok(Some(l)) => { on_line(&l); tail.feed(format!("{l}\n").as_bytes(), |_| {}); result.stdout.push_str(&l); result.stdout.push('\n'); }
                    _ => out_open = false,
                },
                l = err.next_line(), if err_open => match l {
                    Ok(Some(l)) => { on_line(&l); tail.feed(format!("{l}\n").as_bytes(), |_| {}); result.stderr.push_str(&l); result.stderr.push('\n'); }
                    _ => err_open = false,
                },
            }
        }
        let status = child.wait().await.map_err(|e| EngineError::failed(format!("{prog}: {e}"), ""))?;
        result.status = status.code().unwrap_or(-1);
        result.tail = tail.tail();
        Ok(result)
    }
}
