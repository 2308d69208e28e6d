//! The first thing a git:// client sends (git's pack protocol, "git-daemon" request): one
//! pkt-line `git-upload-pack /PATH\0host=HOST\0[\0version=2\0]`. From the sandbox, so bounded and
//! checked; anything else is refused with an `ERR` packet, which git prints as the reason.
use tokio::io::{AsyncRead, AsyncReadExt};

/// What the client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// fetch, clone, ls-remote
    UploadPack,
    /// push
    ReceivePack,
}

impl Service {
    pub fn command(self) -> &'static str {
        match self {
            Service::UploadPack => "upload-pack",
            Service::ReceivePack => "receive-pack",
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    pub service: Service,
    pub path: String,
    /// Extra parameters (`version=2`), for GIT_PROTOCOL.
    pub protocol: Option<String>,
}

/// A request line is short; git's own limit for a pkt-line is 65520 bytes.
const MAX: usize = 4096;

/// Reads exactly the request packet (nothing past it: the client waits for our answer).
pub async fn read_request<R: AsyncRead + Unpin>(r: &mut R) -> Result<Request, String> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).await.map_err(|e| format!("no request: {e}"))?;
    let n =
        std::str::from_utf8(&len).ok().and_then(|s| usize::from_str_radix(s, 16).ok()).ok_or("not git's protocol")?;
    if !(5..=MAX).contains(&n) {
        return Err("a request of the wrong size".into());
    }
    let mut body = vec![0u8; n - 4];
    r.read_exact(&mut body).await.map_err(|e| format!("a cut request: {e}"))?;
    parse(&body)
}

pub fn parse(body: &[u8]) -> Result<Request, String> {
    let mut fields = body.split(|b| *b == 0);
    let first = std::str::from_utf8(fields.next().unwrap_or_default()).map_err(|_| "not text")?;
    let (cmd, path) = first.split_once(' ').ok_or("no path")?;
    let service = match cmd {
        "git-upload-pack" => Service::UploadPack,
        "git-receive-pack" => Service::ReceivePack,
        other => return Err(format!("'{}' is not served here (fetch and push only)", other.escape_default())),
    };
    let rest: Vec<&[u8]> = fields.collect();
    // host=… comes first; extra parameters follow an empty field.
    let extra: Vec<String> = rest
        .iter()
        .skip_while(|f| !f.is_empty())
        .filter(|f| !f.is_empty())
        .filter_map(|f| std::str::from_utf8(f).ok())
        .filter(|f| *f == "version=2" || *f == "version=1")
        .map(str::to_owned)
        .collect();
    Ok(Request { service, path: path.to_string(), protocol: (!extra.is_empty()).then(|| extra.join(":")) })
}

/// An error the client prints (`fatal: remote error: MESSAGE`).
pub fn err_packet(message: &str) -> Vec<u8> {
    let text: String = message.chars().filter(|c| !c.is_control()).take(900).collect();
    let body = format!("ERR {text}\n");
    let mut out = format!("{:04x}", body.len() + 4).into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn requests_of_both_protocol_versions_and_nothing_past_them() {
        let body = b"git-upload-pack /acme/app.git\0host=127.0.0.1\0\0version=2\0";
        let mut wire = format!("{:04x}", body.len() + 4).into_bytes();
        wire.extend_from_slice(body);
        wire.extend_from_slice(b"0000more");
        let mut r = &wire[..];
        let req = read_request(&mut r).await.unwrap();
        assert_eq!(
            req,
            Request { service: Service::UploadPack, path: "/acme/app.git".into(), protocol: Some("version=2".into()) }
        );
        assert_eq!(r, b"0000more");
        let v0 = parse(b"git-receive-pack /acme/app.git\0host=h\0").unwrap();
        assert_eq!((v0.service, v0.protocol), (Service::ReceivePack, None));
    }

    #[tokio::test]
    async fn anything_else_is_refused() {
        for bad in [&b"zzzz"[..], b"0004", b"ffff", b"0010git-upload-"] {
            assert!(read_request(&mut &bad[..]).await.is_err(), "{bad:?}");
        }
        assert!(parse(b"git-upload-archive /x\0").is_err());
        assert!(parse(b"git-upload-pack\0").is_err());
        assert!(parse(b"git-upload-pack /x\0host=h\0\0evil=1\0").unwrap().protocol.is_none());
        assert_eq!(err_packet("no\nway"), b"000eERR noway\n");
    }
}
