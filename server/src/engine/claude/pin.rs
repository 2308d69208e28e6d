//! The Claude Code release every golden image carries, pinned in the repository
//! (`stacks/claude-code.json`): its version, and per platform package the registry's
//! `dist.integrity` (sha512) that the download must match.
use std::collections::BTreeMap;
use std::sync::OnceLock;

use base64::Engine as _;
use serde::Deserialize;

use crate::error::{EngineError, Result};

const PIN: &str = include_str!("../../../../stacks/claude-code.json");

#[derive(Debug, Deserialize)]
pub struct Pin {
    /// The npm package whose platform packages hold the native binary.
    pub package: String,
    pub version: String,
    /// Platform key (`linux-x64`, …) → `sha512-BASE64`.
    pub integrity: BTreeMap<String, String>,
}

pub fn pin() -> &'static Pin {
    static P: OnceLock<Pin> = OnceLock::new();
    P.get_or_init(|| serde_json::from_str(PIN).expect("stacks/claude-code.json is valid (a unit test checks it)"))
}

/// The native builds that run in a Linux sandbox (the platform packages' suffixes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    LinuxX64,
    LinuxArm64,
    LinuxX64Musl,
    LinuxArm64Musl,
}

impl Platform {
    pub fn key(self) -> &'static str {
        match self {
            Self::LinuxX64 => "linux-x64",
            Self::LinuxArm64 => "linux-arm64",
            Self::LinuxX64Musl => "linux-x64-musl",
            Self::LinuxArm64Musl => "linux-arm64-musl",
        }
    }

    /// From `uname -m` in the image and whether its C library is musl.
    pub fn from_machine(machine: &str, musl: bool) -> Result<Self> {
        match (machine.trim(), musl) {
            ("x86_64" | "amd64", false) => Ok(Self::LinuxX64),
            ("x86_64" | "amd64", true) => Ok(Self::LinuxX64Musl),
            ("aarch64" | "arm64", false) => Ok(Self::LinuxArm64),
            ("aarch64" | "arm64", true) => Ok(Self::LinuxArm64Musl),
            (other, _) => Err(EngineError::failed(
                format!("Claude Code has no build for the image's architecture '{}'", other.escape_default()),
                "use an x86_64 or arm64 base image",
            )),
        }
    }

    /// `@anthropic-ai/claude-code-linux-x64`.
    pub fn package(self) -> String {
        format!("{}-{}", pin().package, self.key())
    }

    /// The pinned sha512 of this platform's package tarball.
    pub fn integrity(self) -> Result<Integrity> {
        let p = pin();
        let text = p.integrity.get(self.key()).ok_or_else(|| {
            EngineError::failed(
                format!("stacks/claude-code.json pins no integrity for {}", self.key()),
                "add it (npm view PACKAGE@VERSION dist.integrity) and rebuild the binary",
            )
        })?;
        Integrity::parse(text)
    }
}

/// A Subresource-Integrity string as npm writes it; only sha512 is accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Integrity(pub [u8; 64]);

impl Integrity {
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || EngineError::failed(format!("'{s}' is not a sha512 integrity"), "expected sha512-BASE64");
        let b64 = s.trim().strip_prefix("sha512-").ok_or_else(bad)?;
        let bytes = base64::engine::general_purpose::STANDARD.decode(b64).map_err(|_| bad())?;
        Ok(Self(bytes.try_into().map_err(|_| bad())?))
    }

    pub fn to_sri(&self) -> String {
        format!("sha512-{}", base64::engine::general_purpose::STANDARD.encode(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pin_names_a_version_and_a_sha512_for_every_linux_platform() {
        let p = pin();
        assert!(p.version.split('.').count() == 3 && p.version.chars().all(|c| c.is_ascii_digit() || c == '.'));
        for pl in [Platform::LinuxX64, Platform::LinuxArm64, Platform::LinuxX64Musl, Platform::LinuxArm64Musl] {
            let i = pl.integrity().unwrap();
            assert_eq!(Integrity::parse(&i.to_sri()).unwrap(), i);
            assert!(pl.package().starts_with("@anthropic-ai/claude-code-linux-"));
        }
    }

    #[test]
    fn platforms_from_the_image() {
        assert_eq!(Platform::from_machine("x86_64\n", false).unwrap(), Platform::LinuxX64);
        assert_eq!(Platform::from_machine("aarch64", true).unwrap(), Platform::LinuxArm64Musl);
        assert!(Platform::from_machine("riscv64", false).is_err());
        assert!(Integrity::parse("sha1-abc").is_err());
        assert!(Integrity::parse("sha512-AAAA").is_err());
    }
}
