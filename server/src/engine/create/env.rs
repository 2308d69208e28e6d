//! A sandbox's environment: `~/.sandbox/env` plus `--env`, written into
//! `/etc/profile.d/sandbox-env.sh` so that no value is ever interpreted.
use crate::engine::validate;
use crate::error::Result;

/// `~/.sandbox/env`: `KEY=value` lines (`export ` allowed, `#` comments); values literal. A file
/// that cannot be read whole (not UTF-8, a directory, too large) is an error: an API key missing
/// without a word would be worse.
pub fn user_env() -> Result<Vec<(String, String)>> {
    let path = crate::paths::sandbox_home().join("env");
    let Some(text) = crate::paths::read_text(&path, crate::paths::MAX_INPUT_FILE, "environment file")? else {
        return Ok(Vec::new());
    };
    Ok(parse_user_env(&text))
}

fn parse_user_env(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        match validate::env_pair(line) {
            Ok((k, v)) => out.push((k, unquote(v))),
            Err(_) => tracing::warn!("~/.sandbox/env: skipping a line that is not NAME=VALUE"),
        }
    }
    out
}

fn unquote(v: String) -> String {
    let quoted =
        v.len() >= 2 && ((v.starts_with('"') && v.ends_with('"')) || (v.starts_with('\'') && v.ends_with('\'')));
    if quoted { v[1..v.len() - 1].to_string() } else { v }
}

/// The profile script: every value single-quoted, so nothing in it is ever interpreted.
pub fn script(pairs: &[(String, String)]) -> String {
    let mut s = String::from("# Written by Agent Sandboxes from ~/.sandbox/env and --env; values are literal.\n");
    for (k, v) in pairs {
        s.push_str(&format!("export {k}={}\n", validate::shell_single_quote(v)));
    }
    s
}

/// What `user.sandbox.env-digest` holds: the environment file last written into the sandbox.
pub fn digest(script: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(script.as_bytes()))
}

/// `base` with each of `extra` added, or replacing the same name.
pub fn merge(base: Vec<(String, String)>, extra: &[(String, String)]) -> Vec<(String, String)> {
    let mut map = base;
    for (k, v) in extra {
        map.retain(|(kk, _)| kk != k);
        map.push((k.clone(), v.clone()));
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_env_lines_and_quoting() {
        let pairs = parse_user_env("# c\nexport A=1\nB='two words'\nC=\"x\"\nnot a pair\n\nD=a=b\n");
        let want = [("A", "1"), ("B", "two words"), ("C", "x"), ("D", "a=b")];
        assert_eq!(pairs, want.map(|(k, v)| (k.to_string(), v.to_string())));
    }

    #[test]
    fn values_are_single_quoted_and_merged_by_name() {
        let pairs =
            merge(vec![("A".into(), "1".into()), ("B".into(), "2".into())], &[("A".into(), "it's $(x)".into())]);
        assert_eq!(script(&pairs).lines().skip(1).collect::<Vec<_>>(), ["export B='2'", r"export A='it'\''s $(x)'"]);
        assert_eq!(digest("x").len(), 64);
    }
}
