//! Claude Code in a golden image: the pinned native binary (fetched and cached on the host),
//! pushed as `/usr/local/bin/claude`, plus what lets it start with no question in every sandbox and
//! talk to the Anthropic API through the host:
//!
//! - `/etc/profile.d/zz-sandbox-claude.sh`: `ANTHROPIC_BASE_URL` = the sandbox's own endpoint and a
//!   placeholder `ANTHROPIC_AUTH_TOKEN` (a bearer token: Claude Code asks nothing about it, unlike
//!   an `ANTHROPIC_API_KEY`) — unless the environment already has a credential of its own; the
//!   self-updater off (`DISABLE_AUTOUPDATER`, also in the managed settings): updates come from
//!   rebuilding the image, and the binary is root's;
//! - a systemd socket unit on 127.0.0.1:PORT whose service (`systemd-socket-proxyd`) forwards each
//!   connection to the host proxy's unix socket, which the sandbox's `anthropic` disk device
//!   carries in (see `engine::anthropic`);
//! - Claude Code's hooks in the managed settings, reporting the agent's state to the host
//!   (hooks.rs, engine::agents);
//! - `~ubuntu/.claude.json` (onboarding done, /workspace/project trusted) and
//!   `~ubuntu/.claude/settings.json` (`skipDangerousModePermissionPrompt`, for `sandbox claude`'s
//!   `--dangerously-skip-permissions`), merged into what the image may already have.
use serde_json::{Value, json};

use super::fetch;
use super::pin::{Platform, pin};
use crate::engine::anthropic::{PLACEHOLDER, PORT, SANDBOX_DIR, SOCKET_NAME};
use crate::error::{EngineError, Result};
use crate::incus::{Config, ExecSpec, FileWrite, Incus, IncusError};
use crate::progress::Progress;

/// On a golden image: the Claude Code version it carries (copies and child images inherit it).
pub const VERSION_KEY: &str = crate::engine::keys::GOLDEN_CLAUDE_CODE;
/// What this step writes besides the binary, versioned: a change makes every image stale (it
/// is part of each stack's inputs hash). 2: the agent-state hooks.
pub const SETUP_REVISION: &str = "2";
pub const BINARY: &str = "/usr/local/bin/claude";
const PROFILE: &str = "/etc/profile.d/zz-sandbox-claude.sh";
const MANAGED: &str = "/etc/claude-code/managed-settings.json";
const SOCKET_UNIT: &str = "sandbox-anthropic.socket";
const PROXYD: &str = "/lib/systemd/systemd-socket-proxyd";
const TRUSTED: [&str; 2] = ["/workspace/project", "/workspace"];

fn profile() -> String {
    format!(
        "# Written by Agent Sandboxes. Claude Code reaches the Anthropic API through the host, which holds the\n\
         # credential: this sandbox has only a placeholder. A credential of your own in the environment\n\
         # (--env, ~/.sandbox/env) is used instead, directly. Updates come from rebuilding the golden image.\n\
         export DISABLE_AUTOUPDATER=1\n\
         if [ -z \"${{ANTHROPIC_API_KEY:-}}${{ANTHROPIC_AUTH_TOKEN:-}}${{CLAUDE_CODE_OAUTH_TOKEN:-}}${{ANTHROPIC_BASE_URL:-}}\" ] \\\n  \
         && [ -d {SANDBOX_DIR} ]; then\n  \
         export ANTHROPIC_BASE_URL=http://127.0.0.1:{PORT}\n  \
         export ANTHROPIC_AUTH_TOKEN={PLACEHOLDER}\n\
         fi\n"
    )
}

fn socket_unit() -> String {
    format!(
        "[Unit]\nDescription=Anthropic API through the host (the credential stays outside the sandbox)\n\
         # Listening before SSH answers: whoever logs in right after `sandbox start` finds it.\n\
         DefaultDependencies=no\nBefore=sockets.target sandbox-ssh.socket shutdown.target\nConflicts=shutdown.target\n\
         ConditionPathIsDirectory={SANDBOX_DIR}\n\n[Socket]\nListenStream=127.0.0.1:{PORT}\nFreeBind=yes\nNoDelay=yes\n\n\
         [Install]\nWantedBy=sockets.target\n"
    )
}

