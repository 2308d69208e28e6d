//! Where the proxy forwards: `https://api.anthropic.com`, or `SANDBOX_ANTHROPIC_UPSTREAM` (a
//! gateway, or a simulated API in tests). The value in the environment of the `sandbox start` that
//! starts a sandbox applies to that sandbox. Plain http only where nothing leaves this machine:
//! loopback, and 198.18.0.0/15 (RFC 2544's benchmarking range, which the tests use for the hosts
//! they create).
use std::net::IpAddr;

use crate::error::{EngineError, Result};

pub const DEFAULT: &str = "https://api.anthropic.com";
pub const ENV: &str = "SANDBOX_ANTHROPIC_UPSTREAM";

/// The upstream of this process's environment, checked.
pub fn from_env() -> Result<url::Url> {
    match std::env::var(ENV) {
        Ok(v) if !v.trim().is_empty() => parse(v.trim()),
        _ => parse(DEFAULT),
    }
}

fn local_only(host: &url::Host<&str>) -> bool {
    let ip: Option<IpAddr> = match host {
        url::Host::Domain(d) => return *d == "localhost",
        url::Host::Ipv4(a) => Some((*a).into()),
        url::Host::Ipv6(a) => Some((*a).into()),
    };
    match ip {
        Some(IpAddr::V4(a)) => a.is_loopback() || (a.octets()[0] == 198 && (a.octets()[1] & 0xfe) == 18),
        Some(IpAddr::V6(a)) => a.is_loopback(),
        None => false,
    }
}

pub fn parse(s: &str) -> Result<url::Url> {
    let hint = "give https://HOST[:PORT][/PATH] (plain http only to 127.0.0.1, localhost or a 198.18.0.0/15 test address), \
                or unset SANDBOX_ANTHROPIC_UPSTREAM for https://api.anthropic.com";
    let bad = |why: String| EngineError::invalid("SANDBOX_ANTHROPIC_UPSTREAM", why, hint);
    let shown: String = s.chars().flat_map(char::escape_default).take(120).collect();
    let u = url::Url::parse(s).map_err(|e| bad(format!("'{shown}' is not a URL ({e})")))?;
    let host = u.host().ok_or_else(|| bad(format!("'{shown}' has no host")))?;
    match u.scheme() {
        "https" => {}
        "http" if local_only(&host) => {}
        "http" => return Err(bad(format!("'{shown}' is plain http to a host outside this machine"))),
        other => return Err(bad(format!("'{shown}' is not http(s) (scheme '{other}')"))),
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(bad("a URL must not carry a user or password (the proxy adds the credential)".into()));
    }
    if u.query().is_some() || u.fragment().is_some() {
        return Err(bad(format!("'{shown}' has a query or fragment")));
    }
    Ok(u)
}

/// `base` + the request's path and query, never anywhere but `base`'s origin (and path prefix).
pub fn join(base: &url::Url, path_and_query: &str) -> Option<url::Url> {
    if !path_and_query.starts_with('/') || path_and_query.starts_with("//") {
        return None;
    }
    let prefix = base.path().trim_end_matches('/');
    let mut u = base.clone();
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    u.set_path(&format!("{prefix}{path}"));
    u.set_query(query);
    (u.origin() == base.origin() && u.path().starts_with(prefix)).then_some(u)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_anywhere_http_only_here() {
        for ok in [
            "https://api.anthropic.com",
            "https://gw.example.com:8443/anthropic",
            "http://127.0.0.1:9999",
            "http://localhost:1",
            "http://[::1]:80",
            "http://198.19.3.4",
        ] {
            assert!(parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ftp://api.anthropic.com",
            "file:///etc/passwd",
            "http://api.anthropic.com",
            "http://10.0.0.1",
            "http://198.20.0.1",
            "api.anthropic.com",
            "https://user:pw@api.anthropic.com",
            "https://api.anthropic.com/?x=1",
            "",
            "https://",
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.code(), crate::error::ErrorCode::InvalidInput, "{bad}");
            assert!(e.hint().unwrap().contains("https://"), "{bad}");
        }
    }

    #[test]
    fn joined_urls_stay_on_the_upstream() {
        let b = parse("https://gw.example.com/anthropic/").unwrap();
        assert_eq!(
            join(&b, "/v1/messages?beta=true").unwrap().as_str(),
            "https://gw.example.com/anthropic/v1/messages?beta=true"
        );
        let b = parse("https://api.anthropic.com").unwrap();
        assert_eq!(join(&b, "/v1/messages").unwrap().as_str(), "https://api.anthropic.com/v1/messages");
        for evil in ["//evil.example/x", "http://evil.example/x", "evil", "", "@evil.example/x"] {
            assert!(join(&b, evil).is_none(), "{evil}");
        }
        let b = parse("https://gw.example.com/anthropic").unwrap();
        // Dot segments are resolved first: a path that leaves the prefix is refused.
        assert!(join(&b, "/../admin").is_none());
        assert!(join(&b, "/%2e%2e/admin").is_none());
        assert!(join(&b, "/v1/../v1/messages").is_some_and(|u| u.path() == "/anthropic/v1/messages"));
    }
}
