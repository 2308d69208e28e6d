//! Resolving `--base-image`: a local alias or fingerprint, a remote `images:` alias, or
//! `debootstrap:SUITE` (built here on the host, for machines without an image server).
use super::host::Host;
use crate::error::{EngineError, Result};
use crate::incus::{Incus, InstanceSource};
use crate::progress::Progress;

pub const DEFAULT_BASE_IMAGE: &str = "images:ubuntu/24.04";
const BUILD_SCRIPT: &str = include_str!("../../../scripts/build-base-image.sh");

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseImage {
    Local(String),
    Remote { server: String, alias: String },
    Debootstrap(String),
}

impl BaseImage {
    pub fn parse(spec: &str) -> Result<Self> {
        let bad = || {
            EngineError::invalid(
                "base image",
                format!("'{spec}' is not an image reference"),
                "use a local alias (see `incus image list`), `images:DISTRO/RELEASE`, or `debootstrap:bookworm`",
            )
        };
        if spec.is_empty() || spec.len() > 200 || spec.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad());
        }
        if let Some(suite) = spec.strip_prefix("debootstrap:") {
            if suite.is_empty() || !suite.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
                return Err(bad());
            }
            return Ok(Self::Debootstrap(suite.to_string()));
        }
        if let Some(alias) = spec.strip_prefix("images:") {
            if alias.is_empty() {
                return Err(bad());
            }
            let server =
                std::env::var("SANDBOX_IMAGES_SERVER").unwrap_or_else(|_| "https://images.linuxcontainers.org".into());
            return Ok(Self::Remote { server, alias: alias.to_string() });
        }
        Ok(Self::Local(spec.to_string()))
    }

    /// Makes sure the image is usable and returns the instance source for it.
    pub async fn ensure(&self, incus: &Incus, host: &Host, progress: &dyn Progress) -> Result<InstanceSource> {
        match self {
            Self::Local(alias) => {
                if incus.image_alias(alias).await.is_ok() || incus.image(alias).await.is_ok() {
                    Ok(InstanceSource::image_alias(alias.clone()))
                } else {
                    Err(not_found(alias))
                }
            }
            Self::Remote { server, alias } => {
                // A copy cached locally under the same alias wins (no download).
                if incus.image_alias(alias).await.is_ok() {
                    return Ok(InstanceSource::image_alias(alias.clone()));
                }
                Ok(InstanceSource::remote_image(server.clone(), "simplestreams", alias.clone()))
            }
            Self::Debootstrap(suite) => {
                let alias = format!("sandbox-base/debootstrap-{suite}");
                progress.step(&format!("Building base image {alias} with debootstrap (cached after the first time)"));
                let dir = tempdir()?;
                let script = dir.join("build-base-image.sh");
                std::fs::write(&script, BUILD_SCRIPT)
                    .map_err(|e| EngineError::failed(format!("cannot write {}: {e}", script.display()), ""))?;
                let argv = vec!["bash".to_string(), script.display().to_string(), suite.clone(), alias.clone()];
                let out = host.run(&argv, None, |l| progress.line(l)).await;
                let _ = std::fs::remove_dir_all(&dir);
                let out = out?;
                if out.status != 0 {
                    return Err(EngineError::failed(
                        format!("building the debootstrap base image failed:\n{}", out.tail.join("\n")),
                        "debootstrap needs root and access to a Debian mirror (set SANDBOX_DEBIAN_MIRROR to use another)",
                    ));
                }
                Ok(InstanceSource::image_alias(alias))
            }
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Self::Local(a) => a.clone(),
            Self::Remote { alias, .. } => format!("images:{alias}"),
            Self::Debootstrap(s) => format!("debootstrap:{s}"),
        }
    }
}

pub fn not_found(image: &str) -> EngineError {
    EngineError::not_found(
        format!("base image '{image}'"),
        "use a local image alias (`incus image list` shows them) with `--base-image ALIAS`, \
         or build one locally with `sandbox setup --base-image debootstrap:bookworm`",
    )
}

/// The error for a base image that could not be downloaded.
pub fn unreachable(image: &str, cause: &str) -> EngineError {
    EngineError::failed(
        format!("cannot fetch base image '{image}': {cause}"),
        "no image server is reachable from here? use a local image alias with `--base-image ALIAS` \
         (`incus image list`), or build one locally with `sandbox setup --base-image debootstrap:bookworm`",
    )
}

fn tempdir() -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("sandbox-{}-{}", std::process::id(), rand::random::<u32>()));
    std::fs::create_dir_all(&dir)
        .map_err(|e| EngineError::failed(format!("cannot create {}: {e}", dir.display()), ""))?;
    Ok(dir)
}
