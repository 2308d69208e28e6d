//! Filtering resolvers (dnsmasq). Each restricted sandbox has its own on the bridge address
//! (port 5300 + slot; its queries to the gateway are redirected there), and Squid has one on a
//! loopback address (it checks Host headers and SNI against DNS, and must not carry refused names
//! upstream either). Only allowlisted names are forwarded upstream — an exact entry exactly, a
//! `.domain` entry with its subdomains; everything else, tunnel-style names included, gets
//! NXDOMAIN here and never leaves the host. Answers pointing at private addresses (unless the
//! entry is marked `private`) or at the host's own addresses are dropped (DNS rebinding) by the
//! sandboxes' resolvers; Squid's refuses such destinations itself (see render_conf). No
//! IPv6 answers (sandboxes are IPv4-only) and no cache: every answer goes through `nftset=`, which
//! opens port 22 to the addresses of allowed names. The names are a `servers-file`, re-read on
//! SIGHUP; every query is logged, which is where DNS denials come from.
use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use super::domains::List;
use super::{nft, paths};
use crate::engine::host::Host;
use crate::error::{EngineError, Result};

/// The file name of Squid's resolver (no sandbox can be called that).
pub const SQUID_ID: &str = "_squid";
/// A local-only name whose line in the log marks a finished re-read of the names.
const RELOADED: &str = "reloaded.agent-sandboxes.invalid";
/// Where Squid's resolver listens (port 53: Squid's `dns_nameservers` takes no port).
pub const SQUID_RESOLVER: Ipv4Addr = Ipv4Addr::new(127, 5, 90, 53);

/// One resolver's configuration.
pub struct Resolver<'a> {
    /// A sandbox name, or SQUID_ID.
    pub id: &'a str,
    pub listen: Ipv4Addr,
    pub port: u16,
    pub upstreams: &'a [Ipv4Addr],
    pub list: &'a List,
    /// Fill this sandbox's address set with the addresses it is given.
    pub addr_set: Option<String>,
    /// Answers naming one of these are turned into NXDOMAIN.
    pub host_addrs: &'a [IpAddr],
}

fn conf(id: &str) -> PathBuf {
    paths::run().join("dns").join(format!("{id}.conf"))
}
fn servers(id: &str) -> PathBuf {
    paths::run().join("dns").join(format!("{id}.servers"))
}
fn pid(id: &str) -> PathBuf {
    paths::run().join("dns").join(format!("{id}.pid"))
}
pub fn log(id: &str) -> PathBuf {
    paths::dns_logs().join(format!("{id}.log"))
}

/// `server=` lines: allowed names go upstream; the subdomains of an exact entry are local
/// (NXDOMAIN) — dnsmasq's `/d/` alone would forward them too.
pub fn render_servers(r: &Resolver) -> String {
    let mut s = String::from("# Written by Agent Sandboxes: the names this resolver may forward.\n");
    // Logged at every re-read (there is no cache to report clearing): the end of a reload.
    let _ = writeln!(s, "server=/{RELOADED}/");
    for d in &r.list.names {
        let bare = d.trim_start_matches('.');
        for u in r.upstreams {
            let _ = writeln!(s, "server=/{bare}/{u}");
        }
        if !d.starts_with('.') {
            let _ = writeln!(s, "server=/*.{bare}/");
        }
    }
    s
}

fn render_conf(r: &Resolver) -> String {
    // Squid's resolver filters names only: what Squid may connect to is its own decision (the
    // host and private addresses refused by its ACLs, private names per sandbox by its helper),
    // and a configuration that changed with the lists or the host's addresses would make this
    // resolver restart — a moment in which Squid's look-ups are lost (and retried 5 s later).
    let squid = r.id == SQUID_ID;
    let mut s = format!(
        "# Written by Agent Sandboxes for {id}.\n\
         listen-address={listen}\n\
         port={port}\n\
         bind-interfaces\n\
         no-resolv\n\
         no-hosts\n\
         no-poll\n\
         bogus-priv\n\
         domain-needed\n\
         cache-size=0\n\
         filter-AAAA\n\
         {rebind}\
         pid-file={pid}\n\
         log-queries\n\
         log-facility={log}\n\
         servers-file={servers}\n\
         address=/#/\n",
        id = r.id,
        listen = r.listen,
        port = r.port,
        pid = pid(r.id).display(),
        log = log(r.id).display(),
        servers = servers(r.id).display(),
        rebind = if squid { "" } else { "stop-dns-rebind\n" },
    );
    if squid {
        return s;
    }
    for d in &r.list.private {
        let _ = writeln!(s, "rebind-domain-ok=/{}/", d.trim_start_matches('.'));
    }
    for a in r.host_addrs.iter().filter(|a| a.is_ipv4()) {
        let _ = writeln!(s, "bogus-nxdomain={a}");
    }
    if let Some(set) = &r.addr_set {
        let _ = writeln!(s, "nftset=/#/4#inet#{}#{set}", nft::TABLE);
    }
    s
}

