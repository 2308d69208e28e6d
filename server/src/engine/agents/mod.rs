//! What the agents in each sandbox are doing, from Claude Code's own hooks: every golden image's
//! managed settings run a hook on each lifecycle event (claude/hooks.rs) that posts the event to
//! the sandbox's hook socket on the host (relay.rs, served by the host daemon that also runs the
//! Anthropic proxy — one daemon for per-sandbox services); the daemon keeps each session's state
//! (state.rs) and writes what the sandbox shows to Incus (`user.sandbox.agent.*`), so
//! `sandbox/changed` carries it to every client — nobody polls. `sandbox wait` follows the
//! same events (wait.rs).
pub mod relay;
pub mod state;
pub mod wait;

use serde::{Deserialize, Serialize};

pub use state::AgentState;

use super::keys;
use crate::incus::{Config, Devices, Incus};

/// A sandbox's agents as clients see them (`Sandbox.agent`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub struct Agent {
    /// The most urgent of its Claude Code sessions (waiting > working > done > none).
    pub state: AgentState,
    /// RFC 3339: when `state` or `message` last changed (absent: never).
    pub since: Option<String>,
    /// waiting: what Claude needs ("Claude needs your permission to use Bash"); done: the
    /// answer's first line. One line of printable text written by the sandbox: show it as text.
    pub message: Option<String>,
    /// Hook messages from the sandbox dropped by the host.
    pub dropped: Dropped,
}

/// Hook messages dropped, by reason (an abusive or broken sandbox shows up here).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "camelCase", default)]
pub struct Dropped {
    /// Larger than the limit (1 MB).
    #[ts(type = "number")]
    pub too_big: u64,
    /// Not a hook's JSON input (or not `POST /hook`).
    #[ts(type = "number")]
    pub malformed: u64,
    /// An event name the hooks never send.
    #[ts(type = "number")]
    pub unknown_event: u64,
    /// Over the rate (a burst of 60, then 20 a second) or too many connections at once.
    #[ts(type = "number")]
    pub rate_limited: u64,
}

impl Dropped {
    pub fn total(&self) -> u64 {
        self.too_big.saturating_add(self.malformed).saturating_add(self.unknown_event).saturating_add(self.rate_limited)
    }
    fn count(&mut self, why: state::Refused) {
        let c = match why {
            state::Refused::TooBig => &mut self.too_big,
            state::Refused::Malformed => &mut self.malformed,
            state::Refused::UnknownEvent => &mut self.unknown_event,
            state::Refused::RateLimited => &mut self.rate_limited,
        };
        *c = c.saturating_add(1);
    }
    fn from_json(s: Option<&str>) -> Dropped {
        s.and_then(|s| serde_json::from_str(s).ok()).unwrap_or_default()
    }
}

impl Agent {
    /// From a sandbox's config keys. A sandbox that is not running has no session, whatever
    /// the keys still say (a host that went down wrote nothing more).
    pub fn from_config(config: &Config, running: bool) -> Agent {
        let get = |k: &str| config.get(k).map(String::as_str).filter(|v| !v.is_empty());
        let state = get(keys::AGENT_STATE).and_then(AgentState::parse).unwrap_or_default();
        let dropped = Dropped::from_json(get(keys::AGENT_DROPPED));
        if !running {
            return Agent { dropped, ..Default::default() };
        }
        Agent {
            state,
            since: get(keys::AGENT_SINCE).map(str::to_owned),
            // Written by the relay from sanitised text; cleaned again in case a key was set by hand.
            message: get(keys::AGENT_MESSAGE).and_then(state::first_line),
            dropped,
        }
    }
}

/// The keys the relay writes.
fn written(shown: &state::Shown, since: &str, sessions: &state::Sessions, dropped: &Dropped) -> Config {
    let mut c = Config::new();
    c.insert(keys::AGENT_STATE.into(), shown.state.as_str().into());
    c.insert(keys::AGENT_SINCE.into(), since.into());
    c.insert(keys::AGENT_MESSAGE.into(), shown.message.clone().unwrap_or_default());
    c.insert(keys::AGENT_SESSIONS.into(), sessions.to_json());
    c.insert(keys::AGENT_DROPPED.into(), serde_json::to_string(dropped).expect("serialisable"));
    c
}

/// A stopped sandbox (or one starting again) has no session: its keys say none. Skipped when
/// they already do (no needless change event).
pub async fn reset(incus: &Incus, instance: &str, config: &Config) -> crate::incus::Result<()> {
    let state = config.get(keys::AGENT_STATE).map(String::as_str).unwrap_or("");
    let sessions = config.get(keys::AGENT_SESSIONS).map(String::as_str).unwrap_or("");
    if matches!(state, "" | "none") && matches!(sessions, "" | "{}") {
        return Ok(());
    }
    let none = state::Sessions::default();
    let dropped = Dropped::from_json(config.get(keys::AGENT_DROPPED).map(String::as_str));
    let c = written(&none.shown(), &now_rfc3339(), &none, &dropped);
    match incus.patch_instance(instance, c, Devices::new()).await {
        Err(e) if e.is_not_found() => Ok(()),
        r => r,
    }
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_a_stopped_sandbox_shows_none() {
        let mut s = state::Sessions::default();
        let hook = state::parse(br#"{"hook_event_name":"Stop","session_id":"a","last_assistant_message":"all good"}"#);
        s.apply(&hook.unwrap(), 5);
        let dropped = Dropped { malformed: 2, ..Default::default() };
        let c = written(&s.shown(), "2026-01-01T00:00:00Z", &s, &dropped);
        let a = Agent::from_config(&c, true);
        assert_eq!(a.state, AgentState::Done);
        assert_eq!(a.message.as_deref(), Some("all good"));
        assert_eq!(a.since.as_deref(), Some("2026-01-01T00:00:00Z"));
        assert_eq!(a.dropped.total(), 2);
        let stopped = Agent::from_config(&c, false);
        assert_eq!((stopped.state, stopped.message, stopped.dropped.total()), (AgentState::None, None, 2));
        assert_eq!(Agent::from_config(&Config::new(), true), Agent::default());
    }
}
