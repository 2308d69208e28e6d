//! Input validation at the boundary: every check names the field, says what is wrong and what to
//! do. Nothing here touches Incus or the host.
use crate::error::{EngineError, Result};

pub const INSTANCE_PREFIX: &str = "agent-";
/// Incus instance names are DNS labels (≤ 63 characters): 63 − "agent-".
pub const MAX_NAME: usize = 57;

/// Sandbox names: ASCII letters, digits and '-' inside (Incus instance names are DNS labels, so
/// the seed's '.' and '_' are refused here with a clear message).
pub fn sandbox_name(name: &str) -> Result<()> {
    let hint = "use letters, digits and '-' (not first or last), at most 57 characters, e.g. 'feature-login'";
    let bad = |why: &str| EngineError::invalid("name", format!("'{}' {why}", printable(name)), hint);
    if name.is_empty() {
        return Err(bad("is empty"));
    }
    if name.len() > MAX_NAME {
        return Err(bad(&format!("is longer than {MAX_NAME} characters")));
    }
    if !name.is_ascii() {
        return Err(bad("contains non-ASCII characters"));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-')) {
        return Err(bad(&format!("contains {:?}", c)));
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Err(bad("starts or ends with '-'"));
    }
    Ok(())
}

pub fn instance_name(sandbox: &str) -> String {
    format!("{INSTANCE_PREFIX}{sandbox}")
}

/// The sandbox name of an instance, if it is one of ours (`agent-NAME`).
pub fn sandbox_of(instance: &str) -> Option<&str> {
    instance.strip_prefix(INSTANCE_PREFIX).filter(|n| !n.is_empty())
}

fn printable(s: &str) -> String {
    s.chars().flat_map(char::escape_default).take(80).collect()
}

/// A whole number made of ASCII digits only (`str::parse` would also take a leading '+').
fn digits(v: &str) -> Option<u32> {
    (!v.is_empty() && v.bytes().all(|b| b.is_ascii_digit())).then(|| v.parse().ok()).flatten()
}

pub fn cpu(v: &str) -> Result<u32> {
    match digits(v) {
        Some(n) if (1..=1024).contains(&n) => Ok(n),
        _ => Err(EngineError::invalid(
            "cpu",
            format!("'{}' is not a CPU count", printable(v)),
            "give a whole number of CPUs, e.g. --cpu 2",
        )),
    }
}

/// A size as Incus takes it — a number with KiB/MiB/GiB/TiB (or KB/MB/GB/TB) — in bytes.
fn size_bytes(v: &str) -> Option<u64> {
    let units: [(&str, u64); 8] = [
        ("KiB", 1 << 10),
        ("MiB", 1 << 20),
        ("GiB", 1 << 30),
        ("TiB", 1 << 40),
        ("KB", 1_000),
        ("MB", 1_000_000),
        ("GB", 1_000_000_000),
        ("TB", 1_000_000_000_000),
    ];
    units.iter().find_map(|(u, f)| {
        let n = v.strip_suffix(u)?;
        let ok = !n.is_empty() && n.len() <= 9 && n.bytes().all(|b| b.is_ascii_digit()) && !n.starts_with('0');
        ok.then(|| n.parse::<u64>().ok().map(|n| n * f)).flatten()
    })
}

/// Less memory than this and a sandbox does not boot to a working SSH login.
pub const MIN_MEMORY: u64 = 128 << 20;
/// Less disk than this does not hold a golden image and a checkout.
pub const MIN_DISK: u64 = 1 << 30;

fn size(field: &str, flag: &str, v: &str, min: u64, min_text: &str) -> Result<String> {
    match size_bytes(v) {
        Some(b) if b >= min => Ok(v.to_string()),
        Some(_) => Err(EngineError::invalid(
            field,
            format!("{v} is too small: a sandbox needs at least {min_text}"),
            format!("give {flag} {min_text} or more"),
        )),
        None => Err(EngineError::invalid(
            field,
            format!("'{}' is not a {field} size", printable(v)),
            format!("give a size with a unit, e.g. {flag} 4GiB or {flag} 512MiB"),
        )),
    }
}

/// Memory sizes as Incus takes them, at least `MIN_MEMORY`.
pub fn memory(v: &str) -> Result<String> {
    size("memory", "--memory", v, MIN_MEMORY, "128MiB")
}

/// Root disk sizes, at least `MIN_DISK`.
pub fn disk(v: &str) -> Result<String> {
    size("disk", "--disk", v, MIN_DISK, "1GiB")
}

