//! `sandbox wait NAME… --for waiting|done|any`: returns when one of the sandboxes' agents is in
//! that state — at once if one already is. It follows Incus's event stream (the relay's writes
//! are instance updates), never polls; after a reconnect it reads the sandboxes again.
use std::time::Duration;

use serde::Serialize;

use super::{Agent, AgentState};
use crate::engine::{EngineError, Result, sandbox, validate};
use crate::incus::{EventMsg, Incus};

/// What to wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WaitFor {
    /// Claude needs the user.
    Waiting,
    /// A turn finished.
    Done,
    /// Either.
    Any,
}

impl WaitFor {
    pub fn matches(self, s: AgentState) -> bool {
        match self {
            Self::Waiting => s == AgentState::Waiting,
            Self::Done => s == AgentState::Done,
            Self::Any => matches!(s, AgentState::Waiting | AgentState::Done),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reached {
    pub name: String,
    pub agent: Agent,
}

/// The first of `names` whose agent gets to `target`; None when `timeout` passed first.
pub async fn wait(
    incus: &Incus,
    names: &[String],
    target: WaitFor,
    timeout: Option<Duration>,
) -> Result<Option<Reached>> {
    for n in names {
        validate::sandbox_name(n)?;
    }
    // Subscribed before the first read, so that no change falls between the two.
    let mut events = incus.follow_events("lifecycle");
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    let sleep = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(sleep);
    // Now, before any event: a missing sandbox or an unreachable Incus is an error at once.
    for n in names {
        let s = sandbox::get(incus, n).await?.ok_or_else(|| EngineError::sandbox_not_found(n))?;
        if target.matches(s.agent.state) {
            return Ok(Some(Reached { name: s.name, agent: s.agent }));
        }
    }
    loop {
        let msg = tokio::select! {
            m = events.recv() => m,
            _ = &mut sleep => return Ok(None),
        };
        let check: Vec<&String> = match msg {
            Some(EventMsg::Connected) => names.iter().collect(),
            Some(EventMsg::Event(ev)) => match ev.lifecycle() {
                Some((action, inst)) if !action.starts_with("instance-file") && !action.starts_with("instance-log") => {
                    names.iter().filter(|n| validate::sandbox_of(inst) == Some(n.as_str())).collect()
                }
                _ => Vec::new(),
            },
            Some(EventMsg::Disconnected(_)) => Vec::new(),
            None => return Err(EngineError::failed("the Incus event stream ended", "check that Incus is running")),
        };
        for n in check {
            let s = sandbox::get(incus, n).await?.ok_or_else(|| EngineError::sandbox_not_found(n))?;
            if target.matches(s.agent.state) {
                return Ok(Some(Reached { name: s.name, agent: s.agent }));
            }
        }
    }
}
