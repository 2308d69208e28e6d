//! Helpers for the fault-injection suites: a `SANDBOX_HOME` of the test's own, creates driven as
//! child processes that are killed at chosen moments, and the checks that a sandbox is fully
//! working or fully absent (instance, host-side leftovers, secrets in its Incus config).
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::{incus_names, sandbox_bin, text};

/// A `SANDBOX_HOME` of one test's own (fresh), with a secret in its `env` file: the secret must
/// never stay in an instance's Incus config.
pub struct Home {
    pub dir: PathBuf,
    pub secret: String,
}

impl Home {
    pub fn new(tag: &str) -> Home {
        // Short (under the temporary directory, not the worktree): the sockets inside it
        // (`anthropic/sandboxes/NAME/api.sock`, `agents/NAME.sock`) must fit in 107 bytes.
        let dir = std::env::temp_dir().join(format!("sbx-{tag}-{:06x}", rand::random::<u32>() & 0xff_ffff));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let secret = format!("s3cret-{:016x}", rand::random::<u64>());
        std::fs::write(dir.join("env"), format!("FAULT_SECRET={secret}\n")).unwrap();
        Home { dir, secret }
    }

    /// The command with this home (and the test stack as default).
    pub fn command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(sandbox_bin());
        // No warm spares unless a test asks (`SANDBOX_SPARES=1`): the spare is one per stack on the
        // machine, and creates of tests running alongside would take the one a test made for itself.
        cmd.args(args)
            .env("SANDBOX_HOME", &self.dir)
            .env("SANDBOX_DEFAULT_STACK", "minimal")
            .env("SANDBOX_SPARES", "0");
        cmd.envs(env.iter().copied());
        cmd
    }

    /// A warm spare of STACK ready to be taken (`sandbox __spare` returns at once while another
    /// refill — a create's background one — is still warming it: this waits for it to be warm).
    pub fn warm_spare(&self, stack: &str) {
        let deadline = Instant::now() + Duration::from_secs(120);
        let spare = format!("spare-{stack}");
        loop {
            let o = self.run(&["__spare", stack], &[]);
            assert!(o.status.success(), "__spare {stack}: {}", text(&o.stderr));
            let warm =
                Command::new("incus").args(["config", "get", &spare, "user.sandbox.spare-warm"]).output().unwrap();
            if text(&warm.stdout).trim() == "1" {
                return;
            }
            assert!(Instant::now() < deadline, "{spare} never became warm");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        self.command(args, env).stdin(Stdio::null()).output().expect("run sandbox")
    }

    /// `sandbox ARGS` as a child with stderr (progress) read line by line.
    pub fn spawn(&self, args: &[&str], env: &[(&str, &str)]) -> Running {
        let mut child = self
            .command(args, env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sandbox");
        let (tx, lines) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(stderr).lines() {
                let Ok(l) = l else { return };
                if tx.send(l).is_err() {
                    return;
                }
            }
        });
        Running { child, lines, seen: Vec::new() }
    }

    pub fn ssh(&self, name: &str) -> Output {
        Command::new("ssh")
            .arg("-F")
            .arg(self.dir.join("ssh_config"))
            .args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=5", name, "true"])
            .stdin(Stdio::null())
            .output()
            .expect("ssh")
    }

    /// What of NAME exists on the host, outside Incus.
    pub fn leftovers(&self, name: &str) -> Vec<String> {
        let mut found = Vec::new();
        let begin = format!("# BEGIN sandbox {name}\n");
        for f in ["ssh_config", "known_hosts"] {
            let bytes = std::fs::read(self.dir.join(f)).unwrap_or_default();
            if memchr::memmem::find(&bytes, begin.as_bytes()).is_some() {
                found.push(format!("{f} entry"));
            }
        }
        let files = [
            self.dir.join("agents").join(format!("{name}.sock")),
            self.dir.join("agents").join(format!("{name}.pid")),
            self.dir.join("keys").join(format!("deploy_{name}")),
            self.dir.join("keys").join(format!("deploy_{name}.pub")),
            self.dir.join("creating").join(format!("{name}.json")),
            PathBuf::from("/run/agent-sandboxes/egress/active").join(name),
            PathBuf::from("/run/agent-sandboxes/egress/lists").join(format!("{name}.txt")),
        ];
        found.extend(files.iter().filter(|p| p.exists()).map(|p| p.display().to_string()));
        found
    }

    /// Secrets in the instance's Incus config (`incus config show`): the SSH host key and the
    /// environment the identity templates were rendered from, and this home's secret.
    pub fn secrets_in_config(&self, name: &str) -> Vec<String> {
        let o = Command::new("incus").args(["config", "show", &format!("agent-{name}")]).output().unwrap();
        let cfg = text(&o.stdout);
        // (`boot.host-key-pub`, the public half, is no secret.)
        ["user.sandbox.boot.host-key:", "user.sandbox.boot.env:", "PRIVATE KEY", &self.secret]
            .into_iter()
            .filter(|s| cfg.contains(s))
            .map(str::to_owned)
            .collect()
    }

    pub fn listed(&self, name: &str) -> Option<serde_json::Value> {
        let o = self.run(&["list", "--json", "--no-health"], &[]);
        assert!(o.status.success(), "list: {}", text(&o.stderr));
        let all: serde_json::Value = serde_json::from_slice(&o.stdout).expect("list json");
        all.as_array()?.iter().find(|s| s["name"] == name).cloned()
    }

    /// Nothing of NAME left: no instance, nothing on the host.
    pub fn assert_absent(&self, name: &str, context: &str) {
        assert!(!exists(name), "{context}: agent-{name} is still there");
        let left = self.leftovers(name);
        assert!(left.is_empty(), "{context}: leftovers of {name}: {left:?}");
    }

    /// NAME complete: running, reachable over SSH with strict host-key checking, registered, and
    /// no secret left in its config.
    pub fn assert_working(&self, name: &str, context: &str) {
        let s = self.listed(name).unwrap_or_else(|| panic!("{context}: {name} is not listed"));
        assert_eq!(s["state"], "running", "{context}: {s}");
        assert_eq!(s["managed"], true, "{context}: {s}");
        assert!(s["slot"].is_u64(), "{context}: a slot: {s}");
        let o = self.ssh(name);
        assert!(o.status.success(), "{context}: ssh {name}: {}", text(&o.stderr));
        let secrets = self.secrets_in_config(name);
        assert!(secrets.is_empty(), "{context}: secrets in the Incus config of {name}: {secrets:?}");
        assert!(
            Path::new("/run/agent-sandboxes/egress/active").join(name).exists(),
            "{context}: {name}'s egress policy is registered"
        );
    }

    /// A key pair of the user's own (`--ssh-key`), in this home.
    pub fn own_key(&self) -> PathBuf {
        let key = self.dir.join("own_key");
        let o = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "t", "-f"])
            .arg(&key)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o.stderr));
        key
    }

    /// `start NAME` held once Incus has made its instance (the `slow-after-copy` fault point):
    /// a create to interrupt half-way.
    pub fn create_held_after_copy(&self, name: &str) -> Running {
        let mut run = self.spawn(&["start", name], &[("SANDBOX_FAULT", "slow-after-copy")]);
        assert!(run.wait_for(&Moment::Line("Creating agent-")));
        let deadline = Instant::now() + Duration::from_secs(30);
        while !exists(name) {
            assert!(Instant::now() < deadline, "the instance was never made");
            std::thread::sleep(Duration::from_millis(50));
        }
        run
    }

    /// Removes NAME and checks that nothing is left.
    pub fn remove(&self, name: &str, context: &str) {
        let o = self.run(&["rm", name], &[]);
        assert!(o.status.success(), "{context}: rm {name}: {}", text(&o.stderr));
        self.assert_absent(name, context);
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        // Agents started for this home (a failed test may leave them; one killed before it
        // wrote its pid file has none): every ssh-agent whose socket is under this home.
        let home = self.dir.as_os_str().as_encoded_bytes().to_vec();
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|p| p.parse::<i32>().ok()) else { continue };
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if cmd.starts_with(b"ssh-agent") && memchr::memmem::find(&cmd, &home).is_some() {
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A process that still runs (a zombie nobody reaped has ended).
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, rest)| !rest.trim_start().starts_with('Z')))
        .unwrap_or(false)
}

