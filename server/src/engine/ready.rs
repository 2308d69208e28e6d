//! When a sandbox is ready: an SSH session through its forwarded port succeeds, with strict
//! host-key checking (`ssh -F ~/.sandbox/ssh_config NAME true`), not merely a proxy accepting TCP.
use std::time::Duration;

use super::validate::instance_name;
use super::{Engine, sshcfg};
use crate::error::{EngineError, Result};
use crate::incus::ExecSpec;

impl Engine {
    /// Ready = an SSH session through the forwarded port succeeds, with strict host-key checking.
    pub async fn wait_ssh(&self, name: &str, port: u16, timeout: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        let cfg = sshcfg::config_path();
        loop {
            // A cheap TCP probe with a short timeout first: a SYN sent before the sandbox's
            // network is up is lost, and the kernel would only retry it after a whole second.
            let probe =
                tokio::time::timeout(Duration::from_millis(50), tokio::net::TcpStream::connect(("127.0.0.1", port)));
            let probe = probe.await;
            tracing::debug!(
                "ssh probe {name}: {:?}",
                probe.as_ref().map(|r| r.as_ref().map(|_| ()).map_err(|e| e.kind()))
            );
            if !matches!(probe, Ok(Ok(_))) && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            let out = tokio::process::Command::new("ssh")
                .arg("-F")
                .arg(&cfg)
                // curve25519 alone: the default post-quantum hybrid costs ~120 ms of CPU per probe.
                .args([
                    "-o",
                    "BatchMode=yes",
                    "-o",
                    "ConnectTimeout=2",
                    "-o",
                    "KexAlgorithms=curve25519-sha256",
                    name,
                    "true",
                ])
                .stdin(std::process::Stdio::null())
                .output()
                .await
                .map_err(|e| EngineError::failed(format!("cannot run ssh: {e}"), "install openssh-client"))?;
            if out.status.success() {
                return Ok(());
            }
            let last = String::from_utf8_lossy(&out.stderr).trim().to_string();
            tracing::debug!("ssh attempt {name}: {last}");
            if tokio::time::Instant::now() >= deadline {
                // Say why: sshd's own view from inside.
                let diag = ExecSpec::new([
                    "sh",
                    "-c",
                    "systemctl --no-pager --lines=8 status sandbox-ssh.socket ssh.service ssh.socket 2>&1 | tail -n 20",
                ]);
                let why = match self.incus.exec(&instance_name(name), &diag).await {
                    Ok(o) => o.stdout_str(),
                    Err(e) => e.to_string(),
                };
                return Err(EngineError::failed(
                    format!("sandbox '{name}' did not answer over SSH in {}s: {last}\n{why}", timeout.as_secs()),
                    "see `incus info --show-log agent-NAME`; the create was rolled back",
                ));
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }
}
