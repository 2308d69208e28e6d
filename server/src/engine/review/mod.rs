//! Getting the agent's work back: what it changed (`diff`, computed inside the sandbox with git),
//! the files on both sides for review (`blob`), its branch fetched into the user's clone
//! (`fetch`), and a pull request (`pr`). The base every diff counts from is recorded at create
//! (`base`).
//!
//! A diff is one snapshot: the working tree, untracked files included (.gitignore respected), is
//! written as a tree object through a temporary index (the sandbox's own index and working tree
//! are never touched), and compared with the base commit. Its summary goes to Incus
//! (`user.sandbox.changes`), so every client's tree shows it.
pub mod base;
pub mod blob;
pub mod fetch;
mod git;
mod parse;
pub mod pr;
pub mod record;

use serde::{Deserialize, Serialize};

pub use record::ChangeSummary;

use super::Engine;
use super::sandbox::SandboxState;
use crate::error::{EngineError, Result};
use crate::incus::Instance;
use git::Git;

/// How a file changed between the base and the sandbox's working tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub enum ChangeKind {
    Added,
    Modified,
    Deleted,
    Renamed,
    Copied,
    /// A file became a symlink or the other way round.
    TypeChanged,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub struct FileChange {
    /// The path in the sandbox's working tree (the new path of a rename).
    pub path: String,
    /// The path at the base, for renames and copies.
    pub old_path: Option<String>,
    pub kind: ChangeKind,
    /// Lines added and deleted (absent for binary files).
    #[ts(type = "number | null")]
    pub added: Option<u64>,
    #[ts(type = "number | null")]
    pub deleted: Option<u64>,
    pub binary: bool,
    /// The blob at the base and in the working tree (absent on the side where the file is not):
    /// what `sandbox/blob` reads for the two sides of a review.
    pub old_blob: Option<String>,
    pub new_blob: Option<String>,
    /// Git file modes (0o100644, 0o100755, 0o120000 symlink, 0o160000 submodule).
    pub old_mode: Option<u32>,
    pub new_mode: Option<u32>,
}

/// What the agent changed since the base: its commits, and what it has not committed yet.
#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub struct Diff {
    pub name: String,
    /// The commit the changes are counted from.
    pub base: String,
    /// The branch a pull request goes to (the one the sandbox's branch started from).
    pub base_branch: Option<String>,
    /// The sandbox's current branch (absent: detached HEAD).
    pub branch: Option<String>,
    pub head: String,
    /// The working tree as a tree object (the right side of the review).
    pub tree: String,
    /// Commits on HEAD since the base.
    pub commits: u32,
    /// The working tree differs from HEAD (uncommitted or untracked changes).
    pub uncommitted: bool,
    #[ts(type = "number")]
    pub added: u64,
    #[ts(type = "number")]
    pub deleted: u64,
    pub files: Vec<FileChange>,
    /// Changed files left out of `files` (past 20000); the counts include them.
    pub omitted: u32,
}

impl Diff {
    pub fn summary(&self) -> ChangeSummary {
        ChangeSummary {
            added: self.added,
            deleted: self.deleted,
            files: self.files.len() as u32 + self.omitted,
            commits: self.commits,
            uncommitted: self.uncommitted,
            at: String::new(),
        }
    }
}

/// The sandbox's instance, which must be running (git runs inside it).
pub(crate) async fn running(engine: &Engine, name: &str) -> Result<Instance> {
    super::validate::sandbox_name(name)?;
    let inst = engine
        .incus
        .instance(&super::validate::instance_name(name))
        .await
        .map_err(|e| if e.is_not_found() { EngineError::sandbox_not_found(name) } else { e.into() })?;
    if SandboxState::from_incus(&inst.status) != SandboxState::Running {
        return Err(EngineError::failed(
            format!("sandbox '{name}' is not running"),
            format!("start it: sandbox start {name}"),
        ));
    }
    Ok(inst)
}

const DIFF_OPTS: &[&str] = &["diff", "--raw", "--numstat", "-z", "-M", "--no-abbrev", "--no-ext-diff", "--no-textconv"];

/// In the checkout, one exec: the revisions a diff starts from, then the working tree (untracked
/// files included) written as a tree object through a copy of the index — `git add -A` there
/// reuses the file stats, and the sandbox's own index and working tree are never touched. A
/// constant script; the base revision (checked by validate::git_rev) and a random tag are its
/// positional parameters, never part of the script. Exit 3: no repository; 4: a revision is
/// missing; 5: the snapshot failed.
const SNAPSHOT: &str = r#"
cd /workspace/project 2>/dev/null && dir=$(git rev-parse --absolute-git-dir 2>/dev/null) || { echo "not a git repository" >&2; exit 3; }
git rev-parse HEAD 'HEAD^{tree}' "$1^{commit}" --abbrev-ref HEAD || exit 4
idx="$dir/sandbox-review-$2.index"
trap 'rm -f -- "$idx"' EXIT
if [ -f "$dir/index" ]; then cp -- "$dir/index" "$idx" || exit 5; fi
GIT_INDEX_FILE="$idx" GIT_OPTIONAL_LOCKS=1 git add -A >/dev/null || exit 5
GIT_INDEX_FILE="$idx" GIT_OPTIONAL_LOCKS=1 git write-tree || exit 5
"#;

