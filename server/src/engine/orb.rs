//! macOS: Incus runs in an OrbStack Linux machine. `sandbox setup --orb MACHINE` creates the
//! machine if missing, installs and starts Incus in it (the steps of `sandbox host install`, piped in),
//! opens its HTTPS API on the machine's loopback (OrbStack forwards it to the Mac's localhost),
//! and adds it as a remote with a trust token — from then on the Mac talks HTTPS to Incus and
//! runs host-side steps through `orb run -m MACHINE`.
use super::host::Host;
use crate::error::{EngineError, Result};
use crate::progress::Progress;
use crate::remotes::{self, AddOptions, HostKind};

/// The distribution OrbStack creates the machine from (same as our tested Linux host).
const DISTRO: &str = "debian:bookworm";
const HTTPS_ADDRESS: &str = "127.0.0.1:8443";

pub fn remote_name(machine: &str) -> String {
    format!("orb-{machine}")
}

fn argv(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

async fn run_ok(host: &Host, args: &[String], stdin: Option<&[u8]>, progress: &dyn Progress) -> Result<String> {
    let out = host.run(args, stdin, |l| progress.line(l)).await?;
    if out.status != 0 {
        return Err(EngineError::failed(
            format!("`{}` failed: {}", args.join(" "), out.tail.join(" | ")),
            "check OrbStack is running (`orb status`) and try again",
        ));
    }
    Ok(out.stdout)
}

/// Makes the OrbStack machine an Incus host and selects it as the remote. Idempotent.
pub async fn setup_machine(machine: &str, nat: &str, progress: &dyn Progress) -> Result<String> {
    remotes::validate_name(machine)?;
    let mac = Host::local();
    if mac.which("orb").is_none() {
        return Err(EngineError::failed(
            "OrbStack's `orb` command is not on PATH",
            "install OrbStack (https://orbstack.dev), start it once, then run `sandbox setup` again",
        ));
    }
    let listed = run_ok(&mac, &argv(&["orb", "list"]), None, progress).await?;
    if !listed.lines().any(|l| l.split_whitespace().next() == Some(machine)) {
        progress.step(&format!("Creating OrbStack machine {machine} ({DISTRO})"));
        run_ok(&mac, &argv(&["orb", "create", DISTRO, machine]), None, progress).await?;
    }
    let vm = Host::Orb { machine: machine.to_string() };
    progress.step(&format!("Installing and starting Incus in {machine}"));
    run_ok(&vm, &argv(&["bash", "-s", "--", "--nat", nat]), Some(super::host_install::STEPS.as_bytes()), progress)
        .await?;
    let current = run_ok(&vm, &argv(&["incus", "config", "get", "core.https_address"]), None, progress).await?;
    let current = current.trim();
    let address = if current.starts_with("127.0.0.1:") || current.starts_with("[::1]:") {
        current.to_string()
    } else {
        progress.step(&format!("Opening the Incus API on {machine}'s loopback ({HTTPS_ADDRESS})"));
        run_ok(&vm, &argv(&["incus", "config", "set", "core.https_address", HTTPS_ADDRESS]), None, progress).await?;
        HTTPS_ADDRESS.to_string()
    };
    let name = remote_name(machine);
    progress.step("Trusting this Mac's client certificate");
    let client = format!("agent-sandboxes-{}", std::process::id());
    let token_out = run_ok(&vm, &argv(&["incus", "config", "trust", "add", &client, "-q"]), None, progress).await?;
    let token = token_out.lines().map(str::trim).rfind(|l| !l.is_empty()).unwrap_or_default().to_string();
    let url = format!("https://{address}");
    remotes::add(AddOptions {
        name: name.clone(),
        url: Some(url),
        token,
        host: HostKind::Orb { machine: machine.to_string() },
        ssh_jump: None,
    })
    .await?;
    remotes::use_remote(&name)?;
    Ok(name)
}

/// `sandbox nuke` on macOS: the machine itself, when the user asks for it too.
pub async fn delete_machine(machine: &str) -> Result<()> {
    run_ok(&Host::local(), &argv(&["orb", "delete", "-f", machine]), None, &crate::progress::Silent).await?;
    let name = remote_name(machine);
    if remotes::Remotes::load()?.remotes.contains_key(&name) {
        remotes::remove(&name)?;
    }
    Ok(())
}
