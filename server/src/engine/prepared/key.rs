//! What a prepared image is keyed by, and what its setup runs. Both come from the repository's
//! files at one commit, read as git object ids (`git ls-tree`): the same listing is taken inside
//! the image being prepared and, at `start`, on the host from a shallow fetch — so an image
//! matches a branch exactly when its lockfiles and setup script are byte for byte the same.
use sha2::{Digest, Sha256};

/// The repository's own setup, run instead of anything detected.
pub const SETUP_SCRIPT: &str = ".sandbox/setup.sh";

/// One file of the key: its path and git object id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    pub path: String,
    pub oid: String,
}

/// What a lockfile at the top of the repository means, in the order they are looked for: one
/// JavaScript and one Python package manager at most (the first lockfile found wins).
const DETECTED: [(&str, &str, &[&str]); 8] = [
    ("js", "pnpm-lock.yaml", &["pnpm", "install", "--frozen-lockfile"]),
    ("js", "yarn.lock", &["yarn", "install", "--frozen-lockfile"]),
    ("js", "package-lock.json", &["npm", "ci"]),
    ("rust", "Cargo.lock", &["cargo", "fetch"]),
    ("python", "uv.lock", &["uv", "sync", "--frozen"]),
    ("python", "poetry.lock", &["poetry", "install", "--no-root", "--no-interaction"]),
    ("python", "requirements*.txt", &[]),
    ("go", "go.sum", &["go", "mod", "download"]),
];

fn is_requirements(name: &str) -> bool {
    name.starts_with("requirements") && name.ends_with(".txt") && !name.contains('/')
}

/// Whether a top-level file is part of the key.
fn is_keyed(path: &str) -> bool {
    path == SETUP_SCRIPT || is_requirements(path) || DETECTED.iter().any(|(_, f, _)| *f == path)
}

/// `git ls-tree` output (`MODE TYPE OID\tPATH` per line) → the keyed blobs, sorted.
pub fn entries(ls_tree: &str) -> Vec<Entry> {
    let mut out: Vec<Entry> = ls_tree
        .lines()
        .filter_map(|l| {
            let (head, path) = l.split_once('\t')?;
            let mut f = head.split_whitespace();
            let (_mode, kind, oid) = (f.next()?, f.next()?, f.next()?);
            let oid_ok = (40..=64).contains(&oid.len()) && oid.bytes().all(|b| b.is_ascii_hexdigit());
            (kind == "blob" && oid_ok && is_keyed(path)).then(|| Entry { path: path.to_string(), oid: oid.to_string() })
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The key: stack, repository and every keyed file's object id.
pub fn key(stack: &str, repo_id: &str, files: &[Entry]) -> String {
    let mut h = Sha256::new();
    h.update(format!("agent-sandboxes prepared v1\n{stack}\n{repo_id}\n"));
    for e in files {
        h.update(format!("{} {}\n", e.path, e.oid));
    }
    hex::encode(h.finalize())
}

/// One command of a setup, as argv, run as ubuntu in the project.
pub type Command = Vec<String>;

/// The setup for these files: the repository's script if it has one, else one command per
/// detected package manager. Empty: nothing to prepare.
pub fn setup(files: &[Entry]) -> Vec<Command> {
    let has = |p: &str| files.iter().any(|e| e.path == p);
    if has(SETUP_SCRIPT) {
        return vec![vec!["bash".into(), SETUP_SCRIPT.into()]];
    }
    let mut out: Vec<Command> = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for (family, file, argv) in DETECTED {
        if seen.contains(&family) {
            continue;
        }
        let reqs: Vec<&str> = files.iter().map(|e| e.path.as_str()).filter(|p| is_requirements(p)).collect();
        if file == "requirements*.txt" {
            if reqs.is_empty() {
                continue;
            }
            // A virtual environment in the project (the agent's `.venv/bin/python`), filled from each file.
            out.push(["python3", "-m", "venv", ".venv"].map(String::from).to_vec());
            for r in reqs {
                out.push([".venv/bin/pip", "install", "--quiet", "-r", r].map(String::from).to_vec());
            }
        } else if has(file) {
            out.push(argv.iter().map(|s| s.to_string()).collect());
        } else {
            continue;
        }
        seen.push(family);
    }
    out
}

/// What a setup is, in one line for people (`bash .sandbox/setup.sh`, `npm ci; cargo fetch`).
pub fn describe(cmds: &[Command]) -> String {
    cmds.iter().map(|c| c.join(" ")).collect::<Vec<_>>().join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const OID: &str = "0123456789abcdef0123456789abcdef01234567";

    fn listing(paths: &[&str]) -> String {
        paths.iter().map(|p| format!("100644 blob {OID}\t{p}\n")).collect()
    }

    #[test]
    fn only_lockfiles_and_the_setup_script_are_keyed() {
        let mut l =
            listing(&["README.md", "Cargo.lock", "requirements-dev.txt", ".sandbox/setup.sh", "src/Cargo.lock"]);
        l.push_str("040000 tree 89abcdef0123456789abcdef0123456789abcdef\tsrc\n");
        l.push_str("100644 blob nothex\tgo.sum\n");
        let e = entries(&l);
        let paths: Vec<&str> = e.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, [".sandbox/setup.sh", "Cargo.lock", "requirements-dev.txt"]);
    }

    #[test]
    fn the_key_changes_with_any_file_the_stack_or_the_repository() {
        let a = entries(&listing(&["Cargo.lock"]));
        let mut b = a.clone();
        b[0].oid = OID.replace('0', "f");
        let k = key("rust", "github.com/o/r", &a);
        assert_eq!(k, key("rust", "github.com/o/r", &a));
        assert_ne!(k, key("rust", "github.com/o/r", &b));
        assert_ne!(k, key("base", "github.com/o/r", &a));
        assert_ne!(k, key("rust", "github.com/o/s", &a));
        assert_eq!(k.len(), 64);
    }

    #[test]
    fn a_setup_script_wins_else_one_command_per_package_manager() {
        let e = |p: &[&str]| entries(&listing(p));
        assert_eq!(describe(&setup(&e(&[".sandbox/setup.sh", "package-lock.json"]))), "bash .sandbox/setup.sh");
        assert_eq!(
            describe(&setup(&e(&["package-lock.json", "yarn.lock", "Cargo.lock", "go.sum"]))),
            "yarn install --frozen-lockfile; cargo fetch; go mod download"
        );
        assert_eq!(
            describe(&setup(&e(&["requirements.txt", "requirements-dev.txt"]))),
            "python3 -m venv .venv; .venv/bin/pip install --quiet -r requirements-dev.txt; .venv/bin/pip install --quiet -r requirements.txt"
        );
        assert_eq!(describe(&setup(&e(&["uv.lock", "requirements.txt"]))), "uv sync --frozen");
        assert!(setup(&e(&["README.md"])).is_empty());
    }
}
