//! `sandbox serve`: the same method table as a local JSON-RPC API (jsonrpsee, HTTP and
//! WebSocket) for scripts, CI and other editors. Loopback only, guarded by a bearer token kept in
//! `~/.sandbox/serve.token` (0600). Live changes: subscribe with `sandbox/subscribeChanges`
//! (notifications `sandbox/changed`, unsubscribe with `sandbox/unsubscribeChanges`); the same for
//! `Status` (`sandbox/status`) and `Denials` (`sandbox/denied`). Progress: pass `workDoneToken`
//! and subscribe with `sandbox/subscribeProgress` (`sandbox/progress`).
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use jsonrpsee::server::{HttpBody, RpcModule, Server, SubscriptionMessage};
use jsonrpsee::types::ErrorObjectOwned;
use serde_json::Value;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::status::STATUS;
use super::watch::{self, Push};
use super::{Api, ApiError, CHANGED, CallCx, METHODS};
use crate::engine::{EngineError, Result};

pub fn token_path() -> std::path::PathBuf {
    crate::paths::sandbox_home().join("serve.token")
}

/// The token clients send as `Authorization: Bearer TOKEN`; created on first use.
pub fn ensure_token() -> Result<String> {
    let path = token_path();
    if let Ok(t) = std::fs::read_to_string(&path) {
        let t = t.trim().to_string();
        if t.len() >= 32 {
            return Ok(t);
        }
    }
    let token = format!("{:032x}{:032x}", rand::random::<u128>(), rand::random::<u128>());
    crate::paths::write(&path, format!("{token}\n").as_bytes(), 0o600)?;
    Ok(token)
}

fn to_rpc(e: ApiError) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(e.rpc_code() as i32, e.message.clone(), Some(e))
}

/// Where a call's progress is (as LSP work-done progress).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub enum ProgressKind {
    Begin,
    Report,
    End,
}

/// One progress message of a call that passed `workDoneToken` (like LSP work-done progress).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub struct ProgressEvent {
    #[ts(type = "string | number")]
    pub token: Value,
    pub kind: ProgressKind,
    pub message: Option<String>,
}

struct Broadcast {
    tx: broadcast::Sender<ProgressEvent>,
    token: Value,
}

impl crate::progress::Progress for Broadcast {
    fn step(&self, message: &str) {
        let _ = self.tx.send(ProgressEvent {
            token: self.token.clone(),
            kind: ProgressKind::Report,
            message: Some(message.into()),
        });
    }
    fn line(&self, line: &str) {
        self.step(&format!("  {line}"));
    }
}

/// Builds the module: every method of the table, plus the progress, change, status and denial
/// subscriptions. Calls run as tasks of `tasks`, cancelled (rolled back) by `stop`.
pub fn module(api: Api, stop: CancellationToken, tasks: TaskTracker) -> RpcModule<Api> {
    let (progress_tx, _) = broadcast::channel::<ProgressEvent>(1024);
    let mut m = RpcModule::new(api);
    for &name in METHODS {
        let tx = progress_tx.clone();
        let (stop, tasks) = (stop.clone(), tasks.clone());
        m.register_async_method(name, move |params, api, _| {
            call(
                name,
                params.as_str().map(str::to_owned),
                Api::clone(&api),
                tx.clone(),
                stop.child_token(),
                tasks.clone(),
            )
        })
        .expect("method names are unique");
    }
    let tx = progress_tx.clone();
    m.register_subscription("sandbox/subscribeProgress", "sandbox/progress", "sandbox/unsubscribeProgress", move |_, pending, _, _| {
        let mut rx = tx.subscribe();
        async move {
            let sink = pending.accept().await?;
            loop {
                tokio::select! {
                    _ = sink.closed() => return Ok(()),
                    msg = rx.recv() => match msg {
                        Ok(ev) => sink.send(SubscriptionMessage::from(serde_json::value::to_raw_value(&ev)?)).await?,
                        Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(_) => return Ok(()),
                    }
                }
            }
        }
    })
    .expect("subscription names are unique");
    let pushes = |api: &Api| watch::follow(api.engine.clone());
    forward(&mut m, ["sandbox/subscribeChanges", CHANGED, "sandbox/unsubscribeChanges"], pushes, |p| match p {
        Push::Changed(c) => serde_json::to_value(c).ok(),
        Push::Status(_) => None,
    });
    forward(&mut m, ["sandbox/subscribeStatus", STATUS, "sandbox/unsubscribeStatus"], pushes, |p| match p {
        Push::Status(s) => serde_json::to_value(s).ok(),
        Push::Changed(_) => None,
    });
    let denials = |_: &Api| watch::follow_denials();
    forward(&mut m, ["sandbox/subscribeDenials", super::DENIED, "sandbox/unsubscribeDenials"], denials, |d| {
        serde_json::to_value(d).ok()
    });
    m
}

