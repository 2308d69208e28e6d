//! Squid (the `squid-openssl` build): transparent interception of the restricted sandboxes' port
//! 443 and 80. TLS is peeked at (the client's SNI) and spliced or cut — never decrypted, so the
//! certificate Squid holds is a throwaway. Plain HTTP passes only for allowlisted Host names, taken
//! literally (`dstdomain -n`: no reverse look-up of raw IPs), and only to addresses the sandbox's
//! resolver gave for allowed names (nft.rs), so a forged Host header cannot send a request
//! elsewhere; a refusal is a 403 page naming the sandbox and the command that would allow the
//! name. (`host_verify_strict` is off so that a name Squid's resolver refuses reaches that 403
//! rather than a 409; Squid verifies TLS names against the destination either way.) One Squid serves every sandbox; each sandbox's rules
//! are ANDed with its source address. Squid never connects to the host itself, and to private
//! addresses only for names marked `private`; it resolves names through its own filtering
//! resolver (dns.rs), so a refused Host header or SNI never reaches the upstream either.
use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use super::{Member, Net, SQUID_HTTP_PORT, SQUID_TLS_PORT, dns, paths};
use crate::engine::host::Host;
use crate::error::{EngineError, Result};

/// Squid's own forward-proxy port (Squid wants one); loopback only, and refused for everyone.
pub const SQUID_LOCAL_PORT: u16 = 3131;
/// Where Debian's squid keeps its (English) error templates.
const TEMPLATES: &str = "/usr/share/squid/errors/templates";
/// Private destinations (RFC 1918, shared address space, ULA): only for names marked `private`.
const PRIVATE: &str = "10.0.0.0/8 172.16.0.0/12 192.168.0.0/16 100.64.0.0/10 fc00::/7";

pub fn conf_path() -> PathBuf {
    paths::run().join("squid.conf")
}

pub fn access_log() -> PathBuf {
    paths::squid_logs().join("access.log")
}

fn pid_path() -> PathBuf {
    paths::run().join("squid.pid")
}

fn error_dir() -> PathBuf {
    paths::run().join("squid-errors")
}

/// Never a destination: the host (its addresses, loopback), the bridge, link-local.
fn host_destinations(net: &Net, host_addrs: &[IpAddr]) -> String {
    let mut v: Vec<String> = host_addrs.iter().map(|a| a.to_string()).collect();
    v.extend(["127.0.0.0/8", "0.0.0.0/8", "169.254.0.0/16", "::1", "fe80::/10"].map(String::from));
    v.push(net.subnet());
    v.join(" ")
}

pub fn render(net: &Net, members: &[Member], host_addrs: &[IpAddr]) -> String {
    let run = paths::run();
    let logs = paths::squid_logs();
    let gw = net.gateway;
    let mut s =
        String::from("# Written by Agent Sandboxes (sandbox start/allow/deny/stop/rm); every change is overwritten.\n");
    let _ = write!(
        s,
        "pid_filename {pid}\n\
         http_port 127.0.0.1:{SQUID_LOCAL_PORT}\n\
         http_port {gw}:{SQUID_HTTP_PORT} intercept name=sbx_http\n\
         https_port {gw}:{SQUID_TLS_PORT} intercept ssl-bump tls-cert={cert} tls-key={key} name=sbx_tls\n\
         sslcrtd_program /usr/lib/squid/security_file_certgen -s {db} -M 4MB\n\
         sslcrtd_children 2 startup=1 idle=1\n\
         logformat sbx %ts.%03tu %>a %{{sandbox}}note %Ss/%03>Hs %rm %ru %ssl::>sni %ssl::bump_mode\n\
         access_log stdio:{access} sbx\n\
         cache_log {logs}/cache.log\n\
         error_directory {errors}\n\
         dns_nameservers {resolver}\n\
         cache deny all\n\
         host_verify_strict off\n\
         shutdown_lifetime 1 seconds\n\
         visible_hostname agent-sandboxes\n\
         pinger_enable off\n\
         forwarded_for delete\n\
         via off\n\
         acl step1 at_step SslBump1\n\
         acl sbx_http myportname sbx_http\n\
         acl sbx_tls myportname sbx_tls\n\
         acl CONNECT method CONNECT\n\
         acl to_host dst {host}\n\
         acl to_private dst {PRIVATE}\n\
         http_access deny CONNECT sbx_http\n\
         http_access deny to_host\n",
        pid = pid_path().display(),
        cert = run.join("squid-cert.pem").display(),
        key = run.join("squid-key.pem").display(),
        db = run.join("ssl_db").display(),
        access = access_log().display(),
        logs = logs.display(),
        errors = error_dir().display(),
        resolver = dns::SQUID_RESOLVER,
        host = host_destinations(net, host_addrs),
    );
    s.push_str(&rules(members));
    s
}

