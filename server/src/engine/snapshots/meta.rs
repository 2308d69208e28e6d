//! What we know of a sandbox's snapshots beyond Incus's own record: one config key per snapshot
//! (`user.sandbox.snapshot.LABEL`, JSON) on the instance — its kind, a checkpoint's turn and
//! message, whether it is pinned. Kept on the instance (not on the snapshot, whose config is frozen
//! when it is taken), so the tree gets them with every `sandbox/changed` and a restore keeps them.
use serde::{Deserialize, Serialize};

use crate::engine::{keys, validate};
use crate::incus::Config;

/// Longest message kept for a checkpoint (the first line of the agent's last answer).
pub const MAX_MESSAGE: usize = 120;

/// How a snapshot came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub enum SnapshotKind {
    /// `sandbox snapshot` (or made outside with `incus snapshot`): never removed by us.
    Manual,
    /// Taken at the end of an agent turn; the oldest go beyond the sandbox's limit unless pinned.
    Checkpoint,
}

/// A snapshot of a whole sandbox, as clients see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotInfo {
    /// What commands take (`sandbox restore NAME LABEL`): the Incus snapshot's name.
    pub label: String,
    pub kind: SnapshotKind,
    /// For people: the label, or `turn 3: <first line of the agent's answer>`.
    pub title: String,
    /// A checkpoint's turn number.
    pub turn: Option<u32>,
    /// A checkpoint's message (first line of the last assistant message).
    pub message: Option<String>,
    /// Kept whatever the checkpoint limit.
    pub pinned: bool,
    /// RFC 3339.
    pub created_at: String,
}

/// The stored record (the label is in the key).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Meta {
    pub kind: SnapshotKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pinned: bool,
    pub at: String,
    /// Being removed (the checkpoint limit chose it): listed nowhere, pinned by no one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub going: bool,
}

impl Meta {
    pub fn manual() -> Self {
        Meta { kind: SnapshotKind::Manual, turn: None, message: None, pinned: false, at: now_rfc3339(), going: false }
    }

    pub fn checkpoint(turn: u32, message: &str) -> Self {
        let message = Some(first_line(message)).filter(|m| !m.is_empty());
        let at = now_rfc3339();
        Meta { kind: SnapshotKind::Checkpoint, turn: Some(turn), message, pinned: false, at, going: false }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    fn info(&self, label: &str, created_at: Option<&str>) -> SnapshotInfo {
        let title = match (self.turn, &self.message) {
            (Some(t), Some(m)) => format!("turn {t}: {m}"),
            (Some(t), None) => format!("turn {t}"),
            _ => label.to_string(),
        };
        SnapshotInfo {
            label: label.to_string(),
            kind: self.kind,
            title,
            turn: self.turn,
            message: self.message.clone(),
            pinned: self.pinned,
            created_at: created_at.map(str::to_owned).unwrap_or_else(|| self.at.clone()),
        }
    }
}

pub fn key(label: &str) -> String {
    format!("{}{label}", keys::SNAPSHOT_PREFIX)
}

/// Now, RFC 3339 (how every time in Incus keys is written).
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// The first non-empty line of text that came from inside a sandbox, made safe to show: no
/// control characters, at most MAX_MESSAGE characters.
pub fn first_line(text: &str) -> String {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
    let clean: String = line.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let clean = clean.trim();
    if clean.chars().count() <= MAX_MESSAGE {
        return clean.to_string();
    }
    let cut: String = clean.chars().take(MAX_MESSAGE - 1).collect();
    format!("{}…", cut.trim_end())
}

/// The stored record of LABEL, if any (a record that does not decode counts as none).
pub(super) fn stored(config: &Config, label: &str) -> Option<Meta> {
    config.get(&key(label)).and_then(|v| serde_json::from_str(v).ok())
}

/// What a snapshot without a record of ours is: `turn-N` a checkpoint, anything else manual.
pub(super) fn guessed(label: &str, created_at: &str) -> Meta {
    let turn = validate::turn_of(label);
    let kind = if turn.is_some() { SnapshotKind::Checkpoint } else { SnapshotKind::Manual };
    Meta { kind, turn, message: None, pinned: false, at: created_at.into(), going: false }
}

/// The record of a real snapshot: ours, or what its label says.
pub(super) fn of(config: &Config, label: &str, created_at: &str) -> Meta {
    stored(config, label).unwrap_or_else(|| guessed(label, created_at))
}

/// Snapshots whose removal was decided (and maybe interrupted): to be removed.
pub(super) fn going(config: &Config) -> Vec<String> {
    config
        .iter()
        .filter_map(|(k, v)| {
            let label = k.strip_prefix(keys::SNAPSHOT_PREFIX)?;
            serde_json::from_str::<Meta>(v).ok().filter(|m| m.going).map(|_| label.to_string())
        })
        .collect()
}

/// The snapshots an instance's config records (what the tree shows), oldest first.
pub fn from_config(config: &Config) -> Vec<SnapshotInfo> {
    let mut out: Vec<SnapshotInfo> = config
        .iter()
        .filter_map(|(k, v)| {
            let label = k.strip_prefix(keys::SNAPSHOT_PREFIX)?;
            let meta: Meta = serde_json::from_str(v).ok().filter(|m: &Meta| !m.going)?;
            Some(meta.info(label, None))
        })
        .collect();
    sort(&mut out);
    out
}

/// Incus's snapshots (label, created_at) with our records: every real snapshot (but those being
/// removed), oldest first.
pub fn merged(config: &Config, real: &[(String, String)]) -> Vec<SnapshotInfo> {
    let mut out: Vec<SnapshotInfo> = real
        .iter()
        .map(|(label, at)| (label, at, of(config, label, at)))
        .filter(|(_, _, m)| !m.going)
        .map(|(label, at, m)| m.info(label, Some(at)))
        .collect();
    sort(&mut out);
    out
}

fn sort(v: &mut [SnapshotInfo]) {
    v.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.turn.cmp(&b.turn)).then(a.label.cmp(&b.label)));
}

