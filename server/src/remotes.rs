//! Where Incus runs: `local` (the unix socket on this machine) or a named HTTPS remote — a Linux
//! server, an Incus cluster, or the OrbStack VM on macOS — added once with an Incus trust token.
//!
//! Stored in `~/.sandbox/remotes.json` (0600) with the server certificate pinned; one client
//! certificate per user in `~/.sandbox/client.crt` / `client.key` (0600).
use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{EngineError, Result};
use crate::incus::{Endpoint, Incus, RemoteTls};

pub const LOCAL: &str = "local";

/// What runs the host-side processes (ssh-agent, nft, squid) for a remote.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum HostKind {
    /// Nothing this client can run there: the `sandbox` binary must run on that server itself
    /// (VS Code: Remote-SSH into it). Operations that need the host fail with that advice.
    #[default]
    Server,
    /// The OrbStack machine that runs Incus on macOS: `orb run -m MACHINE`.
    Orb { machine: String },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Remote {
    pub url: String,
    pub server_cert_pem: String,
    #[serde(default)]
    pub host: HostKind,
    /// SSH jump host for the sandboxes' loopback ports (default: the URL's host, unless loopback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_jump: Option<String>,
}

impl Remote {
    /// How SSH reaches the sandboxes' ports: they listen on the server's 127.0.0.1, so a client
    /// elsewhere hops through the server (OrbStack forwards the VM's loopback to the Mac's).
    pub fn effective_ssh_jump(&self) -> Option<String> {
        if matches!(self.host, HostKind::Orb { .. }) {
            return None;
        }
        if self.ssh_jump.is_some() {
            return self.ssh_jump.clone();
        }
        let host = url::Url::parse(&self.url).ok()?.host_str()?.trim_matches(['[', ']']).to_string();
        let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
        (!loopback).then_some(host)
    }
}