/// The host's own addresses (no answer for a public name may point at the host). IPv6
/// link-local ones are left out: every sandbox's veth has one, so they change at each start (and
/// fe80::/10 is never a destination anyway).
pub fn host_addresses() -> Vec<IpAddr> {
    let mut v: Vec<IpAddr> = nix::ifaddrs::getifaddrs()
        .map(|it| {
            it.filter_map(|i| {
                let a = i.address?;
                a.as_sockaddr_in()
                    .map(|s| IpAddr::V4(s.ip()))
                    .or_else(|| a.as_sockaddr_in6().map(|s| IpAddr::V6(s.ip())))
            })
            .filter(|a| !matches!(a, IpAddr::V6(v6) if v6.is_unicast_link_local()))
            .collect()
        })
        .unwrap_or_default();
    v.sort();
    v.dedup();
    v
}

fn running(id: &str) -> Option<u32> {
    let p: u32 = std::fs::read_to_string(pid(id)).ok()?.trim().parse().ok()?;
    let comm = std::fs::read_to_string(format!("/proc/{p}/comm")).ok()?;
    (comm.trim() == "dnsmasq").then_some(p)
}

/// Starts the resolver, makes the running one re-read its names, or restarts it when its
/// configuration changed.
pub async fn apply(host: &Host, r: &Resolver<'_>) -> Result<()> {
    std::fs::create_dir_all(paths::run().join("dns"))
        .map_err(|e| EngineError::failed(format!("cannot create the resolver directory: {e}"), "run as root"))?;
    paths::ensure_dir(host, &paths::dns_logs(), "nobody").await?;
    let servers_text = render_servers(r);
    let same_servers = std::fs::read_to_string(servers(r.id)).is_ok_and(|c| c == servers_text);
    paths::write(&servers(r.id), servers_text.as_bytes())?;
    let conf_text = render_conf(r);
    let same_conf = std::fs::read_to_string(conf(r.id)).is_ok_and(|c| c == conf_text);
    if let Some(p) = running(r.id) {
        if same_conf && same_servers {
            return Ok(());
        }
        if same_conf {
            let offset = std::fs::metadata(log(r.id)).map(|x| x.len()).unwrap_or(0);
            signal(host, p, "-HUP").await?;
            // dnsmasq logs the servers it uses once it has re-read the list.
            paths::wait_for_log(&log(r.id), offset, RELOADED).await;
            return Ok(());
        }
        end(host, r.id).await?;
    }
    start(host, r, &conf_text).await
}

async fn start(host: &Host, r: &Resolver<'_>, conf_text: &str) -> Result<()> {
    paths::write(&conf(r.id), conf_text.as_bytes())?;
    let log_file = log(r.id);
    if !log_file.exists() {
        paths::write(&log_file, b"")?;
        paths::chown_tree(host, &log_file, "nobody").await?;
    }
    let c = conf(r.id).display().to_string();
    let test = host.run(&["dnsmasq".into(), "--test".into(), format!("--conf-file={c}")], None, |_| {}).await?;
    if test.status != 0 {
        return Err(EngineError::failed(
            format!("dnsmasq refused the resolver configuration: {}", test.tail.join(" ")),
            "install dnsmasq-base",
        ));
    }
    host.spawn_daemon(&["dnsmasq".into(), format!("--conf-file={c}")]).await?;
    let every = std::time::Duration::from_millis(10);
    if crate::poll::until(every * 100, every, || async { running(r.id) }).await.is_some() {
        return Ok(());
    }
    Err(EngineError::failed(
        format!("the resolver {} did not start ({}:{} busy?)", r.id, r.listen, r.port),
        format!("see {}", log_file.display()),
    ))
}

async fn signal(host: &Host, pid: u32, sig: &str) -> Result<()> {
    let out = host.run(&["kill".into(), sig.into(), pid.to_string()], None, |_| {}).await?;
    if out.status != 0 {
        return Err(EngineError::failed(format!("cannot signal the resolver ({pid})"), ""));
    }
    Ok(())
}

