//! Fetching the pinned Claude Code on the host, without npm: the registry's metadata and the
//! platform package's tarball over HTTPS, the tarball checked against the pinned sha512 before
//! anything is read from it, the binary extracted (flate2 + tar) into a cache kept by version.
//!
//! The cache: `/var/cache/agent-sandboxes/claude-code/VERSION/PLATFORM/claude` when run as root
//! (shared by every user's `~/.sandbox` and by the tests' own homes, like the VS Code test cache
//! beside it), else `~/.cache/agent-sandboxes/claude-code/…`; `SANDBOX_CACHE_DIR` replaces the
//! `…/agent-sandboxes` part. Only a complete, verified entry is ever used: its `integrity` file is
//! written last.
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use sha2::{Digest, Sha512};
use tokio::io::AsyncWriteExt;

use super::pin::{Integrity, Platform, pin};
use crate::error::{EngineError, Result};
use crate::progress::Progress;

pub const DEFAULT_REGISTRY: &str = "https://registry.npmjs.org";
/// The binary is ~400 MB; anything far larger is not what we pinned.
const MAX_BINARY: u64 = 2 << 30;
const MAX_TARBALL: u64 = 1 << 30;

pub fn cache_root() -> PathBuf {
    let base = match std::env::var_os("SANDBOX_CACHE_DIR") {
        Some(d) => PathBuf::from(d),
        None if nix::unistd::geteuid().is_root() => PathBuf::from("/var/cache/agent-sandboxes"),
        None => dirs::cache_dir().unwrap_or_else(|| PathBuf::from("/tmp")).join("agent-sandboxes"),
    };
    base.join("claude-code")
}

fn entry_dir(platform: Platform) -> PathBuf {
    cache_root().join(&pin().version).join(platform.key())
}

/// `SANDBOX_NPM_REGISTRY` (a mirror), else the npm registry.
fn registry() -> Result<String> {
    let r = std::env::var("SANDBOX_NPM_REGISTRY").unwrap_or_else(|_| DEFAULT_REGISTRY.into());
    match url::Url::parse(&r) {
        Ok(u) if matches!(u.scheme(), "https" | "http") => Ok(r.trim_end_matches('/').to_string()),
        _ => Err(EngineError::invalid(
            "SANDBOX_NPM_REGISTRY",
            format!("'{r}' is not an http(s) URL"),
            "unset it, or give https://…",
        )),
    }
}

/// The cached binary for `platform`, fetched first when missing.
pub async fn ensure_cached(platform: Platform, progress: &dyn Progress) -> Result<PathBuf> {
    let want = platform.integrity()?;
    let dir = entry_dir(platform);
    let bin = dir.join("claude");
    if cached(&dir, &want) {
        return Ok(bin);
    }
    fetch(platform, &want, &dir, progress).await?;
    Ok(bin)
}

/// A complete entry: the marker names the pinned integrity and the binary has the size it had.
fn cached(dir: &Path, want: &Integrity) -> bool {
    let Ok(marker) = std::fs::read_to_string(dir.join("integrity")) else { return false };
    let mut lines = marker.lines();
    let (Some(sri), Some(size)) = (lines.next(), lines.next().and_then(|s| s.parse::<u64>().ok())) else {
        return false;
    };
    sri == want.to_sri() && std::fs::metadata(dir.join("claude")).is_ok_and(|m| m.is_file() && m.len() == size)
}

