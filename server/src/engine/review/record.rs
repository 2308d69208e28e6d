//! What clients see of the review, recorded in Incus so `sandbox/changed` carries it like the rest
//! of a sandbox's state: the diff's summary (`user.sandbox.changes`, shown as
//! `+A −D · N files · K commits`) and the pull request (`user.sandbox.pull-request`).
use serde::{Deserialize, Serialize};

use crate::engine::keys;
use crate::error::Result;
use crate::incus::{Config, Devices, Incus, Instance};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub struct ChangeSummary {
    #[ts(type = "number")]
    pub added: u64,
    #[ts(type = "number")]
    pub deleted: u64,
    pub files: u32,
    pub commits: u32,
    /// Uncommitted or untracked changes in the working tree.
    pub uncommitted: bool,
    /// When it was computed (RFC 3339).
    pub at: String,
}

impl ChangeSummary {
    /// From the key's value; anything that does not parse is no summary (the key is ours, but
    /// the config could have been edited by hand).
    pub fn from_config(v: Option<&str>) -> Option<ChangeSummary> {
        serde_json::from_str(v?).ok()
    }

    fn same_counts(&self, o: &ChangeSummary) -> bool {
        (self.added, self.deleted, self.files, self.commits, self.uncommitted)
            == (o.added, o.deleted, o.files, o.commits, o.uncommitted)
    }

    /// `+12 −3 · 4 files · 2 commits`
    pub fn line(&self) -> String {
        let plural = |n: u64, one: &str| format!("{n} {one}{}", if n == 1 { "" } else { "s" });
        format!(
            "+{} −{} · {} · {}",
            self.added,
            self.deleted,
            plural(self.files.into(), "file"),
            plural(self.commits.into(), "commit")
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub enum PrState {
    Open,
    Closed,
    Merged,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub struct PullRequest {
    #[ts(type = "number")]
    pub number: u64,
    pub url: String,
    pub state: PrState,
    pub draft: bool,
    pub title: String,
    /// head → base
    pub branch: String,
    pub base: String,
}

impl PullRequest {
    pub fn from_config(v: Option<&str>) -> Option<PullRequest> {
        serde_json::from_str(v?).ok()
    }
}

/// Writes the summary when its counts changed (an unchanged diff sends no event).
pub async fn record(incus: &Incus, instance: &str, inst: &Instance, mut s: ChangeSummary) -> Result<()> {
    if ChangeSummary::from_config(inst.setting(keys::CHANGES)).is_some_and(|old| old.same_counts(&s)) {
        return Ok(());
    }
    s.at = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    let mut c = Config::new();
    c.insert(keys::CHANGES.into(), serde_json::to_string(&s).expect("serialisable"));
    incus.patch_instance(instance, c, Devices::new()).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_the_tree_shows() {
        let s = ChangeSummary { added: 12, deleted: 3, files: 1, commits: 2, uncommitted: false, at: String::new() };
        assert_eq!(s.line(), "+12 −3 · 1 file · 2 commits");
        assert_eq!(ChangeSummary::from_config(Some("not json")), None);
        let back = ChangeSummary::from_config(Some(&serde_json::to_string(&s).unwrap())).unwrap();
        assert_eq!(back, s);
    }
}
