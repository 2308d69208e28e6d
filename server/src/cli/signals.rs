//! Signals: INT, TERM and HUP all mean "stop": the first cancels what runs (a create rolls back),
//! the second quits at once and says what it leaves behind and how to remove it. SIGPIPE is
//! ignored: a reader that goes away (`sandbox start x 2>&1 | head -1`) must never kill a command
//! half-way; writes to a closed pipe fail instead, and the output helpers ignore that.
use tokio::signal::unix::{SignalKind, signal};
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

/// Watches INT, TERM and HUP for the rest of the process (call inside the runtime).
pub fn watch(cancel: CancellationToken, on: OnSignal) {
    let kinds = [
        (SignalKind::interrupt(), "interrupted", "Ctrl-C"),
        (SignalKind::terminate(), "terminated", "a signal"),
        (SignalKind::hangup(), "hung up", "a signal"),
    ];
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(&'static str, &'static str)>();
    for (kind, what, again) in kinds {
        let Ok(mut s) = signal(kind) else { continue };
        let tx = tx.clone();
        tokio::spawn(async move {
            while s.recv().await.is_some() {
                if tx.send((what, again)).is_err() {
                    return;
                }
            }
        });
    }
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
