//! Allowlists: strict domain validation (names reach Squid and dnsmasq configuration files, so
//! nothing but LDH labels gets through), the list format and the precedence `--domains-file` >
//! `~/.sandbox/allowed-domains.txt` > the bundled default. Lists are read on the host only.
//!
//! A line is `ENTRY [private]  # comment`: ENTRY is `example.com` (exactly that name),
//! `.example.com` (it and every subdomain) or `@NAME` (the extra list allowlists/extra/NAME.txt);
//! `private` lets that name resolve to, and be reached at, a private address (never the host).
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::error::{EngineError, Result};

/// The list shipped in the binary (`allowlists/default.txt`).
pub const DEFAULT_LIST: &str = include_str!("../../../../allowlists/default.txt");

/// Opt-in lists (`allowlists/extra/NAME.txt`): names that can carry data to anyone's account.
pub const EXTRAS: &[(&str, &str)] = &[
    ("go", include_str!("../../../../allowlists/extra/go.txt")),
    ("sentry", include_str!("../../../../allowlists/extra/sentry.txt")),
    ("telemetry", include_str!("../../../../allowlists/extra/telemetry.txt")),
];

/// An effective allowlist.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct List {
    /// `.d` = d and its subdomains; `d` = exactly d.
    pub names: BTreeSet<String>,
    /// The entries (of `names`) that may resolve to a private address.
    pub private: BTreeSet<String>,
}

impl List {
    pub fn union(&mut self, other: &List) {
        self.names.extend(other.names.iter().cloned());
        self.private.extend(other.private.iter().cloned());
    }
}

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

/// An entry as `allow`/`deny` take it: a domain, or `@NAME` for an extra list.
pub fn entry(v: &str) -> Result<String> {
    match v.trim().strip_prefix('@') {
        Some(name) => extra(name).map(|_| format!("@{}", name.to_ascii_lowercase())),
        None => domain(v),
    }
}

/// The extra list NAME.
pub fn extra(name: &str) -> Result<List> {
    let lower = name.to_ascii_lowercase();
    let Some((_, text)) = EXTRAS.iter().find(|(n, _)| *n == lower) else {
        let known: Vec<String> = EXTRAS.iter().map(|(n, _)| format!("@{n}")).collect();
        let shown: String = name.chars().flat_map(char::escape_default).take(40).collect();
        return Err(EngineError::invalid(
            "allowlist",
            format!("there is no extra list '@{shown}'"),
            format!("extra lists: {}", known.join(", ")),
        ));
    };
    parse_lines(text, &format!("allowlists/extra/{lower}.txt"), false)
}

/// Parses list text; `origin` names the file in errors.
pub fn parse(text: &str, origin: &str) -> Result<List> {
    parse_lines(text, origin, true)
}

fn parse_lines(text: &str, origin: &str, extras: bool) -> Result<List> {
    let mut out = List::default();
    for (i, line) in text.lines().enumerate() {
        let at = |why: String| {
            EngineError::invalid("allowlist", format!("{origin} line {}: {why}", i + 1), "fix or remove that line")
        };
        let mut words = line.split('#').next().unwrap_or("").split_whitespace();
        let Some(first) = words.next() else { continue };
        let private = match (words.next(), words.next()) {
            (None, _) => false,
            (Some("private"), None) => true,
            _ => return Err(at("a line holds one entry, optionally followed by `private`".into())),
        };
        if let Some(name) = first.strip_prefix('@') {
            if !extras || private {
                return Err(at(format!("'{first}' cannot be used here")));
            }
            out.union(&extra(name).map_err(|e| at(e.to_string()))?);
            continue;
        }
        let d = domain(first).map_err(|e| at(e.to_string()))?;
        if private {
            out.private.insert(d.clone());
        }
        out.names.insert(d);
    }
    Ok(out)
}

/// Where a sandbox's base list comes from (precedence order).
pub fn base_source(domains_file: Option<&Path>) -> Option<PathBuf> {
    if let Some(f) = domains_file {
        return Some(f.to_path_buf());
    }
    let user = user_list();
    user.is_file().then_some(user)
}

/// `~/.sandbox/allowed-domains.txt`: the user's own base list (replaces the default).
pub fn user_list() -> PathBuf {
    crate::paths::sandbox_home().join("allowed-domains.txt")
}