/// Each restricted sandbox's ACLs (its address, its list files, its refusal page) and the
/// decisions. Splice order: the host never; private addresses only for `private` names; then
/// each sandbox's list. Plain HTTP likewise, ending in the sandbox's own 403 page.
fn rules(members: &[Member]) -> String {
    let (mut acls, mut bump, mut access) = (String::new(), String::new(), String::new());
    let (mut private_bump, mut private_access) = (String::new(), String::new());
    for m in members.iter().filter(|m| m.restricted) {
        let id = format!("s{}", m.slot);
        let list = paths::list_file(&m.name).display().to_string();
        let page = page_name(m);
        let _ = write!(
            acls,
            "acl {id} src {ip}/32\nacl {id}_names ssl::server_name \"{list}\"\nacl {id}_hosts dstdomain -n \"{list}\"\n\
             note sandbox {name} {id}\ndeny_info {page} {id}\n",
            ip = m.ip,
            name = m.name,
        );
        if m.has_private {
            let pl = paths::private_file(&m.name).display().to_string();
            let _ = write!(
                acls,
                "acl {id}_private_names ssl::server_name \"{pl}\"\nacl {id}_private_hosts dstdomain -n \"{pl}\"\n"
            );
            let _ = writeln!(private_bump, "ssl_bump splice {id} {id}_private_names");
            let _ = writeln!(private_access, "http_access allow sbx_http {id} {id}_private_hosts");
        }
        let _ = writeln!(bump, "ssl_bump splice {id} {id}_names");
        // The last ACL of a denying rule picks the page: this sandbox's.
        let _ = writeln!(access, "http_access allow sbx_http {id} {id}_hosts\nhttp_access deny sbx_http {id}");
    }
    // The intercepted TLS port's http_access: the decision is ssl_bump's (splice or terminate).
    format!(
        "{acls}ssl_bump peek step1\nssl_bump terminate to_host\n{private_bump}ssl_bump terminate to_private\n\
         {bump}ssl_bump terminate all\n{private_access}http_access deny sbx_http to_private\n{access}\
         http_access allow sbx_tls\nhttp_access deny all\n"
    )
}

fn page_name(m: &Member) -> String {
    format!("ERR_SANDBOX_BLOCKED_S{}", m.slot)
}

/// The 403 page of sandbox M (`%H`: the refused host name).
fn page(m: &Member) -> String {
    format!(
        "<!DOCTYPE html>\n<html><head><title>Blocked by the egress policy of sandbox {name}</title></head><body><pre>\n\
         Agent Sandboxes: sandbox {name} may not reach %H.\n\n\
         This is the sandbox's egress policy (an allowlist of domain names), not a network fault.\n\
         Do not try to work around it (other addresses, resolvers, proxies, tunnels or ports).\n\
         If the name is needed, ask the user to allow it. On the host:\n\n\
         \tsandbox allow {name} %H\n\
         </pre></body></html>\n",
        name = m.name
    )
}