fn service_unit() -> String {
    format!(
        "[Unit]\nDescription=Anthropic API through the host: 127.0.0.1:{PORT} to the host proxy's socket\n\
         Requires={SOCKET_UNIT}\nAfter={SOCKET_UNIT}\n\n[Service]\n\
         ExecStart={PROXYD} --exit-idle-time=600 {SANDBOX_DIR}/{SOCKET_NAME}\nUser=nobody\nNoNewPrivileges=yes\n"
    )
}

/// `uname -m` and the C library of the image.
async fn platform(incus: &Incus, instance: &str) -> Result<Platform> {
    let probe = ExecSpec::new(["sh", "-c", "uname -m; ls /lib/ld-musl-* 2>/dev/null; true"]);
    let out = incus.exec(instance, &probe).await?;
    let text = out.stdout_str();
    let machine = text.lines().next().unwrap_or_default();
    Platform::from_machine(machine, text.contains("ld-musl"))
}

/// A JSON object file in the image with `patch` merged in (objects merged key by key); a file
/// that is there but is not a JSON object is never overwritten.
async fn merged(incus: &Incus, instance: &str, path: &str, patch: Value) -> Result<Vec<u8>> {
    let doc = merged_value(incus, instance, path, patch).await?;
    Ok(serde_json::to_vec_pretty(&doc).expect("serialisable"))
}

/// The managed settings: the updater off and our hooks in (see hooks.rs).
async fn managed_settings(incus: &Incus, instance: &str) -> Result<Vec<u8>> {
    let mut doc = merged_value(incus, instance, MANAGED, json!({"env": {"DISABLE_AUTOUPDATER": "1"}})).await?;
    super::hooks::add_to(&mut doc).ok_or_else(|| {
        EngineError::failed(
            format!("the \"hooks\" of {MANAGED} in the image are not an object of lists; it was left as it is"),
            "fix it in the stack script, then rebuild",
        )
    })?;
    Ok(serde_json::to_vec_pretty(&doc).expect("serialisable"))
}

async fn merged_value(incus: &Incus, instance: &str, path: &str, patch: Value) -> Result<Value> {
    let mut doc = match incus.pull_file(instance, path).await {
        Ok(bytes) => serde_json::from_slice::<Value>(&bytes).ok().filter(Value::is_object).ok_or_else(|| {
            EngineError::failed(
                format!("{path} in the image is not a JSON object; it was left as it is"),
                "fix or remove it in the stack script, then rebuild",
            )
        })?,
        Err(IncusError::NotFound { .. }) => json!({}),
        Err(e) => return Err(e.into()),
    };
    merge(&mut doc, patch);
    Ok(doc)
}

fn merge(doc: &mut Value, patch: Value) {
    match (doc, patch) {
        (Value::Object(d), Value::Object(p)) => {
            for (k, v) in p {
                merge(d.entry(k).or_insert(Value::Null), v);
            }
        }
        (d, p) => *d = p,
    }
}

fn user_config_patch() -> Value {
    let projects: serde_json::Map<String, Value> =
        TRUSTED.iter().map(|p| (p.to_string(), json!({"hasTrustDialogAccepted": true}))).collect();
    json!({"hasCompletedOnboarding": true, "projects": projects})
}

