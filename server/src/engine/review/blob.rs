//! One side of a reviewed file: a blob of the sandbox's repository (`git cat-file`), read-only.
//! Binary and large blobs come back as a kind with their size and no text, so an editor shows a
//! placeholder instead of hanging on them.
use serde::{Deserialize, Serialize};

use super::git::{self, Git};
use super::running;
use crate::engine::Engine;
use crate::error::{EngineError, Result};

/// Larger blobs are not sent (the editor says so).
pub const MAX_TEXT: u64 = 2 << 20;
/// Git's own test for binary content: a NUL byte in the first 8000 bytes.
const SNIFF: usize = 8000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub enum BlobKind {
    Text,
    Binary,
    TooLarge,
    /// Not in the repository (a submodule's commit, or garbage-collected since the diff).
    Missing,
}

#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub struct Blob {
    pub kind: BlobKind,
    /// Bytes (0 when missing).
    #[ts(type = "number")]
    pub size: u64,
    /// The content, for `text` only (invalid UTF-8 replaced).
    pub text: Option<String>,
}

pub fn check_oid(oid: &str) -> Result<()> {
    if (oid.len() == 40 || oid.len() == 64) && oid.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(());
    }
    Err(EngineError::invalid(
        "blob",
        format!("'{}' is not an object id", oid.escape_default()),
        "pass a blob id from sandbox/diff",
    ))
}

impl Engine {
    pub async fn blob(&self, name: &str, oid: &str) -> Result<Blob> {
        check_oid(oid)?;
        let inst = running(self, name).await?;
        let git = Git { incus: &self.incus, instance: &inst.name, name };
        let out = git.run(&git::spec(&["cat-file", "-s", oid])).await?;
        let size: Option<u64> = out.ok().then(|| out.stdout_str().trim().parse().ok()).flatten();
        let Some(size) = size else {
            return Ok(Blob { kind: BlobKind::Missing, size: 0, text: None });
        };
        if size > MAX_TEXT {
            return Ok(Blob { kind: BlobKind::TooLarge, size, text: None });
        }
        let spec = git::spec(&["cat-file", "blob", oid]).max_output(MAX_TEXT as usize);
        let out = git.run(&spec).await?;
        if !out.ok() {
            return Ok(Blob { kind: BlobKind::Missing, size: 0, text: None });
        }
        Ok(classify(out.stdout))
    }
}

fn classify(bytes: Vec<u8>) -> Blob {
    let size = bytes.len() as u64;
    if bytes[..bytes.len().min(SNIFF)].contains(&0) {
        return Blob { kind: BlobKind::Binary, size, text: None };
    }
    let text = String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
    Blob { kind: BlobKind::Text, size, text: Some(text) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_binary_and_ids() {
        assert_eq!(classify(b"hello\n".to_vec()).text.as_deref(), Some("hello\n"));
        assert_eq!(classify(b"PNG\0\x01".to_vec()).kind, BlobKind::Binary);
        assert_eq!(classify(vec![0xff, b'a']).text.as_deref(), Some("\u{fffd}a"));
        assert!(check_oid(&"a".repeat(40)).is_ok());
        for bad in ["", "HEAD", "--output=x", &"g".repeat(40), &"a".repeat(41)] {
            assert!(check_oid(bad).is_err(), "{bad}");
        }
    }
}