/// Squid's templates (links to Debian's) plus one refusal page per restricted sandbox.
fn write_pages(members: &[Member]) -> Result<()> {
    let dir = error_dir();
    std::fs::create_dir_all(&dir).map_err(|e| EngineError::failed(format!("{}: {e}", dir.display()), ""))?;
    if let Ok(rd) = std::fs::read_dir(TEMPLATES) {
        for e in rd.flatten() {
            let link = dir.join(e.file_name());
            if std::fs::symlink_metadata(&link).is_err() {
                let _ = std::os::unix::fs::symlink(e.path(), &link);
            }
        }
    }
    let mut keep = Vec::new();
    for m in members.iter().filter(|m| m.restricted) {
        keep.push(page_name(m));
        paths::write(&dir.join(page_name(m)), page(m).as_bytes())?;
    }
    for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with("ERR_SANDBOX_BLOCKED_") && !keep.contains(&n) {
            let _ = std::fs::remove_file(e.path());
        }
    }
    Ok(())
}

/// Ends every connection Squid holds for the sandbox at IP (spliced TLS and HTTP alike): after a
/// `deny` a spliced stream would otherwise keep carrying data. Which name a spliced connection
/// is for is not visible without decrypting it, so all of them go; clients reconnect, and what
/// is still allowed passes again.
pub async fn cut(host: &Host, ip: Ipv4Addr) -> Result<()> {
    let filter = format!("dst {ip} and ( sport = :{SQUID_TLS_PORT} or sport = :{SQUID_HTTP_PORT} )");
    let mut argv: Vec<String> = ["ss", "-K", "-t", "-n"].map(String::from).to_vec();
    argv.extend(filter.split(' ').map(String::from));
    let out = host.run(&argv, None, |_| {}).await?;
    if out.status != 0 {
        return Err(EngineError::failed(
            format!("cannot close the sandbox's proxied connections: {}", out.tail.join(" ")),
            "run sandbox as root (ss -K needs CAP_NET_ADMIN)",
        ));
    }
    Ok(())
}

fn alive(pid_file: &Path, comm: &str) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(pid_file).ok()?.trim().parse().ok()?;
    let c = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    (c.trim() == comm).then_some(pid)
}

/// Writes the configuration and makes the running Squid use it (starts it when needed).
pub async fn apply(host: &Host, net: &Net, members: &[Member], host_addrs: &[IpAddr]) -> Result<()> {
    let conf = render(net, members, host_addrs);
    let path = conf_path();
    let running = alive(&pid_path(), "squid");
    if running.is_none() && !members.iter().any(|m| m.restricted) {
        // Nobody needs it; keep the file current for whoever looks.
        let _ = std::fs::write(&path, conf);
        return Ok(());
    }
    prepare(host).await?;
    write_pages(members)?;
    // The lists and pages are separate files: a change to one of them is a change too.
    let mut fingerprint = conf.clone();
    for m in members.iter().filter(|m| m.restricted) {
        for f in [paths::list_file(&m.name), paths::private_file(&m.name), error_dir().join(page_name(m))] {
            fingerprint.push_str(&std::fs::read_to_string(f).unwrap_or_default());
        }
    }
    let applied = paths::run().join("squid.applied");
    let changed = std::fs::read_to_string(&applied).map(|c| c != fingerprint).unwrap_or(true);
    paths::write(&path, conf.as_bytes())?;
    let conf_arg = path.display().to_string();
    if running.is_some() {
        if changed {
            let log = paths::squid_logs().join("cache.log");
            let offset = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
            let argv = ["squid", "-f", &conf_arg, "-k", "reconfigure"].map(String::from);
            let out = host.run(&argv, None, |_| {}).await?;
            if out.status != 0 {
                return Err(EngineError::failed(
                    format!("squid did not take the new configuration: {}", out.tail.join(" ")),
                    format!("see {}", log.display()),
                ));
            }
            // Return once the new rules are in force: Squid says so when it listens again.
            paths::wait_for_log(&log, offset, "Accepting NAT intercepted SSL bumped").await;
            paths::write(&applied, fingerprint.as_bytes())?;
        }
        return Ok(());
    }
    let check =
        host.run(&["squid".into(), "-k".into(), "parse".into(), "-f".into(), conf_arg.clone()], None, |_| {}).await?;
    if check.status != 0 {
        return Err(EngineError::failed(
            format!("squid refused the configuration: {}", check.tail.join(" ")),
            "install squid-openssl (the OpenSSL build; plain `squid` cannot peek at TLS)",
        ));
    }
    let log = paths::squid_logs().join("cache.log");
    let offset = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
    host.spawn_daemon(&["squid".into(), "-f".into(), conf_arg]).await?;
    let every = std::time::Duration::from_millis(20);
    if crate::poll::until(every * 100, every, || async { alive(&pid_path(), "squid") }).await.is_some() {
        paths::wait_for_log(&log, offset, "Accepting NAT intercepted SSL bumped").await;
        paths::write(&applied, fingerprint.as_bytes())?;
        return Ok(());
    }
    Err(EngineError::failed("squid did not start", format!("see {}", paths::squid_logs().join("cache.log").display())))
}

