//! Transactions: each step registers its undo; on failure or cancel the undos run in reverse.
use std::future::Future;
use std::pin::Pin;

type Undo = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;

#[derive(Default)]
pub struct Rollback {
    steps: Vec<(String, Undo)>,
}

impl Rollback {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers an undo for a step that just succeeded.
    pub fn push(&mut self, label: impl Into<String>, undo: impl Future<Output = anyhow::Result<()>> + Send + 'static) {
        self.steps.push((label.into(), Box::pin(undo)));
    }

    /// Success: nothing to undo.
    pub fn commit(mut self) {
        self.steps.clear();
    }

    /// Undoes every registered step, newest first; keeps going past failures and reports them.
    pub async fn undo(mut self) -> Vec<String> {
        let mut failures = Vec::new();
        while let Some((label, undo)) = self.steps.pop() {
            tracing::debug!("rollback: {label}");
            if let Err(e) = undo.await {
                tracing::warn!("rollback of '{label}' failed: {e:#}");
                failures.push(format!("{label}: {e:#}"));
            }
        }
        failures
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}
