//! What a restricted sandbox was refused, from the logs the filters write: Squid's access log
//! (TLS by SNI — or by address when there was no SNI — and plain HTTP by Host) and the sandbox's
//! resolver log (names answered NXDOMAIN by policy). Grouped by name, with a count and the last time.
use std::collections::BTreeMap;

use serde::Serialize;

use super::{dns, squid};

/// Which filter refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub enum DenialKind {
    /// Squid: a TLS connection by its SNI (or address, without SNI).
    Tls,
    /// Squid: a plain HTTP request by its Host.
    Http,
    /// The sandbox's resolver: a name it answered NXDOMAIN.
    Dns,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub struct Denial {
    /// The refused name (or address, for TLS without SNI / raw-IP HTTP).
    pub domain: String,
    pub kind: DenialKind,
    pub count: u32,
    /// Unix time (seconds) of the last refusal.
    pub last: f64,
}

/// Every denial recorded for the sandbox NAME (with address IP), oldest last-seen first.
pub fn collect(name: &str, ip: Option<&str>, since: f64) -> Vec<Denial> {
    let mut map: BTreeMap<(String, DenialKind), Denial> = BTreeMap::new();
    let mut add = |domain: String, kind: DenialKind, t: f64| {
        if t < since || domain.is_empty() {
            return;
        }
        let e = map.entry((domain.clone(), kind)).or_insert(Denial { domain, kind, count: 0, last: 0.0 });
        e.count += 1;
        e.last = e.last.max(t);
    };
    if let Ok(text) = std::fs::read_to_string(squid::access_log()) {
        for line in text.lines() {
            if let Some((d, k, t)) = squid_line(line, name, ip) {
                add(d, k, t);
            }
        }
    }
    if let Ok(text) = std::fs::read_to_string(dns::log(name)) {
        let year = time::OffsetDateTime::now_utc().year();
        for line in text.lines() {
            if let Some((d, t)) = dns_line(line, year) {
                add(d, DenialKind::Dns, t);
            }
        }
    }
    let mut v: Vec<Denial> = map.into_values().collect();
    v.sort_by(|a, b| a.last.total_cmp(&b.last).then(a.domain.cmp(&b.domain)));
    v
}

/// `TIME CLIENT SANDBOX STATUS/CODE METHOD URL SNI` (the `sbx` logformat in squid.rs).
fn squid_line(line: &str, name: &str, ip: Option<&str>) -> Option<(String, DenialKind, f64)> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() < 7 {
        return None;
    }
    let t: f64 = f[0].parse().ok()?;
    // Transactions carry the sandbox's note once its ACL matched; refused ones may not, so the
    // client address is the fallback.
    // (The helper's annotation may be repeated: `NAME,NAME`.)
    let noted = f[2].split(',').next().unwrap_or("-");
    if noted != name && !(noted == "-" && Some(f[1]) == ip) {
        return None;
    }
    let (status, code) = f[3].split_once('/')?;
    let bump = f.get(7).copied().unwrap_or("-");
    let denied = status.contains("DENIED") || matches!(code, "403" | "409") || bump == "terminate";
    if !denied || f[4] == "-" {
        return None;
    }
    let sni = f[6];
    if f[4] == "CONNECT" || sni != "-" {
        let target = if sni != "-" { sni } else { f[5].rsplit_once(':').map_or(f[5], |(h, _)| h) };
        return Some((target.to_ascii_lowercase(), DenialKind::Tls, t));
    }
    let host = f[5].split("://").nth(1).unwrap_or(f[5]).split(['/', ':']).next().unwrap_or("");
    Some((host.to_ascii_lowercase(), DenialKind::Http, t))
}

/// `Mon DD HH:MM:SS dnsmasq[PID]: config NAME is NXDOMAIN` — the policy's own answer.
fn dns_line(line: &str, year: i32) -> Option<(String, f64)> {
    let (stamp, rest) = line.split_at_checked(15)?;
    let msg = rest.split_once("]: ")?.1;
    let domain = msg.strip_prefix("config ")?.strip_suffix(" is NXDOMAIN")?;
    // The resolver's search domain (`search incus`) tried first by the sandbox's libc: noise.
    if domain.ends_with(".incus") {
        return None;
    }
    let fmt = time::format_description::parse_borrowed::<2>(
        "[month repr:short] [day padding:space] [hour]:[minute]:[second] [year]",
    )
    .ok()?;
    let dt = time::PrimitiveDateTime::parse(&format!("{stamp} {year}"), &fmt).ok()?;
    let local = time::UtcOffset::current_local_offset().unwrap_or(time::UtcOffset::UTC);
    Some((domain.to_ascii_lowercase(), dt.assume_offset(local).unix_timestamp() as f64))
}

/// Drops what is kept only for NAME (its resolver log); called when the sandbox is removed.
pub fn forget(name: &str) {
    let _ = std::fs::remove_file(dns::log(name));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_logs() {
        let l = "1700000000.123 10.100.0.105 box NONE_NONE/000 CONNECT 198.18.7.1:443 evil.test terminate";
        assert_eq!(squid_line(l, "box", None), Some(("evil.test".into(), DenialKind::Tls, 1700000000.123)));
        let l = "1700000001.000 10.100.0.105 - TCP_DENIED/403 GET http://evil.test/x -";
        assert_eq!(squid_line(l, "box", Some("10.100.0.105")).map(|x| x.0), Some("evil.test".into()));
        let l = "1700000001.000 10.100.0.105 box NONE_NONE/000 CONNECT 198.18.7.1:443 ok.test splice";
        assert_eq!(squid_line(l, "box", None), None);
        let d = dns_line("Mar  5 10:00:01 dnsmasq[42]: config x.evil.test is NXDOMAIN", 2025);
        assert_eq!(d.map(|x| x.0), Some("x.evil.test".into()));
        assert_eq!(dns_line("Mar  5 10:00:01 dnsmasq[42]: forwarded ok.test to 1.2.3.4", 2025), None);
    }
}
