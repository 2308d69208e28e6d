//! What Claude Code's hook events mean for a sandbox's agent state — pure, no I/O.
//!
//! Each Claude Code session in a sandbox has a record (idle, working, waiting or done); the
//! sandbox shows the most urgent one (waiting > working > done > none). The events come from
//! inside the sandbox, so nothing in them is trusted: the event name is one of a closed set,
//! session ids are checked, and the only text kept — a notification's message, the first line of
//! the last answer — is cut to one line of printable characters and bounded.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The most urgent state of a sandbox's Claude Code sessions, ordered by urgency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub enum AgentState {
    /// No session, or none with anything to report (started, no prompt yet).
    #[default]
    None,
    /// A turn finished (with its answer's first line).
    Done,
    /// A prompt was submitted or a tool is running.
    Working,
    /// Claude needs the user: a permission, a question, input (with its message).
    Waiting,
}

impl AgentState {
    pub fn parse(s: &str) -> Option<AgentState> {
        Some(match s {
            "none" => Self::None,
            "done" => Self::Done,
            "working" => Self::Working,
            "waiting" => Self::Waiting,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Done => "done",
            Self::Working => "working",
            Self::Waiting => "waiting",
        }
    }
}

/// The hook events the golden images' managed settings send (and the only ones accepted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookEvent {
    SessionStart,
    UserPromptSubmit,
    PreToolUse,
    PostToolUse,
    PostToolUseFailure,
    PermissionRequest,
    Notification,
    Stop,
    StopFailure,
    SubagentStop,
    SessionEnd,
}

impl HookEvent {
    pub const ALL: [HookEvent; 11] = [
        Self::SessionStart,
        Self::UserPromptSubmit,
        Self::PreToolUse,
        Self::PostToolUse,
        Self::PostToolUseFailure,
        Self::PermissionRequest,
        Self::Notification,
        Self::Stop,
        Self::StopFailure,
        Self::SubagentStop,
        Self::SessionEnd,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Self::SessionStart => "SessionStart",
            Self::UserPromptSubmit => "UserPromptSubmit",
            Self::PreToolUse => "PreToolUse",
            Self::PostToolUse => "PostToolUse",
            Self::PostToolUseFailure => "PostToolUseFailure",
            Self::PermissionRequest => "PermissionRequest",
            Self::Notification => "Notification",
            Self::Stop => "Stop",
            Self::StopFailure => "StopFailure",
            Self::SubagentStop => "SubagentStop",
            Self::SessionEnd => "SessionEnd",
        }
    }
    pub fn parse(s: &str) -> Option<HookEvent> {
        Self::ALL.into_iter().find(|e| e.name() == s)
    }
}

/// The fields of a hook's JSON input that are read; everything else is skipped unread. A field
/// of another type than this makes the whole message malformed.
#[derive(Debug, Deserialize)]
pub struct Payload {
    pub hook_event_name: String,
    pub session_id: String,
    #[serde(default)]
    pub tool_name: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub notification_type: Option<String>,
    #[serde(default)]
    pub last_assistant_message: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
}

/// Why a message from a sandbox was dropped (each counted per sandbox).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    TooBig,
    Malformed,
    UnknownEvent,
    RateLimited,
}

/// A hook message, checked: a known event and a well-formed session id.
#[derive(Debug)]
pub struct Hook {
    pub event: HookEvent,
    pub session: String,
    pub payload: Payload,
}

pub fn parse(body: &[u8]) -> Result<Hook, Refused> {
    let payload: Payload = serde_json::from_slice(body).map_err(|_| Refused::Malformed)?;
    let event = HookEvent::parse(&payload.hook_event_name).ok_or(Refused::UnknownEvent)?;
    let id = &payload.session_id;
    let ok = (1..=MAX_SESSION_ID).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !ok {
        return Err(Refused::Malformed);
    }
    Ok(Hook { event, session: id.clone(), payload })
}

const MAX_SESSION_ID: usize = 64;
/// Records kept per sandbox: ended ones go first, then the longest unchanged.
pub const MAX_SESSIONS: usize = 16;
/// Characters kept of a message.
pub const MAX_MESSAGE: usize = 200;

/// Notification types that mean Claude waits for the user. `idle_prompt` ("waiting for your
/// input", a minute after a turn) counts only when no Stop came (a turn interrupted by the user).
const NEEDS_YOU: [&str; 4] =
    ["permission_prompt", "worker_permission_prompt", "elicitation_dialog", "agent_needs_input"];
const IDLE: &str = "idle_prompt";
/// The tool with which Claude asks the user a question (it waits for the answer).
const ASK_TOOL: &str = "AskUserQuestion";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SessionState {
    Idle,
    Working,
    Waiting,
    Done,
}

