//! `sandbox lsp`: the method table over stdio with LSP framing (tower-lsp-server), for the VS Code
//! extension. stdout carries only protocol; logs go to stderr.
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_lsp_server::jsonrpc::{self, ErrorCode};
use tower_lsp_server::ls_types::notification::Notification;
use tower_lsp_server::ls_types::{
    InitializeParams, InitializeResult, InitializedParams, NumberOrString, ProgressToken, ServerCapabilities,
    ServerInfo,
};
use tower_lsp_server::{Client, LanguageServer, LspService, LspServiceBuilder, Server};

use super::status::ServerStatus;
use super::watch::{self, Push};
use super::{Api, ApiError, CallCx, Changed};
use crate::progress::Progress;

struct DeniedNotification;
impl Notification for DeniedNotification {
    type Params = super::Denied;
    const METHOD: &'static str = super::DENIED;
}

struct ChangedNotification;
impl Notification for ChangedNotification {
    type Params = Changed;
    const METHOD: &'static str = super::CHANGED;
}

struct StatusNotification;
impl Notification for StatusNotification {
    type Params = ServerStatus;
    const METHOD: &'static str = super::status::STATUS;
}

pub struct Backend {
    client: Client,
    api: Api,
    tasks: TaskTracker,
    watching: AtomicBool,
    /// The client asked for `sandbox/denied` (`initializationOptions.denials`): only then are the
    /// filters' logs tailed.
    denials: AtomicBool,
    /// Cancelled by a signal: every operation running rolls back.
    stop: CancellationToken,
}

/// Progress lines from the engine, forwarded in order as `$/progress` reports.
struct LspProgress(mpsc::UnboundedSender<String>);
impl Progress for LspProgress {
    fn step(&self, message: &str) {
        let _ = self.0.send(message.to_string());
    }
    fn line(&self, line: &str) {
        let _ = self.0.send(format!("  {line}"));
    }
}

fn to_rpc(e: ApiError) -> jsonrpc::Error {
    jsonrpc::Error {
        code: ErrorCode::from(e.rpc_code()),
        message: e.message.clone().into(),
        data: serde_json::to_value(&e).ok(),
    }
}

impl Backend {
    async fn call(&self, method: &'static str, mut params: Value) -> jsonrpc::Result<Value> {
        let token = params.as_object_mut().and_then(|o| o.remove("workDoneToken"));
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        let forward = token.and_then(|t| match t {
            Value::String(s) => Some(ProgressToken::String(s)),
            Value::Number(n) => n.as_i64().map(|n| ProgressToken::Number(n as i32)),
            _ => None,
        });
        let client = self.client.clone();
        let reporter = tokio::spawn(async move {
            let Some(token) = forward else {
                while rx.recv().await.is_some() {}
                return;
            };
            let _ = matches!(token, NumberOrString::Number(_));
            let progress = client.progress(token, method).with_message("starting").begin().await;
            while let Some(msg) = rx.recv().await {
                progress.report(msg).await;
            }
            progress.finish().await;
        });
        // The operation runs as its own task: a client that cancels (or vanishes) does not drop
        // it half-way; the cancel token makes it roll back instead.
        let cancel = self.stop.child_token();
        let cx = CallCx { progress: Arc::new(LspProgress(tx)), cancel: cancel.clone() };
        let api = self.api.clone();
        let handle = self.tasks.spawn(async move { api.dispatch(method, params, cx).await });
        let guard = cancel.drop_guard();
        let res = handle.await;
        guard.disarm();
        let _ = reporter.await;
        match res {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(to_rpc(e)),
            Err(e) => Err(jsonrpc::Error { code: ErrorCode::InternalError, message: e.to_string().into(), data: None }),
        }
    }
}

impl LanguageServer for Backend {
    async fn initialize(&self, p: InitializeParams) -> jsonrpc::Result<InitializeResult> {
        let wants = p.initialization_options.as_ref().and_then(|o| o.get("denials")).and_then(Value::as_bool);
        self.denials.store(wants == Some(true), Ordering::SeqCst);
        Ok(InitializeResult {
            capabilities: ServerCapabilities::default(),
            server_info: Some(ServerInfo {
                name: "agent-sandboxes".into(),
                version: Some(env!("CARGO_PKG_VERSION").into()),
            }),
            ..Default::default()
        })
    }

    async fn initialized(&self, _: InitializedParams) {
        if self.watching.swap(true, Ordering::SeqCst) {
            return;
        }
        // What a killed process left (a create interrupted by kill -9) goes now.
        let engine = self.api.engine.clone();
        self.tasks.spawn(async move { super::sweep(&engine).await });
        let client = self.client.clone();
        let mut rx = watch::follow(self.api.engine.clone());
        tokio::spawn(async move {
            while let Some(push) = rx.recv().await {
                match push {
                    Push::Changed(c) => client.send_notification::<ChangedNotification>(*c).await,
                    Push::Status(s) => client.send_notification::<StatusNotification>(s).await,
                }
            }
        });
        if !self.denials.load(Ordering::SeqCst) {
            return;
        }
        let client = self.client.clone();
        let mut denied = watch::follow_denials();
        tokio::spawn(async move {
            while let Some(d) = denied.recv().await {
                client.send_notification::<DeniedNotification>(d).await;
            }
        });
    }

    async fn shutdown(&self) -> jsonrpc::Result<()> {
        Ok(())
    }
}

macro_rules! define_lsp {
    ($($name:literal => $fn:ident($params:ty) -> $result:ty;)*) => {
        impl Backend {
            $(async fn $fn(&self, params: Value) -> jsonrpc::Result<Value> {
                self.call($name, params).await
            })*
        }

        fn register(b: LspServiceBuilder<Backend>) -> LspServiceBuilder<Backend> {
            b $(.custom_method($name, Backend::$fn))*
        }
    };
}
crate::for_each_method!(define_lsp);

/// Serves LSP on stdin/stdout until the client exits; then lets running operations finish
/// (or roll back) before the process ends, so a vanished client never leaves an orphan. `stop`
/// (a signal) ends serving at once and rolls running operations back.
pub async fn serve_stdio(api: Api, stop: CancellationToken) {
    let tasks = TaskTracker::new();
    let (t, s) = (tasks.clone(), stop.clone());
    let (service, socket) = register(LspService::build(move |client| Backend {
        client,
        api,
        tasks: t,
        watching: AtomicBool::new(false),
        denials: AtomicBool::new(false),
        stop: s,
    }))
    .finish();
    let (input, output) = super::frames::guard(tokio::io::stdin(), tokio::io::stdout());
    tokio::select! {
        _ = Server::new(input, output, socket).serve(service) => {}
        _ = stop.cancelled() => {}
    }
    tasks.close();
    if tokio::time::timeout(Duration::from_secs(300), tasks.wait()).await.is_err() {
        tracing::warn!("operations still running after 300 s; exiting");
    }
}
