//! Deploy keys on GitHub (or GitHub Enterprise) through octocrab: the token, the API base URL,
//! add / list / delete, and errors that say what to do.
use octocrab::Octocrab;

use super::repo::RepoRef;
use crate::engine::host::Host;
use crate::error::{EngineError, Result};

/// Overrides the API base URL for every host (GitHub Enterprise proxies, tests).
pub const API_ENV: &str = "SANDBOX_GITHUB_API";

/// A token from the caller, else GH_TOKEN / GITHUB_TOKEN, else `gh auth token`. `purpose` says
/// what it is for ("to register the deploy key of 'x' on o/r").
pub async fn token(host: &Host, given: Option<&str>, purpose: &str) -> Result<String> {
    if let Some(t) = given.map(str::trim).filter(|t| !t.is_empty()) {
        return Ok(t.to_string());
    }
    for var in ["GH_TOKEN", "GITHUB_TOKEN"] {
        if let Some(t) = std::env::var(var).ok().map(|t| t.trim().to_string()).filter(|t| !t.is_empty()) {
            return Ok(t);
        }
    }
    if host.which("gh").is_some() {
        let out = host.run(&["gh".to_string(), "auth".into(), "token".into()], None, |_| {}).await?;
        let t = out.stdout.trim();
        if out.status == 0 && !t.is_empty() {
            return Ok(t.to_string());
        }
    }
    Err(EngineError::failed(
        format!("no GitHub token {purpose}"),
        "pass one (the VS Code extension passes your GitHub session), set GH_TOKEN or GITHUB_TOKEN, \
         or log in with `gh auth login` (the gh CLI)",
    ))
}

