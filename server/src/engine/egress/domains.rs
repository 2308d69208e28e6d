//! Allowlists: strict domain validation (names reach Squid and dnsmasq configuration files, so
//! nothing but LDH labels gets through), the list format (one per line, `#` comments, a leading
//! `.` = the domain and its subdomains) and the precedence `--domains-file` >
//! `~/.sandbox/allowed-domains.txt` > the bundled default. Lists are read on the host only.
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::error::{EngineError, Result};

/// The list shipped in the binary (`allowlists/default.txt`).
pub const DEFAULT_LIST: &str = include_str!("../../../../allowlists/default.txt");

/// A validated entry: lower-case, `.example.com` (with subdomains) or `example.com` (exact).
pub fn domain(v: &str) -> Result<String> {
    let hint = "give a domain name such as api.example.com, or .example.com for it and every subdomain";
    let bad = |why: &str| {
        let shown: String = v.chars().flat_map(char::escape_default).take(80).collect();
        EngineError::invalid("domain", format!("'{shown}' {why}"), hint)
    };
    let d = v.trim().to_ascii_lowercase();
    let (wild, body) = match d.strip_prefix('.') {
        Some(b) => (true, b),
        None => (false, d.as_str()),
    };
    let body = body.strip_suffix('.').unwrap_or(body);
    if body.is_empty() {
        return Err(bad("is empty"));
    }
    if body.len() > 253 {
        return Err(bad("is longer than 253 characters"));
    }
    let labels: Vec<&str> = body.split('.').collect();
    if labels.len() < 2 {
        return Err(bad("has no dot (a top-level domain alone is too broad)"));
    }
    for l in &labels {
        if l.is_empty() || l.len() > 63 {
            return Err(bad("has an empty or over-long label"));
        }
        if !l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(bad("may contain only letters, digits, '-' and '.'"));
        }
        if l.starts_with('-') || l.ends_with('-') {
            return Err(bad("has a label that starts or ends with '-'"));
        }
    }
    if labels.last().is_some_and(|t| t.bytes().all(|b| b.is_ascii_digit())) {
        return Err(bad("is an IP address, not a name (allowlists hold names only)"));
    }
    Ok(if wild { format!(".{body}") } else { body.to_string() })
}

/// Parses list text; `origin` names the file in errors.
pub fn parse(text: &str, origin: &str) -> Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let d = domain(line).map_err(|e| {
            EngineError::invalid("allowlist", format!("{origin} line {}: {e}", i + 1), "fix or remove that line")
        })?;
        out.insert(d);
    }
    Ok(out)
}

/// Where a sandbox's base list comes from (precedence order).
pub fn base_source(domains_file: Option<&Path>) -> Option<PathBuf> {
    if let Some(f) = domains_file {
        return Some(f.to_path_buf());
    }
    let user = crate::paths::sandbox_home().join("allowed-domains.txt");
    user.is_file().then_some(user)
}

/// Reads the base list: the given file, else the user's override, else the default.
pub fn base_list(domains_file: Option<&Path>) -> Result<BTreeSet<String>> {
    match base_source(domains_file) {
        Some(p) => {
            let text = std::fs::read_to_string(&p).map_err(|e| {
                EngineError::invalid(
                    "domains file",
                    format!("cannot read {}: {e}", p.display()),
                    "give a readable file with one domain per line",
                )
            })?;
            parse(&text, &p.display().to_string())
        }
        None => parse(DEFAULT_LIST, "allowlists/default.txt"),
    }
}

/// True when `name` (a host name, no leading dot) is covered by `entry`.
pub fn covers(entry: &str, name: &str) -> bool {
    match entry.strip_prefix('.') {
        Some(base) => name == base || name.ends_with(entry),
        None => name == entry,
    }
}

/// base + allowed − denied, with entries already covered by a wildcard dropped (Squid warns
/// about, and ignores, such overlaps).
pub fn effective(base: &BTreeSet<String>, allowed: &[String], denied: &[String]) -> BTreeSet<String> {
    let mut all: BTreeSet<String> = base.iter().chain(allowed).cloned().collect();
    for d in denied {
        all.remove(d);
    }
    let wild: Vec<String> = all.iter().filter(|d| d.starts_with('.')).cloned().collect();
    all.into_iter()
        .filter(|d| {
            let name = d.trim_start_matches('.');
            !wild.iter().any(|w| w != d && covers(w, name))
        })
        .collect()
}

/// `a,b,c` as stored in `user.sandbox.domains-allow` / `-deny` (each re-validated on read).
pub fn split_stored(v: Option<&str>) -> Vec<String> {
    v.unwrap_or("").split(',').filter_map(|d| domain(d).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_is_strict() {
        assert_eq!(domain("API.GitHub.com").unwrap(), "api.github.com");
        assert_eq!(domain(".pypi.org").unwrap(), ".pypi.org");
        for bad in [
            "",
            ".",
            "com",
            "a..b",
            "-a.com",
            "a-.com",
            "a_b.com",
            "a.com\nx",
            "a.com;reconfigure",
            "1.2.3.4",
            "a b.com",
            "*.a.com",
            "\"a.com",
            "a/b.com",
        ] {
            assert!(domain(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn the_default_list_parses() {
        let l = parse(DEFAULT_LIST, "default").unwrap();
        assert!(l.contains("api.anthropic.com") && l.contains("github.com"), "{l:?}");
    }

    #[test]
    fn list_format_and_effective_set() {
        let base = parse("# c\n.wild.test\nx.wild.test   # covered\nexact.test\n\n", "t").unwrap();
        let eff = effective(&base, &["new.test".into()], &["exact.test".into()]);
        assert_eq!(eff.into_iter().collect::<Vec<_>>(), vec![".wild.test", "new.test"]);
        assert!(covers(".wild.test", "a.b.wild.test") && covers(".wild.test", "wild.test"));
        assert!(!covers(".wild.test", "evilwild.test") && !covers("exact.test", "a.exact.test"));
        assert!(parse("good.test\nbad_name.test\n", "f").unwrap_err().to_string().contains("f line 2"));
    }
}
