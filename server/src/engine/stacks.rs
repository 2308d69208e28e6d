//! Stack scripts: the ones shipped (embedded from `stacks/`), the user's (`~/.sandbox/stacks/`),
//! and a directory named by `SANDBOX_STACKS_DIR` (development and tests). Later sources win.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use include_dir::{Dir, include_dir};
use sha2::{Digest, Sha256};

use crate::error::EngineError;

static SHIPPED: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../stacks");

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parent {
    /// Built straight from the base image, after `lib/common.sh`.
    Image,
    /// Cloned from `golden-<stack>/ready`.
    Stack(String),
}

#[derive(Debug, Clone)]
pub struct Stack {
    pub name: String,
    pub parent: Parent,
    pub description: String,
    pub script: String,
    /// Where it came from ("shipped", or a file path).
    pub origin: String,
}

/// What every image build shares with the stack's own script.
#[derive(Debug, Clone)]
pub struct Shared {
    /// `lib/common.sh`: run first in image-rooted stacks (makes the container a sandbox).
    pub common: String,
    /// `lib/prelude.sh`: sourced first by every stack script (helpers, checks).
    pub prelude: String,
}

impl Stack {
    /// A short hash of what the stack's image is built from (script and prelude, plus the common
    /// setup for image stacks): the image is stale once it changes.
    pub fn inputs_hash(&self, shared: &Shared) -> String {
        let mut h = Sha256::new();
        h.update(self.script.as_bytes());
        h.update(shared.prelude.as_bytes());
        // Every image carries the pinned Claude Code: a new pin makes it stale.
        h.update(super::claude::pin().version.as_bytes());
        h.update(super::claude::SETUP_REVISION.as_bytes());
        if self.parent == Parent::Image {
            h.update(shared.common.as_bytes());
        }
        hex::encode(&h.finalize()[..8])
    }
}

pub fn validate_stack_name(name: &str) -> Result<(), EngineError> {
    let ok = !name.is_empty()
        && name.len() <= 40
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(EngineError::invalid(
            "stack",
            format!("'{name}' is not a valid stack name"),
            "use lowercase letters, digits and '-' (at most 40 characters), e.g. 'rust' or 'my-stack'",
        ))
    }
}

fn parse(name: &str, script: String, origin: String) -> Stack {
    let mut parent = if name == "base" { Parent::Image } else { Parent::Stack("base".into()) };
    let mut description = String::new();
    for line in script.lines().take(15) {
        if let Some(rest) = line.strip_prefix("# sandbox-stack:") {
            for kv in rest.split_whitespace() {
                if let Some(p) = kv.strip_prefix("parent=") {
                    parent = if p == "image" { Parent::Image } else { Parent::Stack(p.to_string()) };
                }
            }
        } else if let Some(d) = line.strip_prefix("# description:") {
            description = d.trim().to_string();
        }
    }
    Stack { name: name.to_string(), parent, description, script, origin }
}

/// Directories searched for stacks, in increasing precedence.
pub fn stack_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![crate::paths::user_stacks_dir()];
    if let Some(d) = std::env::var_os("SANDBOX_STACKS_DIR") {
        dirs.push(PathBuf::from(d));
    }
    dirs
}

fn read_dir_stacks(dir: &Path, out: &mut BTreeMap<String, Stack>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".sh")) else {
            continue;
        };
        if validate_stack_name(name).is_err() {
            continue;
        }
        if let Ok(script) = std::fs::read_to_string(&path) {
            out.insert(name.to_string(), parse(name, script, path.display().to_string()));
        }
    }
}

/// Every known stack by name.
pub fn all() -> BTreeMap<String, Stack> {
    let mut out = BTreeMap::new();
    for f in SHIPPED.files() {
        let Some(name) = f.path().to_str().and_then(|p| p.strip_suffix(".sh")) else {
            continue;
        };
        if name.contains('/') || validate_stack_name(name).is_err() {
            continue;
        }
        if let Some(script) = f.contents_utf8() {
            out.insert(name.to_string(), parse(name, script.to_string(), "shipped".into()));
        }
    }
    for dir in stack_dirs() {
        read_dir_stacks(&dir, &mut out);
    }
    out
}

pub fn find(name: &str) -> Result<Stack, EngineError> {
    validate_stack_name(name)?;
    let mut all = all();
    all.remove(name).ok_or_else(|| {
        let names: Vec<String> = all.keys().cloned().collect();
        EngineError::invalid(
            "stack",
            format!("unknown stack '{name}'"),
            format!(
                "available stacks: {}; or add a script at ~/.sandbox/stacks/{name}.sh",
                if names.is_empty() { "(none)".to_string() } else { names.join(", ") }
            ),
        )
    })
}

/// The shared scripts, from the same places as stacks (later sources win).
pub fn shared() -> Shared {
    Shared { common: lib_script("lib/common.sh"), prelude: lib_script("lib/prelude.sh") }
}

fn lib_script(path: &str) -> String {
    for dir in stack_dirs().iter().rev() {
        if let Ok(s) = std::fs::read_to_string(dir.join(path)) {
            return s;
        }
    }
    SHIPPED.get_file(path).and_then(|f| f.contents_utf8()).unwrap_or_default().to_string()
}

/// Stacks in build order for the requested ones (parents first, each once).
pub fn build_order(requested: &[String]) -> Result<Vec<Stack>, EngineError> {
    let all = all();
    let mut order: Vec<Stack> = Vec::new();
    fn visit(
        name: &str,
        all: &BTreeMap<String, Stack>,
        order: &mut Vec<Stack>,
        path: &mut Vec<String>,
    ) -> Result<(), EngineError> {
        if order.iter().any(|s| s.name == name) {
            return Ok(());
        }
        if path.iter().any(|p| p == name) {
            return Err(EngineError::invalid(
                "stack",
                format!("stack parents form a cycle: {} → {name}", path.join(" → ")),
                "fix the `# sandbox-stack: parent=` lines",
            ));
        }
        let stack = match all.get(name) {
            Some(s) => s.clone(),
            None => {
                return Err(find(name)
                    .err()
                    .unwrap_or_else(|| EngineError::invalid("stack", format!("unknown stack '{name}'"), "")));
            }
        };
        path.push(name.to_string());
        if let Parent::Stack(p) = &stack.parent {
            visit(p, all, order, path)?;
        }
        path.pop();
        order.push(stack);
        Ok(())
    }
    for name in requested {
        validate_stack_name(name)?;
        visit(name, &all, &mut order, &mut Vec::new())?;
    }
    Ok(order)
}