/// `[user@]host[:port]` — it goes into ssh_config, so nothing else is accepted.
pub fn validate_ssh_jump(j: &str) -> Result<()> {
    let ok = !j.is_empty()
        && j.len() <= 255
        && !j.starts_with('-')
        && j.bytes().all(|b| b.is_ascii_alphanumeric() || b"._@:-[]".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(EngineError::invalid("remote", format!("'{j}' is not a jump host"), "use [USER@]HOST[:PORT]"))
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Remotes {
    #[serde(default)]
    pub current: Option<String>,
    #[serde(default)]
    pub remotes: BTreeMap<String, Remote>,
}

fn file() -> PathBuf {
    crate::paths::sandbox_home().join("remotes.json")
}
fn client_cert_path() -> PathBuf {
    crate::paths::sandbox_home().join("client.crt")
}
fn client_key_path() -> PathBuf {
    crate::paths::sandbox_home().join("client.key")
}

impl Remotes {
    pub fn load() -> Result<Self> {
        let p = file();
        match std::fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                EngineError::failed(
                    format!("{} is not valid: {e}", p.display()),
                    "fix the file, or remove it and add the remotes again",
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(EngineError::failed(format!("cannot read {}: {e}", p.display()), "")),
        }
    }

    pub fn save(&self) -> Result<()> {
        let text = serde_json::to_vec_pretty(self).expect("serialisable");
        crate::paths::write(&file(), &text, 0o600)
    }

    /// The remote to use: `--remote` / `SANDBOX_REMOTE`, else the one chosen with `remote use`.
    pub fn selected(&self, flag: Option<&str>) -> String {
        flag.map(str::to_string).or_else(|| self.current.clone()).unwrap_or_else(|| LOCAL.to_string())
    }

    pub fn get(&self, name: &str) -> Result<&Remote> {
        self.remotes.get(name).ok_or_else(|| {
            let known: Vec<&str> = std::iter::once(LOCAL).chain(self.remotes.keys().map(String::as_str)).collect();
            EngineError::invalid(
                "remote",
                format!("no remote named '{name}' (known: {})", known.join(", ")),
                "add it with `sandbox remote add NAME --token TOKEN`",
            )
        })
    }
}

pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    if !ok || name == LOCAL {
        return Err(EngineError::invalid(
            "remote",
            format!("'{name}' is not a usable remote name"),
            "use 1-32 letters, digits, '-' or '_', starting with a letter or digit (and not `local`)",
        ));
    }
    Ok(())
}

/// The Incus client for a remote: HTTPS with our client certificate, its certificate pinned.
pub fn connect(r: &Remote) -> Result<Incus> {
    Ok(Incus::connect(Endpoint::Https { url: r.url.clone(), tls: tls_for(r)? })?)
}

fn tls_for(r: &Remote) -> Result<RemoteTls> {
    let (cert, key) = client_certificate()?;
    Ok(RemoteTls { client_cert_pem: cert, client_key_pem: key, server_cert_pem: r.server_cert_pem.clone() })
}

/// This user's client certificate, made on first use. Several first uses at once (a fresh
/// ~/.sandbox) make one pair, under a lock: the key is written before the certificate, so a
/// reader that finds both finds a matching pair, and one that finds less waits for the lock.
pub fn client_certificate() -> Result<(String, String)> {
    let (cp, kp) = (client_cert_path(), client_key_path());
    let read = || Some((std::fs::read_to_string(&cp).ok()?, std::fs::read_to_string(&kp).ok()?));
    if let Some(pair) = read() {
        return Ok(pair);
    }
    crate::paths::with_file_lock(&crate::paths::sandbox_home().join(".client-cert.lock"), || {
        if let Some(pair) = read() {
            return Ok(pair);
        }
        let host =
            nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_else(|| "client".into());
        let (c, k) = crate::incus::generate_client_certificate(&format!("agent-sandboxes@{host}"))?;
        crate::paths::write(&kp, k.as_bytes(), 0o600)?;
        crate::paths::write(&cp, c.as_bytes(), 0o600)?;
        Ok((c, k))
    })
}

/// What an Incus trust token carries (`incus config trust add NAME` prints it, base64 JSON).
#[derive(Debug, Deserialize)]
pub struct TrustToken {
    pub client_name: String,
    pub fingerprint: String,
    #[serde(default)]
    pub addresses: Vec<String>,
    #[allow(dead_code)]
    secret: String,
}

pub fn decode_token(token: &str) -> Result<TrustToken> {
    let bad = |why: String| {
        EngineError::invalid(
            "remote",
            format!("this is not an Incus trust token ({why})"),
            "on the server run `incus config trust add NAME` and pass the token it prints",
        )
    };
    let raw = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(token.trim()))
        .map_err(|e| bad(e.to_string()))?;
    serde_json::from_slice(&raw).map_err(|e| bad(e.to_string()))
}

pub struct AddOptions {
    pub name: String,
    pub url: Option<String>,
    pub token: String,
    pub host: HostKind,
    pub ssh_jump: Option<String>,
}

