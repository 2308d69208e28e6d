//! Params and handlers of the snapshot, fork and prepared-image methods.
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use super::{Api, ApiError, CallCx, Done};
pub use crate::engine::create::ForkOptions;
pub use crate::engine::prepared::{PrepareOptions, PreparedInfo};
pub use crate::engine::snapshots::SnapshotInfo;
use crate::engine::{prepared, validate};

type R<T> = Result<T, ApiError>;

/// The TypeScript declarations of what these methods take and return.
pub(super) fn declarations() -> Vec<String> {
    use crate::engine::prepared::PreparedState;
    use crate::engine::snapshots::SnapshotKind;
    vec![
        SnapshotInfo::decl(),
        SnapshotKind::decl(),
        PreparedInfo::decl(),
        PreparedState::decl(),
        SnapshotParams::decl(),
        LabelParams::decl(),
        PinParams::decl(),
        KeepParams::decl(),
        ForkOptions::decl(),
        PrepareOptions::decl(),
        ImageParams::decl(),
    ]
}

#[derive(Debug, Deserialize, Serialize, TS)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[ts(optional_fields)]
pub struct SnapshotParams {
    pub name: String,
    /// Letters, digits, - _ . (default: snap-N).
    pub label: Option<String>,
}

#[derive(Debug, Deserialize, Serialize, TS)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelParams {
    pub name: String,
    pub label: String,
}

#[derive(Debug, Deserialize, Serialize, TS)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PinParams {
    pub name: String,
    pub label: String,
    pub pinned: bool,
}

#[derive(Debug, Deserialize, Serialize, TS)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeepParams {
    pub name: String,
    /// Per-turn checkpoints to keep (0: none are taken).
    pub keep: u32,
}

#[derive(Debug, Deserialize, Serialize, TS)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImageParams {
    /// A prepared image (`prepared-STACK-KEY`).
    pub name: String,
}

impl Api {
    pub async fn snapshot(&self, p: SnapshotParams, _cx: CallCx) -> R<SnapshotInfo> {
        validate::sandbox_name(&p.name)?;
        let _g = self.lock(&p.name).await;
        Ok(self.engine.snapshot(&p.name, p.label.as_deref()).await?)
    }

    pub async fn snapshots(&self, p: super::NameParams, _cx: CallCx) -> R<Vec<SnapshotInfo>> {
        Ok(self.engine.snapshots(&p.name).await?)
    }

    pub async fn snapshot_remove(&self, p: LabelParams, _cx: CallCx) -> R<Done> {
        validate::sandbox_name(&p.name)?;
        let _g = self.lock(&p.name).await;
        self.engine.snapshot_rm(&p.name, &p.label).await?;
        Ok(Done {})
    }

    pub async fn snapshot_pin(&self, p: PinParams, _cx: CallCx) -> R<SnapshotInfo> {
        validate::sandbox_name(&p.name)?;
        let _g = self.lock(&p.name).await;
        Ok(self.engine.snapshot_pin(&p.name, &p.label, p.pinned).await?)
    }

    pub async fn checkpoint_keep(&self, p: KeepParams, _cx: CallCx) -> R<Vec<SnapshotInfo>> {
        validate::sandbox_name(&p.name)?;
        let _g = self.lock(&p.name).await;
        Ok(self.engine.set_checkpoint_keep(&p.name, p.keep).await?)
    }

    pub async fn restore(&self, p: LabelParams, cx: CallCx) -> R<crate::engine::sandbox::Sandbox> {
        validate::sandbox_name(&p.name)?;
        let _g = self.lock(&p.name).await;
        Ok(self.engine.restore(&p.name, &p.label, cx.progress.as_ref(), &cx.cancel).await?)
    }

    pub async fn fork(&self, p: ForkOptions, cx: CallCx) -> R<crate::engine::create::StartResult> {
        validate::sandbox_name(&p.name)?;
        validate::sandbox_name(&p.from)?;
        // Both names, in one order (no two forks wait on each other): the source must not be
        // restored while it is copied.
        let (a, b) = if p.from < p.name { (&p.from, &p.name) } else { (&p.name, &p.from) };
        let _ga = self.lock(a).await;
        let _gb = if a != b { Some(self.lock(b).await) } else { None };
        Ok(self.engine.fork(&p, cx.progress.as_ref(), &cx.cancel).await?)
    }

    pub async fn prepare(&self, p: PrepareOptions, cx: CallCx) -> R<PreparedInfo> {
        let _g = self.lock("\0prepare").await;
        Ok(self.engine.prepare(&p, cx.progress.as_ref(), &cx.cancel).await?)
    }

    pub async fn prepared_images(&self, _p: super::Empty, _cx: CallCx) -> R<Vec<PreparedInfo>> {
        Ok(prepared::list(&self.engine.incus).await?)
    }

    pub async fn prepared_remove(&self, p: ImageParams, _cx: CallCx) -> R<Done> {
        self.engine.prepared_rm(&p.name).await?;
        Ok(Done {})
    }
}
