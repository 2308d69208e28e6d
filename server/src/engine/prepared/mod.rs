//! Prepared images: a golden image plus one repository cloned and its dependencies installed
//! (`.sandbox/setup.sh`, or what its lockfiles call for), kept as `prepared-STACK-KEY` with a
//! `ready` snapshot like a golden image. `sandbox prepare` makes one (build.rs); `sandbox start`
//! of that repository copies it instead of the golden image when its key still matches the
//! branch's lockfiles (choose.rs, probe.rs), so the agent starts with its dependencies there.
mod build;
mod choose;
pub mod key;
mod probe;
mod sweep;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use build::PrepareOptions;
pub use choose::Ask;

use super::creds::RepoRef;
use super::golden::{self, READY};
use super::{Engine, keys};
use crate::error::{EngineError, Result};
use crate::incus::{Config, Instance};

pub const PREFIX: &str = "prepared-";
/// The temporary instance a `prepare` works in.
pub const TMP_PREFIX: &str = "tmp-prep-";

/// `prepared-STACK-` + the key's first 12 hex digits (≤ 63 characters: stacks have ≤ 40).
pub fn instance_name(stack: &str, key: &str) -> String {
    format!("{PREFIX}{stack}-{}", &key[..12.min(key.len())])
}

/// How a prepared image finds its repository, whatever URL form was used: `host[:port]/owner/name`.
pub fn repo_id(r: &RepoRef) -> String {
    let port = r.port.map(|p| format!(":{p}")).unwrap_or_default();
    format!("{}{port}/{}/{}", r.host, r.owner, r.name).to_ascii_lowercase()
}

/// Whether a prepared image can still be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub enum PreparedState {
    /// Made from the stack's current golden image.
    Current,
    /// Its stack's golden image was rebuilt since (`sandbox prepare` again); never used.
    Stale,
}

/// A prepared image, as clients see it (listed under Golden Images).
#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub struct PreparedInfo {
    /// The instance (`prepared-STACK-KEY`): what `sandbox prepared rm` takes.
    pub name: String,
    pub stack: String,
    /// The repository URL it was prepared from.
    pub repo: String,
    /// The branch it was prepared on (absent: the default branch).
    pub branch: Option<String>,
    pub commit: String,
    /// What ran (`bash .sandbox/setup.sh`, `npm ci`, …).
    pub setup: String,
    /// The lockfiles and setup script its key covers.
    pub files: Vec<String>,
    /// RFC 3339.
    pub prepared_at: String,
    pub state: PreparedState,
    #[serde(skip)]
    #[ts(skip)]
    pub(crate) key: String,
    #[serde(skip)]
    #[ts(skip)]
    pub(crate) repo_id: String,
}

/// A prepared image's record, from its instance (None: not one, or a half-made one).
fn from_instance(inst: &Instance, golden_builds: &BTreeMap<String, String>) -> Option<PreparedInfo> {
    if !inst.name.starts_with(PREFIX) {
        return None;
    }
    let get = |k: &str| inst.setting(k).map(str::to_owned);
    let stack = get(keys::PREPARED_STACK)?;
    let golden_build = get(keys::PREPARED_GOLDEN).unwrap_or_default();
    let current = golden_builds.get(&stack).is_some_and(|b| *b == golden_build);
    Some(PreparedInfo {
        name: inst.name.clone(),
        repo: get(keys::PREPARED_URL)?,
        branch: get(keys::PREPARED_BRANCH),
        commit: get(keys::PREPARED_COMMIT).unwrap_or_default(),
        setup: get(keys::PREPARED_SETUP).unwrap_or_default(),
        files: get(keys::PREPARED_FILES).map(|f| f.split(',').map(str::to_owned).collect()).unwrap_or_default(),
        prepared_at: get(keys::PREPARED_AT).unwrap_or_default(),
        state: if current { PreparedState::Current } else { PreparedState::Stale },
        key: get(keys::PREPARED_KEY)?,
        repo_id: get(keys::PREPARED_REPO)?,
        stack,
    })
}

/// Every prepared image, newest first.
pub async fn list(incus: &crate::incus::Incus) -> Result<Vec<PreparedInfo>> {
    let all = incus.instances().await?;
    let mut builds = BTreeMap::new();
    for inst in all.iter().filter(|i| i.name.starts_with(PREFIX)) {
        if let Some(stack) = inst.setting(keys::PREPARED_STACK)
            && !builds.contains_key(stack)
        {
            let cfg = golden::ready_config(incus, &golden::golden_name(stack)).await?;
            builds.insert(stack.to_string(), build_of(cfg.as_ref()));
        }
    }
    let mut out: Vec<PreparedInfo> = all.iter().filter_map(|i| from_instance(i, &builds)).collect();
    out.sort_by(|a, b| b.prepared_at.cmp(&a.prepared_at).then(a.name.cmp(&b.name)));
    Ok(out)
}

/// A golden snapshot's build stamp ("" when unknown).
pub(crate) fn build_of(golden_config: Option<&Config>) -> String {
    golden_config.and_then(|c| c.get(keys::GOLDEN_BUILT_AT)).cloned().unwrap_or_default()
}

impl Engine {
    /// `sandbox prepared rm IMAGE`: a prepared image goes (sandboxes made from it are copies and
    /// stay as they are).
    pub async fn prepared_rm(&self, name: &str) -> Result<()> {
        let ok = name.starts_with(PREFIX)
            && name.len() <= 63
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok {
            return Err(EngineError::invalid(
                "prepared image",
                format!("'{}' is not a prepared image's name", name.escape_default()),
                "`sandbox prepared` lists them (prepared-STACK-KEY)",
            ));
        }
        match self.incus.instance(name).await {
            Ok(inst) if inst.setting(keys::PREPARED_KEY).is_some() => Ok(self.incus.delete_force(name).await?),
            Ok(_) => Err(EngineError::invalid("prepared image", format!("'{name}' is not a prepared image"), "")),
            Err(e) if e.is_not_found() => Err(EngineError::not_found(
                format!("prepared image '{name}'"),
                "`sandbox prepared` lists the prepared images",
            )),
            Err(e) => Err(e.into()),
        }
    }
}

/// The snapshot sandboxes are copied from.
pub fn source(name: &str) -> String {
    format!("{name}/{READY}")
}