/// Checkpoints to remove so that at most `keep` unpinned ones stay (the newest by turn).
pub fn beyond_limit(all: &[SnapshotInfo], keep: usize) -> Vec<String> {
    let mut cps: Vec<&SnapshotInfo> = all.iter().filter(|s| s.kind == SnapshotKind::Checkpoint && !s.pinned).collect();
    cps.sort_by_key(|s| std::cmp::Reverse(s.turn.unwrap_or(0)));
    cps.into_iter().skip(keep).map(|s| s.label.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_lines_are_bounded_and_printable() {
        assert_eq!(first_line("\n\n  Added the tests.\nMore"), "Added the tests.");
        assert_eq!(first_line("a\u{1b}[31mred\u{7}"), "a [31mred");
        let long = first_line(&"é".repeat(500));
        assert_eq!(long.chars().count(), MAX_MESSAGE);
        assert!(long.ends_with('…'));
        assert_eq!(first_line(""), "");
    }

    #[test]
    fn records_titles_and_guesses() {
        let mut c = Config::new();
        c.insert(key("turn-2"), Meta::checkpoint(2, "Wrote x\nand y").to_json());
        c.insert(key("keep"), Meta::manual().to_json());
        c.insert(key("broken"), "{not json".into());
        c.insert("user.sandbox.slot".into(), "3".into());
        let recorded = from_config(&c);
        assert_eq!(recorded.len(), 2);
        let t = recorded.iter().find(|s| s.label == "turn-2").unwrap();
        assert_eq!((t.title.as_str(), t.kind, t.turn), ("turn 2: Wrote x", SnapshotKind::Checkpoint, Some(2)));
        let real = [
            ("turn-2".to_string(), "2026-01-01T00:00:02Z".to_string()),
            ("turn-9".into(), "2026-01-01T00:00:09Z".into()),
            ("mine".into(), "2026-01-01T00:00:01Z".into()),
        ];
        let all = merged(&c, &real);
        assert_eq!(all.iter().map(|s| s.label.as_str()).collect::<Vec<_>>(), ["mine", "turn-2", "turn-9"]);
        assert_eq!(all[2].kind, SnapshotKind::Checkpoint, "turn-N without a record is a checkpoint");
        assert_eq!(all[0].kind, SnapshotKind::Manual);
    }

    #[test]
    fn a_snapshot_being_removed_is_listed_nowhere_and_found_again_for_removal() {
        let mut c = Config::new();
        c.insert(key("turn-1"), Meta { going: true, ..Meta::checkpoint(1, "old") }.to_json());
        c.insert(key("turn-2"), Meta::checkpoint(2, "new").to_json());
        let real = [("turn-1".to_string(), "t1".to_string()), ("turn-2".into(), "t2".into())];
        assert_eq!(merged(&c, &real).iter().map(|s| s.label.as_str()).collect::<Vec<_>>(), ["turn-2"]);
        assert_eq!(from_config(&c).len(), 1);
        assert_eq!(going(&c), ["turn-1"]);
        assert!(!Meta::checkpoint(3, "x").to_json().contains("going"), "the flag is written only when set");
    }

    #[test]
    fn the_limit_keeps_the_newest_unpinned_checkpoints_and_every_manual_one() {
        let mk = |label: &str, kind, turn: Option<u32>, pinned| SnapshotInfo {
            label: label.into(),
            kind,
            title: String::new(),
            turn,
            message: None,
            pinned,
            created_at: String::new(),
        };
        let all = vec![
            mk("m", SnapshotKind::Manual, None, false),
            mk("turn-1", SnapshotKind::Checkpoint, Some(1), true),
            mk("turn-2", SnapshotKind::Checkpoint, Some(2), false),
            mk("turn-3", SnapshotKind::Checkpoint, Some(3), false),
            mk("turn-10", SnapshotKind::Checkpoint, Some(10), false),
        ];
        assert_eq!(beyond_limit(&all, 2), ["turn-2"]);
        assert_eq!(beyond_limit(&all, 0), ["turn-10", "turn-3", "turn-2"]);
        assert!(beyond_limit(&all, 20).is_empty());
    }
}
