//! One sandbox's endpoint: every request is forwarded to the upstream with its path, query, method,
//! headers and body unchanged — except the credential (whatever the sandbox sent is dropped and
//! the host's is put in) and Accept-Encoding (narrowed to what the proxy can read, so it can count
//! tokens). The answer streams back chunk by chunk as it arrives; the `POST /v1/messages` answers
//! are read on the side for their `usage`.
use std::io::Write;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use futures::{Stream, StreamExt};

use super::credential::{self, CredentialKind, Provider};
use super::state::Daemon;
use super::upstream;
use super::usage::{self, Seen, SseReader};

/// The largest request body forwarded (the Messages API takes up to 32 MB).
const MAX_BODY: u64 = 64 << 20;
/// What the API needs with an OAuth token (`claude setup-token`) in `Authorization: Bearer`.
const OAUTH_BETA: &str = "oauth-2025-04-20";
/// Content encodings the proxy can read (flate2); others are not asked for.
const READABLE: [&str; 3] = ["gzip", "deflate", "identity"];

pub(super) struct Cx {
    d: Arc<Daemon>,
    name: String,
}

pub(super) fn router(d: Arc<Daemon>, name: String) -> axum::Router {
    axum::Router::new().fallback(forward).with_state(Arc::new(Cx { d, name }))
}

/// An error in the API's own shape, so Claude Code shows its message.
fn api_error(status: StatusCode, kind: &str, message: &str) -> Response {
    let body = serde_json::json!({"type": "error", "error": {"type": kind, "message": message}});
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("a valid response")
}

/// Headers that belong to one connection, not to the request (RFC 9110 §7.6.1), and the ones
/// named in its Connection header.
fn hop_by_hop(headers: &HeaderMap) -> Vec<HeaderName> {
    let mut v: Vec<HeaderName> = [
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ]
    .iter()
    .map(|h| HeaderName::from_static(h))
    .collect();
    for c in headers.get_all(header::CONNECTION) {
        for name in c.to_str().unwrap_or("").split(',') {
            if let Ok(h) = HeaderName::from_bytes(name.trim().as_bytes()) {
                v.push(h);
            }
        }
    }
    v
}

fn copy_headers(from: &HeaderMap, extra_drop: &[HeaderName]) -> HeaderMap {
    let drop = hop_by_hop(from);
    let mut out = HeaderMap::with_capacity(from.len());
    for (k, v) in from {
        if !drop.contains(k) && !extra_drop.contains(k) {
            out.append(k.clone(), v.clone());
        }
    }
    out
}

/// The request's headers for the upstream: the host's credential in, the sandbox's out.
fn upstream_headers(incoming: &HeaderMap, cred: &credential::Credential) -> Option<HeaderMap> {
    let x_api_key = HeaderName::from_static("x-api-key");
    let beta = HeaderName::from_static("anthropic-beta");
    let mut h = copy_headers(incoming, &[header::HOST, header::AUTHORIZATION, x_api_key.clone()]);
    if let Some(ae) = incoming.get(header::ACCEPT_ENCODING) {
        let kept: Vec<&str> = ae
            .to_str()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|e| READABLE.contains(&e.split(';').next().unwrap_or("").trim()))
            .collect();
        let v = if kept.is_empty() { "identity".to_string() } else { kept.join(", ") };
        h.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(&v).ok()?);
    }
    match cred.kind {
        CredentialKind::ApiKey => {
            h.insert(x_api_key, HeaderValue::from_str(&cred.secret).ok()?);
        }
        CredentialKind::OauthToken => {
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {}", cred.secret)).ok()?);
            let betas: Vec<String> = h
                .get_all(&beta)
                .iter()
                .flat_map(|v| v.to_str().unwrap_or("").split(',').map(|s| s.trim().to_string()))
                .filter(|s| !s.is_empty())
                .collect();
            if !betas.iter().any(|b| b == OAUTH_BETA) {
                let joined = betas.into_iter().chain([OAUTH_BETA.to_string()]).collect::<Vec<_>>().join(",");
                h.insert(beta, HeaderValue::from_str(&joined).ok()?);
            }
        }
    }
    Some(h)
}

/// The sandbox's request body, refused past MAX_BODY.
fn limited(body: Body) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    body.into_data_stream().scan(0u64, |seen, chunk| {
        let item = match chunk {
            Ok(b) => {
                *seen += b.len() as u64;
                if *seen > MAX_BODY {
                    Err(std::io::Error::other(format!("request body over {} MB", MAX_BODY >> 20)))
                } else {
                    Ok(b)
                }
            }
            Err(e) => Err(std::io::Error::other(e)),
        };
        futures::future::ready(Some(item))
    })
}