/// Reads the base list: the given file, else the user's override, else the default.
pub fn base_list(domains_file: Option<&Path>) -> Result<List> {
    match base_source(domains_file) {
        Some(p) => {
            // Bounded: a regular file of at most 1 MiB (`--domains-file /dev/zero` must not read for ever).
            let text = crate::paths::read_text(&p, crate::paths::MAX_INPUT_FILE, "domains file")?.ok_or_else(|| {
                EngineError::invalid(
                    "domains file",
                    format!("cannot read {}: it does not exist", p.display()),
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

/// base + allowed − denied (entries may name extra lists), with entries already covered by a
/// wildcard dropped (Squid warns about, and ignores, such overlaps). Names allowed on the
/// command line are never `private`: that takes an edit of the list file.
pub fn effective(base: &List, allowed: &[String], denied: &[String]) -> List {
    let expand = |entries: &[String]| {
        let mut l = List::default();
        for e in entries {
            match e.strip_prefix('@') {
                Some(x) => l.union(&extra(x).unwrap_or_default()),
                None => {
                    l.names.insert(e.clone());
                }
            }
        }
        l.names
    };
    let denied = expand(denied);
    let mut all: BTreeSet<String> = base.names.iter().chain(&expand(allowed)).cloned().collect();
    all.retain(|d| !denied.contains(d));
    let wild: Vec<String> = all.iter().filter(|d| d.starts_with('.')).cloned().collect();
    let private = base.private.iter().filter(|p| all.contains(*p)).cloned().collect();
    let names = all
        .into_iter()
        .filter(|d| {
            let name = d.trim_start_matches('.');
            !wild.iter().any(|w| w != d && covers(w, name))
        })
        .collect();
    List { names, private }
}

/// `a,b,@c` as stored in `user.sandbox.domains-allow` / `-deny` (each re-validated on read).
pub fn split_stored(v: Option<&str>) -> Vec<String> {
    v.unwrap_or("").split(',').filter_map(|d| entry(d).ok()).collect()
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
        assert_eq!(entry("@Go").unwrap(), "@go");
        for bad in ["@", "@nope", "@go/x", "@../x"] {
            assert!(entry(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn list_format_and_effective_set() {
        let base = parse("# c\n.wild.test\nx.wild.test   # covered\nexact.test\nvpn.test private # on the LAN\n", "t")
            .unwrap();
        assert_eq!(base.private.iter().collect::<Vec<_>>(), ["vpn.test"]);
        let eff = effective(&base, &["new.test".into()], &["exact.test".into(), "vpn.test".into()]);
        assert_eq!(eff.names.into_iter().collect::<Vec<_>>(), vec![".wild.test", "new.test"]);
        assert!(eff.private.is_empty(), "a denied private name is gone from both");
        assert!(covers(".wild.test", "a.b.wild.test") && covers(".wild.test", "wild.test"));
        assert!(!covers(".wild.test", "evilwild.test") && !covers("exact.test", "a.exact.test"));
        assert!(parse("good.test\nbad_name.test\n", "f").unwrap_err().to_string().contains("f line 2"));
        for bad in ["a.test public\n", "a.test private extra\n", "@go private\n", "@nope\n"] {
            assert!(parse(bad, "f").is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn extra_lists_expand_and_go_away_again() {
        let base = parse("@go\nexact.test\n", "t").unwrap();
        assert!(base.names.contains("proxy.golang.org"), "{base:?}");
        let base = parse("exact.test\n", "t").unwrap();
        let with = effective(&base, &["@sentry".into()], &[]);
        assert!(with.names.contains(".sentry.io"), "{with:?}");
        let without = effective(&base, &["@sentry".into()], &["@sentry".into()]);
        assert!(!without.names.contains(".sentry.io"), "{without:?}");
        assert!(extra("nope").unwrap_err().hint().unwrap_or_default().contains("@go"));
    }

    /// The bar for the default list: nothing that takes data to anyone's account without a
    /// credential, wildcards only where listed below, and a reason on every entry.
    #[test]
    fn the_default_list_is_curated() {
        let l = parse(DEFAULT_LIST, "default").unwrap();
        assert!(l.names.contains("api.anthropic.com") && l.names.contains("github.com"), "{l:?}");
        for gone in [".sentry.io", "proxy.golang.org", "sum.golang.org", "statsig.com", "api.statsig.com"] {
            assert!(!l.names.contains(gone), "{gone} is exfiltration-capable: it belongs on an extra list");
        }
        let wild: Vec<&String> = l.names.iter().filter(|d| d.starts_with('.')).collect();
        assert_eq!(wild, [".archive.ubuntu.com"], "a new wildcard needs a reason here");
        assert!(l.private.is_empty(), "the default list never opens private addresses");
        for (i, line) in DEFAULT_LIST.lines().enumerate() {
            let entry = line.split('#').next().unwrap_or("").trim();
            if !entry.is_empty() {
                let why = line.split_once('#').map(|(_, w)| w.trim()).unwrap_or("");
                assert!(why.len() > 3, "default.txt line {}: '{entry}' has no reason", i + 1);
            }
        }
        for (name, text) in EXTRAS {
            let x = parse_lines(text, name, false).unwrap();
            assert!(!x.names.is_empty() && x.private.is_empty(), "@{name}");
            assert!(text.contains("Why not by default"), "@{name} says why it is opt-in");
        }
    }
}
