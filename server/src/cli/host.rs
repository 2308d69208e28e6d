//! `sandbox host install`: this machine as a sandbox host. Runs before any Incus client exists
//! (Incus may not be installed yet), and as root: through sudo when the caller is not, after
//! saying why.
use std::os::unix::process::CommandExt;
use std::process::{ExitCode, Stdio};

use clap::{Args, Subcommand};

use crate::engine::host::Host;
use crate::engine::host_install::{self, InstallOptions, Nat};
use crate::engine::{EngineError, Result};

#[derive(Debug, Subcommand)]
pub enum HostCmd {
    /// Install and start Incus (btrfs storage pool, bridge) and the host tools sandboxes use.
    /// Needs root: run as another user, it says why and asks sudo. Idempotent.
    Install(InstallArgs),
}

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Sandboxes reach the internet through the bridge's NAT (stacks other than `minimal` need it
    /// to build); off: they reach only this machine.
    #[arg(long, value_enum, default_value = "off", env = "SANDBOX_NAT")]
    nat: Nat,
    /// Size of the btrfs storage pool (a loop file), when it is created.
    #[arg(long, value_name = "SIZE", default_value = "20GiB", env = "SANDBOX_POOL_SIZE")]
    pool_size: String,
    #[command(flatten)]
    hold: super::terminal::Hold,
}

/// Environment the steps read that a sudo hop must keep (`sudo` drops the rest).
const KEPT_ENV: [&str; 2] = ["SANDBOX_BRIDGE", "SANDBOX_BRIDGE_CIDR"];

pub fn run(cmd: HostCmd) -> Result<ExitCode> {
    match cmd {
        HostCmd::Install(a) => {
            let wait = a.hold.wait_on_error;
            super::terminal::held(wait, install(a))
        }
    }
}

fn install(a: InstallArgs) -> Result<ExitCode> {
    host_install::validate_pool_size(&a.pool_size)?;
    let o = InstallOptions { nat: a.nat, pool_size: a.pool_size };
    errln!("{}", host_install::explanation(&o));
    if !nix::unistd::geteuid().is_root() {
        return through_sudo(&o, a.hold.wait_on_error);
    }
    errln!("Running the setup steps as root…");
    let argv = host_install::bash_argv(&o);
    let status = std::process::Command::new(&argv[0])
        .args(&argv[1..])
        // The steps set up this machine's own daemon at its standard socket; a client's setting
        // (the sidecar's, inherited by VS Code's terminal) would make them wait on another one.
        .env_remove("INCUS_SOCKET")
        .stdin(Stdio::null())
        .status()
        .map_err(|e| EngineError::failed(format!("cannot run bash: {e}"), "install bash"))?;
    if !status.success() {
        return Err(EngineError::failed(
            format!("the host setup stopped ({status})"),
            "the lines above say which step failed; fix it and run `sandbox host install` again (done steps are skipped)",
        ));
    }
    errln!(
        "This machine is ready for sandboxes. Next: build a golden image — `sandbox setup` (or Run Setup in VS Code)."
    );
    Ok(ExitCode::SUCCESS)
}

/// Replaces this process with `sudo -- env KEPT… SANDBOX host install ARGS…`.
fn through_sudo(o: &InstallOptions, wait_on_error: bool) -> Result<ExitCode> {
    let Some(sudo) = Host::local().which("sudo") else {
        return Err(EngineError::failed(
            "this needs root, and sudo is not installed",
            "run `sandbox host install` as root (e.g. `su -c '… host install'`), or install sudo",
        ));
    };
    let exe = std::env::current_exe()
        .map_err(|e| EngineError::failed(format!("cannot find this program's path: {e}"), "run it as root"))?;
    errln!("Running it again through sudo (it may ask for your password)…");
    let mut cmd = std::process::Command::new(sudo);
    cmd.args(["--", "env"]);
    for k in KEPT_ENV {
        if let Some(v) = std::env::var_os(k) {
            let mut kv = std::ffi::OsString::from(format!("{k}="));
            kv.push(v);
            cmd.arg(kv);
        }
    }
    cmd.arg(exe).args(["host", "install"]).args(host_install::script_args(o));
    if wait_on_error {
        cmd.arg("--wait-on-error");
    }
    let err = cmd.exec();
    Err(EngineError::failed(format!("cannot run sudo: {err}"), "run `sandbox host install` as root"))
}