pub fn exists(name: &str) -> bool {
    incus_names().contains(&format!("agent-{name}"))
}

/// A `sandbox` child whose progress lines are read as they come.
pub struct Running {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    /// Every progress line read so far.
    pub seen: Vec<String>,
}

/// When to interrupt a command.
#[derive(Debug, Clone)]
pub enum Moment {
    /// This long after it started.
    After(Duration),
    /// As soon as a progress line contains this.
    Line(&'static str),
}

impl Running {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Waits for the moment; false if the command ended (or time ran out) first.
    pub fn wait_for(&mut self, moment: &Moment) -> bool {
        match moment {
            Moment::After(d) => {
                std::thread::sleep(*d);
                true
            }
            Moment::Line(needle) => {
                let deadline = Instant::now() + Duration::from_secs(60);
                loop {
                    let left = deadline.saturating_duration_since(Instant::now());
                    match self.lines.recv_timeout(left) {
                        Ok(l) => {
                            let hit = l.contains(needle);
                            self.seen.push(l);
                            if hit {
                                return true;
                            }
                        }
                        Err(_) => return false,
                    }
                }
            }
        }
    }

    pub fn signal(&self, sig: i32) -> bool {
        unsafe { libc::kill(self.pid(), sig) == 0 }
    }

    /// The same, sent by a process of its own (`kill`): a second stop from someone, not this
    /// test process repeating itself.
    pub fn signal_from_another_process(&self, sig: i32) -> bool {
        Command::new("kill").args([format!("-{sig}"), self.pid().to_string()]).status().is_ok_and(|s| s.success())
    }

    /// Waits for the end (at most `timeout`, then kills it and fails); returns the status and
    /// every line of stderr.
    pub fn finish(mut self, timeout: Duration) -> (ExitStatus, String) {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("still running after {timeout:?}: {}", self.seen.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // The reader thread ends at EOF.
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(l);
        }
        (status, self.seen.join("\n"))
    }
}

/// The signal that ended a process, if one did.
pub fn killed_by(st: &ExitStatus) -> Option<i32> {
    std::os::unix::process::ExitStatusExt::signal(st)
}
