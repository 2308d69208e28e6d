//! What a killed `prepare` (kill -9, a crash) leaves — its temporary instance, its temporary
//! deploy key on the repository and the key pair and agent on the host — removed by the next
//! `prepare` (and a sidecar's start). A prepare records itself as a create of its credentials'
//! name (`prep-TAG`, journal.rs: owner, repository, key id) and marks its temporary instance with
//! its owner: whatever a prepare whose owner is gone left goes; a running prepare's stays.
use super::TMP_PREFIX;
use crate::engine::Engine;
use crate::engine::creds::Token;
use crate::engine::journal::{self, marked_owner};
use crate::engine::recover::Found;
use crate::error::Result;

/// The credentials' name of a prepare (`prep-TAG`; its instance is `tmp-prep-TAG`).
pub const CRED_PREFIX: &str = "prep-";

impl Engine {
    /// Removes what interrupted prepares left; returns the temporary instances removed.
    pub async fn sweep_prepares(&self) -> Result<Vec<String>> {
        for name in journal::names().into_iter().filter(|n| n.starts_with(CRED_PREFIX)) {
            let found = self.inspect(&name).await?;
            if let Found::Interrupted(_) = found {
                tracing::info!("removing what an interrupted prepare ({name}) left");
                self.remove_name(&name, found, &Token::default()).await?;
            }
        }
        let mut removed = Vec::new();
        for inst in self.incus.instances().await? {
            if !inst.name.starts_with(TMP_PREFIX) {
                continue;
            }
            // Unmarked (made before prepares were marked): left alone.
            let Some((owner, started)) = marked_owner(&inst) else { continue };
            if !journal::busy(&owner, &started) {
                self.incus.delete_force(&inst.name).await?;
                removed.push(inst.name);
            }
        }
        Ok(removed)
    }
}
