//! Running commands in instances: argv vectors only (never a shell string built from input),
//! either streamed over websockets (progress) or recorded by Incus and fetched afterwards.
use std::collections::BTreeMap;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::client::{Incus, op_id};
use super::error::{IncusError, Result};

#[derive(Debug, Clone, Default)]
pub struct ExecSpec {
    pub command: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub user: Option<u32>,
    pub group: Option<u32>,
    pub cwd: Option<String>,
    pub stdin: Option<Vec<u8>>,
    /// Keep at most this many bytes of each stream (the rest is dropped, `truncated` set): for
    /// output a sandbox controls.
    pub max_output: Option<usize>,
}

impl ExecSpec {
    pub fn new<S: Into<String>>(argv: impl IntoIterator<Item = S>) -> Self {
        Self { command: argv.into_iter().map(Into::into).collect(), ..Default::default() }
    }
    pub fn as_user(mut self, uid: u32, gid: u32, home: &str) -> Self {
        self.user = Some(uid);
        self.group = Some(gid);
        self.env.insert("HOME".into(), home.into());
        self.cwd.get_or_insert_with(|| home.into());
        self
    }
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.insert(k.into(), v.into());
        self
    }
    pub fn cwd(mut self, dir: &str) -> Self {
        self.cwd = Some(dir.into());
        self
    }
    pub fn stdin(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(data.into());
        self
    }

    pub fn max_output(mut self, bytes: usize) -> Self {
        self.max_output = Some(bytes);
        self
    }

    fn body(&self, streamed: bool) -> Value {
        let mut env = self.env.clone();
        env.entry("PATH".into())
            .or_insert_with(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
        let mut b = json!({
            "command": self.command,
            "environment": env,
            "interactive": false,
            "wait-for-websocket": streamed,
            "record-output": !streamed,
        });
        if let Some(u) = self.user {
            b["user"] = json!(u);
        }
        if let Some(g) = self.group {
            b["group"] = json!(g);
        }
        if let Some(c) = &self.cwd {
            b["cwd"] = json!(c);
        }
        b
    }
}

#[derive(Debug, Clone, Default)]
pub struct ExecOutput {
    pub status: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// A stream was longer than `ExecSpec::max_output` and was cut there.
    pub truncated: bool,
}

