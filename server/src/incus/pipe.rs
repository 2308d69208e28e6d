//! A command in an instance as a pipe: our input to its stdin, its stdout to our output, byte for
//! byte, both ways at once. `sandbox __ssh-pipe` runs `sshd -i` this way, so SSH reaches a
//! sandbox on any cluster member through the Incus API alone (see engine/reach.rs).
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

use super::client::Incus;
use super::error::{IncusError, Result};
use super::exec::ExecSpec;

impl Incus {
    /// Runs `spec` with `input` as its stdin and `output` as its stdout (its stderr goes to ours);
    /// returns its exit status once it ended.
    pub async fn exec_pipe(
        &self,
        name: &str,
        spec: &ExecSpec,
        mut input: impl AsyncRead + Unpin,
        mut output: impl AsyncWrite + Unpin,
    ) -> Result<i32> {
        let (id, [control, mut stdin, mut stdout, mut stderr]) = self.exec_streams(name, spec).await?;
        let wserr = |e: &dyn std::fmt::Display| IncusError::Websocket(e.to_string());
        let pump_in = async {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = input.read(&mut buf).await.map_err(|e| wserr(&e))?;
                if n == 0 {
                    // End of our input: the command sees end-of-file on its stdin.
                    let _ = stdin.close(None).await;
                    return Ok::<_, IncusError>(());
                }
                stdin.send(Message::binary(buf[..n].to_vec())).await.map_err(|e| wserr(&e))?;
            }
        };
        let pump_out = async {
            let mut err_open = true;
            loop {
                tokio::select! {
                    m = stdout.next() => match m {
                        Some(Ok(Message::Binary(b))) => {
                            output.write_all(&b).await.map_err(|e| wserr(&e))?;
                            output.flush().await.map_err(|e| wserr(&e))?;
                        }
                        Some(Ok(Message::Text(t))) => output.write_all(t.as_bytes()).await.map_err(|e| wserr(&e))?,
                        Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return Ok::<_, IncusError>(()),
                        _ => {}
                    },
                    m = stderr.next(), if err_open => match m {
                        Some(Ok(Message::Binary(b))) => eprint!("{}", String::from_utf8_lossy(&b)),
                        Some(Ok(Message::Close(_))) | None | Some(Err(_)) => err_open = false,
                        _ => {}
                    },
                }
            }
        };
        // The command's output ending ends the pipe, whatever our input still does.
        tokio::pin!(pump_in);
        let mut input_done = false;
        tokio::pin!(pump_out);
        loop {
            tokio::select! {
                r = &mut pump_in, if !input_done => { r?; input_done = true; }
                r = &mut pump_out => { r?; break; }
            }
        }
        let status = match self.wait_operation(&id, &format!("instance '{name}'")).await {
            Err(IncusError::CommandExited { status }) => status,
            Err(e) => return Err(e),
            Ok(op) => op.metadata.and_then(|m| m.get("return").and_then(|r| r.as_i64())).unwrap_or(-1) as i32,
        };
        drop(control);
        Ok(status)
    }
}
