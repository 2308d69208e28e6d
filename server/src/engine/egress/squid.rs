//! Squid (the `squid-openssl` build): transparent interception of the restricted sandboxes' port
//! 443 and 80. TLS is peeked at (the client's SNI) and spliced or cut — never decrypted, so the
//! certificate Squid holds is a throwaway. Plain HTTP passes only for allowlisted Host names, taken
//! literally (`dstdomain -n`: no reverse look-up of raw IPs), and only to addresses the sandbox's
//! resolver gave for allowed names (nft.rs), so a forged Host header cannot send a request
//! elsewhere; a refusal is a 403 page naming the sandbox and the command that would allow the
//! name. (`host_verify_strict` is off so that a name Squid's resolver refuses reaches that 403
//! rather than a 409; Squid verifies TLS names against the destination either way.) One Squid
//! serves every sandbox; which sandbox a client address is, and what its lists hold, Squid asks
//! the external ACL helper (squid_acl.rs) at each connection, so allow/deny and sandboxes coming
//! and going never reconfigure Squid (a reconfigure closes its listening sockets for a moment).
//! Without a reconfigure nothing flushes Squid's DNS cache: a name its resolver refused before an
//! `allow` is remembered for a second only (`negative_dns_ttl`). Squid never connects to the host itself, and to private
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
    // Squid keeps only the narrower of two overlapping entries (127.0.0.1 inside 127.0.0.0/8
    // dropped the /8, the gateway dropped the bridge's subnet): the host's addresses already
    // inside a range below stay out.
    let mask = u32::MAX.checked_shl(32 - net.prefix).unwrap_or(0);
    let covered = |a: &IpAddr| match a {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_link_local()
                || v4.octets()[0] == 0
                || u32::from(*v4) & mask == u32::from(net.gateway) & mask
        }
        IpAddr::V6(v6) => v6.is_loopback() || v6.is_unicast_link_local(),
    };
    let mut v: Vec<String> = host_addrs.iter().filter(|a| !covered(a)).map(|a| a.to_string()).collect();
    v.extend(["127.0.0.0/8", "0.0.0.0/8", "169.254.0.0/16", "::1", "fe80::/10"].map(String::from));
    v.push(net.subnet());
    v.join(" ")
}

pub fn render(net: &Net, host_addrs: &[IpAddr], helper: &Path) -> String {
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
         negative_dns_ttl 1 seconds\n\
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
         acl to_private dst {PRIVATE}\n",
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
    s.push_str(&rules(helper));
    s
}

/// The decisions, each ACL a question to the helper about the client's sandbox (never cached:
/// an allow or deny holds from the next connection); every answer annotates the transaction
/// with the sandbox (the log's column). The host never, private addresses only for `private`
/// names, then the sandbox's list; plain HTTP likewise, asking first which sandbox the client is
/// and ending in the refusal page. (TLS asks once per connection, at its SNI: a question costs
/// a round trip through Squid's helper queue.)
fn rules(helper: &Path) -> String {
    use super::squid_acl::Mode;
    let mut s = String::new();
    for (mode, format) in [
        (Mode::Member, "%>a"),
        (Mode::Names, "%>a %ssl::>sni"),
        (Mode::Hosts, "%>a %DST"),
        (Mode::PrivateNames, "%>a %ssl::>sni"),
        (Mode::PrivateHosts, "%>a %DST"),
    ] {
        let m = mode.arg();
        let _ = writeln!(
            s,
            "external_acl_type sbx_{id} ttl=0 negative_ttl=0 cache=0 children-max=4 children-startup=1 \
             children-idle=1 concurrency=32 {format} {helper} __squid-acl {m}\nacl {id} external sbx_{id}",
            id = m.replace('-', "_"),
            helper = helper.display(),
        );
    }
    s.push_str(
        "deny_info ERR_SANDBOX_BLOCKED member\n\
         http_access deny sbx_http !member all\n\
         http_access deny CONNECT sbx_http\n\
         http_access deny to_host\n\
         ssl_bump peek step1\n\
         ssl_bump terminate to_host\n\
         ssl_bump splice private_names\n\
         ssl_bump terminate to_private\n\
         ssl_bump splice names\n\
         ssl_bump terminate all\n\
         http_access allow sbx_http private_hosts\n\
         http_access deny sbx_http to_private\n\
         http_access allow sbx_http hosts\n\
         http_access deny sbx_http member\n\
         http_access allow sbx_tls\n\
         http_access deny all\n",
    );
    s
}