/// A sandbox's environment: at most this many variables, each value at most `MAX_ENV_VALUE`
/// bytes, all of it at most `MAX_ENV_TOTAL` (it is stored in Incus and read by every `list`).
pub const MAX_ENV_VARS: usize = 256;
pub const MAX_ENV_VALUE: usize = 32 << 10;
pub const MAX_ENV_TOTAL: usize = 256 << 10;

/// The whole environment of a sandbox (`~/.sandbox/env` and `--env` together), bounded.
pub fn env_list(pairs: &[(String, String)]) -> Result<()> {
    let hint = "keep large data in a file in the sandbox; the environment is for settings and keys";
    if pairs.len() > MAX_ENV_VARS {
        return Err(EngineError::invalid("env", format!("{} variables: at most {MAX_ENV_VARS}", pairs.len()), hint));
    }
    if let Some((k, v)) = pairs.iter().find(|(_, v)| v.len() > MAX_ENV_VALUE) {
        return Err(EngineError::invalid(
            "env",
            format!("the value of {k} has {} bytes: at most 32 KiB", v.len()),
            hint,
        ));
    }
    let total: usize = pairs.iter().map(|(k, v)| k.len() + v.len() + 1).sum();
    if total > MAX_ENV_TOTAL {
        return Err(EngineError::invalid("env", format!("{total} bytes in all: at most 256 KiB"), hint));
    }
    Ok(())
}

/// A command's arguments (exec): at most `MAX_ARG` bytes each (the kernel's own limit on one
/// argument), `MAX_ARGS_TOTAL` in all, no NUL byte.
pub const MAX_ARG: usize = 128 << 10;
pub const MAX_ARGS_TOTAL: usize = 1 << 20;

pub fn command(argv: &[String]) -> Result<()> {
    let hint = "pass large data through a file in the sandbox (e.g. `sandbox exec NAME -- sh -c 'cat > f'` with stdin)";
    if argv.is_empty() {
        return Err(EngineError::invalid("command", "the command is empty", "give argv, e.g. [\"git\", \"status\"]"));
    }
    if let Some((i, a)) = argv.iter().enumerate().find(|(_, a)| a.len() > MAX_ARG) {
        return Err(EngineError::invalid(
            "command",
            format!("argument {} has {} bytes: at most 128 KiB per argument", i + 1, a.len()),
            hint,
        ));
    }
    let total: usize = argv.iter().map(|a| a.len() + 1).sum();
    if total > MAX_ARGS_TOTAL {
        return Err(EngineError::invalid("command", format!("the arguments have {total} bytes: at most 1 MiB"), hint));
    }
    if argv.iter().any(|a| a.contains('\0')) {
        return Err(EngineError::invalid("command", "an argument contains a NUL byte", "remove it"));
    }
    Ok(())
}

/// `K=V`: K a shell variable name; V anything (stored literally, never interpreted).
pub fn env_pair(v: &str) -> Result<(String, String)> {
    let Some((k, val)) = v.split_once('=') else {
        return Err(EngineError::invalid(
            "env",
            format!("'{}' has no '='", printable(v)),
            "write --env NAME=VALUE, e.g. --env RUST_LOG=debug",
        ));
    };
    env_key(k)?;
    if val.contains('\0') {
        return Err(EngineError::invalid("env", format!("the value of {k} contains a NUL byte"), "remove it"));
    }
    Ok((k.to_string(), val.to_string()))
}

pub fn env_key(k: &str) -> Result<()> {
    let ok = !k.is_empty()
        && k.len() <= 128
        && !k.as_bytes()[0].is_ascii_digit()
        && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(EngineError::invalid(
            "env",
            format!("'{}' is not a variable name", printable(k)),
            "use letters, digits and '_' (not starting with a digit)",
        ))
    }
}

/// A TCP/UDP port 1–65535 given as text.
pub fn port(field: &str, v: &str) -> Result<u16> {
    match digits(v) {
        Some(n) if (1..=65535).contains(&n) => Ok(n as u16),
        _ => Err(EngineError::invalid(
            field,
            format!("'{}' is not a port number", printable(v)),
            "give a number from 1 to 65535",
        )),
    }
}