async fn forward(State(cx): State<Arc<Cx>>, req: Request) -> Response {
    let found = {
        let all = cx.d.sandboxes.lock().unwrap_or_else(|e| e.into_inner());
        all.get(&cx.name).map(|e| (e.upstream.clone(), e.limit.clone()))
    };
    let Some((base, limit)) = found else {
        return api_error(StatusCode::SERVICE_UNAVAILABLE, "api_error", "this sandbox's endpoint is closed");
    };
    let Ok(permit) = limit.acquire_owned().await else {
        return api_error(StatusCode::SERVICE_UNAVAILABLE, "api_error", "this sandbox's endpoint is closed");
    };
    let Some(cred) = credential::load(Provider::Anthropic) else {
        // 403, not 401: Claude Code shows a 403's message (it answers a 401 with its own login advice).
        return api_error(
            StatusCode::FORBIDDEN,
            "permission_error",
            "no Anthropic credential on the host: run `sandbox auth set anthropic` there (the sandbox never holds it)",
        );
    };
    let (parts, body) = req.into_parts();
    let pq = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let url = match upstream::join(&base, pq) {
        Some(u) if parts.uri.authority().is_none() => u,
        _ => return api_error(StatusCode::BAD_REQUEST, "invalid_request_error", "only origin-form request targets"),
    };
    let Some(headers) = upstream_headers(&parts.headers, &cred) else {
        return api_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            "the host's credential is not a valid header",
        );
    };
    let counted =
        parts.method == Method::POST && url.path() == format!("{}/v1/messages", base.path().trim_end_matches('/'));
    let sent =
        cx.d.http
            .request(parts.method, url)
            .headers(headers)
            .body(reqwest::Body::wrap_stream(limited(body)))
            .send()
            .await;
    let resp = match sent {
        Ok(r) => r,
        Err(e) => {
            let msg =
                format!("the host proxy cannot reach {}: {}", base.origin().ascii_serialization(), without_url(&e));
            return api_error(StatusCode::BAD_GATEWAY, "api_error", &msg);
        }
    };
    let status = resp.status();
    let headers = copy_headers(resp.headers(), &[]);
    let mut tap = (counted && status.is_success()).then(|| Tap::new(&cx, &headers));
    let stream = resp.bytes_stream().map(move |chunk| {
        let _held = &permit; // the in-flight slot is freed when the answer ends
        if let (Ok(b), Some(t)) = (&chunk, tap.as_mut()) {
            t.feed(b);
        }
        chunk
    });
    let mut out = Response::builder().status(status);
    if let Some(h) = out.headers_mut() {
        *h = headers;
    }
    out.body(Body::from_stream(stream))
        .unwrap_or_else(|_| api_error(StatusCode::BAD_GATEWAY, "api_error", "bad answer"))
}

/// reqwest's error text without the URL (it is ours, but keep messages short and stable).
fn without_url(e: &reqwest::Error) -> String {
    let mut s = String::new();
    let mut cur: Option<&dyn std::error::Error> = Some(e);
    while let Some(c) = cur {
        s = c.to_string();
        cur = c.source();
    }
    s
}

/// A decompressing writer in front of the usage reader.
enum Decode<W: Write> {
    Plain(W),
    Gzip(flate2::write::GzDecoder<W>),
    Deflate(flate2::write::ZlibDecoder<W>),
}

impl<W: Write> Decode<W> {
    fn new(encoding: &str, w: W) -> Option<Self> {
        match encoding {
            "" | "identity" => Some(Self::Plain(w)),
            "gzip" | "x-gzip" => Some(Self::Gzip(flate2::write::GzDecoder::new(w))),
            "deflate" => Some(Self::Deflate(flate2::write::ZlibDecoder::new(w))),
            _ => None,
        }
    }
    fn write(&mut self, b: &[u8]) -> std::io::Result<()> {
        match self {
            Self::Plain(w) => w.write_all(b),
            Self::Gzip(w) => w.write_all(b),
            Self::Deflate(w) => w.write_all(b),
        }
    }
    fn finish(self) -> std::io::Result<W> {
        match self {
            Self::Plain(w) => Ok(w),
            Self::Gzip(w) => w.finish(),
            Self::Deflate(w) => w.finish(),
        }
    }
}