/// What the snapshot answered.
struct Revs {
    head: String,
    head_tree: String,
    base: String,
    branch: Option<String>,
    /// The working tree as a tree object.
    tree: String,
}

impl Engine {
    /// What the sandbox changed since its base (or `base`, any revision it knows), committed or
    /// not; records the summary in Incus.
    pub async fn diff(&self, name: &str, base: Option<&str>) -> Result<Diff> {
        let base = base.map(super::validate::git_rev).transpose()?;
        let inst = running(self, name).await?;
        let recorded = inst.setting(super::keys::BASE_COMMIT).map(str::to_owned);
        let base_branch = inst.setting(super::keys::BASE_BRANCH).map(str::to_owned);
        // Sandboxes made before the base was recorded: their clone's default branch.
        let from = base.or(recorded).unwrap_or_else(|| "origin/HEAD".into());
        let git = Git { incus: &self.incus, instance: &inst.name, name };
        let revs = snapshot(&git, &from).await?;
        let range = format!("{}..{}", revs.base, revs.head);
        let diff_args = [DIFF_OPTS, &[revs.base.as_str(), revs.tree.as_str()]].concat();
        let count_args = ["rev-list", "--count", range.as_str()];
        let (changes, count) = futures::future::try_join(git.ok(&diff_args), git.ok(&count_args)).await?;
        let parsed = parse::parse(&changes)
            .map_err(|e| EngineError::failed(format!("sandbox '{name}': {e}"), "is git in the sandbox working?"))?;
        let commits = String::from_utf8_lossy(&count).trim().parse().unwrap_or(0);
        let diff = Diff {
            name: name.to_string(),
            added: parsed.files.iter().filter_map(|f| f.added).sum(),
            deleted: parsed.files.iter().filter_map(|f| f.deleted).sum(),
            uncommitted: revs.tree != revs.head_tree,
            files: parsed.files,
            omitted: parsed.omitted as u32,
            base: revs.base,
            base_branch,
            branch: revs.branch,
            head: revs.head,
            tree: revs.tree,
            commits,
        };
        record::record(&self.incus, &inst.name, &inst, diff.summary()).await?;
        Ok(diff)
    }

    /// The patch of a diff (`git diff` between its base and its snapshot), as git prints it.
    pub async fn patch(&self, d: &Diff) -> Result<Vec<u8>> {
        let inst = running(self, &d.name).await?;
        let git = Git { incus: &self.incus, instance: &inst.name, name: &d.name };
        git.ok(&["diff", "-M", "--no-ext-diff", "--no-textconv", "--no-color", &d.base, &d.tree]).await
    }
}

/// The revisions and the working tree's snapshot (SNAPSHOT), or what is missing, said clearly.
async fn snapshot(git: &Git<'_>, base: &str) -> Result<Revs> {
    let tag = format!("{:016x}", rand::random::<u64>());
    let out = git.run(&git::script(SNAPSHOT, &[base, &tag])).await?;
    let text = out.stdout_str();
    let lines: Vec<&str> = text.lines().collect();
    let hex = |s: &&str| (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit());
    if out.ok() && lines.len() == 5 && [0, 1, 2, 4].iter().all(|i| hex(&lines[*i])) {
        let branch = Some(lines[3].to_string()).filter(|b| b != "HEAD" && super::validate::branch(b).is_ok());
        let [head, head_tree, base, tree] = [0, 1, 2, 4].map(|i| lines[i].to_string());
        return Ok(Revs { head, head_tree, base, branch, tree });
    }
    let err = out.stderr_str();
    let name = git.name;
    let missing = match out.status {
        3 => format!("sandbox '{name}' has no git repository in {}", crate::engine::creds::PROJECT),
        4 if lines.first().is_none_or(|l| !hex(l)) => format!("the repository in sandbox '{name}' has no commit yet"),
        4 => format!("sandbox '{name}' does not know the base revision '{base}': {}", git::first_line(&err)),
        _ => format!("sandbox '{name}': git could not snapshot the working tree: {}", git::first_line(&err)),
    };
    let hint = match out.status {
        3 => "create the sandbox with a REPO_URL (sandbox start NAME REPO_URL), or run `git init` there",
        4 if lines.first().is_none_or(|l| !hex(l)) => "commit something first",
        4 => "pass --base with a branch or commit it has (e.g. --base origin/main)",
        _ => "is the sandbox's disk full, or its git broken? `sandbox exec NAME -- git status` shows more",
    };
    Err(EngineError::failed(missing, hint))
}
