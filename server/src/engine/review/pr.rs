//! `sandbox pr NAME`: the sandbox pushes its branch (through the push gate, or with its own key
//! when it may push anywhere), then a pull request is opened through the GitHub API against the
//! branch it started from, its title and body taken from the commits unless given. The pull
//! request is recorded in Incus (`user.sandbox.pull-request`), so every client shows it; its
//! state (open, merged, closed) is read again on `refresh`.
use super::git::{self, Git};
pub use super::record::{PrState, PullRequest};
use super::running;
use crate::engine::creds::{self, RepoRef, Token, github};
use crate::engine::{Engine, keys, validate};
use crate::error::{EngineError, Result};
use crate::incus::{Config, Devices, Instance};
use crate::progress::Progress;

const MAX_TITLE: usize = 256;
const MAX_BODY: usize = 60_000;

/// What `sandbox pr` asks for.
#[derive(Debug, Clone, Default)]
pub struct PrOptions {
    pub title: Option<String>,
    pub body: Option<String>,
    pub draft: bool,
    pub token: Token,
}

fn record_of(p: &octocrab::models::pulls::PullRequest, branch: &str, base: &str) -> PullRequest {
    let state = if p.merged_at.is_some() || p.merged == Some(true) {
        PrState::Merged
    } else if matches!(p.state, Some(octocrab::models::IssueState::Closed)) {
        PrState::Closed
    } else {
        PrState::Open
    };
    PullRequest {
        number: p.number,
        url: p.html_url.as_ref().map(|u| u.to_string()).unwrap_or_else(|| p.url.clone()),
        state,
        draft: p.draft.unwrap_or(false),
        title: p.title.clone().unwrap_or_default(),
        branch: branch.to_string(),
        base: base.to_string(),
    }
}

fn bounded(field: &str, v: &str, max: usize) -> Result<String> {
    if v.len() > max || v.chars().any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r') {
        return Err(EngineError::invalid(
            field,
            format!("at most {max} bytes of text, without control characters"),
            "shorten it",
        ));
    }
    Ok(v.to_string())
}

/// Title and body from the commits (oldest first): one commit gives its subject and body; more
/// give the branch's name and the list of subjects.
fn from_commits(log: &[u8], branch: &str) -> (String, String) {
    let commits: Vec<(String, String)> = log
        .split(|b| *b == 0)
        .filter(|c| !c.is_empty())
        .map(|c| {
            let t = String::from_utf8_lossy(c);
            let (subject, body) = t.split_once('\n').unwrap_or((&t, ""));
            (clean(subject, MAX_TITLE), clean(body.trim(), MAX_BODY))
        })
        .collect();
    match &commits[..] {
        [(subject, body)] => (subject.clone(), body.clone()),
        _ => {
            let mut title: String = branch.rsplit('/').next().unwrap_or(branch).replace(['-', '_'], " ");
            if let Some(first) = title.get(..1) {
                title = first.to_uppercase() + &title[1..];
            }
            let body = commits.iter().map(|(s, _)| format!("- {s}\n")).collect::<String>();
            (title, clean(&body, MAX_BODY))
        }
    }
}

