//! Signals: INT, TERM and HUP all mean "stop": the first cancels what runs (a create rolls back),
//! the second quits at once and says what it leaves behind and how to remove it (the same
//! signal again from the same sender within a second is one stop delivered twice, see REPEAT). SIGPIPE is
//! ignored: a reader that goes away (`sandbox start x 2>&1 | head -1`) must never kill a command
//! half-way; writes to a closed pipe fail instead, and the output helpers ignore that.
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::SignalsInfo;
use signal_hook::iterator::exfiltrator::WithOrigin;
use tokio_util::sync::CancellationToken;

/// Before any thread exists.
pub fn ignore_sigpipe() {
    // SAFETY: set once at start-up, before the runtime's threads are started.
    unsafe {
        let _ = nix::sys::signal::signal(nix::sys::signal::Signal::SIGPIPE, nix::sys::signal::SigHandler::SigIgn);
    }
}

/// What the first signal does to a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnSignal {
    /// It undoes what it started (a create rolls back; a sidecar rolls its calls back).
    Undo,
    /// It watches `cancel` and ends by itself (`wait`, `denials --follow`).
    End,
    /// It ends the process at once (`list`, `exec`, …: nothing to undo).
    Exit,
}

/// A signal again from the same process within this time is the same stop delivered twice, not
/// a second one: `timeout` sends TERM to the command and then to its whole process group.
const REPEAT: Duration = Duration::from_secs(1);

/// Watches INT, TERM and HUP for the rest of the process (call inside the runtime).
pub fn watch(cancel: CancellationToken, on: OnSignal) {
    let Ok(mut signals) = SignalsInfo::<WithOrigin>::new([SIGINT, SIGTERM, SIGHUP]) else { return };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(&'static str, &'static str)>();
    // A thread of its own: the origin of each signal (who sent it) is what tells a repeat.
    std::thread::spawn(move || {
        let mut last: Option<(i32, libc::pid_t, Instant)> = None;
        for o in signals.forever() {
            let from = o.process.map(|p| p.pid);
            if let (Some(pid), Some((sig, by, at))) = (from, last)
                && sig == o.signal
                && by == pid
                && at.elapsed() < REPEAT
            {
                continue;
            }
            last = from.map(|pid| (o.signal, pid, Instant::now()));
            let seen = match o.signal {
                SIGINT => ("interrupted", "Ctrl-C"),
                SIGTERM => ("terminated", "a signal"),
                _ => ("hung up", "a signal"),
            };
            if tx.send(seen).is_err() {
                return;
            }
        }
    });
    tokio::spawn(async move {
        let Some((what, again)) = rx.recv().await else { return };
        match on {
            OnSignal::Exit => {
                errln!("\n{what}");
                std::process::exit(130);
            }
            OnSignal::End => {}
            OnSignal::Undo => errln!("\n{what} — undoing what was started ({again} again to quit at once)"),
        }
        cancel.cancel();
        if rx.recv().await.is_some() {
            left_behind();
            std::process::exit(130);
        }
    });
}

/// What quitting now leaves: the creates that were still being undone.
fn left_behind() {
    for name in crate::engine::journal::active() {
        errln!(
            "quitting before the undo finished: sandbox '{name}' is left half-made — remove it with `sandbox rm {name}` \
             (or make it again with `sandbox start {name}`)"
        );
    }
}
