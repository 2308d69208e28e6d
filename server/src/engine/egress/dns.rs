//! The filtering resolver of a restricted sandbox: its own dnsmasq on the bridge address (port
//! 5300 + slot; the sandbox's queries to the gateway are redirected there). Only allowlisted
//! names are forwarded upstream; everything else — tunnel-style names included — gets NXDOMAIN
//! here and never leaves the host. The list is a `servers-file`, re-read on SIGHUP: live changes
//! need no restart. Every query is logged, which is where DNS denials come from.
use std::fmt::Write;
use std::path::PathBuf;

use super::{Member, Net, dns_port, paths};
use crate::engine::host::Host;
use crate::error::{EngineError, Result};

fn conf(name: &str) -> PathBuf {
    paths::run().join("dns").join(format!("{name}.conf"))
}
fn servers(name: &str) -> PathBuf {
    paths::run().join("dns").join(format!("{name}.servers"))
}
fn pid(name: &str) -> PathBuf {
    paths::run().join("dns").join(format!("{name}.pid"))
}
pub fn log(name: &str) -> PathBuf {
    paths::dns_logs().join(format!("{name}.log"))
}

pub fn render_servers(m: &Member, domains: &[String]) -> String {
    let mut s = String::from("# Written by Agent Sandboxes: the names this sandbox may resolve.\n");
    for d in domains {
        // dnsmasq matches a domain and its subdomains either way; Squid keeps the exact/wildcard
        // distinction for the connections themselves.
        let d = d.trim_start_matches('.');
        for u in &m.upstreams {
            let _ = writeln!(s, "server=/{d}/{u}");
        }
    }
    s
}

fn render_conf(net: &Net, m: &Member) -> String {
    format!(
        "# Written by Agent Sandboxes for sandbox {name}.\n\
         listen-address={gw}\n\
         port={port}\n\
         bind-interfaces\n\
         no-resolv\n\
         no-hosts\n\
         no-poll\n\
         bogus-priv\n\
         domain-needed\n\
         cache-size=1000\n\
         pid-file={pid}\n\
         log-queries\n\
         log-facility={log}\n\
         servers-file={servers}\n\
         address=/#/\n",
        name = m.name,
        gw = net.gateway,
        port = dns_port(m.slot),
        pid = pid(&m.name).display(),
        log = log(&m.name).display(),
        servers = servers(&m.name).display(),
    )
}

fn running(name: &str) -> Option<u32> {
    let p: u32 = std::fs::read_to_string(pid(name)).ok()?.trim().parse().ok()?;
    let comm = std::fs::read_to_string(format!("/proc/{p}/comm")).ok()?;
    (comm.trim() == "dnsmasq").then_some(p)
}

/// Starts the sandbox's resolver, or makes the running one re-read its list.
pub async fn apply(host: &Host, net: &Net, m: &Member, domains: &[String]) -> Result<()> {
    std::fs::create_dir_all(paths::run().join("dns"))
        .map_err(|e| EngineError::failed(format!("cannot create the resolver directory: {e}"), "run as root"))?;
    paths::ensure_dir(host, &paths::dns_logs(), "nobody").await?;
    let servers_text = render_servers(m, domains);
    let same_servers = std::fs::read_to_string(servers(&m.name)).is_ok_and(|c| c == servers_text);
    paths::write(&servers(&m.name), servers_text.as_bytes())?;
    let conf_text = render_conf(net, m);
    let same_conf = std::fs::read_to_string(conf(&m.name)).is_ok_and(|c| c == conf_text);
    if let Some(p) = running(&m.name) {
        if same_conf && same_servers {
            return Ok(());
        }
        if same_conf {
            let offset = std::fs::metadata(log(&m.name)).map(|x| x.len()).unwrap_or(0);
            signal(host, p, "-HUP").await?;
            // dnsmasq logs the servers it uses once it has re-read the list.
            super::squid::wait_for_log(&log(&m.name), offset, "cleared cache").await;
            return Ok(());
        }
        stop(host, &m.name).await?;
    }
    paths::write(&conf(&m.name), conf_text.as_bytes())?;
    let log_file = log(&m.name);
    if !log_file.exists() {
        paths::write(&log_file, b"")?;
        paths::chown_tree(host, &log_file, "nobody").await?;
    }
    let c = conf(&m.name).display().to_string();
    let test = host.run(&["dnsmasq".into(), "--test".into(), format!("--conf-file={c}")], None, |_| {}).await?;
    if test.status != 0 {
        return Err(EngineError::failed(
            format!("dnsmasq refused the resolver configuration: {}", test.tail.join(" ")),
            "install dnsmasq-base",
        ));
    }
    host.spawn_daemon(&["dnsmasq".into(), format!("--conf-file={c}")]).await?;
    let every = std::time::Duration::from_millis(10);
    if crate::poll::until(every * 100, every, || async { running(&m.name) }).await.is_some() {
        return Ok(());
    }
    Err(EngineError::failed(
        format!("the resolver of '{}' did not start (port {} busy?)", m.name, dns_port(m.slot)),
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

/// Stops the resolver and removes its files (its log stays for `sandbox denials` until rm).
pub async fn stop(host: &Host, name: &str) -> Result<()> {
    if let Some(p) = running(name) {
        signal(host, p, "-TERM").await?;
        let every = std::time::Duration::from_millis(10);
        crate::poll::until(every * 100, every, || async { running(name).is_none().then_some(()) }).await;
    }
    for f in [conf(name), servers(name), pid(name)] {
        let _ = std::fs::remove_file(f);
    }
    Ok(())
}

/// Names of sandboxes that have resolver files (to find the ones no longer registered).
pub fn known() -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(paths::run().join("dns")) else { return Vec::new() };
    rd.filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".conf").map(str::to_owned)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A restricted sandbox's resolver: only its allowlisted names go upstream, the rest NXDOMAIN.
    #[test]
    fn resolver_configuration_and_servers() {
        let net = Net { bridge: "incusbr0".into(), gateway: "10.100.0.1".parse().unwrap(), prefix: 24 };
        let m = Member {
            name: "shut".into(),
            ip: "10.100.0.105".parse().unwrap(),
            mac: "0a:5b:5a:00:00:05".into(),
            slot: 5,
            restricted: true,
            upstreams: vec!["192.0.2.53".parse().unwrap()],
        };
        let domains = [".pypi.org".to_string(), "api.github.com".to_string()];
        insta::assert_snapshot!(format!(
            "{}\n# --- servers-file\n{}",
            render_conf(&net, &m),
            render_servers(&m, &domains)
        ));
    }
}
