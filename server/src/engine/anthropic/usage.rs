//! Token use per sandbox: read from the Messages API's answers as they stream through the proxy
//! (the `usage` of a JSON answer; `message_start` and `message_delta` of a server-sent-event
//! stream), summed per model, stored in Incus as `user.sandbox.usage` (JSON) so every client sees
//! it in `sandbox/changed`.
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The Incus config key holding a sandbox's totals.
pub const KEY: &str = crate::engine::keys::USAGE;
/// Bounds on what is kept (the answers come from the upstream, still: bounded).
const MAX_MODELS: usize = 32;
const MAX_MODEL_NAME: usize = 100;
/// A JSON answer is read for its usage up to this size (larger ones pass through uncounted).
pub const MAX_JSON: usize = 4 << 20;
/// An event-stream line longer than this is skipped for counting (it still passes through).
const MAX_LINE: usize = 1 << 20;

/// Counters of one model, or of all of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "camelCase", default)]
pub struct Tokens {
    // Numbers in JSON (far below 2^53 in practice), not bigint.
    #[ts(type = "number")]
    pub requests: u64,
    #[ts(type = "number")]
    pub input_tokens: u64,
    #[ts(type = "number")]
    pub output_tokens: u64,
    #[ts(type = "number")]
    pub cache_read_tokens: u64,
    #[ts(type = "number")]
    pub cache_write_tokens: u64,
}

/// a + b, saturating.
pub fn sum(a: &Tokens, b: &Tokens) -> Tokens {
    let mut t = *a;
    t.add(b);
    t
}

impl Tokens {
    fn add(&mut self, o: &Tokens) {
        self.requests = self.requests.saturating_add(o.requests);
        self.input_tokens = self.input_tokens.saturating_add(o.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(o.output_tokens);
        self.cache_read_tokens = self.cache_read_tokens.saturating_add(o.cache_read_tokens);
        self.cache_write_tokens = self.cache_write_tokens.saturating_add(o.cache_write_tokens);
    }
}

/// One model's share.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub struct ModelUsage {
    pub model: String,
    #[serde(flatten)]
    #[ts(flatten)]
    pub tokens: Tokens,
}

/// A sandbox's totals, and per model.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    #[serde(flatten)]
    #[ts(flatten)]
    pub total: Tokens,
    #[serde(default)]
    pub models: Vec<ModelUsage>,
}

impl Usage {
    /// Adds one answer's counts.
    pub fn record(&mut self, model: &str, t: &Tokens) {
        self.total.add(t);
        let model: String = model.chars().filter(|c| !c.is_control()).take(MAX_MODEL_NAME).collect();
        let model = if model.is_empty() { "unknown".to_string() } else { model };
        if let Some(m) = self.models.iter_mut().find(|m| m.model == model) {
            m.tokens.add(t);
        } else if self.models.len() < MAX_MODELS {
            self.models.push(ModelUsage { model, tokens: *t });
        } else if let Some(last) = self.models.last_mut() {
            // Past the bound, the rest is summed into the last one.
            last.tokens.add(t);
        }
    }

    /// Reads the Incus key's value; anything unreadable (or absurdly large) counts as nothing.
    pub fn from_config(value: Option<&str>) -> Option<Usage> {
        let v = value.filter(|v| !v.is_empty() && v.len() <= 64 * 1024)?;
        let mut u: Usage = serde_json::from_str(v).ok()?;
        u.models.truncate(MAX_MODELS);
        Some(u)
    }

    pub fn to_config(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The usage of one answer (`message`, or the `usage` object of an event), added field by field:
/// a later `message_delta` carries cumulative counts, so later values replace earlier ones.
fn apply_usage(t: &mut Tokens, usage: &Value) {
    let get = |k: &str| usage.get(k).and_then(Value::as_u64);
    if let Some(v) = get("input_tokens") {
        t.input_tokens = v;
    }
    if let Some(v) = get("output_tokens") {
        t.output_tokens = v;
    }
    if let Some(v) = get("cache_read_input_tokens") {
        t.cache_read_tokens = v;
    }
    if let Some(v) = get("cache_creation_input_tokens") {
        t.cache_write_tokens = v;
    }
}

/// What the proxy learnt from one answer: its model and its counts (requests = 1), or nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    pub model: String,
    pub tokens: Tokens,
    counted: bool,
}

impl Seen {
    pub fn is_counted(&self) -> bool {
        self.counted
    }
}

/// A JSON answer (`POST /v1/messages` without `stream`): its top-level `model` and `usage`.
pub fn from_json(body: &[u8]) -> Seen {
    let Ok(v) = serde_json::from_slice::<Value>(body) else { return Seen::default() };
    let Some(usage) = v.get("usage").filter(|u| u.is_object()) else { return Seen::default() };
    let mut s = Seen { model: v.get("model").and_then(Value::as_str).unwrap_or("").to_string(), ..Default::default() };
    apply_usage(&mut s.tokens, usage);
    s.tokens.requests = 1;
    s.counted = true;
    s
}

/// Reads a server-sent-event stream as it passes, chunk by chunk, never holding more than one
/// line: `message_start` gives the model and the input counts, `message_delta` the output count.
#[derive(Debug, Default)]
pub struct SseReader {
    line: Vec<u8>,
    skipping: bool,
    seen: Seen,
}

impl SseReader {
    pub fn feed(&mut self, mut chunk: &[u8]) {
        while let Some(pos) = chunk.iter().position(|&b| b == b'\n') {
            if !self.skipping {
                self.line.extend_from_slice(&chunk[..pos]);
                let line = std::mem::take(&mut self.line);
                self.on_line(&line);
            }
            self.skipping = false;
            self.line.clear();
            chunk = &chunk[pos + 1..];
        }
        if !self.skipping {
            self.line.extend_from_slice(chunk);
            if self.line.len() > MAX_LINE {
                self.line = Vec::new();
                self.skipping = true;
            }
        }
    }

