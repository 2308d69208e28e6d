//! One ssh-agent per sandbox on the host. It holds only that sandbox's key; the sandbox reaches
//! it through a unix-socket proxy device and can ask it to sign, never read the key.
//!
//! ssh-agent daemonises itself (fork + setsid, stdio to /dev/null), so it outlives the CLI, the
//! sidecar and VS Code. Its pid is kept next to the socket; a socket nobody answers on (after a
//! reboot, or a killed agent) is replaced by a new agent.
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::engine::host::Host;
use crate::error::{EngineError, Result};
use crate::paths::sandbox_home;

/// Where the agents' sockets and pid files live (0700).
pub fn dir() -> PathBuf {
    sandbox_home().join("agents")
}
pub fn socket_path(name: &str) -> PathBuf {
    dir().join(format!("{name}.sock"))
}
fn pid_path(name: &str) -> PathBuf {
    dir().join(format!("{name}.pid"))
}

/// Whether NAME has an agent pid file (its agent may be running).
pub fn has_pid_file(name: &str) -> bool {
    pid_path(name).exists()
}

/// Names that have an agent socket or pid file here.
pub fn names() -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(dir()) else { return Vec::new() };
    let mut v: Vec<String> = rd
        .flatten()
        .filter_map(|e| {
            let f = e.file_name().to_str()?.to_owned();
            f.strip_suffix(".sock").or_else(|| f.strip_suffix(".pid")).map(str::to_owned)
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

/// sun_path holds 108 bytes including the NUL.
const MAX_SOCKET_PATH: usize = 107;

/// Number of identities the agent at `sock` holds, or None when nothing answers there.
pub fn identities(sock: &Path) -> Option<u32> {
    let mut s = UnixStream::connect(sock).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(2))).ok()?;
    // SSH_AGENTC_REQUEST_IDENTITIES (11) → SSH_AGENT_IDENTITIES_ANSWER (12), count.
    s.write_all(&[0, 0, 0, 1, 11]).ok()?;
    let mut head = [0u8; 9];
    s.read_exact(&mut head).ok()?;
    (head[4] == 12).then(|| u32::from_be_bytes([head[5], head[6], head[7], head[8]]))
}

fn alive(pid: i32) -> bool {
    pid > 0 && nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

fn read_pid(name: &str) -> Option<i32> {
    std::fs::read_to_string(pid_path(name)).ok()?.trim().parse().ok()
}

/// Ends the sandbox's agent (if any; waiting up to 0.5 s for it to go) and removes its socket
/// and pid file. Idempotent.
pub async fn stop(name: &str) -> Result<()> {
    if let Some(pid) = read_pid(name)
        && alive(pid)
        && is_our_agent(pid, name)
    {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
        crate::poll::until(Duration::from_millis(500), Duration::from_millis(10), || async {
            (!alive(pid)).then_some(())
        })
        .await;
    }
    for p in [socket_path(name), pid_path(name)] {
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(EngineError::failed(format!("cannot remove {}: {e}", p.display()), "")),
        }
    }
    Ok(())
}

/// The pid file could be stale and the pid reused: only signal an ssh-agent bound to our socket.
fn is_our_agent(pid: i32, name: &str) -> bool {
    let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return false };
    let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
    let sock = socket_path(name);
    args.first().is_some_and(|a| a.ends_with(b"ssh-agent"))
        && args.iter().any(|a| *a == sock.as_os_str().as_encoded_bytes())
}

/// A new agent for NAME holding only `key` (create: never reuse a leftover agent of an earlier
/// sandbox with the same name, which would hold that sandbox's key).
pub async fn fresh(host: &Host, name: &str, key: &Path) -> Result<PathBuf> {
    stop(name).await?;
    ensure(host, name, key).await
}

/// Makes sure an agent for NAME answers on its socket and holds `key` (a private key file on the
/// host). Returns the socket path. Reuses a live agent that already holds a key.
pub async fn ensure(host: &Host, name: &str, key: &Path) -> Result<PathBuf> {
    let sock = socket_path(name);
    if sock.as_os_str().len() > MAX_SOCKET_PATH {
        return Err(EngineError::failed(
            format!("the agent socket path {} is longer than {MAX_SOCKET_PATH} bytes", sock.display()),
            "use a shorter sandbox name or a shorter SANDBOX_HOME",
        ));
    }
    if identities(&sock).is_some_and(|n| n > 0) {
        return Ok(sock);
    }
    // Stale or half-made: start over.
    stop(name).await?;
    super::private_dir(&dir())?;
    let argv = vec!["ssh-agent".to_string(), "-s".into(), "-a".into(), sock.display().to_string()];
    let out = host.run(&argv, None, |_| {}).await?;
    if out.status != 0 {
        return Err(EngineError::failed(
            format!("ssh-agent failed: {}", out.tail.join(" ").trim()),
            "install openssh-client on the host",
        ));
    }
    // `SSH_AGENT_PID=1234; export SSH_AGENT_PID;`
    let pid = out
        .stdout
        .split(';')
        .find_map(|f| f.trim().strip_prefix("SSH_AGENT_PID="))
        .and_then(|p| p.parse::<i32>().ok())
        .ok_or_else(|| EngineError::failed("ssh-agent did not say its pid", ""))?;
    crate::paths::write(&pid_path(name), format!("{pid}\n").as_bytes(), 0o600)?;
    let add = vec!["ssh-add".to_string(), "-q".into(), key.display().to_string()];
    let env = [("SSH_AUTH_SOCK", sock.display().to_string())];
    let out = host.run_env(&add, &env, None, |_| {}).await?;
    if out.status != 0 {
        let _ = stop(name).await;
        return Err(EngineError::failed(
            format!("ssh-add {} failed: {}", key.display(), out.tail.join(" ").trim()),
            "give a private key ssh-add can load (a passphrase is asked on the terminal)",
        ));
    }
    Ok(sock)
}
