//! Inside a sandbox: git's own port on loopback, 127.0.0.1:9418, is a systemd socket unit whose
//! `systemd-socket-proxyd` forwards each connection to the gate's socket in the sandbox's directory
//! of the host daemon, which the sandbox's `anthropic` disk device carries in. So `origin` is a plain `git://127.0.0.1/OWNER/REPO.git`
//! and git needs nothing else. Golden images get the units at build (marked); a sandbox from an
//! image without them gets them pushed before its first start.
use super::{PORT, SOCKET};
use crate::engine::anthropic::SANDBOX_DIR;
use crate::error::Result;
use crate::incus::{Config, FileWrite, Incus};

/// On a golden image: it carries the units (version).
pub const MARK: &str = crate::engine::keys::GOLDEN_GIT_GATE;
/// 2: the socket in the host daemon's directory.
const VERSION: &str = "2";
const UNIT: &str = "sandbox-git-gate.socket";
const SERVICE: &str = "sandbox-git-gate.service";
const UNITS: &str = "/etc/systemd/system";
const PROXYD: &str = "/lib/systemd/systemd-socket-proxyd";

fn socket_unit() -> String {
    format!(
        "[Unit]\nDescription=git through the host's push gate (fetches and pushes of the sandbox's repository)\n\
         DefaultDependencies=no\nBefore=sockets.target sandbox-ssh.socket shutdown.target\nConflicts=shutdown.target\n\
         ConditionPathIsDirectory={SANDBOX_DIR}\n\n[Socket]\nListenStream=127.0.0.1:{PORT}\nFreeBind=yes\nNoDelay=yes\n\n\
         [Install]\nWantedBy=sockets.target\n"
    )
}

fn service_unit() -> String {
    format!(
        "[Unit]\nDescription=git through the host's push gate: 127.0.0.1:{PORT} to the gate's socket\n\
         Requires={UNIT}\nAfter={UNIT}\n\n[Service]\n\
         ExecStart={PROXYD} --exit-idle-time=600 {SANDBOX_DIR}/{SOCKET}\nUser=nobody\nNoNewPrivileges=yes\n"
    )
}

/// Whether a golden snapshot's config says it carries the units.
pub fn carried_by(config: &Config) -> bool {
    config.get(MARK).is_some_and(|v| v == VERSION)
}

/// Writes the units, enabled, into an instance (running or not: the files API and a symlink,
/// no `systemctl`). Returns the mark to record on a golden image.
pub async fn install(incus: &Incus, instance: &str) -> Result<Config> {
    let (socket, service) = (format!("{UNITS}/{UNIT}"), format!("{UNITS}/{SERVICE}"));
    incus.push_file(instance, &FileWrite::root(&socket, socket_unit(), 0o644)).await?;
    incus.push_file(instance, &FileWrite::root(&service, service_unit(), 0o644)).await?;
    incus.push_dir(instance, &format!("{UNITS}/sockets.target.wants"), 0, 0, 0o755).await?;
    incus.push_symlink(instance, &format!("{UNITS}/sockets.target.wants/{UNIT}"), &socket).await?;
    let mut c = Config::new();
    c.insert(MARK.into(), VERSION.into());
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_units_forward_gits_port_to_the_gates_socket() {
        assert!(socket_unit().contains("ListenStream=127.0.0.1:9418"));
        assert!(socket_unit().contains(&format!("ConditionPathIsDirectory={SANDBOX_DIR}")));
        assert!(service_unit().contains(&format!("{PROXYD} --exit-idle-time=600 {SANDBOX_DIR}/{SOCKET}")));
        assert!(service_unit().contains("User=nobody"));
    }
}