/// Adds a remote: checks the server's certificate against the token's fingerprint, asks the
/// server to trust our client certificate with the token, and stores the pinned certificate.
pub async fn add(opts: AddOptions) -> Result<Remote> {
    validate_name(&opts.name)?;
    if let Some(j) = &opts.ssh_jump {
        validate_ssh_jump(j)?;
    }
    let token = decode_token(&opts.token)?;
    let url = match &opts.url {
        Some(u) => normalise_url(u)?,
        None => {
            let a = token.addresses.first().ok_or_else(|| {
                EngineError::invalid(
                    "remote",
                    "the token names no server address",
                    "pass the URL: sandbox remote add NAME URL …",
                )
            })?;
            normalise_url(a)?
        }
    };
    let parsed =
        url::Url::parse(&url).map_err(|e| EngineError::invalid("remote", format!("bad URL {url}: {e}"), ""))?;
    let host = parsed.host_str().unwrap_or_default().trim_matches(['[', ']']).to_string();
    let port = parsed.port_or_known_default().unwrap_or(8443);
    let der = crate::incus::fetch_server_certificate(&host, port).await?;
    let fp = hex::encode(Sha256::digest(&der));
    if !fp.eq_ignore_ascii_case(&token.fingerprint) {
        return Err(EngineError::failed(
            format!(
                "the server at {url} presented certificate {fp}, but the token was issued by {}",
                token.fingerprint
            ),
            "check the URL (a different server, or something in between): the token must come from that server",
        ));
    }
    let server_cert_pem = pem_encode(&der);
    let remote = Remote { url: url.clone(), server_cert_pem, host: opts.host, ssh_jump: opts.ssh_jump };
    let incus = Incus::connect(Endpoint::Https { url: url.clone(), tls: tls_for(&remote)? })?;
    let info = incus.server().await?;
    if info["auth"] != "trusted" {
        incus.trust_with_token(&opts.token, &token.client_name).await?;
        let info = incus.server().await?;
        if info["auth"] != "trusted" {
            return Err(EngineError::failed(
                format!("{url} accepted the token but does not trust this client"),
                "make a new token on the server (`incus config trust add NAME`) and try again",
            ));
        }
    }
    let mut all = Remotes::load()?;
    all.remotes.insert(opts.name.clone(), remote.clone());
    all.save()?;
    Ok(remote)
}

fn normalise_url(u: &str) -> Result<String> {
    let u = if u.contains("://") { u.to_string() } else { format!("https://{u}") };
    if !u.starts_with("https://") {
        return Err(EngineError::invalid("remote", format!("{u}: remotes are HTTPS"), "use https://HOST:8443"));
    }
    Ok(u.trim_end_matches('/').to_string())
}

fn pem_encode(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let body: Vec<&str> = b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).expect("base64 is ascii")).collect();
    format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", body.join("\n"))
}

pub fn use_remote(name: &str) -> Result<()> {
    let mut all = Remotes::load()?;
    if name != LOCAL {
        all.get(name)?;
    }
    all.current = (name != LOCAL).then(|| name.to_string());
    all.save()
}

pub fn remove(name: &str) -> Result<()> {
    let mut all = Remotes::load()?;
    all.get(name)?;
    all.remotes.remove(name);
    if all.current.as_deref() == Some(name) {
        all.current = None;
    }
    all.save()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_decode_and_garbage_is_refused() {
        let t = "eyJjbGllbnRfbmFtZSI6InByb2JlLXgiLCJmaW5nZXJwcmludCI6ImYzYzgiLCJhZGRyZXNzZXMiOlsiMTI3LjAuMC4xOjE4NDQzIl0sInNlY3JldCI6ImEzIiwiZXhwaXJlc19hdCI6IjAwMDEtMDEtMDFUMDA6MDA6MDBaIn0=";
        let d = decode_token(t).unwrap();
        assert_eq!(d.client_name, "probe-x");
        assert_eq!(d.addresses, vec!["127.0.0.1:18443"]);
        assert!(decode_token("not a token").unwrap_err().to_string().contains("not an Incus trust token"));
    }

    #[test]
    fn names_and_urls() {
        assert!(validate_name("lab-1").is_ok());
        for bad in ["", "local", "-x", "a b", "x/y"] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
        assert_eq!(normalise_url("10.0.0.2:8443").unwrap(), "https://10.0.0.2:8443");
        assert!(normalise_url("http://x").is_err());
        assert!(validate_ssh_jump("me@server:22").is_ok());
        assert!(validate_ssh_jump("x\n  ProxyCommand evil").is_err());
        let r = |url: &str| Remote {
            url: url.into(),
            server_cert_pem: String::new(),
            host: HostKind::Server,
            ssh_jump: None,
        };
        assert_eq!(r("https://10.0.0.2:8443").effective_ssh_jump().as_deref(), Some("10.0.0.2"));
        assert_eq!(r("https://127.0.0.1:8443").effective_ssh_jump(), None);
    }
}
