//! The review methods: what a sandbox changed, both sides of a file, its branch fetched into a
//! clone, a pull request.
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use super::{Api, ApiError, CallCx};
use crate::engine::creds::Token;
pub use crate::engine::review::Diff;
pub use crate::engine::review::blob::Blob;
pub use crate::engine::review::fetch::FetchResult;
use crate::engine::review::pr::PrOptions;
pub use crate::engine::review::pr::PullRequest;

type R<T> = Result<T, ApiError>;

#[derive(Debug, Deserialize, Serialize, TS)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[ts(optional_fields)]
pub struct DiffParams {
    pub name: String,
    /// A revision to compare with instead of where the sandbox's branch started.
    pub base: Option<String>,
}

#[derive(Debug, Deserialize, Serialize, TS)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BlobParams {
    pub name: String,
    /// A blob id from `sandbox/diff` (`oldBlob` / `newBlob`).
    pub oid: String,
}

#[derive(Debug, Deserialize, Serialize, TS)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FetchParams {
    pub name: String,
    /// A directory inside the local clone to fetch into (the workspace folder).
    pub directory: String,
}

#[derive(Debug, Default, Deserialize, Serialize, TS)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[ts(optional_fields)]
pub struct PrParams {
    pub name: String,
    pub title: Option<String>,
    pub body: Option<String>,
    pub draft: Option<bool>,
    /// Else GH_TOKEN, GITHUB_TOKEN, `gh auth token`.
    pub github_token: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize, TS)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[ts(optional_fields)]
pub struct PrStatusParams {
    pub name: String,
    pub github_token: Option<String>,
}

/// The review's types for the generated TypeScript (api/mod.rs declares the rest).
pub(super) fn declarations() -> Vec<String> {
    use crate::engine::review::blob::BlobKind;
    use crate::engine::review::record::{ChangeSummary, PrState};
    use crate::engine::review::{ChangeKind, FileChange};
    vec![
        // What clients see of a sandbox.
        crate::engine::sandbox::Push::decl(),
        ChangeSummary::decl(),
        PullRequest::decl(),
        PrState::decl(),
        // Results.
        Diff::decl(),
        FileChange::decl(),
        ChangeKind::decl(),
        Blob::decl(),
        BlobKind::decl(),
        FetchResult::decl(),
        // Params.
        DiffParams::decl(),
        BlobParams::decl(),
        FetchParams::decl(),
        PrParams::decl(),
        PrStatusParams::decl(),
    ]
}

impl Api {
    pub async fn diff(&self, p: DiffParams, _cx: CallCx) -> R<Diff> {
        Ok(self.engine.diff(&p.name, p.base.as_deref()).await?)
    }

    pub async fn blob(&self, p: BlobParams, _cx: CallCx) -> R<Blob> {
        Ok(self.engine.blob(&p.name, &p.oid).await?)
    }

    pub async fn fetch(&self, p: FetchParams, cx: CallCx) -> R<FetchResult> {
        Ok(self.engine.fetch(&p.name, std::path::Path::new(&p.directory), cx.progress.as_ref()).await?)
    }

    pub async fn pull_request(&self, p: PrParams, cx: CallCx) -> R<PullRequest> {
        let o =
            PrOptions { title: p.title, body: p.body, draft: p.draft.unwrap_or(false), token: Token(p.github_token) };
        Ok(self.engine.pull_request(&p.name, &o, cx.progress.as_ref()).await?)
    }

    pub async fn pull_request_status(&self, p: PrStatusParams, _cx: CallCx) -> R<Option<PullRequest>> {
        Ok(self.engine.refresh_pull_request(&p.name, &Token(p.github_token)).await?)
    }
}