/// Ends the resolver's process (its files stay).
async fn end(host: &Host, id: &str) -> Result<()> {
    if let Some(p) = running(id) {
        signal(host, p, "-TERM").await?;
        let every = std::time::Duration::from_millis(10);
        crate::poll::until(every * 100, every, || async { running(id).is_none().then_some(()) }).await;
    }
    Ok(())
}

/// Stops the resolver and removes its files (its log stays for `sandbox denials` until rm).
pub async fn stop(host: &Host, id: &str) -> Result<()> {
    end(host, id).await?;
    for f in [conf(id), servers(id), pid(id)] {
        let _ = std::fs::remove_file(f);
    }
    Ok(())
}

/// Ids of resolvers that have files (to find the ones no longer needed).
pub fn known() -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(paths::run().join("dns")) else { return Vec::new() };
    rd.filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".conf").map(str::to_owned)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A restricted sandbox's resolver: only its allowlisted names go upstream (an exact entry
    /// exactly), private and host answers dropped, answers filling its address set.
    #[test]
    fn resolver_configuration_and_servers() {
        let list = List {
            names: [".pypi.org", "api.github.com", "git.corp.example"].map(String::from).into(),
            private: ["git.corp.example".to_string()].into(),
        };
        let up = ["192.0.2.53".parse().unwrap()];
        let host = ["192.0.2.10".parse().unwrap(), "10.100.0.1".parse().unwrap()];
        let r = Resolver {
            id: "shut",
            listen: "10.100.0.1".parse().unwrap(),
            port: 5305,
            upstreams: &up,
            list: &list,
            addr_set: Some(nft::addr_set("shut")),
            host_addrs: &host,
        };
        insta::assert_snapshot!(format!("{}\n# --- servers-file\n{}", render_conf(&r), render_servers(&r)));
    }

    /// Squid's resolver: the same configuration whatever the lists and the host's addresses are
    /// (it never restarts for an allow or a new host address; only its servers-file changes).
    #[test]
    fn squids_resolver_configuration_never_changes_with_the_lists() {
        let up = ["192.0.2.53".parse().unwrap()];
        let conf = |private: &[&str], host: &[IpAddr]| {
            let list = List {
                names: ["a.test", "b.test"].map(String::from).into(),
                private: private.iter().map(|p| p.to_string()).collect(),
            };
            let r = Resolver {
                id: SQUID_ID,
                listen: SQUID_RESOLVER,
                port: 53,
                upstreams: &up,
                list: &list,
                addr_set: None,
                host_addrs: host,
            };
            render_conf(&r)
        };
        let first = conf(&[], &["192.0.2.10".parse().unwrap()]);
        assert_eq!(first, conf(&["a.test"], &["192.0.2.10".parse().unwrap(), "10.201.0.7".parse().unwrap()]));
        assert!(!first.contains("rebind") && !first.contains("bogus-nxdomain"), "{first}");
    }

    #[test]
    fn exact_entries_stay_exact_and_private_answers_are_dropped() {
        let list = List {
            names: ["exact.test", ".wild.test", "vpn.test"].map(String::from).into(),
            private: ["vpn.test".to_string()].into(),
        };
        let up = ["192.0.2.53".parse().unwrap()];
        let host = ["192.0.2.10".parse().unwrap()];
        let r = Resolver {
            id: "box",
            listen: "10.100.0.1".parse().unwrap(),
            port: 5305,
            upstreams: &up,
            list: &list,
            addr_set: Some("addrs_box".into()),
            host_addrs: &host,
        };
        let s = render_servers(&r);
        assert!(s.contains("server=/exact.test/192.0.2.53\nserver=/*.exact.test/\n"), "{s}");
        assert!(s.contains("server=/wild.test/192.0.2.53\n") && !s.contains("*.wild.test"), "{s}");
        let c = render_conf(&r);
        for line in [
            "stop-dns-rebind",
            "rebind-domain-ok=/vpn.test/",
            "bogus-nxdomain=192.0.2.10",
            "nftset=/#/4#inet#agent_sandboxes_egress#addrs_box",
            "cache-size=0",
            "filter-AAAA",
            "address=/#/",
        ] {
            assert!(c.lines().any(|l| l == line), "{line} missing:\n{c}");
        }
    }
}