fn http() -> Result<reqwest::Client> {
    crate::tls::install_crypto_provider();
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(20))
        .read_timeout(Duration::from_secs(60))
        .user_agent(concat!("agent-sandboxes/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| EngineError::failed(format!("cannot make an HTTP client: {e}"), ""))
}

fn unreachable(what: &str, e: impl std::fmt::Display) -> EngineError {
    EngineError::failed(
        format!("cannot fetch {what}: {e}"),
        "the npm registry must be reachable from this host once (the download is cached); \
         set SANDBOX_NPM_REGISTRY to use a mirror",
    )
}

/// The registry's metadata for the pinned version: its tarball URL, its integrity matching ours.
async fn metadata(client: &reqwest::Client, registry: &str, platform: Platform, want: &Integrity) -> Result<String> {
    let pkg = platform.package().replace('/', "%2f");
    let url = format!("{registry}/{pkg}/{}", pin().version);
    let what = format!("{}@{} metadata", platform.package(), pin().version);
    let resp = client.get(&url).send().await.map_err(|e| unreachable(&what, e))?;
    if !resp.status().is_success() {
        return Err(unreachable(&what, format!("{url} answered {}", resp.status())));
    }
    let meta: serde_json::Value = resp.json().await.map_err(|e| unreachable(&what, e))?;
    let dist = &meta["dist"];
    let theirs = dist["integrity"].as_str().unwrap_or_default();
    if theirs != want.to_sri() {
        return Err(EngineError::failed(
            format!("the registry's {what} says integrity '{theirs}', the pinned one is '{}'", want.to_sri()),
            "a registry serving something else than what the repository pins is not used; check SANDBOX_NPM_REGISTRY",
        ));
    }
    match dist["tarball"].as_str().map(url::Url::parse) {
        Some(Ok(u)) if matches!(u.scheme(), "https" | "http") => Ok(u.to_string()),
        _ => Err(unreachable(&what, "no tarball URL in it")),
    }
}

async fn fetch(platform: Platform, want: &Integrity, dir: &Path, progress: &dyn Progress) -> Result<()> {
    let io = |what: &str, e: std::io::Error| EngineError::failed(format!("{what}: {e}"), "check the cache directory");
    std::fs::create_dir_all(dir).map_err(|e| io(&dir.display().to_string(), e))?;
    let registry = registry()?;
    let client = http()?;
    let tarball = metadata(&client, &registry, platform, want).await?;
    let tmp_tgz = dir.join(format!(".download-{}-{:08x}.tgz", std::process::id(), rand::random::<u32>()));
    let res = download(&client, &tarball, &tmp_tgz, want, platform, progress).await;
    let res = match res {
        Ok(()) => {
            progress.step(&format!("Extracting Claude Code {} ({})", pin().version, platform.key()));
            let (tgz, dir) = (tmp_tgz.clone(), dir.to_path_buf());
            let want = want.to_sri();
            tokio::task::spawn_blocking(move || extract(&tgz, &dir, &want))
                .await
                .map_err(|e| EngineError::failed(format!("extraction stopped: {e}"), ""))
                .and_then(|r| r)
        }
        Err(e) => Err(e),
    };
    let _ = std::fs::remove_file(&tmp_tgz);
    res
}

/// Streams the tarball to `dest`, hashing as it goes; refuses it unless it is the pinned one.
async fn download(
    client: &reqwest::Client,
    url: &str,
    dest: &Path,
    want: &Integrity,
    platform: Platform,
    progress: &dyn Progress,
) -> Result<()> {
    let what = format!("{}@{}", platform.package(), pin().version);
    let resp = client.get(url).send().await.map_err(|e| unreachable(&what, e))?;
    if !resp.status().is_success() {
        return Err(unreachable(&what, format!("{url} answered {}", resp.status())));
    }
    let total = resp.content_length().unwrap_or(0);
    progress.step(&format!(
        "Fetching Claude Code {} ({}, {} MB) from {}",
        pin().version,
        platform.key(),
        total >> 20,
        url::Url::parse(url).ok().and_then(|u| u.host_str().map(str::to_owned)).unwrap_or_default()
    ));
    let mut file = tokio::fs::File::create(dest).await.map_err(|e| {
        EngineError::failed(format!("cannot write {}: {e}", dest.display()), "check the cache directory")
    })?;
    let mut hash = Sha512::new();
    let (mut got, mut shown) = (0u64, 0u64);
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| unreachable(&what, e))?;
        got += chunk.len() as u64;
        if got > MAX_TARBALL {
            return Err(EngineError::failed(format!("{what} is larger than {} MB", MAX_TARBALL >> 20), ""));
        }
        hash.update(&chunk);
        file.write_all(&chunk).await.map_err(|e| EngineError::failed(format!("{}: {e}", dest.display()), ""))?;
        if total > 0 && got * 10 / total > shown {
            shown = got * 10 / total;
            progress.line(&format!("{}% of {} MB", shown * 10, total >> 20));
        }
    }
    file.flush().await.map_err(|e| EngineError::failed(format!("{}: {e}", dest.display()), ""))?;
    let digest: [u8; 64] = hash.finalize().into();
    if digest != want.0 {
        return Err(EngineError::failed(
            format!("{what} from {url} does not match the pinned sha512 (got {})", Integrity(digest).to_sri()),
            "nothing was used from it; a proxy or mirror may be altering downloads",
        ));
    }
    Ok(())
}