struct SseSink(SseReader);
impl Write for SseSink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.feed(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A JSON answer kept for its usage, up to usage::MAX_JSON.
struct JsonSink(Vec<u8>);
impl Write for JsonSink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + b.len() > usage::MAX_JSON {
            return Err(std::io::Error::other("answer too large to count"));
        }
        self.0.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

enum Reader {
    Sse(Decode<SseSink>),
    Json(Decode<JsonSink>),
}

/// Reads an answer's usage as it streams past; counts it when the answer ends (also when the
/// sandbox hangs up half-way: what arrived counts).
struct Tap {
    d: Arc<Daemon>,
    name: String,
    reader: Option<Reader>,
}

impl Tap {
    fn new(cx: &Cx, headers: &HeaderMap) -> Self {
        let get =
            |h: header::HeaderName| headers.get(h).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
        let (ctype, enc) = (get(header::CONTENT_TYPE), get(header::CONTENT_ENCODING));
        let reader = if ctype.starts_with("text/event-stream") {
            Decode::new(enc.trim(), SseSink(SseReader::default())).map(Reader::Sse)
        } else if ctype.starts_with("application/json") {
            Decode::new(enc.trim(), JsonSink(Vec::new())).map(Reader::Json)
        } else {
            None
        };
        Self { d: cx.d.clone(), name: cx.name.clone(), reader }
    }

    fn feed(&mut self, b: &[u8]) {
        let ok = match &mut self.reader {
            Some(Reader::Sse(r)) => r.write(b).is_ok(),
            Some(Reader::Json(r)) => r.write(b).is_ok(),
            None => true,
        };
        if !ok {
            self.reader = None; // unreadable: passes through uncounted
        }
    }

    fn seen(reader: Reader) -> Seen {
        match reader {
            Reader::Sse(r) => r.finish().map(|s| s.0.finish()).unwrap_or_default(),
            Reader::Json(r) => r.finish().map(|j| usage::from_json(&j.0)).unwrap_or_default(),
        }
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        if let Some(r) = self.reader.take() {
            let seen = Self::seen(r);
            if seen.is_counted() {
                self.d.record(&self.name, &seen);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cred(kind: CredentialKind) -> credential::Credential {
        credential::Credential { kind, secret: "sk-ant-real".into() }
    }

    fn incoming() -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("host", "127.0.0.1:7411"),
            ("authorization", "Bearer placeholder"),
            ("x-api-key", "placeholder"),
            ("anthropic-beta", "claude-code-20250219,effort-2025-11-24"),
            ("anthropic-version", "2023-06-01"),
            ("x-claude-code-session-id", "abc"),
            ("accept-encoding", "gzip, deflate, br, zstd"),
            ("connection", "keep-alive, x-private"),
            ("x-private", "hop"),
            ("content-length", "12"),
        ] {
            h.append(k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn an_api_key_replaces_whatever_the_sandbox_sent() {
        let h = upstream_headers(&incoming(), &cred(CredentialKind::ApiKey)).unwrap();
        assert_eq!(h["x-api-key"], "sk-ant-real");
        assert!(h.get("authorization").is_none());
        assert!(h.get("host").is_none() && h.get("connection").is_none() && h.get("x-private").is_none());
        // Everything else unchanged, server-side features included.
        assert_eq!(h["anthropic-beta"], "claude-code-20250219,effort-2025-11-24");
        assert_eq!(h["x-claude-code-session-id"], "abc");
        assert_eq!(h["content-length"], "12");
        assert_eq!(h["accept-encoding"], "gzip, deflate");
    }

    #[test]
    fn an_oauth_token_goes_as_bearer_with_the_oauth_beta_once() {
        let h = upstream_headers(&incoming(), &cred(CredentialKind::OauthToken)).unwrap();
        assert_eq!(h["authorization"], "Bearer sk-ant-real");
        assert!(h.get("x-api-key").is_none());
        assert_eq!(h["anthropic-beta"], "claude-code-20250219,effort-2025-11-24,oauth-2025-04-20");
        let mut again = incoming();
        again.insert("anthropic-beta", HeaderValue::from_static("oauth-2025-04-20"));
        again.insert("accept-encoding", HeaderValue::from_static("br"));
        let h = upstream_headers(&again, &cred(CredentialKind::OauthToken)).unwrap();
        assert_eq!(h["anthropic-beta"], "oauth-2025-04-20");
        assert_eq!(h["accept-encoding"], "identity");
    }

    #[test]
    fn gzip_answers_are_read_too() {
        let json = br#"{"model":"m","usage":{"input_tokens":3,"output_tokens":4}}"#;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(json).unwrap();
        let gz = enc.finish().unwrap();
        let mut d = Decode::new("gzip", JsonSink(Vec::new())).unwrap();
        for c in gz.chunks(5) {
            d.write(c).unwrap();
        }
        let s = usage::from_json(&d.finish().unwrap().0);
        assert_eq!((s.tokens.input_tokens, s.tokens.output_tokens), (3, 4));
        assert!(Decode::new("br", JsonSink(Vec::new())).is_none());
    }
}
