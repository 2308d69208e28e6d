//! Squid's external ACL helper (`sandbox __squid-acl MODE`): which sandbox a client address is
//! and whether a name is on its list, read from the runtime files at each question. Squid reads
//! ACL files only at a reconfigure, and a reconfigure closes its listening sockets for a moment:
//! every restricted sandbox's new connection in that moment was refused. With the decisions
//! here, `allow`, `deny` and sandboxes coming and going change files only; Squid's configuration
//! stays the same.
//!
//! Protocol (external_acl_type with `concurrency`): `ID SRC [VALUE]` per line in, `ID OK|ERR
//! kv-pairs` per line out. `sandbox=NAME` becomes the transaction's annotation (the access log's
//! sandbox column); `message=NAME` is `%o` on the refusal page.
use std::io::{BufRead, Write};
use std::path::PathBuf;

use super::{domains, paths};

/// What the helper is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Is SRC a restricted sandbox?
    Member,
    /// Is the TLS SNI on SRC's list?
    Names,
    /// Is the HTTP Host on SRC's list?
    Hosts,
    /// Is the SNI on SRC's list of names allowed to private addresses?
    PrivateNames,
    /// Is the Host on SRC's private list?
    PrivateHosts,
}

impl Mode {
    pub fn arg(self) -> &'static str {
        match self {
            Mode::Member => "member",
            Mode::Names => "names",
            Mode::Hosts => "hosts",
            Mode::PrivateNames => "private-names",
            Mode::PrivateHosts => "private-hosts",
        }
    }
}

/// `IP NAME` per line: the restricted sandboxes (written at every sync, before Squid is asked).
pub fn members_file() -> PathBuf {
    paths::run().join("squid-members")
}

pub fn write_members(members: &[super::Member]) -> crate::error::Result<()> {
    let text: String = members.iter().filter(|m| m.restricted).map(|m| format!("{} {}\n", m.ip, m.name)).collect();
    paths::write(&members_file(), text.as_bytes())
}

fn sandbox_at(members: &str, src: &str) -> Option<String> {
    members.lines().find_map(|l| {
        let (ip, name) = l.split_once(' ')?;
        (ip == src && crate::engine::validate::sandbox_name(name).is_ok()).then(|| name.to_string())
    })
}

/// The answer to one question (without its channel id). `list` reads a sandbox's lists.
fn answer(mode: Mode, src: &str, value: &str, members: &str, mut list: impl FnMut(&str) -> domains::List) -> String {
    let Some(name) = sandbox_at(members, src) else { return "ERR".into() };
    let name_of = value.to_ascii_lowercase();
    let on = |set: &std::collections::BTreeSet<String>| set.iter().any(|e| domains::covers(e, &name_of));
    let yes = match mode {
        Mode::Member => true,
        Mode::Names | Mode::Hosts => on(&list(&name).names),
        Mode::PrivateNames | Mode::PrivateHosts => on(&list(&name).private),
    };
    format!("{} sandbox={name} message={name}", if yes { "OK" } else { "ERR" })
}

/// A file's identity (inode, mtime, size): every write replaces the file (a rename), so a new
/// inode means new content.
type Stamp = Option<(u64, i64, i64, u64)>;

fn stamp(p: &std::path::Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(p).ok()?;
    Some((m.ino(), m.mtime(), m.mtime_nsec(), m.len()))
}

/// The members file and each sandbox's lists, parsed again only when they change (a question
/// comes at every connection).
#[derive(Default)]
struct Files {
    members: (Stamp, String),
    lists: std::collections::HashMap<String, ([Stamp; 2], domains::List)>,
}

impl Files {
    fn members(&mut self) -> &str {
        let now = stamp(&members_file());
        if now.is_none() || now != self.members.0 {
            self.members = (now, std::fs::read_to_string(members_file()).unwrap_or_default());
        }
        &self.members.1
    }

    fn list(&mut self, name: &str) -> domains::List {
        let now = [stamp(&paths::list_file(name)), stamp(&paths::private_file(name))];
        match self.lists.get(name) {
            Some((seen, l)) if *seen == now && now[0].is_some() => l.clone(),
            _ => {
                let l = paths::read_list(name);
                self.lists.insert(name.to_string(), (now, l.clone()));
                l
            }
        }
    }
}

/// Answers Squid until it closes the pipe.
pub fn run(mode: Mode) -> std::process::ExitCode {
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    let mut files = Files::default();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let mut f = line.split_whitespace();
        let (Some(id), Some(src)) = (f.next(), f.next()) else { continue };
        let value = f.next().unwrap_or("-");
        let members = files.members().to_string();
        let a = answer(mode, src, value, &members, |n| files.list(n));
        if writeln!(out, "{id} {a}").and_then(|()| out.flush()).is_err() {
            break;
        }
    }
    std::process::ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_by_the_sandbox_of_the_address_and_its_lists() {
        let members = "10.100.0.105 shut\n10.100.0.107 other\n";
        let list = |name: &str| {
            let text = if name == "shut" { ".github.com\npypi.org\n" } else { "internal.test\n" };
            let mut l = domains::parse(text, "t").unwrap();
            if name == "other" {
                l.private.insert("internal.test".into());
            }
            l
        };
        let ask = |mode, src, v| answer(mode, src, v, members, list);
        assert_eq!(ask(Mode::Member, "10.100.0.105", "-"), "OK sandbox=shut message=shut");
        assert_eq!(ask(Mode::Member, "10.100.0.9", "-"), "ERR");
        assert_eq!(ask(Mode::Names, "10.100.0.105", "api.GitHub.com"), "OK sandbox=shut message=shut");
        assert_eq!(ask(Mode::Names, "10.100.0.105", "github.com"), "OK sandbox=shut message=shut");
        assert_eq!(ask(Mode::Hosts, "10.100.0.105", "pypi.org"), "OK sandbox=shut message=shut");
        // Exact names are exact; another sandbox's list is not this one's; no SNI is no name.
        assert_eq!(ask(Mode::Hosts, "10.100.0.105", "x.pypi.org"), "ERR sandbox=shut message=shut");
        assert_eq!(ask(Mode::Names, "10.100.0.105", "internal.test"), "ERR sandbox=shut message=shut");
        assert_eq!(ask(Mode::Names, "10.100.0.105", "-"), "ERR sandbox=shut message=shut");
        assert_eq!(ask(Mode::Names, "10.100.0.105", "evilgithub.com"), "ERR sandbox=shut message=shut");
        assert_eq!(ask(Mode::PrivateNames, "10.100.0.107", "internal.test"), "OK sandbox=other message=other");
        assert_eq!(ask(Mode::PrivateHosts, "10.100.0.105", "pypi.org"), "ERR sandbox=shut message=shut");
        // A forged members line cannot smuggle a name that is not a sandbox name.
        assert_eq!(answer(Mode::Member, "10.1.1.1", "-", "10.1.1.1 a=b\n", list), "ERR");
    }
}