impl SessionState {
    fn shown(self) -> AgentState {
        match self {
            Self::Idle => AgentState::None,
            Self::Working => AgentState::Working,
            Self::Waiting => AgentState::Waiting,
            Self::Done => AgentState::Done,
        }
    }
}

/// One session's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub state: SessionState,
    /// Unix milliseconds of its last change.
    pub since: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The session ended (SessionEnd) after finishing a turn: its result is still shown.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ended: bool,
}

/// A sandbox's sessions (kept in Incus as JSON, so a restarted daemon goes on from them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sessions(pub BTreeMap<String, Session>);

/// What the sandbox shows: the most urgent session (the latest among equals).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    pub state: AgentState,
    pub message: Option<String>,
}

impl Sessions {
    /// From the stored JSON; anything unreadable is no sessions (and bounded all the same).
    pub fn from_json(s: Option<&str>) -> Sessions {
        let mut out: Sessions = s.and_then(|s| serde_json::from_str(s).ok()).unwrap_or_default();
        out.0.retain(|id, s| {
            id.len() <= MAX_SESSION_ID && s.message.as_ref().is_none_or(|m| m.len() <= 4 * MAX_MESSAGE)
        });
        while out.0.len() > MAX_SESSIONS {
            out.evict_one();
        }
        out
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("serialisable")
    }

    pub fn shown(&self) -> Shown {
        self.0
            .values()
            .filter(|s| s.state.shown() != AgentState::None)
            .max_by_key(|s| (s.state.shown(), s.since))
            .map(|s| Shown { state: s.state.shown(), message: s.message.clone() })
            .unwrap_or(Shown { state: AgentState::None, message: None })
    }

    /// Applies one event at `now` (unix ms). Returns whether any record changed.
    pub fn apply(&mut self, hook: &Hook, now: i64) -> bool {
        let before = self.clone();
        let p = &hook.payload;
        let id = hook.session.as_str();
        let current = self.0.get(id).map(|s| s.state);
        match hook.event {
            HookEvent::SessionStart => {
                // A new session makes the results of ended ones old news.
                self.0.retain(|_, s| !s.ended);
                if !self.0.contains_key(id) {
                    self.set(id, SessionState::Idle, None, now);
                }
            }
            HookEvent::UserPromptSubmit => self.set(id, SessionState::Working, None, now),
            HookEvent::PreToolUse if p.tool_name.as_deref() == Some(ASK_TOOL) => {
                self.set(id, SessionState::Waiting, Some("Claude has a question for you".into()), now)
            }
            HookEvent::PreToolUse => self.set(id, SessionState::Working, None, now),
            // Back from a permission prompt; otherwise nothing new.
            HookEvent::PostToolUse | HookEvent::PostToolUseFailure if current == Some(SessionState::Waiting) => {
                self.set(id, SessionState::Working, None, now)
            }
            HookEvent::PermissionRequest => {
                let tool = p.tool_name.as_deref().filter(|t| tool_name_ok(t)).unwrap_or("a tool");
                self.set(id, SessionState::Waiting, Some(format!("Claude needs your permission to use {tool}")), now)
            }
            HookEvent::Notification => {
                let kind = p.notification_type.as_deref().unwrap_or("");
                let needs_you = NEEDS_YOU.contains(&kind) || (kind == IDLE && current == Some(SessionState::Working));
                // Already waiting: the first, more precise message stays.
                if needs_you && current != Some(SessionState::Waiting) {
                    let msg = p.message.as_deref().and_then(first_line).or_else(|| Some("Claude needs you".into()));
                    self.set(id, SessionState::Waiting, msg, now);
                }
            }
            HookEvent::Stop => {
                self.set(id, SessionState::Done, p.last_assistant_message.as_deref().and_then(first_line), now)
            }
            HookEvent::StopFailure => {
                let why = p.last_assistant_message.as_deref().or(p.error.as_deref()).and_then(first_line);
                let msg = format!("failed: {}", why.as_deref().unwrap_or("unknown error"));
                self.set(id, SessionState::Done, first_line(&msg), now)
            }
            HookEvent::SessionEnd => match current {
                Some(SessionState::Done) => {
                    if let Some(s) = self.0.get_mut(id) {
                        s.ended = true;
                    }
                }
                Some(_) => {
                    self.0.remove(id);
                }
                None => {}
            },
            HookEvent::PostToolUse | HookEvent::PostToolUseFailure | HookEvent::SubagentStop => {}
        }
        *self != before
    }

