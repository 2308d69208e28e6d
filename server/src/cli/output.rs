//! Rendering helpers: JSON to stdout for scripts, tables for people. Every write ignores a closed
//! stream: SIGPIPE is ignored (a reader that goes away must never kill a command half-way), and
//! a failed write of output changes nothing the command did.
use serde::Serialize;

/// A line to stdout (data); a closed stdout is not an error.
macro_rules! outln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

/// Text to stdout without a newline.
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($t)*);
    }};
}

/// A line to stderr (progress, errors); a closed stderr is not an error.
macro_rules! errln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($t)*);
    }};
}

/// Text to stderr without a newline.
macro_rules! err {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), $($t)*);
    }};
}

/// Output of an endless stream (`denials --follow`, `exec`'s output) to `out`: once the reader of
/// stdout has gone (`| head`), the command ends as SIGPIPE would end it (exit 141) rather than
/// write to nobody for ever; a closed stderr alone changes nothing.
pub fn stream(out: &mut dyn std::io::Write, data: &[u8], is_stdout: bool) {
    if let Err(e) = out.write_all(data).and_then(|()| out.flush())
        && is_stdout
        && e.kind() == std::io::ErrorKind::BrokenPipe
    {
        std::process::exit(141);
    }
}

pub fn json<T: Serialize>(value: &T) {
    outln!("{}", serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".into()));
}

/// A closed set's value as the protocol spells it (`created`, `filtered`, …).
pub fn word<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

/// A plain left-aligned table.
pub fn table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let parts: Vec<String> = cells.iter().enumerate().map(|(i, c)| format!("{:<w$}", c, w = widths[i])).collect();
        outln!("{}", parts.join("  ").trim_end());
    };
    line(headers.iter().map(|s| s.to_string()).collect());
    for r in rows {
        line(r.clone());
    }
}

/// The AGENT cell of `sandbox list`: the state and for how long ("waiting 2m"), or "-".
pub fn agent_cell(a: &crate::engine::agents::Agent) -> String {
    if a.state == crate::engine::agents::AgentState::None {
        return "-".into();
    }
    let age = a
        .since
        .as_deref()
        .and_then(|s| time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok())
        .map(|t| (time::OffsetDateTime::now_utc() - t).whole_seconds().max(0));
    match age {
        Some(s) => format!("{} {}", a.state.as_str(), short_age(s)),
        None => a.state.as_str().into(),
    }
}

fn short_age(s: i64) -> String {
    match s {
        ..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_are_short() {
        assert_eq!([short_age(5), short_age(125), short_age(7300), short_age(90000)], ["5s", "2m", "2h", "1d"]);
    }
}
