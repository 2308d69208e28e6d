//! Squid (the `squid-openssl` build): transparent interception of the restricted sandboxes' port
//! 443 and 80. TLS is peeked at (the client's SNI) and spliced or cut — never decrypted, so the
//! certificate Squid holds is a throwaway. Plain HTTP passes only for allowlisted Host names, taken
//! literally (`dstdomain -n`: no reverse look-up of raw IPs) and checked against the destination
//! (`host_verify_strict`: no Host-header forgery). One Squid serves every sandbox; each sandbox's
//! rules are ANDed with its source address.
use std::fmt::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use super::{Member, Net, SQUID_HTTP_PORT, SQUID_TLS_PORT, paths};
use crate::engine::host::Host;
use crate::error::{EngineError, Result};

/// Squid's own forward-proxy port (Squid wants one); loopback only, and refused for everyone.
pub const SQUID_LOCAL_PORT: u16 = 3131;

pub fn conf_path() -> PathBuf {
    paths::run().join("squid.conf")
}

pub fn access_log() -> PathBuf {
    paths::squid_logs().join("access.log")
}

fn pid_path() -> PathBuf {
    paths::run().join("squid.pid")
}

pub fn render(net: &Net, members: &[Member]) -> String {
    let run = paths::run();
    let logs = paths::squid_logs();
    let gw = net.gateway;
    let mut upstreams: Vec<Ipv4Addr> = members.iter().flat_map(|m| m.upstreams.iter().copied()).collect();
    upstreams.sort();
    upstreams.dedup();
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
         cache deny all\n\
         host_verify_strict on\n\
         shutdown_lifetime 1 seconds\n\
         visible_hostname agent-sandboxes\n\
         pinger_enable off\n\
         forwarded_for delete\n\
         via off\n\
         acl step1 at_step SslBump1\n\
         acl sbx_http myportname sbx_http\n\
         acl sbx_tls myportname sbx_tls\n\
         acl CONNECT method CONNECT\n\
         http_access deny CONNECT sbx_http\n",
        pid = pid_path().display(),
        cert = run.join("squid-cert.pem").display(),
        key = run.join("squid-key.pem").display(),
        db = run.join("ssl_db").display(),
        access = access_log().display(),
        logs = logs.display(),
    );
    if !upstreams.is_empty() {
        let list: Vec<String> = upstreams.iter().map(|u| u.to_string()).collect();
        let _ = writeln!(s, "dns_nameservers {}", list.join(" "));
    }
    let mut bump = String::from("ssl_bump peek step1\n");
    let mut access = String::new();
    for m in members.iter().filter(|m| m.restricted) {
        let id = format!("s{}", m.slot);
        let list = paths::list_file(&m.name);
        let _ = write!(
            s,
            "acl {id} src {ip}/32\n\
             acl {id}_names ssl::server_name \"{list}\"\n\
             acl {id}_hosts dstdomain -n \"{list}\"\n\
             note sandbox {name} {id}\n",
            ip = m.ip,
            list = list.display(),
            name = m.name,
        );
        let _ = writeln!(bump, "ssl_bump splice {id} {id}_names");
        let _ = writeln!(access, "http_access allow sbx_http {id} {id}_hosts");
    }
    bump.push_str("ssl_bump terminate all\n");
    s.push_str(&bump);
    s.push_str(&access);
    // The intercepted TLS port: the decision is ssl_bump's (splice or terminate) above.
    s.push_str("http_access allow sbx_tls\nhttp_access deny all\n");
    s
}

fn alive(pid_file: &Path, comm: &str) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(pid_file).ok()?.trim().parse().ok()?;
    let c = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    (c.trim() == comm).then_some(pid)
}

/// Writes the configuration and makes the running Squid use it (starts it when needed).
pub async fn apply(host: &Host, net: &Net, members: &[Member]) -> Result<()> {
    let conf = render(net, members);
    let path = conf_path();
    let running = alive(&pid_path(), "squid");
    if running.is_none() && !members.iter().any(|m| m.restricted) {
        // Nobody needs it; keep the file current for whoever looks.
        let _ = std::fs::write(&path, conf);
        return Ok(());
    }
    prepare(host).await?;
    // The lists are separate files: a change to one of them is a change too.
    let mut fingerprint = conf.clone();
    for m in members.iter().filter(|m| m.restricted) {
        fingerprint.push_str(&std::fs::read_to_string(paths::list_file(&m.name)).unwrap_or_default());
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
            wait_for_log(&log, offset, "Accepting NAT intercepted SSL bumped").await;
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
        wait_for_log(&log, offset, "Accepting NAT intercepted SSL bumped").await;
        paths::write(&applied, fingerprint.as_bytes())?;
        return Ok(());
    }
    Err(EngineError::failed("squid did not start", format!("see {}", paths::squid_logs().join("cache.log").display())))
}

/// Waits (up to 3 s) until `needle` appears in `log` past `offset`.
pub async fn wait_for_log(log: &Path, offset: u64, needle: &str) {
    use std::io::{Read, Seek, SeekFrom};
    let seen = || async {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(log)
            && f.seek(SeekFrom::Start(offset)).is_ok()
        {
            let _ = f.read_to_string(&mut text);
        }
        text.contains(needle).then_some(())
    };
    let every = std::time::Duration::from_millis(10);
    if crate::poll::until(every * 300, every, seen).await.is_none() {
        tracing::warn!("{} did not report '{needle}' within 3 s", log.display());
    }
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

    /// Squid's configuration for one open and two restricted sandboxes: each restricted one's
    /// SNI and Host lists ANDed with its address, everything else terminated or denied.
    #[test]
    fn configuration_for_restricted_sandboxes() {
        let net = Net { bridge: "incusbr0".into(), gateway: "10.100.0.1".parse().unwrap(), prefix: 24 };
        let member = |name: &str, slot: u32, restricted: bool, upstream: &str| Member {
            name: name.into(),
            ip: format!("10.100.0.{}", 100 + slot).parse().unwrap(),
            mac: format!("0a:5b:5a:00:00:{slot:02x}"),
            slot,
            restricted,
            upstreams: vec![upstream.parse().unwrap()],
        };
        let members = [
            member("open", 2, false, "192.0.2.53"),
            member("shut", 5, true, "192.0.2.53"),
            member("other", 7, true, "198.51.100.53"),
        ];
        insta::assert_snapshot!(render(&net, &members));
    }
}