/// Text from the sandbox: control characters (but newlines and tabs) dropped, bounded.
fn clean(s: &str, max: usize) -> String {
    let mut out: String = s.chars().filter(|c| !c.is_control() || *c == '\n' || *c == '\t').collect();
    if out.len() > max {
        let mut cut = max;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out
}

impl Engine {
    /// Pushes the sandbox's branch and opens the pull request; records it.
    pub async fn pull_request(&self, name: &str, o: &PrOptions, progress: &dyn Progress) -> Result<PullRequest> {
        let title = o.title.as_deref().map(|t| bounded("title", t, MAX_TITLE)).transpose()?;
        let body = o.body.as_deref().map(|b| bounded("body", b, MAX_BODY)).transpose()?;
        let inst = running(self, name).await?;
        let repo = repo_of(name, &inst)?;
        let token =
            github::token(&self.host, o.token.0.as_deref(), &format!("to open a pull request on {}", repo.slug()))
                .await?;
        let gh = github::GitHub::new(&repo, &token)?;
        let git = Git { incus: &self.incus, instance: &inst.name, name };
        let branch = current_branch(&git).await?;
        let base = inst.setting(keys::BASE_BRANCH).unwrap_or("main").to_string();
        if branch == base {
            return Err(EngineError::failed(
                format!("sandbox '{name}' works on {base} itself: there is no branch to open a pull request from"),
                "create a branch in the sandbox (git switch -c NAME), or create sandboxes with --branch",
            ));
        }
        let since = inst.setting(keys::BASE_COMMIT).unwrap_or("origin/HEAD").to_string();
        let log = git.ok(&["log", "-z", "--reverse", "--format=%s%n%b", &format!("{since}..HEAD")]).await?;
        if log.iter().all(|b| *b == 0 || b.is_ascii_whitespace()) {
            return Err(EngineError::failed(
                format!("the branch {branch} in sandbox '{name}' has no commit since it started"),
                "commit the changes in the sandbox first (`sandbox diff NAME` shows them)",
            ));
        }
        let (auto_title, auto_body) = from_commits(&log, &branch);
        // GitHub first (an open pull request, a token that may not): a refusal leaves the server as
        // it was.
        gh.refuse_existing_pull(&branch).await?;
        progress.step(&format!("Pushing {branch} from sandbox {name}"));
        self.push_from_sandbox(&git, &inst, &branch).await?;
        progress.step(&format!("Opening a pull request {branch} → {base} on {}", repo.slug()));
        let title = title.unwrap_or(auto_title);
        let body = body.unwrap_or(auto_body);
        let made = gh.create_pull(&title, &branch, &base, &body, o.draft).await?;
        let pr = record_of(&made, &branch, &base);
        self.store_pull_request(&inst.name, &pr).await?;
        Ok(pr)
    }

    /// Reads the recorded pull request's state again from GitHub (and records it when it changed).
    pub async fn refresh_pull_request(&self, name: &str, token: &Token) -> Result<Option<PullRequest>> {
        validate::sandbox_name(name)?;
        let inst = self
            .incus
            .instance(&validate::instance_name(name))
            .await
            .map_err(|e| if e.is_not_found() { EngineError::sandbox_not_found(name) } else { e.into() })?;
        let Some(old) = PullRequest::from_config(inst.setting(keys::PULL_REQUEST)) else { return Ok(None) };
        let repo = repo_of(name, &inst)?;
        let token = github::token(
            &self.host,
            token.0.as_deref(),
            &format!("to read pull request #{} on {}", old.number, repo.slug()),
        )
        .await?;
        let now = github::GitHub::new(&repo, &token)?.get_pull(old.number).await?;
        let pr = record_of(&now, &old.branch, &old.base);
        if pr != old {
            self.store_pull_request(&inst.name, &pr).await?;
        }
        Ok(Some(pr))
    }

    async fn store_pull_request(&self, instance: &str, pr: &PullRequest) -> Result<()> {
        let mut c = Config::new();
        c.insert(keys::PULL_REQUEST.into(), serde_json::to_string(pr).expect("serialisable"));
        Ok(self.incus.patch_instance(instance, c, Devices::new()).await?)
    }

    /// `git push origin BRANCH` as ubuntu in the sandbox: through the gate, or over its agent.
    async fn push_from_sandbox(&self, git: &Git<'_>, inst: &Instance, branch: &str) -> Result<()> {
        let refspec = format!("refs/heads/{branch}:refs/heads/{branch}");
        let mut spec = git::spec(&["push", "--porcelain", "origin", &refspec]);
        if !crate::engine::gate::gated(inst) {
            spec = spec
                .env("SSH_AUTH_SOCK", creds::AGENT_SOCKET)
                .env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes -o StrictHostKeyChecking=yes");
        }
        let out = git.run(&spec).await?;
        if !out.ok() {
            let said: Vec<String> = out
                .stderr_str()
                .lines()
                .chain(out.stdout_str().lines())
                .filter(|l| !l.trim().is_empty())
                .map(git::first_line)
                .take(6)
                .collect();
            return Err(EngineError::failed(
                format!("the sandbox could not push {branch}: {}", said.join(" / ")),
                "nothing was opened on GitHub; fix the push (see git's message), then run `sandbox pr` again",
            ));
        }
        Ok(())
    }
}

fn repo_of(name: &str, inst: &Instance) -> Result<RepoRef> {
    let url = inst.setting(keys::REPO).ok_or_else(|| {
        EngineError::failed(
            format!("sandbox '{name}' has no repository"),
            "pull requests need a sandbox created with a REPO_URL",
        )
    })?;
    RepoRef::parse(url)
}

async fn current_branch(git: &Git<'_>) -> Result<String> {
    let out = git.ok(&["rev-parse", "--abbrev-ref", "HEAD"]).await?;
    let b = String::from_utf8_lossy(&out).trim().to_string();
    match validate::branch(&b) {
        Ok(b) if b != "HEAD" => Ok(b),
        _ => Err(EngineError::failed(
            format!("the checkout in sandbox '{}' is not on a branch we can push", git.name),
            "check out the sandbox's branch first",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn title_and_body_from_the_commits() {
        let one = b"Fix the login\n\nIt failed on empty passwords.\n\0";
        assert_eq!(from_commits(one, "x"), ("Fix the login".into(), "It failed on empty passwords.".into()));
        let two = b"First\n\0Second \x1b[31mred\n\0";
        let (t, b) = from_commits(two, "feature/login-form");
        assert_eq!(t, "Login form");
        assert_eq!(b, "- First\n- Second [31mred\n");
    }

    #[test]
    fn given_text_is_bounded() {
        assert!(bounded("title", "ok", MAX_TITLE).is_ok());
        assert!(bounded("title", &"x".repeat(MAX_TITLE + 1), MAX_TITLE).is_err());
        assert!(bounded("title", "a\u{1b}b", MAX_TITLE).is_err());
        assert_eq!(clean("é".repeat(10).as_str(), 3), "é");
    }
}