    fn on_line(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(data) = line.strip_prefix(b"data:") else { return };
        let Ok(v) = serde_json::from_slice::<Value>(data.trim_ascii()) else { return };
        match v.get("type").and_then(Value::as_str) {
            Some("message_start") => {
                let msg = &v["message"];
                if let Some(m) = msg.get("model").and_then(Value::as_str) {
                    self.seen.model = m.to_string();
                }
                if let Some(u) = msg.get("usage") {
                    apply_usage(&mut self.seen.tokens, u);
                }
                self.seen.tokens.requests = 1;
                self.seen.counted = true;
            }
            Some("message_delta") => {
                if let Some(u) = v.get("usage") {
                    apply_usage(&mut self.seen.tokens, u);
                    self.seen.tokens.requests = 1;
                    self.seen.counted = true;
                }
            }
            _ => {}
        }
    }

    /// What the stream said (also when it was cut short: what arrived counts).
    pub fn finish(self) -> Seen {
        self.seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = "event: message_start\n\
data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"claude-x\",\"usage\":{\"input_tokens\":11,\"cache_creation_input_tokens\":3,\"cache_read_input_tokens\":5,\"output_tokens\":1}}}\n\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"usage: {\\\"output_tokens\\\": 999}\"}}\n\n\
event: message_delta\n\
data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":7}}\n\n\
event: message_stop\n\
data: {\"type\":\"message_stop\"}\n\n";

    fn want() -> Tokens {
        Tokens { requests: 1, input_tokens: 11, output_tokens: 7, cache_read_tokens: 5, cache_write_tokens: 3 }
    }

    #[test]
    fn a_stream_split_anywhere_gives_the_same_counts() {
        for size in [1, 2, 3, 7, 64, STREAM.len()] {
            let mut r = SseReader::default();
            for c in STREAM.as_bytes().chunks(size) {
                r.feed(c);
            }
            let s = r.finish();
            assert_eq!((s.model.as_str(), s.tokens), ("claude-x", want()), "chunks of {size}");
        }
    }

    #[test]
    fn crlf_lines_and_a_stream_cut_after_message_start_count_what_arrived() {
        let mut r = SseReader::default();
        r.feed(STREAM.replace('\n', "\r\n").as_bytes());
        assert_eq!(r.finish().tokens, want());
        let cut = &STREAM[..STREAM.find("event: content_block_delta").unwrap()];
        let mut r = SseReader::default();
        r.feed(cut.as_bytes());
        let s = r.finish();
        assert!(s.is_counted());
        assert_eq!((s.tokens.input_tokens, s.tokens.output_tokens), (11, 1));
    }

    #[test]
    fn garbage_and_huge_lines_count_nothing_and_do_not_grow_memory() {
        let mut r = SseReader::default();
        r.feed(b"data: {not json\n\ndata: [1,2]\n");
        r.feed(&vec![b'x'; MAX_LINE + 10]);
        assert!(r.line.is_empty(), "a huge line is dropped, not kept");
        r.feed(b"still the huge line\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":2}}\n");
        let s = r.finish();
        assert_eq!((s.tokens.output_tokens, s.tokens.requests), (2, 1));
    }

    #[test]
    fn json_answers_and_errors() {
        let s = from_json(br#"{"model":"m1","usage":{"input_tokens":4,"output_tokens":9}}"#);
        assert_eq!(
            (s.model.as_str(), s.tokens.input_tokens, s.tokens.output_tokens, s.tokens.requests),
            ("m1", 4, 9, 1)
        );
        assert!(!from_json(br#"{"type":"error","error":{"type":"overloaded_error"}}"#).is_counted());
        assert!(!from_json(b"\x1f\x8b not json").is_counted());
    }

    #[test]
    fn totals_per_model_round_trip_through_the_incus_key() {
        let mut u = Usage::default();
        u.record("a", &want());
        u.record("b", &want());
        u.record("a", &want());
        assert_eq!(u.total.requests, 3);
        assert_eq!(u.total.output_tokens, 21);
        assert_eq!(
            u.models.iter().map(|m| (m.model.as_str(), m.tokens.requests)).collect::<Vec<_>>(),
            [("a", 2), ("b", 1)]
        );
        let text = u.to_config();
        assert!(text.contains("\"inputTokens\":33"), "{text}");
        assert_eq!(Usage::from_config(Some(&text)), Some(u));
        assert_eq!(Usage::from_config(Some("{broken")), None);
        assert_eq!(Usage::from_config(None), None);
    }

    #[test]
    fn model_names_are_bounded() {
        let mut u = Usage::default();
        for i in 0..100 {
            u.record(&format!("model-{i}\u{7}"), &want());
        }
        assert_eq!(u.models.len(), MAX_MODELS);
        assert_eq!(u.total.requests, 100);
        assert_eq!(u.models.iter().map(|m| m.tokens.requests).sum::<u64>(), 100);
        assert!(u.models.iter().all(|m| !m.model.contains('\u{7}')));
    }
}