/// Copies `package/claude` out of the verified tarball into `dir/claude` (never a path taken
/// from the archive), then writes the marker that makes the entry usable.
pub fn extract(tgz: &Path, dir: &Path, integrity: &str) -> Result<()> {
    let fail = |e: String| EngineError::failed(format!("cannot extract Claude Code: {e}"), "");
    let file = std::fs::File::open(tgz).map_err(|e| fail(e.to_string()))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(std::io::BufReader::new(file)));
    let tmp = dir.join(format!(".claude-{}-{:08x}", std::process::id(), rand::random::<u32>()));
    let mut found = None;
    for entry in archive.entries().map_err(|e| fail(e.to_string()))? {
        let entry = entry.map_err(|e| fail(e.to_string()))?;
        let path = entry.path().map_err(|e| fail(e.to_string()))?.into_owned();
        if path != Path::new("package/claude") || !entry.header().entry_type().is_file() {
            continue;
        }
        let size = entry.header().size().map_err(|e| fail(e.to_string()))?;
        if size > MAX_BINARY {
            return Err(fail(format!("package/claude is {size} bytes")));
        }
        let mut out = std::fs::File::create(&tmp).map_err(|e| fail(e.to_string()))?;
        let copied = std::io::copy(&mut entry.take(MAX_BINARY), &mut out).map_err(|e| fail(e.to_string()));
        let copied = copied.and_then(|n| out.sync_all().map(|_| n).map_err(|e| fail(e.to_string())));
        match copied {
            Ok(n) if n == size => found = Some(n),
            Ok(n) => return Err(fail(format!("package/claude ended after {n} of {size} bytes"))),
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        }
        break;
    }
    let Some(size) = found else { return Err(fail("the package has no package/claude".into())) };
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).map_err(|e| fail(e.to_string()))?;
    std::fs::rename(&tmp, dir.join("claude")).map_err(|e| fail(e.to_string()))?;
    crate::paths::write_atomic(&dir.join("integrity"), format!("{integrity}\n{size}\n").as_bytes(), 0o644)
        .map_err(|e| fail(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tgz(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
        for (path, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, path, *data).unwrap();
        }
        b.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn extracts_only_package_claude_and_marks_the_entry_complete() {
        let dir = std::env::temp_dir().join(format!("cc-extract-{}", rand::random::<u32>()));
        std::fs::create_dir_all(&dir).unwrap();
        let archive = dir.join("p.tgz");
        let data = tgz(&[("package/README.md", b"readme"), ("package/claude", b"\x7fELF binary"), ("package/x", b"x")]);
        std::fs::write(&archive, data).unwrap();
        let want = Integrity([7; 64]);
        assert!(!cached(&dir, &want));
        extract(&archive, &dir, &want.to_sri()).unwrap();
        assert_eq!(std::fs::read(dir.join("claude")).unwrap(), b"\x7fELF binary");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(dir.join("claude")).unwrap().permissions().mode() & 0o777, 0o755);
        assert!(cached(&dir, &want));
        assert!(!cached(&dir, &Integrity([8; 64])), "another pin is another entry");
        std::fs::write(dir.join("claude"), b"truncated").unwrap();
        assert!(!cached(&dir, &want), "a binary of another size is not trusted");
        assert!(!dir.join("x").exists() && !dir.join("README.md").exists(), "nothing else is written");

        let empty = dir.join("empty.tgz");
        std::fs::write(&empty, tgz(&[("package/other", b"x")])).unwrap();
        let e = extract(&empty, &dir.join("sub"), &want.to_sri()).unwrap_err();
        assert!(e.to_string().contains("no package/claude"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The whole fetch against a registry on loopback: metadata, tarball, sha512, extraction; and
    /// a tarball that is not the pinned one is refused with nothing cached.
    #[test]
    fn fetch_verifies_against_the_pin() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let good = tgz(&[("package/claude", b"the real thing")]);
            let digest: [u8; 64] = Sha512::digest(&good).into();
            let want = Integrity(digest);
            let served = std::sync::Arc::new(std::sync::Mutex::new(good.clone()));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let base = format!("http://{}", listener.local_addr().unwrap());
            let (b2, w2, s2) = (base.clone(), want.to_sri(), served.clone());
            let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
                let (base, sri, served) = (b2.clone(), w2.clone(), s2.clone());
                async move {
                    if uri.path().ends_with(".tgz") {
                        axum::body::Body::from(served.lock().unwrap().clone())
                    } else {
                        let m = serde_json::json!({"dist": {"integrity": sri, "tarball": format!("{base}/p.tgz")}});
                        axum::body::Body::from(m.to_string())
                    }
                }
            });
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
            let client = http().unwrap();
            let dir = std::env::temp_dir().join(format!("cc-fetch-{}", rand::random::<u32>()));
            std::fs::create_dir_all(&dir).unwrap();
            let url = metadata(&client, &base, Platform::LinuxX64, &want).await.unwrap();
            let tmp = dir.join("dl.tgz");
            download(&client, &url, &tmp, &want, Platform::LinuxX64, &crate::progress::Silent).await.unwrap();
            extract(&tmp, &dir, &want.to_sri()).unwrap();
            assert_eq!(std::fs::read(dir.join("claude")).unwrap(), b"the real thing");

            *served.lock().unwrap() = tgz(&[("package/claude", b"something else")]);
            let e = download(&client, &url, &tmp, &want, Platform::LinuxX64, &crate::progress::Silent).await;
            assert!(e.unwrap_err().to_string().contains("does not match the pinned sha512"));
            let e = metadata(&client, &base, Platform::LinuxX64, &Integrity([1; 64])).await.unwrap_err();
            assert!(e.to_string().contains("the pinned one is"), "{e}");
            std::fs::remove_dir_all(&dir).unwrap();
        });
    }
}
