//! A guard in front of the LSP transport. tower-lsp-server stops serving after one message it
//! cannot decode (its framed reader ends on the first error: bad JSON, valid JSON that is not a
//! JSON-RPC 2.0 message, a header that is not UTF-8), and it would buffer any Content-Length a
//! client claims. So frames are checked here first: bad JSON gets a Parse error, anything that is
//! not a JSON-RPC 2.0 request, notification or response gets Invalid Request, oversized messages
//! are skipped with an error, and the stream goes on; only well-formed messages reach the server.
//! Its output is re-framed onto stdout by one writer, so the two never interleave mid-message.
use serde_json::Value;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

pub const MAX_MESSAGE: usize = 16 << 20;

enum Frame {
    Body(Vec<u8>),
    TooLarge(usize),
    BadHeader,
}

/// A header line longer than this is not a header (and is not buffered).
const MAX_HEADER_LINE: u64 = 8 << 10;

/// One header line as bytes (a byte that is not UTF-8 is no reason to stop); a line longer than
/// `MAX_HEADER_LINE` is consumed to its end and reported as `None`.
async fn header_line<R: AsyncBufRead + Unpin>(r: &mut R) -> std::io::Result<Option<Option<Vec<u8>>>> {
    let mut line = Vec::new();
    let n = (&mut *r).take(MAX_HEADER_LINE).read_until(b'\n', &mut line).await?;
    if n == 0 {
        return Ok(None);
    }
    if line.ends_with(b"\n") || (n as u64) < MAX_HEADER_LINE {
        return Ok(Some(Some(line)));
    }
    loop {
        let mut rest = Vec::new();
        let m = (&mut *r).take(MAX_HEADER_LINE).read_until(b'\n', &mut rest).await?;
        if m == 0 || rest.ends_with(b"\n") {
            return Ok(Some(None));
        }
    }
}

async fn read_frame<R: AsyncBufRead + Unpin>(r: &mut R) -> std::io::Result<Option<Frame>> {
    let mut len: Option<usize> = None;
    let mut saw_any = false;
    let mut bad = false;
    loop {
        let Some(line) = header_line(r).await? else { return Ok(None) };
        let Some(line) = line else {
            bad = true;
            saw_any = true;
            continue;
        };
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        if text.is_empty() {
            if saw_any {
                break;
            }
            continue;
        }
        saw_any = true;
        if let Some(v) = text.strip_prefix("Content-Length:") {
            len = v.trim().parse().ok();
        }
    }
    let Some(len) = len.filter(|_| !bad) else { return Ok(Some(Frame::BadHeader)) };
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

/// Why a JSON value is not a JSON-RPC 2.0 message the server can take — a request or
/// notification (`method` a string, `params` structured) or a response (`id` with `result` or
/// `error`) — with the id to answer with. None: it is one.
fn invalid_message(v: &Value) -> Option<(Value, &'static str)> {
    let Value::Object(o) = v else {
        return Some((Value::Null, "Invalid Request: a message is one JSON object (batches are not supported)"));
    };
    let id = o.get("id");
    let id_ok = match id {
        None | Some(Value::Null) | Some(Value::String(_)) => true,
        Some(Value::Number(n)) => n.is_i64(),
        Some(_) => false,
    };
    let reply_to = if id_ok { id.cloned().unwrap_or(Value::Null) } else { Value::Null };
    if o.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Some((reply_to, "Invalid Request: \"jsonrpc\" must be \"2.0\""));
    }
    if !id_ok {
        return Some((Value::Null, "Invalid Request: \"id\" must be an integer, a string or null"));
    }
    match o.get("method") {
        Some(Value::String(_)) => match o.get("params") {
            None | Some(Value::Null | Value::Object(_) | Value::Array(_)) => None,
            Some(_) => Some((reply_to, "Invalid Request: \"params\" must be an object or an array")),
        },
        Some(_) => Some((reply_to, "Invalid Request: \"method\" must be a string")),
        None if id.is_some() && (o.contains_key("result") || o.contains_key("error")) => None,
        None => {
            Some((reply_to, "Invalid Request: neither a request (\"method\") nor a response (\"result\" or \"error\")"))
        }
    }
}

fn error_frame(code: i64, message: &str, id: Value) -> Vec<u8> {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}).to_string();
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
                    let Ok(message) = serde_json::from_slice::<Value>(&body) else {
                        tracing::warn!("client sent a message that is not JSON ({} bytes)", body.len());
                        let _ =
                            out_tx.send(error_frame(-32700, "Parse error: the message is not JSON", Value::Null)).await;
                        continue;
                    };
                    if let Some((id, why)) = invalid_message(&message) {
                        tracing::warn!("client sent a message that is not JSON-RPC 2.0: {why}");
                        let _ = out_tx.send(error_frame(-32600, why, id)).await;
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
                    let _ = out_tx.send(error_frame(-32600, &msg, Value::Null)).await;
                }
                Ok(Some(Frame::BadHeader)) => {
                    let _ = out_tx
                        .send(error_frame(-32700, "Parse error: no valid Content-Length header", Value::Null))
                        .await;
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::invalid_message;

    #[test]
    fn only_json_rpc_2_messages_pass() {
        let ok = [
            json!({"jsonrpc": "2.0", "id": 1, "method": "m", "params": {}}),
            json!({"jsonrpc": "2.0", "id": "a", "method": "m", "params": []}),
            json!({"jsonrpc": "2.0", "method": "n"}),
            json!({"jsonrpc": "2.0", "id": 3, "result": null}),
            json!({"jsonrpc": "2.0", "id": 4, "error": {"code": 1, "message": "x"}}),
        ];
        for m in ok {
            assert_eq!(invalid_message(&m), None, "{m}");
        }
        let bad = [
            (json!({}), json!(null)),
            (json!(null), json!(null)),
            (json!(1), json!(null)),
            (json!([]), json!(null)),
            (json!([{"jsonrpc": "2.0", "id": 1, "method": "m"}]), json!(null)),
            (json!({"jsonrpc": "2.0", "id": 5, "method": 7}), json!(5)),
            (json!({"jsonrpc": "1.0", "id": 6, "method": "m"}), json!(6)),
            (json!({"jsonrpc": "2.0", "id": 1.5, "method": "m"}), json!(null)),
            (json!({"jsonrpc": "2.0", "id": {"a": 1}, "method": "m"}), json!(null)),
            (json!({"jsonrpc": "2.0", "id": 7, "method": "m", "params": 3}), json!(7)),
            (json!({"jsonrpc": "2.0", "id": 8}), json!(8)),
        ];
        for (m, id) in bad {
            assert_eq!(invalid_message(&m).map(|(i, _)| i), Some(id), "{m}");
        }
    }
}