/// Installs the pinned Claude Code into a golden image being built (running). The binary is not
/// pushed again when the image already carries that version (a stack cloned from a parent that
/// has it); the settings and units are written either way (the parent's may be older). Returns
/// the config keys to record on the image.
pub async fn install(incus: &Incus, instance: &str, progress: &dyn Progress) -> Result<Config> {
    let version = &pin().version;
    let mut record = Config::new();
    record.insert(VERSION_KEY.into(), version.clone());
    let inst = incus.instance(instance).await?;
    if inst.config.get(VERSION_KEY) == Some(version) {
        progress.step(&format!("Claude Code {version} is in the parent image"));
    } else {
        let platform = platform(incus, instance).await?;
        let binary = fetch::ensure_cached(platform, progress).await?;
        progress.step(&format!("Installing Claude Code {version} ({}) as {BINARY}", platform.key()));
        incus.push_file_from(instance, BINARY, &binary, (0, 0, 0o755)).await?;
    }
    let units = "/etc/systemd/system";
    incus.push_dir(instance, "/etc/claude-code", 0, 0, 0o755).await?;
    incus.push_dir(instance, "/home/ubuntu/.claude", 1000, 1000, 0o700).await?;
    let managed = managed_settings(incus, instance).await?;
    let user = merged(incus, instance, "/home/ubuntu/.claude.json", user_config_patch()).await?;
    let settings = merged(
        incus,
        instance,
        "/home/ubuntu/.claude/settings.json",
        json!({"skipDangerousModePermissionPrompt": true}),
    )
    .await?;
    let ubuntu = |path, content: Vec<u8>| FileWrite { path, content, uid: 1000, gid: 1000, mode: 0o600 };
    let (socket_path, service_path) =
        (format!("{units}/{SOCKET_UNIT}"), format!("{units}/{}", SOCKET_UNIT.replace(".socket", ".service")));
    for f in [
        FileWrite::root(PROFILE, profile(), 0o644),
        FileWrite::root(MANAGED, managed, 0o644),
        FileWrite::root(&socket_path, socket_unit(), 0o644),
        FileWrite::root(&service_path, service_unit(), 0o644),
        ubuntu("/home/ubuntu/.claude.json", user),
        ubuntu("/home/ubuntu/.claude/settings.json", settings),
    ] {
        incus.push_file(instance, &f).await?;
    }
    check(incus, instance, version).await?;
    let curl = incus.exec(instance, &ExecSpec::new(["sh", "-c", "command -v curl"])).await?;
    if !curl.ok() {
        progress.step("warning: no curl in the image: Claude Code's hooks cannot report the agent's state to the host");
    }
    Ok(record)
}

/// The socket unit enabled, the forwarder present, and `claude --version` answering as ubuntu.
async fn check(incus: &Incus, instance: &str, version: &str) -> Result<()> {
    let enable = ExecSpec::new(["systemctl", "enable", "--quiet", SOCKET_UNIT]);
    let out = incus.exec(instance, &enable).await?;
    let proxyd = incus.exec(instance, &ExecSpec::new(["test", "-x", PROXYD])).await?;
    if !out.ok() || !proxyd.ok() {
        return Err(EngineError::failed(
            format!("cannot enable {SOCKET_UNIT} ({}): {}", PROXYD, out.stderr_str().trim()),
            "the image needs systemd with systemd-socket-proxyd (Debian 12, Ubuntu 24.04)",
        ));
    }
    // A scratch HOME: the check must leave nothing in ubuntu's.
    let home = "/tmp/claude-version-check";
    let v = ExecSpec::new(["sh", "-c", "mkdir -p \"$HOME\" && claude --version; s=$?; rm -rf \"$HOME\"; exit $s"])
        .as_user(1000, 1000, "/tmp")
        .env("HOME", home);
    let out = incus.exec(instance, &v).await?;
    if !out.ok() || !out.stdout_str().contains(version) {
        return Err(EngineError::failed(
            format!("`claude --version` in the image said: {} {}", out.stdout_str().trim(), out.stderr_str().trim()),
            "the image's C library may not fit the binary (glibc vs musl)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_keeps_what_the_image_had() {
        let mut doc = json!({"projects": {"/other": {"x": 1}}, "theme": "dark", "hasCompletedOnboarding": false});
        merge(&mut doc, user_config_patch());
        assert_eq!(doc["theme"], "dark");
        assert_eq!(doc["projects"]["/other"]["x"], 1);
        assert_eq!(doc["projects"]["/workspace/project"]["hasTrustDialogAccepted"], true);
        assert_eq!(doc["hasCompletedOnboarding"], true);
    }

    #[test]
    fn the_profile_keeps_a_credential_of_the_users_own() {
        let p = profile();
        assert!(p.contains(&format!("ANTHROPIC_BASE_URL=http://127.0.0.1:{PORT}")));
        assert!(p.contains("${ANTHROPIC_API_KEY:-}"), "{p}");
        // Sourced in order after sandbox-env.sh, which holds --env and ~/.sandbox/env.
        assert!(PROFILE.rsplit('/').next().unwrap() > "sandbox-env.sh");
        let status = std::process::Command::new("sh").arg("-n").arg("-c").arg(&p).status().unwrap();
        assert!(status.success(), "the profile script parses");
    }
}
