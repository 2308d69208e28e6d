//! The hook relay: Claude Code's hooks in a sandbox post their JSON input to the sandbox's own
//! `hooks.sock` (next to its Anthropic endpoint, in the directory its `anthropic` disk device
//! carries in), served by the host daemon that also runs the credential proxy. The socket says
//! which sandbox calls; what it sends is untrusted and handled as data only:
//!
//! - admission first: a token bucket per sandbox (BURST, then RATE a second) and at most
//!   MAX_CONNECTIONS at once, checked before a byte is read; each connection has CONN_TIMEOUT;
//! - then a bounded body (MAX_BODY), a known event name and a well-formed session id
//!   (state.rs) — anything else is dropped and counted (`user.sandbox.agent.dropped`);
//! - what it changes is written to Incus (`user.sandbox.agent.*`) at once when what the sandbox
//!   shows changed, at most every MIN_GAP; sessions-only changes and the counters go with the
//!   daemon's periodic flush.
//!
//! A flood or garbage costs the sender its own budget: other sandboxes have their own relay,
//! their own bucket and their own connections.
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use super::state::{self, Refused, Sessions, Shown};
use super::{Dropped, written};
use crate::engine::snapshots::turns::TurnCheckpoints;
use crate::engine::validate;
use crate::incus::{Config, Devices, Incus};

pub const SOCKET_NAME: &str = "hooks.sock";
/// A hook's input: the largest legitimate one is a Stop or PreToolUse carrying a long answer or
/// file (bounded by the model's output); past this it is dropped.
const MAX_BODY: usize = 1 << 20;
const BURST: f64 = 60.0;
const RATE: f64 = 20.0;
const MAX_CONNECTIONS: usize = 8;
const CONN_TIMEOUT: Duration = Duration::from_secs(5);
/// Writes of a changed state to Incus, at most one per MIN_GAP per sandbox.
const MIN_GAP: Duration = Duration::from_millis(250);

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn take(&mut self, now: Instant) -> bool {
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * RATE).min(BURST);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

struct Tracked {
    sessions: Sessions,
    shown: Shown,
    /// RFC 3339, when `shown` last changed.
    since: String,
    dropped: Dropped,
    /// What the sandbox shows changed: written at once (after MIN_GAP).
    urgent: bool,
    /// Only the sessions or the counters changed: written with the next flush.
    lazy: bool,
    bucket: Bucket,
}

/// One sandbox's relay.
pub struct Relay {
    name: String,
    incus: Option<Incus>,
    t: Mutex<Tracked>,
    wake: Notify,
    stop: CancellationToken,
    conns: Arc<Semaphore>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Takes a checkpoint at each turn's end (snapshots/turns.rs); none without Incus.
    checkpoints: Option<Arc<TurnCheckpoints>>,
}

impl Relay {
    /// Goes on from what Incus holds (`stored`: the instance's config), or from nothing.
    pub fn new(name: &str, incus: Option<Incus>, stored: Option<&Config>) -> Arc<Relay> {
        let get = |k: &str| stored.and_then(|c| c.get(k)).map(String::as_str);
        let sessions = Sessions::from_json(get(crate::engine::keys::AGENT_SESSIONS));
        let shown = sessions.shown();
        let checkpoints = incus.clone().map(|i| TurnCheckpoints::start(name, i));
        Arc::new(Relay {
            name: name.to_string(),
            incus,
            checkpoints,
            t: Mutex::new(Tracked {
                shown,
                sessions,
                since: get(crate::engine::keys::AGENT_SINCE).map(str::to_owned).unwrap_or_else(super::now_rfc3339),
                dropped: Dropped::from_json(get(crate::engine::keys::AGENT_DROPPED)),
                urgent: false,
                lazy: false,
                bucket: Bucket { tokens: BURST, at: Instant::now() },
            }),
            wake: Notify::new(),
            stop: CancellationToken::new(),
            conns: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
            tasks: Mutex::new(Vec::new()),
        })
    }

    fn tracked(&self) -> std::sync::MutexGuard<'_, Tracked> {
        self.t.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Serves the socket and writes changes, until `close`.
    pub fn serve(self: &Arc<Self>, listener: UnixListener) {
        let tasks = [tokio::spawn(self.clone().accept_loop(listener)), tokio::spawn(self.clone().write_loop())];
        self.tasks.lock().unwrap_or_else(|e| e.into_inner()).extend(tasks);
    }

    /// No more connections; what is pending is written; returns once nothing will write again.
    pub async fn close(&self) {
        self.stop.cancel();
        if let Some(c) = &self.checkpoints {
            c.close();
        }
        let tasks: Vec<_> = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for t in tasks {
            let _ = t.await;
        }
    }

