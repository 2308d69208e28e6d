//! At create, right after the clone: the commit the sandbox's branch starts from and the branch a
//! pull request goes to (`--from`'s branch when the new branch was made from it, else the
//! repository's default branch), and the sandbox's own branch — the one the push gate lets it
//! push.
use super::git::{self, Git};
use crate::engine::{Engine, keys, validate};
use crate::error::{EngineError, Result};
use crate::incus::{Config, Devices};

impl Engine {
    /// Records the base in Incus. `made_from`: the branch the new branch was created from.
    pub(crate) async fn record_base(&self, name: &str, instance: &str, made_from: Option<&str>) -> Result<()> {
        let git = Git { incus: &self.incus, instance, name };
        let out = git.run(&git::spec(&["rev-parse", "HEAD", "--abbrev-ref", "HEAD", "origin/HEAD"])).await?;
        let text = out.stdout_str();
        let mut lines = text.lines();
        let (Some(head), Some(branch)) = (lines.next(), lines.next()) else {
            return Err(EngineError::failed(
                format!("cannot read the new checkout's HEAD: {}", git::first_line(&out.stderr_str())),
                "",
            ));
        };
        let default = lines.next().and_then(|d| d.strip_prefix("origin/")).filter(|d| validate::branch(d).is_ok());
        let mut c = Config::new();
        c.insert(keys::BASE_COMMIT.into(), head.to_string());
        if let Some(b) = made_from.or(default) {
            c.insert(keys::BASE_BRANCH.into(), b.to_string());
        }
        if validate::branch(branch).is_ok() && branch != "HEAD" {
            c.insert(keys::BRANCH.into(), branch.to_string());
        }
        self.incus.patch_instance(instance, c, Devices::new()).await?;
        Ok(())
    }
}