/// The messages of a GitHub error's `errors` list, joined.
fn detail(source: &octocrab::GitHubError) -> String {
    source
        .errors
        .iter()
        .flatten()
        .filter_map(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
        .collect::<Vec<_>>()
        .join("; ")
}

/// What a deploy key looks like on GitHub (the fields we use).
#[derive(Debug, Clone)]
pub struct RemoteKey {
    pub id: u64,
    pub title: String,
    pub key: String,
}

#[derive(Clone)]
pub struct GitHub {
    crab: Octocrab,
    repo: RepoRef,
}

impl GitHub {
    pub fn new(repo: &RepoRef, token: &str) -> Result<GitHub> {
        let base = std::env::var(API_ENV).ok().filter(|s| !s.is_empty()).unwrap_or_else(|| repo.default_api());
        let crab = Octocrab::builder()
            .base_uri(base.as_str())
            .and_then(|b| b.personal_token(token.to_string()).build())
            .map_err(|e| {
                EngineError::failed(format!("cannot reach the GitHub API at {base}: {e}"), format!("check {API_ENV}"))
            })?;
        Ok(GitHub { crab, repo: repo.clone() })
    }

    fn error(&self, doing: &str, e: octocrab::Error) -> EngineError {
        self.error_with(doing, e, |_| None)
    }

    /// `hint_for(status)` may say what to do for this call; else the deploy keys' hints.
    fn error_with(&self, doing: &str, e: octocrab::Error, hint_for: impl Fn(u16) -> Option<String>) -> EngineError {
        let slug = self.repo.slug();
        match e {
            octocrab::Error::GitHub { source, .. } => {
                let status = source.status_code.as_u16();
                let detail = detail(&source);
                let said =
                    if detail.is_empty() { source.message.clone() } else { format!("{}: {detail}", source.message) };
                let hint = match status {
                    s if hint_for(s).is_some() => hint_for(s).unwrap_or_default(),
                    401 => {
                        "the GitHub token was refused: check GH_TOKEN / GITHUB_TOKEN or `gh auth status`".to_string()
                    }
                    403 | 404 => format!(
                        "you need admin rights on {slug} to add a deploy key (and the token needs the repo scope); \
                         or use --ssh-key PATH"
                    ),
                    422 => "GitHub refused the key; see its message".to_string(),
                    _ => "GitHub had a problem; try again".to_string(),
                };
                EngineError::failed(format!("GitHub: {doing} on {slug} failed ({status}): {said}"), hint)
            }
            other => EngineError::failed(
                format!("GitHub: {doing} on {slug} failed: {other}"),
                "check the network and the API URL (SANDBOX_GITHUB_API for GitHub Enterprise)",
            ),
        }
    }

    /// Registers a deploy key; returns its id.
    pub async fn add(&self, title: &str, public_key: &str, read_only: bool) -> Result<u64> {
        let r = self
            .crab
            .repos(&self.repo.owner, &self.repo.name)
            .keys()
            .create(title.to_string(), public_key.to_string())
            .read_only(read_only)
            .send()
            .await;
        match r {
            Ok(k) => Ok(k.id.into_inner()),
            Err(e) => {
                // A server error or a lost answer may leave a key GitHub never confirmed: remove
                // it by title and key, so a failed create leaves nothing behind.
                let unsure =
                    !matches!(&e, octocrab::Error::GitHub { source, .. } if source.status_code.is_client_error());
                if unsure && let Err(e2) = self.delete_matching(title, Some(public_key)).await {
                    tracing::warn!("could not check for a half-made deploy key: {e2}");
                }
                Err(self.error("adding the deploy key", e))
            }
        }
    }

    pub async fn list(&self) -> Result<Vec<RemoteKey>> {
        let mut out = Vec::new();
        let mut page = 1u32;
        loop {
            let p = self
                .crab
                .repos(&self.repo.owner, &self.repo.name)
                .keys()
                .list()
                .per_page(100)
                .page(page)
                .send()
                .await
                .map_err(|e| self.error("listing deploy keys", e))?;
            let n = p.items.len();
            out.extend(p.items.into_iter().map(|k| RemoteKey { id: k.id.into_inner(), title: k.title, key: k.key }));
            if n < 100 || p.next.is_none() {
                return Ok(out);
            }
            page += 1;
        }
    }

    /// Deletes a key by id; a key that is already gone is fine.
    pub async fn delete(&self, id: u64) -> Result<()> {
        match self.crab.repos(&self.repo.owner, &self.repo.name).keys().delete(id).await {
            Ok(()) => Ok(()),
            Err(octocrab::Error::GitHub { source, .. }) if source.status_code.as_u16() == 404 => {
                // Gone already, or the repository is: nothing left to remove. (A token without
                // access also sees 404; listing below would then fail loudly.)
                Ok(())
            }
            Err(e) => Err(self.error("deleting the deploy key", e)),
        }
    }

    /// Deletes keys titled `title` or equal to `public_key` (seed sandboxes, and a create whose
    /// POST failed without telling us the id). Returns how many went.
    pub async fn delete_matching(&self, title: &str, public_key: Option<&str>) -> Result<usize> {
        let want = public_key.map(|k| k.split_whitespace().take(2).collect::<Vec<_>>().join(" "));
        let keys = self.list().await?;
        let mut n = 0;
        for k in keys {
            let same_key =
                want.as_deref().is_some_and(|w| k.key.split_whitespace().take(2).collect::<Vec<_>>().join(" ") == w);
            if k.title == title || same_key {
                self.delete(k.id).await?;
                n += 1;
            }
        }
        Ok(n)
    }
}

// ---- pull requests -----------------------------------------------------------------------------

impl GitHub {
    fn pull_hint(&self, status: u16) -> Option<String> {
        let slug = self.repo.slug();
        match status {
            403 | 404 => Some(format!(
                "the token may not open pull requests on {slug}: it needs the repo scope (classic) or \
                 Pull requests: write (fine-grained)"
            )),
            422 => Some("GitHub refused the pull request; see its message".into()),
            _ => None,
        }
    }

    /// Opens a pull request from `head` (a branch of this repository) into `base`. One that exists
    /// already is an error naming it.
    pub async fn create_pull(
        &self,
        title: &str,
        head: &str,
        base: &str,
        body: &str,
        draft: bool,
    ) -> Result<octocrab::models::pulls::PullRequest> {
        let pulls = self.crab.pulls(&self.repo.owner, &self.repo.name);
        let r = pulls.create(title, head, base).body(body).draft(draft).send().await;
        match r {
            Ok(p) => Ok(p),
            Err(octocrab::Error::GitHub { source, .. })
                if source.status_code.as_u16() == 422 && detail(&source).contains("already exists") =>
            {
                let existing = self.open_pull_from(head).await.ok().flatten();
                Err(self.exists(head, existing))
            }
            Err(e) => Err(self.error_with("opening the pull request", e, |s| self.pull_hint(s))),
        }
    }

    /// Before anything is pushed: an open pull request from `head` is refused (naming it), and a
    /// token that may not read pull requests fails here.
    pub async fn refuse_existing_pull(&self, head: &str) -> Result<()> {
        match self.open_pull_from(head).await? {
            Some(p) => Err(self.exists(head, Some(p))),
            None => Ok(()),
        }
    }

    fn exists(&self, head: &str, existing: Option<octocrab::models::pulls::PullRequest>) -> EngineError {
        EngineError::Conflict {
            what: format!("a pull request from {head} on {}", self.repo.slug()),
            hint: match existing {
                Some(p) => format!(
                    "it is #{} ({}); commits pushed to {head} (git push origin {head} in the sandbox) update it",
                    p.number,
                    p.html_url.map(|u| u.to_string()).unwrap_or(p.url)
                ),
                None => format!("see the repository's pull requests for {head}"),
            },
        }
    }

    async fn open_pull_from(&self, head: &str) -> Result<Option<octocrab::models::pulls::PullRequest>> {
        let page = self
            .crab
            .pulls(&self.repo.owner, &self.repo.name)
            .list()
            .head(format!("{}:{head}", self.repo.owner))
            .state(octocrab::params::State::Open)
            .send()
            .await
            .map_err(|e| self.error_with("listing pull requests", e, |s| self.pull_hint(s)))?;
        Ok(page.items.into_iter().next())
    }

    pub async fn get_pull(&self, number: u64) -> Result<octocrab::models::pulls::PullRequest> {
        self.crab
            .pulls(&self.repo.owner, &self.repo.name)
            .get(number)
            .await
            .map_err(|e| self.error_with("reading the pull request", e, |s| self.pull_hint(s)))
    }
}