    /// The sandbox starts afresh (it was stopped): no session is left. Incus is reset by the
    /// engine, so nothing is written from here.
    pub fn forget(&self) {
        let mut t = self.tracked();
        t.sessions = Sessions::default();
        t.shown = t.sessions.shown();
        t.since = super::now_rfc3339();
        t.urgent = false;
        t.lazy = false;
    }

    /// The daemon's periodic flush: sessions-only changes and the counters go to Incus.
    pub fn flush(&self) {
        if self.tracked().lazy {
            self.wake.notify_one();
        }
    }

    fn refuse(&self, why: Refused) {
        let mut t = self.tracked();
        t.dropped.count(why);
        t.lazy = true;
    }

    fn admit(&self) -> bool {
        let ok = self.tracked().bucket.take(Instant::now());
        if !ok {
            self.refuse(Refused::RateLimited);
        }
        ok
    }

    fn apply(&self, hook: &state::Hook) {
        let mut t = self.tracked();
        if !t.sessions.apply(hook, super::now_ms()) {
            return;
        }
        // A turn ended: its checkpoint (a Stop that changed nothing is a repeat, not a turn).
        if hook.event == state::HookEvent::Stop
            && let Some(c) = &self.checkpoints
        {
            c.turn_ended(
                &hook.payload.last_assistant_message.as_deref().and_then(state::first_line).unwrap_or_default(),
            );
        }
        let shown = t.sessions.shown();
        if shown != t.shown {
            t.shown = shown;
            t.since = super::now_rfc3339();
            t.urgent = true;
            drop(t);
            self.wake.notify_one();
        } else {
            t.lazy = true;
        }
    }

    async fn accept_loop(self: Arc<Self>, listener: UnixListener) {
        loop {
            let stream = tokio::select! {
                r = listener.accept() => match r {
                    Ok((s, _)) => s,
                    Err(e) => {
                        // Out of descriptors, say: wait rather than spin.
                        tracing::warn!("{}: hook socket: {e}", self.name);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                _ = self.stop.cancelled() => return,
            };
            if !self.admit() {
                continue;
            }
            let Ok(permit) = self.conns.clone().try_acquire_owned() else {
                self.refuse(Refused::RateLimited);
                continue;
            };
            let me = self.clone();
            tokio::spawn(async move {
                let _held = permit;
                me.serve_connection(stream).await;
            });
        }
    }

    async fn serve_connection(self: Arc<Self>, stream: UnixStream) {
        let me = self.clone();
        let svc = hyper::service::service_fn(move |req| {
            let me = me.clone();
            async move { Ok::<_, Infallible>(me.handle(req).await) }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .keep_alive(false)
            .max_buf_size(16 * 1024)
            .serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
        tokio::select! {
            _ = tokio::time::timeout(CONN_TIMEOUT, conn) => {}
            _ = self.stop.cancelled() => {}
        }
    }

    async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let answer = |status: StatusCode| {
            let mut r = Response::new(Full::new(Bytes::new()));
            *r.status_mut() = status;
            r
        };
        if req.method() != Method::POST || req.uri().path() != "/hook" {
            self.refuse(Refused::Malformed);
            return answer(StatusCode::NOT_FOUND);
        }
        let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
                self.refuse(Refused::TooBig);
                return answer(StatusCode::PAYLOAD_TOO_LARGE);
            }
            Err(_) => {
                self.refuse(Refused::Malformed);
                return answer(StatusCode::BAD_REQUEST);
            }
        };
        match state::parse(&body) {
            Ok(hook) => {
                self.apply(&hook);
                answer(StatusCode::NO_CONTENT)
            }
            Err(why) => {
                self.refuse(why);
                answer(StatusCode::BAD_REQUEST)
            }
        }
    }

    async fn write_loop(self: Arc<Self>) {
        loop {
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = self.stop.cancelled() => return self.write_pending().await,
            }
            self.write_pending().await;
            tokio::select! {
                _ = tokio::time::sleep(MIN_GAP) => {}
                _ = self.stop.cancelled() => return self.write_pending().await,
            }
        }
    }

    async fn write_pending(&self) {
        let config = {
            let mut t = self.tracked();
            if !t.urgent && !t.lazy {
                return;
            }
            t.urgent = false;
            t.lazy = false;
            written(&t.shown, &t.since, &t.sessions, &t.dropped)
        };
        let Some(incus) = &self.incus else { return };
        tracing::debug!("{}: writing the agent state", self.name);
        match incus.patch_instance(&validate::instance_name(&self.name), config, Devices::new()).await {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => {
                tracing::warn!("{}: agent state not written: {e}", self.name);
                self.tracked().lazy = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_allows_a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut b = Bucket { tokens: BURST, at: t0 };
        let burst = (0..1000).filter(|_| b.take(t0)).count();
        assert_eq!(burst, BURST as usize);
        let later = (0..1000).filter(|_| b.take(t0 + Duration::from_secs(1))).count();
        assert_eq!(later, RATE as usize);
    }
}