/// One method call: params decoded, progress (when a `workDoneToken` came) broadcast to the
/// progress subscribers, the operation run as its own task (a client that disconnects mid-call
/// does not drop a create half-way: it completes, or rolls back on failure, regardless; a signal
/// to the server cancels it: it rolls back).
async fn call(
    name: &'static str,
    raw: Option<String>,
    api: Api,
    tx: broadcast::Sender<ProgressEvent>,
    cancel: CancellationToken,
    tasks: TaskTracker,
) -> std::result::Result<Value, ErrorObjectOwned> {
    let mut value: Value = match raw {
        Some(raw) => serde_json::from_str(&raw).map_err(|e| to_rpc(ApiError::invalid_params(e)))?,
        None => Value::Null,
    };
    let token = value.as_object_mut().and_then(|o| o.remove("workDoneToken"));
    let progress: Arc<dyn crate::progress::Progress> = match &token {
        Some(t) => {
            let _ = tx.send(ProgressEvent { token: t.clone(), kind: ProgressKind::Begin, message: Some(name.into()) });
            Arc::new(Broadcast { tx: tx.clone(), token: t.clone() })
        }
        None => Arc::new(crate::progress::Silent),
    };
    let cx = CallCx { progress, cancel };
    let res = tasks
        .spawn(async move { api.dispatch(name, value, cx).await })
        .await
        .map_err(|e| to_rpc(ApiError::failed(e)))?
        .map_err(to_rpc);
    if let Some(t) = token {
        let _ = tx.send(ProgressEvent { token: t, kind: ProgressKind::End, message: None });
    }
    res
}

/// A subscription `[subscribe, notification, unsubscribe]` forwarding what `start` yields (each
/// subscriber its own follower, ended when it leaves), as `pick` turns it into JSON.
fn forward<T: Send + 'static>(
    m: &mut RpcModule<Api>,
    [subscribe, notification, unsubscribe]: [&'static str; 3],
    start: fn(&Api) -> mpsc::Receiver<T>,
    pick: fn(T) -> Option<Value>,
) {
    m.register_subscription(subscribe, notification, unsubscribe, move |_, pending, api, _| async move {
        let sink = pending.accept().await?;
        let mut rx = start(&api);
        loop {
            tokio::select! {
                _ = sink.closed() => return Ok(()),
                msg = rx.recv() => {
                    let Some(v) = msg.map(pick) else { return Ok(()) };
                    let Some(v) = v else { continue };
                    sink.send(SubscriptionMessage::from(serde_json::value::to_raw_value(&v)?)).await?;
                }
            }
        }
    })
    .expect("subscription names are unique");
}

/// `Authorization: Bearer TOKEN` on every HTTP request and WebSocket upgrade.
#[derive(Clone)]
struct TokenCheck(Arc<String>);

impl<B> tower_http::validate_request::ValidateRequest<B> for TokenCheck {
    type ResponseBody = HttpBody;
    fn validate(
        &mut self,
        req: &mut jsonrpsee::server::HttpRequest<B>,
    ) -> Result<(), jsonrpsee::server::HttpResponse<HttpBody>> {
        let given = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        // Constant-time comparison: the token must not leak through timing.
        let want = self.0.as_bytes();
        let ok = given.len() == want.len() && given.bytes().zip(want).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
        if ok {
            return Ok(());
        }
        let mut resp = jsonrpsee::server::HttpResponse::new(HttpBody::from(
            "missing or wrong token: send Authorization: Bearer <~/.sandbox/serve.token>",
        ));
        *resp.status_mut() = http::StatusCode::UNAUTHORIZED;
        Err(resp)
    }
}

/// Serves until Ctrl-C. Refuses non-loopback addresses.
pub async fn serve(api: Api, listen: SocketAddr, cancel: CancellationToken) -> Result<()> {
    if !listen.ip().is_loopback() {
        return Err(EngineError::invalid(
            "listen",
            format!("{listen} is not a loopback address"),
            "the API listens on 127.0.0.1 or [::1] only, e.g. --listen 127.0.0.1:7681",
        ));
    }
    let token = ensure_token()?;
    let auth = tower_http::validate_request::ValidateRequestHeaderLayer::custom(TokenCheck(Arc::new(token)));
    let server =
        Server::builder().set_http_middleware(tower::ServiceBuilder::new().layer(auth)).build(listen).await.map_err(
            |e| EngineError::failed(format!("cannot listen on {listen}: {e}"), "choose another port with --listen"),
        )?;
    let addr = server.local_addr().map_err(|e| EngineError::failed(e.to_string(), ""))?;
    let _ = writeln!(
        std::io::stderr(),
        "sandbox serve: listening on http://{addr} and ws://{addr} (token in {})",
        token_path().display()
    );
    let tasks = TaskTracker::new();
    {
        let engine = api.engine.clone();
        tasks.spawn(async move { super::sweep(&engine).await });
    }
    let handle = server.start(module(api, cancel.clone(), tasks.clone()));
    tokio::select! {
        _ = cancel.cancelled() => { let _ = handle.stop(); }
        _ = handle.clone().stopped() => {}
    }
    // Calls still running roll back (their tokens are the signal's children), then we go.
    tasks.close();
    if tokio::time::timeout(std::time::Duration::from_secs(300), tasks.wait()).await.is_err() {
        tracing::warn!("operations still running after 300 s; exiting");
    }
    Ok(())
}
