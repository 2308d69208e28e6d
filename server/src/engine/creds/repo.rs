//! Repository URLs: which host, which `owner/repo`, and the SSH URL the sandbox clones over
//! (deploy keys work over SSH only, so an https URL is cloned as `git@HOST:OWNER/REPO.git`).
use crate::error::{EngineError, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoRef {
    /// Host name as written (no port, no user).
    pub host: String,
    /// SSH port when not 22 (ssh:// form only).
    pub port: Option<u16>,
    /// SSH user (`git` unless the ssh:// URL names another).
    pub user: String,
    pub owner: String,
    pub name: String,
}

const HINT: &str =
    "use git@github.com:OWNER/REPO.git, https://github.com/OWNER/REPO or ssh://git@HOST[:PORT]/OWNER/REPO";

fn printable(s: &str) -> String {
    s.chars().flat_map(char::escape_default).take(80).collect()
}

fn seg_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s != "."
        && s != ".."
        && !s.starts_with('-')
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

fn host_ok(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && !h.starts_with(['-', '.'])
        && h.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b))
}

impl RepoRef {
    /// Parses the URL forms we can give a deploy key to; anything else is a clear error.
    pub fn parse(v: &str) -> Result<RepoRef> {
        let bad = |why: &str| {
            EngineError::invalid(
                "repository",
                format!("'{}' is not a repository URL we understand ({why})", printable(v)),
                HINT,
            )
        };
        if v.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("it contains spaces or control characters"));
        }
        let (user, hostport, path, scp) = if let Some(rest) = v.strip_prefix("https://") {
            let (h, p) = rest.split_once('/').ok_or_else(|| bad("no OWNER/REPO"))?;
            if h.contains('@') {
                return Err(bad("credentials in an https URL are not used; the sandbox gets a deploy key"));
            }
            ("git".to_string(), h, p, false)
        } else if let Some(rest) = v.strip_prefix("ssh://") {
            let (h, p) = rest.split_once('/').ok_or_else(|| bad("no OWNER/REPO"))?;
            let (u, h) = h.split_once('@').unwrap_or(("git", h));
            (u.to_string(), h, p, false)
        } else if let Some((u, rest)) = v.split_once('@').filter(|_| !v.contains("://")) {
            let (h, p) = rest.split_once(':').ok_or_else(|| bad("no ':' after the host"))?;
            (u.to_string(), h, p, true)
        } else {
            return Err(bad("unknown form"));
        };
        if !seg_ok(&user) {
            return Err(bad("bad user name"));
        }
        let (host, port) = match hostport.rsplit_once(':') {
            Some(_) if scp => return Err(bad("a port needs the ssh:// form")),
            Some((h, p)) => {
                let port: u16 = p.parse().ok().filter(|p| *p > 0).ok_or_else(|| bad("bad port"))?;
                (h, (port != 22).then_some(port))
            }
            None => (hostport, None),
        };
        if !host_ok(host) {
            return Err(bad("bad host name"));
        }
        let path = path.strip_suffix('/').unwrap_or(path);
        let path = path.strip_suffix(".git").unwrap_or(path);
        let mut parts = path.split('/');
        let (Some(owner), Some(name), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("the path must be OWNER/REPO"));
        };
        if !seg_ok(owner) || !seg_ok(name) {
            return Err(bad("OWNER and REPO may hold letters, digits, '-', '_' and '.'"));
        }
        Ok(RepoRef { host: host.to_ascii_lowercase(), port, user, owner: owner.to_string(), name: name.to_string() })
    }

    /// `owner/name`
    pub fn slug(&self) -> String {
        format!("{}/{}", self.owner, self.name)
    }

    /// What `git clone` gets inside the sandbox.
    pub fn ssh_url(&self) -> String {
        match self.port {
            Some(p) => format!("ssh://{}@{}:{p}/{}/{}.git", self.user, self.host, self.owner, self.name),
            None => format!("{}@{}:{}/{}.git", self.user, self.host, self.owner, self.name),
        }
    }

    /// The known_hosts name of the server (`[host]:port` for other ports).
    pub fn known_hosts_name(&self) -> String {
        match self.port {
            Some(p) => format!("[{}]:{p}", self.host),
            None => self.host.clone(),
        }
    }

    /// The REST API for this host: api.github.com, or GitHub Enterprise's `/api/v3`.
    pub fn default_api(&self) -> String {
        if self.host == "github.com" {
            "https://api.github.com".into()
        } else {
            format!("https://{}/api/v3", self.host)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let r = RepoRef::parse("git@github.com:o/r.git").unwrap();
        assert_eq!((r.host.as_str(), r.slug().as_str(), r.port), ("github.com", "o/r", None));
        assert_eq!(r.ssh_url(), "git@github.com:o/r.git");
        assert_eq!(RepoRef::parse("git@github.com:o/r").unwrap(), r);
        assert_eq!(RepoRef::parse("https://github.com/o/r").unwrap(), r);
        assert_eq!(RepoRef::parse("https://github.com/o/r.git").unwrap(), r);
        assert_eq!(RepoRef::parse("ssh://git@github.com/o/r").unwrap(), r);
        let g = RepoRef::parse("ssh://git@10.0.0.2:2222/acme/my.repo.git").unwrap();
        assert_eq!(g.ssh_url(), "ssh://git@10.0.0.2:2222/acme/my.repo.git");
        assert_eq!(g.known_hosts_name(), "[10.0.0.2]:2222");
        let e = RepoRef::parse("https://ghe.corp.example/o/r").unwrap();
        assert_eq!(e.default_api(), "https://ghe.corp.example/api/v3");
        assert_eq!(r.default_api(), "https://api.github.com");
        for bad in [
            "",
            "github.com/o/r",
            "https://github.com/o",
            "git@github.com:o/r;rm",
            "file:///x",
            "https://h/o/r/x",
            "https://tok@github.com/o/r",
            "git@github.com:2222/o/r",
            "ssh://git@-oops/o/r",
            "ssh://git@h:0/o/r",
            "git@h:o/-r",
            "https://github.com/../r",
            "git@github.com:o/r\n",
        ] {
            assert!(RepoRef::parse(bad).is_err(), "{bad:?}");
        }
    }
}
