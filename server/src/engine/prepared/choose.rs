//! At `start` of a repository: is there a prepared image for it, and does it still fit? Only when
//! one exists is the branch's commit looked at (probe.rs, on the host); the newest image whose
//! key equals the key of that commit's lockfiles and setup script, made from the stack's current
//! golden image, is used. Anything else is said in the progress, with how to refresh.
use super::key;
use super::probe::probe;
use super::{PreparedInfo, PreparedState, list, repo_id};
use crate::engine::creds::{RepoRef, agent};
use crate::engine::golden::{self, READY};
use crate::engine::{Engine, host::Host};
use crate::error::Result;
use crate::incus::Config;
use crate::progress::Progress;

/// What a create asks for.
pub struct Ask<'a> {
    pub stack: &'a str,
    pub repo: &'a RepoRef,
    pub url: &'a str,
    /// `--branch` (existing, or to be made from `base` or the default branch).
    pub branch: Option<&'a str>,
    /// The branch a new one starts from (`--from`'s).
    pub base: Option<&'a str>,
}

/// The prepared image to copy, and its `ready` snapshot's config.
pub(crate) struct Chosen {
    pub image: String,
    pub config: Config,
}

fn refresh_hint(a: &Ask<'_>) -> String {
    let branch = a.branch.map(|b| format!(" --branch {b}")).unwrap_or_default();
    format!("sandbox prepare {} --stack {}{branch}", a.url, a.stack)
}

impl Engine {
    /// The prepared image a new sandbox of `a.repo` is copied from, if one matches; `name` is
    /// the new sandbox (its agent, already running, reads the repository on the host).
    pub(crate) async fn choose_prepared(
        &self,
        a: &Ask<'_>,
        name: &str,
        progress: &dyn Progress,
    ) -> Result<Option<Chosen>> {
        let local = self.host == Host::Local && matches!(self.incus.endpoint(), crate::incus::Endpoint::Unix(_));
        let id = repo_id(a.repo);
        let mine: Vec<PreparedInfo> =
            list(&self.incus).await?.into_iter().filter(|p| p.repo_id == id && p.stack == a.stack).collect();
        if mine.is_empty() || !local || golden::is_clustered(&self.incus).await? {
            return Ok(None);
        }
        let current: Vec<&PreparedInfo> = mine.iter().filter(|p| p.state == PreparedState::Current).collect();
        if current.is_empty() {
            progress.step(&format!(
                "Prepared image {} was made before golden-{} was rebuilt: not used (refresh: {})",
                mine[0].name,
                a.stack,
                refresh_hint(a)
            ));
            return Ok(None);
        }
        progress.step(&format!("Checking {}'s lockfiles against its prepared images", a.repo.slug()));
        let mut refs: Vec<String> = a.branch.iter().chain(a.base.iter()).map(|b| b.to_string()).collect();
        refs.push("HEAD".into());
        let probed = match probe(a.repo, &agent::socket_path(name), &refs).await {
            Ok(p) => p,
            Err(e) => {
                progress.step(&format!("Could not read the repository on the host ({e}): using the golden image"));
                return Ok(None);
            }
        };
        let want = key::key(a.stack, &id, &probed.files);
        let Some(hit) = current.iter().find(|p| p.key == want) else {
            let short = &probed.commit[..probed.commit.len().min(12)];
            let on = if probed.found == "HEAD" { "the default branch".to_string() } else { probed.found.clone() };
            let on = format!("{on} ({short})");
            progress.step(&format!(
                "Prepared image {} is stale: the lockfiles or setup script on {on} changed since it was made \
                 (using the golden image; refresh: {})",
                current[0].name,
                refresh_hint(a)
            ));
            return Ok(None);
        };
        let Some(config) = golden::ready_config(&self.incus, &hit.name).await? else { return Ok(None) };
        progress.step(&format!(
            "Using prepared image {} ({}/{READY}: {} done, prepared {})",
            hit.name,
            hit.name,
            if hit.setup.is_empty() { "setup" } else { &hit.setup },
            hit.prepared_at
        ));
        Ok(Some(Chosen { image: hit.name.clone(), config }))
    }
}