const PAGE: &str = "ERR_SANDBOX_BLOCKED";

/// The refusal page (`%o`: the sandbox, from the helper; `%H`: the refused host name).
fn page() -> &'static str {
    "<!DOCTYPE html>\n<html><head><title>Blocked by the egress policy of sandbox %o</title></head><body><pre>\n\
     Agent Sandboxes: sandbox %o may not reach %H.\n\n\
     This is the sandbox's egress policy (an allowlist of domain names), not a network fault.\n\
     Do not try to work around it (other addresses, resolvers, proxies, tunnels or ports).\n\
     If the name is needed, ask the user to allow it. On the host:\n\n\
     \tsandbox allow %o %H\n\
     </pre></body></html>\n"
}

/// Squid's templates (links to Debian's) plus the refusal page.
fn write_pages() -> Result<()> {
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
    // (Pages of the per-sandbox layout before the helper.)
    for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        if e.file_name().to_string_lossy().starts_with("ERR_SANDBOX_BLOCKED_") {
            let _ = std::fs::remove_file(e.path());
        }
    }
    paths::write(&dir.join(PAGE), page().as_bytes())
}

/// The helper Squid runs (as its own user, which may not reach this binary where it is
/// installed, e.g. under a private home): a copy of this binary in the runtime directory, one
/// per build.
fn helper() -> Result<PathBuf> {
    let fail = |e: String| EngineError::failed(format!("cannot install Squid's ACL helper: {e}"), "run as root");
    let exe = std::env::current_exe().map_err(|e| fail(e.to_string()))?;
    let meta = std::fs::metadata(&exe).map_err(|e| fail(e.to_string()))?;
    let built = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).unwrap_or_default();
    let dir = paths::run().join("bin");
    let dest = dir.join(format!("squid-acl-{}-{}", meta.len(), built.as_nanos()));
    if dest.is_file() {
        return Ok(dest);
    }
    std::fs::create_dir_all(&dir).map_err(|e| fail(e.to_string()))?;
    let tmp = dir.join(format!(".tmp-{}", std::process::id()));
    std::fs::copy(&exe, &tmp).map_err(|e| fail(e.to_string()))?;
    std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .map_err(|e| fail(e.to_string()))?;
    std::fs::rename(&tmp, &dest).map_err(|e| fail(e.to_string()))?;
    // Older builds' copies: a helper still running keeps its file open until Squid restarts it.
    for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        if e.path() != dest && e.file_name().to_string_lossy().starts_with("squid-acl-") {
            let _ = std::fs::remove_file(e.path());
        }
    }
    Ok(dest)
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

/// Writes the configuration and makes the running Squid use it (starts it when needed). The
/// members and their lists are the helper's files (squid_acl.rs): a change to them needs nothing
/// from Squid.
pub async fn apply(host: &Host, net: &Net, members: &[Member], host_addrs: &[IpAddr]) -> Result<()> {
    super::squid_acl::write_members(members)?;
    let running = alive(&pid_path(), "squid");
    if running.is_none() && !members.iter().any(|m| m.restricted) {
        return Ok(());
    }
    let conf = render(net, host_addrs, &helper()?);
    let path = conf_path();
    prepare(host).await?;
    write_pages()?;
    let fingerprint = format!("{conf}{}", page());
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

    /// Squid's configuration: the same whoever is registered (the helper answers for each
    /// client); the host and private destinations refused first, everything else terminated or
    /// denied (the 403 page).
    #[test]
    fn configuration_for_restricted_sandboxes() {
        let net = Net { bridge: "incusbr0".into(), gateway: "10.100.0.1".parse().unwrap(), prefix: 24 };
        // (Addresses inside the ranges it always refuses are left out: Squid would drop the range.)
        let host = ["192.0.2.10", "fd00::2", "127.0.0.1", "::1", "10.100.0.1"].map(|a| a.parse().unwrap());
        insta::assert_snapshot!(render(&net, &host, Path::new("/run/agent-sandboxes/egress/bin/squid-acl-1-2")));
    }
}