    fn set(&mut self, id: &str, state: SessionState, message: Option<String>, now: i64) {
        if let Some(s) = self.0.get_mut(id) {
            if s.state != state || s.message != message || s.ended {
                *s = Session { state, since: now, message, ended: false };
            }
            return;
        }
        while self.0.len() >= MAX_SESSIONS {
            self.evict_one();
        }
        self.0.insert(id.to_string(), Session { state, since: now, message, ended: false });
    }

    /// Drops an ended record if there is one, else the one unchanged the longest.
    fn evict_one(&mut self) {
        let victim = self.0.iter().min_by_key(|(_, s)| (!s.ended, s.since)).map(|(id, _)| id.clone());
        if let Some(id) = victim {
            self.0.remove(&id);
        }
    }
}

/// `Bash`, `Edit`, `mcp__server__tool`: shown as it is; anything else is "a tool".
fn tool_name_ok(t: &str) -> bool {
    (1..=64).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b))
}

/// The first line with something on it, as printable text: control and bidirectional-override
/// characters become spaces, runs of spaces one, at most MAX_MESSAGE characters. None if empty.
pub fn first_line(text: &str) -> Option<String> {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    let mut out = String::new();
    let mut space = false;
    for c in line.chars() {
        let c = if c.is_control() || is_format(c) { ' ' } else { c };
        if c.is_whitespace() {
            space = !out.is_empty();
            continue;
        }
        if space {
            out.push(' ');
            space = false;
        }
        if out.chars().count() >= MAX_MESSAGE {
            out.push('…');
            break;
        }
        out.push(c);
    }
    (!out.is_empty()).then_some(out)
}

