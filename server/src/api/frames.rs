//! A guard in front of the LSP transport. tower-lsp-server stops reading after one undecodable
//! message (its framed reader ends on the first error), and it would buffer any Content-Length
//! a client claims. So frames are checked here first: bad JSON gets a Parse error response and
//! the stream goes on; oversized messages are skipped with an error; only well-formed frames
//! reach the server. Its output is re-framed onto stdout by one writer, so the two never
//! interleave mid-message.
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

pub const MAX_MESSAGE: usize = 16 << 20;

enum Frame {
    Body(Vec<u8>),
    TooLarge(usize),
    BadHeader,
}

async fn read_frame<R: AsyncBufRead + Unpin>(r: &mut R) -> std::io::Result<Option<Frame>> {
    let mut len: Option<usize> = None;
    let mut saw_any = false;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await? == 0 {
            return Ok(None);
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            if saw_any {
                break;
            }
            continue;
        }
        saw_any = true;
        if let Some(v) = line.strip_prefix("Content-Length:") {
            len = v.trim().parse().ok();
        }
    }
    let Some(len) = len else { return Ok(Some(Frame::BadHeader)) };
    if len > MAX_MESSAGE {
        let mut left = len as u64;
        let mut sink = tokio::io::sink();
        left -= tokio::io::copy(&mut (&mut *r).take(left), &mut sink).await?;
        if left > 0 {
            return Ok(None);
        }
        return Ok(Some(Frame::TooLarge(len)));
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).await?;
    Ok(Some(Frame::Body(body)))
}

fn error_frame(code: i64, message: &str) -> Vec<u8> {
    let body =
        serde_json::json!({"jsonrpc": "2.0", "id": null, "error": {"code": code, "message": message}}).to_string();
    format!("Content-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
}

/// Returns (server input, server output) to hand to tower-lsp's `Server::new`.
pub fn guard<I, O>(stdin: I, stdout: O) -> (impl AsyncRead + Send + Unpin, impl AsyncWrite + Send + Unpin)
where
    I: AsyncRead + Send + Unpin + 'static,
    O: AsyncWrite + Send + Unpin + 'static,
{
    let (server_in, mut to_server) = tokio::io::duplex(1 << 20);
    let (from_server, server_out) = tokio::io::duplex(1 << 20);
    let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(64);

    // One writer owns stdout.
    tokio::spawn(async move {
        let mut stdout = stdout;
        while let Some(frame) = out_rx.recv().await {
            if stdout.write_all(&frame).await.is_err() || stdout.flush().await.is_err() {
                return;
            }
        }
    });
    // The server's frames, passed through whole.
    let tx = out_tx.clone();
    tokio::spawn(async move {
        let mut r = BufReader::new(from_server);
        while let Ok(Some(Frame::Body(body))) = read_frame(&mut r).await {
            let mut frame = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
            frame.extend_from_slice(&body);
            if tx.send(frame).await.is_err() {
                return;
            }
        }
    });
    // The client's frames, checked.
    tokio::spawn(async move {
        let mut r = BufReader::new(stdin);
        loop {
            match read_frame(&mut r).await {
                Ok(Some(Frame::Body(body))) => {
                    if serde_json::from_slice::<serde_json::Value>(&body).is_err() {
                        tracing::warn!("client sent a message that is not JSON ({} bytes)", body.len());
                        let _ = out_tx.send(error_frame(-32700, "Parse error: the message is not JSON")).await;
                        continue;
                    }
                    let header = format!("Content-Length: {}\r\n\r\n", body.len());
                    if to_server.write_all(header.as_bytes()).await.is_err()
                        || to_server.write_all(&body).await.is_err()
                    {
                        return;
                    }
                }
                Ok(Some(Frame::TooLarge(n))) => {
                    tracing::warn!("client sent a {n}-byte message; the limit is {MAX_MESSAGE}");
                    let msg = format!("Invalid request: message of {n} bytes exceeds the {MAX_MESSAGE}-byte limit");
                    let _ = out_tx.send(error_frame(-32600, &msg)).await;
                }
                Ok(Some(Frame::BadHeader)) => {
                    let _ = out_tx.send(error_frame(-32700, "Parse error: missing Content-Length")).await;
                }
                Ok(None) | Err(_) => return, // client gone: closing `to_server` ends the server
            }
        }
    });
    (server_in, server_out)
}

/// Reads one frame (test hook for the fuzz test): Ok(true) if something was read.
#[cfg(test)]
pub(crate) async fn read_frame_for_tests<R: AsyncBufRead + Unpin>(r: &mut R) -> std::io::Result<bool> {
    Ok(read_frame(r).await?.is_some())
}
