//! When a sandbox is ready: an SSH session through its forwarded port succeeds, with strict
//! host-key checking (`ssh -F ~/.sandbox/ssh_config NAME true`), not merely a proxy accepting TCP.
use std::sync::Mutex;
use std::time::Duration;

use super::validate::instance_name;
use super::{Engine, sshcfg};
use crate::error::{EngineError, Result};
use crate::incus::ExecSpec;

impl Engine {
    /// Ready = an SSH session through the forwarded port succeeds, with strict host-key checking.
    /// `probe`: the forwarded port to knock on first (None: the entry goes through the Incus API);
    /// `hint` says what to do when it never answers.
    pub async fn wait_ssh(&self, name: &str, probe: Option<u16>, timeout: Duration, hint: &str) -> Result<()> {
        let last = Mutex::new(String::new());
        // Every 10 ms: a cheap TCP probe first (a SYN sent before the sandbox's network is up is
        // lost, and the kernel would only retry it after a whole second), then a session.
        let ready = crate::poll::until(timeout, Duration::from_millis(10), || async {
            if let Some(port) = probe
                && !port_open(port).await
            {
                return None;
            }
            match ssh_true(name).await {
                Ok(None) => Some(Ok(())),
                Ok(Some(err)) => {
                    tracing::debug!("ssh attempt {name}: {err}");
                    *last.lock().unwrap_or_else(|e| e.into_inner()) = err;
                    // sshd is not there yet: a little longer before the next session.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    None
                }
                Err(e) => Some(Err(e)),
            }
        })
        .await;
        match ready {
            Some(r) => r,
            None => Err(self.not_ready(name, probe, timeout, &last.into_inner().unwrap_or_default(), hint).await),
        }
    }

    /// Why it did not answer: the last ssh error, and sshd's own view from inside.
    async fn not_ready(
        &self,
        name: &str,
        probe: Option<u16>,
        timeout: Duration,
        last: &str,
        hint: &str,
    ) -> EngineError {
        let diag = ExecSpec::new([
            "sh",
            "-c",
            "systemctl --no-pager --lines=8 status sandbox-ssh.socket ssh.service ssh.socket 2>&1 | tail -n 20",
        ]);
        let why = match self.incus.exec(&instance_name(name), &diag).await {
            Ok(o) => o.stdout_str(),
            Err(e) => e.to_string(),
        };
        let last = match (last.is_empty(), probe) {
            (true, Some(port)) => format!("nothing answered on 127.0.0.1:{port}"),
            (true, None) => "no SSH session through the Incus API".to_string(),
            _ => last.to_string(),
        };
        EngineError::failed(
            format!("sandbox '{name}' did not answer over SSH in {}s: {last}\n{why}", timeout.as_secs()),
            hint,
        )
    }
}

async fn port_open(port: u16) -> bool {
    let probe = tokio::time::timeout(Duration::from_millis(50), tokio::net::TcpStream::connect(("127.0.0.1", port)));
    matches!(probe.await, Ok(Ok(_)))
}

/// `ssh -F ~/.sandbox/ssh_config NAME true`: None when it succeeded, else what ssh said.
async fn ssh_true(name: &str) -> Result<Option<String>> {
    let out = tokio::process::Command::new("ssh")
        .arg("-F")
        .arg(sshcfg::config_path())
        // curve25519 alone: the default post-quantum hybrid costs ~120 ms of CPU per probe.
        .args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=2", "-o", "KexAlgorithms=curve25519-sha256", name, "true"])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| EngineError::failed(format!("cannot run ssh: {e}"), "install openssh-client"))?;
    Ok((!out.status.success()).then(|| String::from_utf8_lossy(&out.stderr).trim().to_string()))
}