/// The throwaway certificate, the certificate-generator database and the log directory.
async fn prepare(host: &Host) -> Result<()> {
    let run = paths::run();
    let (cert, key) = (run.join("squid-cert.pem"), run.join("squid-key.pem"));
    if !cert.is_file() || !key.is_file() {
        let mut params = rcgen::CertificateParams::new(vec!["agent-sandboxes.invalid".to_string()])
            .map_err(|e| EngineError::failed(format!("certificate: {e}"), ""))?;
        params.distinguished_name.push(rcgen::DnType::CommonName, "Agent Sandboxes egress (never used to decrypt)");
        let kp = rcgen::KeyPair::generate().map_err(|e| EngineError::failed(format!("key: {e}"), ""))?;
        let c = params.self_signed(&kp).map_err(|e| EngineError::failed(format!("certificate: {e}"), ""))?;
        paths::write(&cert, c.pem().as_bytes())?;
        paths::write_private(&key, kp.serialize_pem().as_bytes(), "proxy")?;
    }
    let db = run.join("ssl_db");
    if !db.join("index.txt").is_file() {
        let _ = std::fs::remove_dir_all(&db);
        let out = host
            .run(
                &[
                    "/usr/lib/squid/security_file_certgen".into(),
                    "-c".into(),
                    "-s".into(),
                    db.display().to_string(),
                    "-M".into(),
                    "4MB".into(),
                ],
                None,
                |_| {},
            )
            .await?;
        if out.status != 0 {
            return Err(EngineError::failed(
                format!("cannot initialise squid's certificate database: {}", out.tail.join(" ")),
                "install squid-openssl",
            ));
        }
        paths::chown_tree(host, &db, "proxy").await?;
    }
    paths::ensure_dir(host, &paths::squid_logs(), "proxy").await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Squid's configuration for one open and two restricted sandboxes (one with `private`
    /// names): each restricted one's SNI and Host lists ANDed with its address, the host and
    /// private destinations refused first, everything else terminated or denied (403 pages).
    #[test]
    fn configuration_for_restricted_sandboxes() {
        let net = Net { bridge: "incusbr0".into(), gateway: "10.100.0.1".parse().unwrap(), prefix: 24 };
        let member = |name: &str, slot: u32, restricted: bool, upstream: &str| Member {
            name: name.into(),
            ip: format!("10.100.0.{}", 100 + slot).parse().unwrap(),
            mac: format!("0a:5b:5a:00:00:{slot:02x}"),
            slot,
            restricted,
            quic: false,
            has_private: name == "other",
            upstreams: vec![upstream.parse().unwrap()],
        };
        let members = [
            member("open", 2, false, "192.0.2.53"),
            member("shut", 5, true, "192.0.2.53"),
            member("other", 7, true, "198.51.100.53"),
        ];
        let host = ["192.0.2.10".parse().unwrap(), "fd00::2".parse().unwrap()];
        insta::assert_snapshot!(render(&net, &members, &host));
    }
}
