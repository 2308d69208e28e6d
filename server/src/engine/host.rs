//! The host seam: processes that must run where Incus runs (debootstrap, ssh-agent, nft, squid).
//! Always argv vectors; never a shell string built from input. Local for now; the OrbStack and
//! SSH runners plug in here.
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

use super::error::{EngineError, Result};
use crate::progress::LineSplitter;

#[derive(Debug, Clone, Default)]
pub struct Host;

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
        Host
    }

    /// Finds a program on PATH (or a standard sbin dir).
    pub fn which(&self, program: &str) -> Option<std::path::PathBuf> {
        let path = std::env::var("PATH").unwrap_or_default();
        path.split(':')
            .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"])
            .map(|d| std::path::Path::new(d).join(program))
            .find(|p| p.is_file())
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
        let (prog, args) = argv.split_first().ok_or_else(|| EngineError::failed("empty command", ""))?;
        let mut child = Command::new(prog)
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
