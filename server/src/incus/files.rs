//! The files API: pushes and pulls (content never passes through a shell).
use reqwest::Method;

use super::client::{Incus, enc, name_taken};
use super::error::{IncusError, Result};

/// A file to write into an instance.
#[derive(Debug, Clone)]
pub struct FileWrite<'a> {
    pub path: &'a str,
    pub content: Vec<u8>,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

impl<'a> FileWrite<'a> {
    pub fn root(path: &'a str, content: impl Into<Vec<u8>>, mode: u32) -> Self {
        Self { path, content: content.into(), uid: 0, gid: 0, mode }
    }
}

impl Incus {
    // ---- files ------------------------------------------------------------------------------

    /// Writes a file (works on stopped containers too). Content never passes through a shell.
    pub async fn push_file(&self, name: &str, file: &FileWrite<'_>) -> Result<()> {
        let what = format!("file '{}' in '{name}'", file.path);
        let owner = (file.uid, file.gid, file.mode);
        self.files_post(name, file.path, owner, "file", Some(file.content.clone().into()), &what).await
    }

    /// Writes a large host file into an instance, streamed from disk (never held in memory).
    pub async fn push_file_from(
        &self,
        name: &str,
        path: &str,
        source: &std::path::Path,
        owner: (u32, u32, u32),
    ) -> Result<()> {
        let what = format!("file '{path}' in '{name}'");
        let file = tokio::fs::File::open(source)
            .await
            .map_err(|e| IncusError::Operation { message: format!("cannot read {}: {e}", source.display()) })?;
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(file, 1 << 20));
        self.files_post(name, path, owner, "file", Some(body), &what).await
    }

    /// Creates a directory (parents must exist); an existing one is fine.
    pub async fn push_dir(&self, name: &str, path: &str, uid: u32, gid: u32, mode: u32) -> Result<()> {
        let what = format!("directory '{path}' in '{name}'");
        match self
            .files_post(name, path, (uid, gid, mode), "directory", None, &what)
            .await
            .map_err(|e| name_taken(e, &what))
        {
            Ok(()) | Err(IncusError::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Makes `path` a symlink to `target` (replacing what was there).
    pub async fn push_symlink(&self, name: &str, path: &str, target: &str) -> Result<()> {
        let what = format!("symlink '{path}' in '{name}'");
        self.files_post(name, path, (0, 0, 0o777), "symlink", Some(target.as_bytes().to_vec().into()), &what).await
    }

    /// One upload to the files API: owner, mode and type travel as headers, content as the body.
    async fn files_post(
        &self,
        name: &str,
        path: &str,
        (uid, gid, mode): (u32, u32, u32),
        kind: &str,
        content: Option<reqwest::Body>,
        what: &str,
    ) -> Result<()> {
        let url = format!("{}/1.0/instances/{}/files?path={}", self.base, enc(name), enc(path));
        let mut req = self
            .http
            .post(url)
            .header("X-Incus-uid", uid.to_string())
            .header("X-Incus-gid", gid.to_string())
            .header("X-Incus-mode", format!("{mode:04o}"))
            .header("X-Incus-type", kind);
        if let Some(body) = content {
            req = req.header("X-Incus-write", "overwrite").body(body);
        }
        let t0 = std::time::Instant::now();
        let resp = req.send().await.map_err(|e| self.map_transport(e))?;
        let r = self.envelope(resp, what).await.map(|_| ());
        tracing::debug!("incus files {path}: {} ms", t0.elapsed().as_millis());
        r
    }

    /// Reads a file's bytes.
    pub async fn pull_file(&self, name: &str, path: &str) -> Result<Vec<u8>> {
        let url = format!("{}/1.0/instances/{}/files?path={}", self.base, enc(name), enc(path));
        let resp = self.http.get(url).send().await.map_err(|e| self.map_transport(e))?;
        let status = resp.status();
        let is_json = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if !status.is_success() || (is_json && resp.headers().get("x-incus-type").is_none()) {
            return Err(self
                .envelope(resp, &format!("file '{path}' in '{name}'"))
                .await
                .err()
                .unwrap_or_else(|| IncusError::Decode(format!("'{path}' in '{name}' is not a regular file"))));
        }
        Ok(resp.bytes().await.map_err(|e| self.map_transport(e))?.to_vec())
    }

    pub async fn delete_file(&self, name: &str, path: &str) -> Result<()> {
        self.call(
            Method::DELETE,
            &format!("/1.0/instances/{}/files?path={}", enc(name), enc(path)),
            None,
            &format!("file '{path}' in '{name}'"),
        )
        .await
        .map(|_| ())
    }
}