/// Invisible characters that change how text around them is shown (bidi overrides and isolates,
/// zero-width joiners, the BOM): a message must look like what it says.
fn is_format(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}' | '\u{061c}')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(event: &str, session: &str, extra: serde_json::Value) -> Hook {
        let mut v = serde_json::json!({"hook_event_name": event, "session_id": session, "cwd": "/x"});
        v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        parse(v.to_string().as_bytes()).unwrap()
    }
    fn run(s: &mut Sessions, steps: &[(&str, &str, serde_json::Value)]) -> Vec<(AgentState, Option<String>)> {
        steps
            .iter()
            .map(|(e, id, x)| {
                // Each step later than any before.
                let now = s.0.values().map(|r| r.since).max().unwrap_or(0) + 1;
                s.apply(&hook(e, id, x.clone()), now);
                let sh = s.shown();
                (sh.state, sh.message)
            })
            .collect()
    }
    use serde_json::json;

    #[test]
    fn a_print_mode_run_is_working_then_done_with_the_first_line_and_stays_done_after_it_ends() {
        let mut s = Sessions::default();
        let got = run(
            &mut s,
            &[
                ("SessionStart", "a", json!({"source": "startup"})),
                ("UserPromptSubmit", "a", json!({"prompt": "hi"})),
                ("Stop", "a", json!({"last_assistant_message": "\n  Hello **there**\nsecond"})),
                ("SessionEnd", "a", json!({"reason": "other"})),
            ],
        );
        let states: Vec<_> = got.iter().map(|g| g.0).collect();
        assert_eq!(states, [AgentState::None, AgentState::Working, AgentState::Done, AgentState::Done]);
        assert_eq!(got[3].1.as_deref(), Some("Hello **there**"));
        // The next session makes that result old news.
        run(&mut s, &[("SessionStart", "b", json!({}))]);
        assert_eq!(s.shown().state, AgentState::None);
        assert_eq!(s.0.len(), 1);
    }

    #[test]
    fn a_permission_prompt_waits_with_the_tool_and_the_answer_goes_back_to_working() {
        let mut s = Sessions::default();
        let got = run(
            &mut s,
            &[
                ("UserPromptSubmit", "a", json!({})),
                ("PreToolUse", "a", json!({"tool_name": "Bash"})),
                ("PermissionRequest", "a", json!({"tool_name": "Bash"})),
                (
                    "Notification",
                    "a",
                    json!({"notification_type": "permission_prompt", "message": "Claude needs your permission"}),
                ),
                ("PostToolUse", "a", json!({"tool_name": "Bash"})),
                ("Stop", "a", json!({"last_assistant_message": "ok"})),
            ],
        );
        let want = "Claude needs your permission to use Bash".to_string();
        assert_eq!(got[2], (AgentState::Waiting, Some(want.clone())));
        assert_eq!(got[3], (AgentState::Waiting, Some(want)), "the precise message stays");
        assert_eq!(got[4], (AgentState::Working, None));
        assert_eq!(got[5], (AgentState::Done, Some("ok".into())));
    }

    #[test]
    fn notifications_count_only_when_they_mean_the_user_is_needed() {
        let mut s = Sessions::default();
        run(&mut s, &[("Stop", "a", json!({"last_assistant_message": "fine"}))]);
        // A minute after a finished turn: still done.
        assert!(
            !s.apply(&hook("Notification", "a", json!({"notification_type": "idle_prompt", "message": "idle"})), 9)
        );
        assert!(!s.apply(&hook("Notification", "a", json!({"notification_type": "auth_success", "message": "x"})), 9));
        // A turn the user interrupted (no Stop) and then left: waiting.
        run(&mut s, &[("UserPromptSubmit", "a", json!({}))]);
        s.apply(
            &hook(
                "Notification",
                "a",
                json!({"notification_type": "idle_prompt", "message": "Claude is waiting for your input"}),
            ),
            10,
        );
        assert_eq!(
            s.shown(),
            Shown { state: AgentState::Waiting, message: Some("Claude is waiting for your input".into()) }
        );
        s.apply(&hook("PreToolUse", "b", json!({"tool_name": "AskUserQuestion"})), 11);
        assert_eq!(s.shown().message.as_deref(), Some("Claude has a question for you"), "the latest waiting one");
    }

    #[test]
    fn the_most_urgent_session_wins() {
        let mut s = Sessions::default();
        run(
            &mut s,
            &[
                ("Stop", "done", json!({"last_assistant_message": "d"})),
                ("UserPromptSubmit", "busy", json!({})),
                ("PermissionRequest", "stuck", json!({"tool_name": "Edit"})),
            ],
        );
        assert_eq!(s.shown().state, AgentState::Waiting);
        run(&mut s, &[("SessionEnd", "stuck", json!({}))]);
        assert_eq!(s.shown().state, AgentState::Working, "a session that ends while waiting is gone");
        run(
            &mut s,
            &[("StopFailure", "busy", json!({"error": "rate_limit", "last_assistant_message": "API Error: 429"}))],
        );
        assert_eq!(s.shown(), Shown { state: AgentState::Done, message: Some("failed: API Error: 429".into()) });
    }

    #[test]
    fn hostile_input_is_refused_or_defused() {
        assert_eq!(parse(b"not json").unwrap_err(), Refused::Malformed);
        assert_eq!(parse(br#"{"hook_event_name":"Evil","session_id":"a"}"#).unwrap_err(), Refused::UnknownEvent);
        assert_eq!(parse(br#"{"hook_event_name":"Stop","session_id":"../x"}"#).unwrap_err(), Refused::Malformed);
        assert_eq!(parse(br#"{"hook_event_name":"Stop","session_id":""}"#).unwrap_err(), Refused::Malformed);
        assert_eq!(
            parse(br#"{"hook_event_name":"Stop","session_id":"a","message":7}"#).unwrap_err(),
            Refused::Malformed
        );
        // Deep nesting: skipped without recursion where it is not read, refused where it is.
        let deep = |field: &str| {
            format!(
                r#"{{"hook_event_name":"Stop","session_id":"a","{field}":{}1{}}}"#,
                "[".repeat(5000),
                "]".repeat(5000)
            )
        };
        assert!(parse(deep("x").as_bytes()).is_ok());
        assert_eq!(parse(deep("message").as_bytes()).unwrap_err(), Refused::Malformed);
        // Terminal escapes, bidi overrides, zero-width characters: gone; length bounded.
        let m = first_line("\u{1b}[31mred\u{1b}[0m \u{202e}evil\u{200b}x\r\nnext").unwrap();
        assert!(!m.chars().any(|c| c.is_control() || is_format(c)), "{m:?}");
        assert_eq!(m, "[31mred [0m evil x");
        let long = first_line(&"é".repeat(10_000)).unwrap();
        assert_eq!(long.chars().count(), MAX_MESSAGE + 1);
        assert_eq!(first_line(" \n\t\n"), None);
        let mut s = Sessions::default();
        s.apply(&hook("PermissionRequest", "a", json!({"tool_name": "x; rm -rf /\u{1b}"})), 1);
        assert_eq!(s.shown().message.as_deref(), Some("Claude needs your permission to use a tool"));
    }

    #[test]
    fn sessions_are_bounded_and_survive_a_round_trip() {
        let mut s = Sessions::default();
        for i in 0..100 {
            s.apply(&hook("UserPromptSubmit", &format!("s{i}"), json!({})), i);
        }
        assert_eq!(s.0.len(), MAX_SESSIONS);
        assert!(s.0.contains_key("s99") && !s.0.contains_key("s0"), "the oldest go");
        assert_eq!(Sessions::from_json(Some(&s.to_json())), s);
        assert_eq!(Sessions::from_json(Some("{garbage")), Sessions::default());
    }
}