impl ExecOutput {
    pub fn ok(&self) -> bool {
        self.status == 0
    }
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Which stream a chunk of output came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Incus {
    /// Runs a command and returns its output and exit code (Incus records the output).
    /// The end of an exec. Incus answers the wait for a command that exited 127 or 126 with an
    /// error ("Command not found", "Command not executable"): that is the command's exit status,
    /// not a failure of the instance (it used to read as "instance 'agent-X' not found").
    async fn wait_exec(&self, id: &str, what: &str) -> Result<super::types::Operation> {
        match self.wait_operation(id, what).await {
            Err(IncusError::CommandExited { status }) => Ok(super::types::Operation {
                status: "Success".into(),
                metadata: Some(serde_json::json!({ "return": status })),
                ..Default::default()
            }),
            r => r,
        }
    }

    pub async fn exec(&self, name: &str, spec: &ExecSpec) -> Result<ExecOutput> {
        if spec.stdin.is_some() {
            return self.exec_streamed(name, spec, |_, _| {}).await;
        }
        let what = format!("instance '{name}'");
        let env = self
            .post_json(&format!("/1.0/instances/{}/exec", urlencoding::encode(name)), &spec.body(false), &what)
            .await?;
        let op = self.wait_exec(&op_id(&env)?, &what).await?;
        let meta = op.metadata.unwrap_or_default();
        let status = exit_status(&meta);
        let mut out = ExecOutput { status, ..Default::default() };
        if let Some(paths) = meta.get("output").and_then(Value::as_object) {
            for (fd, path) in paths {
                let Some(path) = path.as_str() else { continue };
                // A recorded output that cannot be read is an error, never an empty output: a
                // caller would take "" for what the command printed.
                let (bytes, cut) = match spec.max_output {
                    Some(max) => self.get_bytes_capped(path, max).await?,
                    None => (self.get_bytes(path).await?, false),
                };
                out.truncated |= cut;
                match fd.as_str() {
                    "1" => out.stdout = bytes,
                    "2" => out.stderr = bytes,
                    _ => {}
                }
                // Recorded logs stay on the host until deleted.
                let _ = self.http().delete(format!("{}{}", self.base(), path)).send().await;
            }
        }
        Ok(out)
    }

    /// Starts `spec` with its four streams as websockets (control, stdin, stdout, stderr); the
    /// command runs once all four are connected. Returns the operation id with them.
    pub(super) async fn exec_streams(&self, name: &str, spec: &ExecSpec) -> Result<(String, [super::ws::Ws; 4])> {
        let what = format!("instance '{name}'");
        // The handshakes are bounded: they once hung here (the cause was idle pooled connections,
        // see `connect`). The command only starts once all four streams are connected, so
        // cancelling and retrying is safe.
        let mut attempt = 0;
        let streams = loop {
            attempt += 1;
            let env = self
                .post_json(&format!("/1.0/instances/{}/exec", urlencoding::encode(name)), &spec.body(true), &what)
                .await?;
            let id = op_id(&env)?;
            let fds = env.metadata.pointer("/metadata/fds").cloned().unwrap_or_default();
            let connect = async {
                let mut socks = Vec::with_capacity(4);
                for fd in ["control", "0", "1", "2"] {
                    let secret = fds
                        .get(fd)
                        .and_then(Value::as_str)
                        .ok_or_else(|| IncusError::Decode(format!("exec without a '{fd}' websocket")))?;
                    let path = format!("/1.0/operations/{id}/websocket?secret={}", urlencoding::encode(secret));
                    socks.push(self.websocket(&path).await?);
                }
                Ok::<_, IncusError>(socks)
            };
            match tokio::time::timeout(std::time::Duration::from_secs(5), connect).await {
                Ok(Ok(socks)) => {
                    break (id, <[_; 4]>::try_from(socks).map_err(|_| IncusError::Decode("websockets".into()))?);
                }
                Ok(Err(e)) if attempt >= 3 => return Err(e),
                Err(_) if attempt >= 3 => {
                    let _ = self.cancel_operation(&id).await;
                    return Err(IncusError::Websocket(format!("exec streams to {name} did not connect (3 tries)")));
                }
                _ => {
                    tracing::warn!("exec {name}: streams did not connect, retrying");
                    let _ = self.cancel_operation(&id).await;
                }
            }
        };
        Ok(streams)
    }

    /// Runs a command, handing each chunk of output to `on_output` as it arrives, and returns
    /// everything with the exit code.
    pub async fn exec_streamed(
        &self,
        name: &str,
        spec: &ExecSpec,
        mut on_output: impl FnMut(Stream, &[u8]),
    ) -> Result<ExecOutput> {
        let what = format!("instance '{name}'");
        let (id, [control, mut stdin, mut stdout, mut stderr]) = self.exec_streams(name, spec).await?;
        let wserr = |e: tokio_tungstenite::tungstenite::Error| IncusError::Websocket(e.to_string());

        if let Some(data) = &spec.stdin {
            stdin.send(Message::binary(data.clone())).await.map_err(wserr)?;
        }
        // Closing fd 0 is how the process sees end-of-input.
        let _ = stdin.close(None).await;

        let mut out = ExecOutput::default();
        let max = spec.max_output.unwrap_or(usize::MAX);
        let keep = |buf: &mut Vec<u8>, data: &[u8], cut: &mut bool| {
            let room = max.saturating_sub(buf.len());
            *cut |= data.len() > room;
            buf.extend_from_slice(&data[..data.len().min(room)]);
        };
        let (mut out_done, mut err_done) = (false, false);
        // The command's end, from the operation, watched beside the streams: once it has ended,
        // streams that stay quiet for IDLE are taken as done (a guard: a call that never returned
        // under load turned out to be the second wait below, but a stream left open must not hang
        // a caller either).
        let ended = self.wait_exec(&id, &what);
        tokio::pin!(ended);
        let mut op = None;
        let idle = tokio::time::sleep(std::time::Duration::MAX);
        tokio::pin!(idle);
        while !(out_done && err_done) {
            if op.is_some() {
                idle.as_mut().reset(tokio::time::Instant::now() + IDLE);
            }
            tokio::select! {
                r = &mut ended, if op.is_none() => op = Some(r),
                () = &mut idle, if op.is_some() => {
                    tracing::warn!("exec in {name}: its output streams stayed open after it ended");
                    break;
                }
                m = stdout.next(), if !out_done => match m {
                    Some(Ok(Message::Binary(b))) => { on_output(Stream::Stdout, &b); keep(&mut out.stdout, &b, &mut out.truncated); }
                    Some(Ok(Message::Text(t))) => { on_output(Stream::Stdout, t.as_bytes()); keep(&mut out.stdout, t.as_bytes(), &mut out.truncated); }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => out_done = true,
                    _ => {}
                },
                m = stderr.next(), if !err_done => match m {
                    Some(Ok(Message::Binary(b))) => { on_output(Stream::Stderr, &b); keep(&mut out.stderr, &b, &mut out.truncated); }
                    Some(Ok(Message::Text(t))) => { on_output(Stream::Stderr, t.as_bytes()); keep(&mut out.stderr, t.as_bytes(), &mut out.truncated); }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => err_done = true,
                    _ => {}
                },
            }
        }
        // The same wait, never a second one: the first may hold a connection it has not written
        // its request on yet, and Incus (6.0) accepts no other connection on its socket until
        // that one sends — a second wait here hung every Incus client on the machine.
        let op = match op {
            Some(r) => r?,
            None => ended.await?,
        };
        drop(control);
        out.status = exit_status(&op.metadata.unwrap_or_default());
        Ok(out)
    }
}

/// How long output streams may stay quiet after their command ended before they count as done.
const IDLE: std::time::Duration = std::time::Duration::from_secs(2);

/// The exit status an exec's metadata reports (-1 when it says none).
fn exit_status(meta: &Value) -> i32 {
    meta.get("return").and_then(Value::as_i64).unwrap_or(-1) as i32
}