pub fn slot(v: u32) -> Result<u32> {
    if (1..=99).contains(&v) {
        Ok(v)
    } else {
        Err(EngineError::invalid("slot", format!("{v} is out of range"), "slots are 1 to 99"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize, ts_rs::TS)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// `tcp`, `udp` or `both`.
pub fn protos(v: &str) -> Result<Vec<Proto>> {
    match v {
        "tcp" => Ok(vec![Proto::Tcp]),
        "udp" => Ok(vec![Proto::Udp]),
        "both" => Ok(vec![Proto::Tcp, Proto::Udp]),
        _ => Err(EngineError::invalid(
            "protocol",
            format!("'{}' is not a protocol", printable(v)),
            "use tcp, udp or both",
        )),
    }
}

/// Quotes a value for a POSIX shell so that it is taken literally ('…' with ' written as '\'').
pub fn shell_single_quote(v: &str) -> String {
    format!("'{}'", v.replace('\'', r"'\''"))
}

/// A cluster member name (`--target`): a hostname-like label.
pub fn member_name(v: &str) -> Result<()> {
    let ok = !v.is_empty()
        && v.len() <= 63
        && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
        && v.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(EngineError::invalid(
            "target",
            format!("'{v}' is not a cluster member name"),
            "`incus cluster list` shows the members",
        ))
    }
}

/// A snapshot's label: what Incus names the snapshot and commands take (`sandbox restore NAME
/// LABEL`). `turn-N` is for checkpoints (`checkpoint` true: allowed).
pub fn snapshot_label(v: &str, checkpoint: bool) -> Result<()> {
    let hint = "use letters, digits and - _ . (a letter or digit first), at most 63 characters, e.g. before-refactor";
    let ok = !v.is_empty()
        && v.len() <= 63
        && v.as_bytes()[0].is_ascii_alphanumeric()
        && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !ok {
        return Err(EngineError::invalid("label", format!("'{}' is not a snapshot label", printable(v)), hint));
    }
    if !checkpoint && turn_of(v).is_some() {
        return Err(EngineError::invalid(
            "label",
            format!("'{v}': turn-N labels are the per-turn checkpoints'"),
            "pick another label, e.g. before-refactor",
        ));
    }
    Ok(())
}

/// The turn number of a checkpoint's label (`turn-12` → 12).
pub fn turn_of(label: &str) -> Option<u32> {
    label.strip_prefix("turn-").and_then(digits)
}

/// Git branch names we accept (a safe subset of `git check-ref-format`).
pub fn branch(v: &str) -> Result<String> {
    let ok = !v.is_empty()
        && v.len() <= 200
        && !v.starts_with(['-', '/', '.'])
        && !v.ends_with(['/', '.'])
        && !v.contains("..")
        && !v.contains("//")
        && !v.ends_with(".lock")
        && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./+".contains(&b));
    if ok {
        Ok(v.to_string())
    } else {
        Err(EngineError::invalid(
            "branch",
            format!("'{}' is not a branch name we accept", printable(v)),
            "use letters, digits and - _ . / + (e.g. feature/login)",
        ))
    }
}

/// A revision given by the user (`--base`): a branch, tag or commit, with `~N`, `^` and `@{…}`
/// suffixes; never something git could take for an option.
pub fn git_rev(v: &str) -> Result<String> {
    let ok = !v.is_empty()
        && v.len() <= 200
        && !v.starts_with(['-', '/', '.'])
        && !v.contains("..")
        && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./+~^@{}".contains(&b));
    if ok {
        Ok(v.to_string())
    } else {
        Err(EngineError::invalid(
            "base",
            format!("'{}' is not a revision we accept", printable(v)),
            "give a branch, tag or commit (e.g. main, origin/main, HEAD~3, 1a2b3c4)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cases the extension's validators are tested on too (tests/validation-cases.json).
    #[test]
    fn the_shared_table_of_cases() {
        let table: serde_json::Value =
            serde_json::from_str(include_str!("../../../tests/validation-cases.json")).expect("the table is JSON");
        type Accepts = fn(&str) -> bool;
        let validators: [(&str, Accepts); 8] = [
            ("name", |v| sandbox_name(v).is_ok()),
            ("cpu", |v| cpu(v).is_ok()),
            ("memory", |v| memory(v).is_ok()),
            ("disk", |v| disk(v).is_ok()),
            ("env", |v| env_pair(v).is_ok()),
            ("repo", |v| crate::engine::creds::RepoRef::parse(v).is_ok()),
            ("branch", |v| branch(v).is_ok()),
            ("credential", |v| crate::engine::anthropic::credential::validate(v).is_ok()),
        ];
        let fields: Vec<&str> =
            table.as_object().unwrap().keys().map(String::as_str).filter(|k| !k.starts_with('_')).collect();
        assert_eq!(fields.len(), validators.len(), "a validator for every field: {fields:?}");
        for (field, ok) in validators {
            let cases = &table[field];
            for v in cases["valid"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()) {
                assert!(ok(v), "{field} {v:?} should be accepted");
            }
            for v in cases["invalid"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()) {
                assert!(!ok(v), "{field} {v:?} should be refused");
            }
        }
    }

    #[test]
    fn environment_and_arguments_are_bounded() {
        let pair = |k: &str, n: usize| (k.to_string(), "v".repeat(n));
        assert!(env_list(&[pair("A", MAX_ENV_VALUE)]).is_ok());
        assert!(env_list(&[pair("A", MAX_ENV_VALUE + 1)]).unwrap_err().to_string().contains("32 KiB"));
        let many: Vec<_> = (0..=MAX_ENV_VARS).map(|i| pair(&format!("V{i}"), 1)).collect();
        assert!(env_list(&many).unwrap_err().to_string().contains("256"));
        let big: Vec<_> = (0..9).map(|i| pair(&format!("T{i}"), 30 << 10)).collect();
        assert!(env_list(&big).unwrap_err().to_string().contains("256 KiB"));
        let args = |v: Vec<usize>| v.into_iter().map(|n| "a".repeat(n)).collect::<Vec<_>>();
        assert!(command(&args(vec![3, MAX_ARG])).is_ok());
        assert!(command(&args(vec![3, MAX_ARG + 1])).unwrap_err().to_string().contains("argument 2"));
        assert!(command(&args(vec![MAX_ARG; 9])).unwrap_err().to_string().contains("1 MiB"));
        assert!(command(&[]).is_err());
        assert!(command(&["a\0b".to_string()]).is_err());
    }

    #[test]
    fn names() {
        for ok in ["a", "feature-x", "A1", &"x".repeat(57)] {
            assert!(sandbox_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "a;b", "a/b", "..", "-a", "a-", "é", "a.b", "a_b", &"x".repeat(58), "$(x)"] {
            assert!(sandbox_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn values() {
        assert!(cpu("2;rm -rf /").is_err());
        assert_eq!(cpu("4").unwrap(), 4);
        assert!(memory("lots").is_err());
        assert!(memory("0GiB").is_err());
        assert_eq!(memory("512MiB").unwrap(), "512MiB");
        assert!(memory("4MiB").unwrap_err().to_string().contains("at least 128MiB"));
        assert!(memory("127MiB").is_err() && memory("128MiB").is_ok() && memory("1GB").is_ok());
        assert!(disk("1MiB").unwrap_err().to_string().contains("at least 1GiB"));
        assert!(disk("1GiB").is_ok() && disk("20GiB").is_ok() && disk("x").is_err());
        assert!(env_pair("NOEQ").is_err());
        assert!(env_pair("1A=x").is_err());
        assert_eq!(env_pair("A=b=c").unwrap(), ("A".into(), "b=c".into()));
        for bad in ["0", "65536", "abc", "-1", ""] {
            assert!(port("port", bad).is_err(), "{bad}");
        }
        assert_eq!(shell_single_quote("it's $(x)"), r"'it'\''s $(x)'");
        assert!(branch("feature/x").is_ok());
        assert!(snapshot_label("before-refactor_1.2", false).is_ok());
        for bad in ["", "-x", ".x", "a b", "a/b", "é", &"x".repeat(64), "turn-3"] {
            assert!(snapshot_label(bad, false).is_err(), "{bad}");
        }
        assert!(snapshot_label("turn-3", true).is_ok());
        assert_eq!((turn_of("turn-12"), turn_of("turn-+1"), turn_of("turn-")), (Some(12), None, None));
        for bad in ["-x", "a..b", "a b", "x.lock", "$(x)"] {
            assert!(branch(bad).is_err(), "{bad}");
        }
        for ok in ["main", "origin/main", "HEAD~3", "HEAD^", "main@{1}", "1a2b3c4"] {
            assert!(git_rev(ok).is_ok(), "{ok}");
        }
        for bad in ["", "--output=x", "a..b", "a b", "$(x)", "x;y", ":/fix", "a\nb"] {
            assert!(git_rev(bad).is_err(), "{bad}");
        }
    }
}
