//! What listens in a sandbox, read from its `/proc/net/tcp{,6}` (from the host through the
//! container's init, or printed by the exec probe): so a port the user clicks can say whether
//! anything answers behind it, and whether it is bound where the host's forward can reach it
//! (the forward connects to the sandbox's own address, never to its loopback).
use serde::Serialize;

/// A TCP port something listens on in the sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub struct Listener {
    pub port: u16,
    /// Bound to loopback only (127.0.0.1, ::1): the host's forward cannot reach it.
    pub loopback_only: bool,
}

/// At most this many listeners are reported (a sandbox may open thousands).
const MAX: usize = 64;

/// One `local_address` field (`0100007F:1F90`, or 32 hex digits for IPv6): (loopback, port).
fn local_address(field: &str) -> Option<(bool, u16)> {
    let (addr, port) = field.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let loopback = match addr.len() {
        // IPv4 in host byte order (little-endian here): 127.x.x.x has 7F in its last byte.
        8 => addr.ends_with("7F"),
        // ::1, or ::ffff:127.x.x.x (each 32-bit word little-endian).
        32 => {
            addr == "00000000000000000000000001000000"
                || (addr.starts_with("0000000000000000FFFF0000") && addr.ends_with("7F"))
        }
        _ => return None,
    };
    Some((loopback, port))
}

/// Listening sockets from the text of `/proc/net/tcp` and `/proc/net/tcp6` (or `listen=ADDR`
/// lines): a port counts as reachable when any of its sockets is bound beyond loopback.
pub fn parse(text: &str) -> Vec<Listener> {
    let mut by_port = std::collections::BTreeMap::<u16, bool>::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let addr = match (f.first(), f.get(3)) {
            (Some(l), _) if l.starts_with("listen=") => &l["listen=".len()..],
            (Some(sl), Some(st)) if sl.ends_with(':') && *st == "0A" => f[1],
            _ => continue,
        };
        if let Some((loopback, port)) = local_address(addr) {
            let e = by_port.entry(port).or_insert(true);
            *e = *e && loopback;
        }
    }
    by_port.into_iter().take(MAX).map(|(port, loopback_only)| Listener { port, loopback_only }).collect()
}

/// The listeners of the process `pid`'s network namespace (the sandbox's init), from the host.
pub fn of_pid(pid: u32) -> Vec<Listener> {
    let read = |f: &str| std::fs::read_to_string(format!("/proc/{pid}/net/{f}")).unwrap_or_default();
    parse(&format!("{}{}", read("tcp"), read("tcp6")))
}

/// The exec probe's part: `listen=ADDR` for each listening socket.
pub const PROBE: &str = r#"for f in /proc/net/tcp /proc/net/tcp6; do [ -r "$f" ] && while read -r _ l _ st _; do [ "$st" = 0A ] && echo "listen=$l"; done < "$f"; done"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_sockets_from_proc_net_tcp() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
           0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1\n\
           1: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 2\n\
           2: 6700640A:0016 0100640A:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 3\n\
           3: 6700640A:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4\n";
        let tcp6 = "  sl  local_address                         remote_address                        st\n\
           0: 00000000000000000000000001000000:1F91 00000000000000000000000000000000:0000 0A 0\n\
           1: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 0\n\
           2: 0000000000000000FFFF00000100007F:1F92 00000000000000000000000000000000:0000 0A 0\n";
        let got = parse(&format!("{tcp}{tcp6}"));
        let l = |port, loopback_only| Listener { port, loopback_only };
        assert_eq!(got, [l(22, false), l(3000, false), l(8080, true), l(8081, true), l(8082, true)]);
    }

    #[test]
    fn probe_lines_and_garbage() {
        assert_eq!(parse("listen=00000000:0BB8\nlisten=zz\nlisten=0100007F:0BB9\n").len(), 2);
        assert!(parse("0: 00000000:0016\nrandom words\n\n").is_empty());
    }
}
