//! The API: ONE method table (`for_each_method!`), typed params and results, dispatched by name.
//! `sandbox lsp` (stdio, LSP framing) and `sandbox serve` both call `Api::dispatch`; the
//! TypeScript the extension uses is generated from the same table (`typescript()`).
mod frames;
pub mod lsp;
mod methods;
mod review;
pub mod serve;
mod snapshots;
pub mod status;
pub mod watch;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use ts_rs::TS;

pub use methods::*;
pub use review::*;
pub use snapshots::*;

use crate::engine::{Engine, EngineError};
pub use crate::error::ErrorCode;
use crate::progress::Progress;

/// The whole protocol: method name → handler(params type) → result type.
/// Adding a method here adds it to both transports and to the generated TypeScript.
#[macro_export]
macro_rules! for_each_method {
    ($cb:ident) => {
        $cb! {
            "sandbox/list" => list(ListParams) -> Vec<Sandbox>;
            "sandbox/get" => get(NameParams) -> Option<Sandbox>;
            "sandbox/create" => create(CreateOptions) -> StartResult;
            "sandbox/start" => start(StartParams) -> StartResult;
            "sandbox/stop" => stop(NamesParams) -> Vec<NameOutcome>;
            "sandbox/destroy" => destroy(DestroyParams) -> Vec<NameOutcome>;
            "sandbox/expose" => expose(ExposeParams) -> Vec<PortForward>;
            "sandbox/unexpose" => unexpose(UnexposeParams) -> Done;
            "sandbox/exec" => exec(ExecParams) -> ExecResult;
            "sandbox/setup" => setup(SetupParams) -> Vec<SetupReport>;
            "sandbox/doctor" => doctor(Empty) -> Vec<Check>;
            "sandbox/goldenImages" => golden_images(Empty) -> Vec<GoldenInfo>;
            "sandbox/hostInfo" => host_info(Empty) -> HostInfo;
            "sandbox/allow" => allow(DomainsParams) -> Allowlist;
            "sandbox/deny" => deny(DomainsParams) -> Allowlist;
            "sandbox/denials" => denials(NameParams) -> Vec<Denial>;
            "sandbox/authStatus" => auth_status(Empty) -> Vec<CredentialStatus>;
            "sandbox/authSet" => auth_set(AuthSetParams) -> CredentialStatus;
            "sandbox/authRemove" => auth_remove(ProviderParams) -> CredentialStatus;
            "sandbox/adopt" => adopt(NameParams) -> Sandbox;
            "sandbox/snapshot" => snapshot(SnapshotParams) -> SnapshotInfo;
            "sandbox/snapshots" => snapshots(NameParams) -> Vec<SnapshotInfo>;
            "sandbox/snapshotRemove" => snapshot_remove(LabelParams) -> Done;
            "sandbox/snapshotPin" => snapshot_pin(PinParams) -> SnapshotInfo;
            "sandbox/checkpointKeep" => checkpoint_keep(KeepParams) -> Vec<SnapshotInfo>;
            "sandbox/restore" => restore(LabelParams) -> Sandbox;
            "sandbox/fork" => fork(ForkOptions) -> StartResult;
            "sandbox/prepare" => prepare(PrepareOptions) -> PreparedInfo;
            "sandbox/preparedImages" => prepared_images(Empty) -> Vec<PreparedInfo>;
            "sandbox/preparedRemove" => prepared_remove(ImageParams) -> Done;
            "sandbox/diff" => diff(DiffParams) -> Diff;
            "sandbox/blob" => blob(BlobParams) -> Blob;
            "sandbox/fetch" => fetch(FetchParams) -> FetchResult;
            "sandbox/pr" => pull_request(PrParams) -> PullRequest;
            "sandbox/prStatus" => pull_request_status(PrStatusParams) -> Option<PullRequest>;
        }
    };
}

/// Methods that report progress: their params may carry a `workDoneToken` (each transport takes
/// it out before the params are decoded).
pub const WITH_PROGRESS: &[&str] = &[
    "sandbox/create",
    "sandbox/start",
    "sandbox/setup",
    "sandbox/exec",
    "sandbox/restore",
    "sandbox/fork",
    "sandbox/prepare",
    "sandbox/fetch",
    "sandbox/pr",
];

/// Server → client notification: the new state of one sandbox (null: it is gone).
pub const CHANGED: &str = "sandbox/changed";

#[derive(Debug, Clone, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct Changed {
    pub name: String,
    pub sandbox: Option<crate::engine::sandbox::Sandbox>,
}

/// Server → client notification: a restricted sandbox was refused a name (UI: "Allow?").
pub const DENIED: &str = "sandbox/denied";

#[derive(Debug, Clone, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct Denied {
    pub name: String,
    pub denial: crate::engine::egress::denials::Denial,
}

/// An error every client can act on: a stable code, a message and what to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub hint: Option<String>,
}

impl ApiError {
    pub fn unknown_method(m: &str) -> Self {
        Self {
            code: ErrorCode::UnknownMethod,
            message: format!("unknown method '{m}'"),
            hint: Some(format!("methods: {}", METHODS.join(", "))),
        }
    }
    pub fn invalid_params(e: impl std::fmt::Display) -> Self {
        Self { code: ErrorCode::InvalidParams, message: format!("invalid params: {e}"), hint: None }
    }
    pub fn failed(e: impl std::fmt::Display) -> Self {
        Self { code: ErrorCode::Failed, message: e.to_string(), hint: None }
    }
    /// JSON-RPC error code for this error.
    pub fn rpc_code(&self) -> i64 {
        match self.code {
            ErrorCode::UnknownMethod => -32601,
            ErrorCode::InvalidParams => -32602,
            ErrorCode::Cancelled => -32800,
            _ => -32000,
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        Self { code: e.code(), message: e.to_string(), hint: e.hint() }
    }
}

/// What a call gets besides its params: where progress goes, and its cancellation.
#[derive(Clone)]
pub struct CallCx {
    pub progress: Arc<dyn Progress>,
    pub cancel: CancellationToken,
}

/// The engine plus per-sandbox serialisation (different sandboxes run in parallel).
#[derive(Clone)]
pub struct Api {
    pub engine: Engine,
    locks: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

impl Api {
    pub fn new(engine: Engine) -> Self {
        Self { engine, locks: Default::default() }
    }

    /// Holds the per-sandbox lock for the duration of an operation.
    pub(crate) async fn lock(&self, name: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let m = {
            let mut map = self.locks.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(name.to_string()).or_default().clone()
        };
        m.lock_owned().await
    }
}

/// A sidecar starting: what killed processes left (interrupted creates) is removed, and said.
pub(crate) async fn sweep(engine: &Engine) {
    for (name, r) in engine.sweep_interrupted().await {
        match r {
            Ok(()) => tracing::info!("removed what an interrupted create of '{name}' left"),
            Err(e) => tracing::warn!("an interrupted create of '{name}' left things behind: {e}"),
        }
    }
}

fn parse<P: DeserializeOwned>(params: Value) -> Result<P, ApiError> {
    let params = if params.is_null() { Value::Object(Default::default()) } else { params };
    serde_json::from_value(params).map_err(ApiError::invalid_params)
}

macro_rules! define_dispatch {
    ($($name:literal => $fn:ident($params:ty) -> $result:ty;)*) => {
        /// Every method name, in table order.
        pub const METHODS: &[&str] = &[$($name),*];

        impl Api {
            /// Calls a method by name with JSON params: the one entry point of both transports.
            pub async fn dispatch(&self, method: &str, params: Value, cx: CallCx) -> Result<Value, ApiError> {
                match method {
                    $($name => {
                        let p: $params = parse(params)?;
                        let r: $result = self.$fn(p, cx).await?;
                        serde_json::to_value(r).map_err(ApiError::failed)
                    })*
                    _ => Err(ApiError::unknown_method(method)),
                }
            }
        }

        /// Decodes params for a method without running it (what the fuzz test exercises).
        pub fn decode_params(method: &str, params: Value) -> Result<(), ApiError> {
            match method {
                $($name => parse::<$params>(params).map(|_| ()),)*
                _ => Err(ApiError::unknown_method(method)),
            }
        }

        /// The TypeScript declarations of the protocol (written to extension/src/protocol.generated.ts).
        pub fn typescript() -> String {
            let mut out = String::from(
                "// Generated from server/src/api (the method table) by `cargo test -p sandbox protocol_ts`.\n\
                 // Do not edit: change the Rust types, then run with UPDATE_PROTOCOL=1.\n\n",
            );
            for decl in declarations().into_iter().chain(review::declarations()) {
                out.push_str("export ");
                out.push_str(&decl);
                out.push_str("\n\n");
            }
            out.push_str("/** Params of a method that reports progress (`$/progress` on this token). */\n");
            out.push_str("export type WithProgress<P> = P & { workDoneToken?: string | number };\n\n");
            out.push_str("/** Every request: its params and its result. */\nexport interface Methods {\n");
            $({
                let params = <$params as TS>::name();
                let params = if WITH_PROGRESS.contains(&$name) { format!("WithProgress<{params}>") } else { params };
                out.push_str(&format!("  \"{}\": {{ params: {}; result: {} }};\n", $name, params, <$result as TS>::name()));
            })*
            out.push_str("}\n\nexport const METHODS = [\n");
            $(out.push_str(&format!("  \"{}\",\n", $name));)*
            out.push_str("] as const;\n\n");
            out.push_str(&format!("/** Server → client notification. */\nexport const CHANGED = \"{CHANGED}\";\n"));
            out.push_str(&format!("/** Server → client notification. */\nexport const DENIED = \"{DENIED}\";\n"));
            out.push_str(&format!("/** Server → client notification. */\nexport const STATUS = \"{}\";\n", status::STATUS));
            out
        }
    };
}
for_each_method!(define_dispatch);

/// Every named type of the protocol, declared once.
fn declarations() -> Vec<String> {
    use crate::engine::agents::{Agent, AgentState, Dropped};
    use crate::engine::anthropic::credential::{CredentialKind, Provider};
    use crate::engine::anthropic::usage::{ModelUsage, Tokens, Usage};
    use crate::engine::create::{StartAction, StartResult};
    use crate::engine::doctor::{Check, CheckStatus};
    use crate::engine::egress::Allowlist;
    use crate::engine::egress::denials::{Denial, DenialKind};
    use crate::engine::golden::{GoldenInfo, GoldenState};
    use crate::engine::ports::PortRole;
    use crate::engine::sandbox::{ClaudeAuth, DockerState, Egress, Health, PortForward, Sandbox, SandboxState};
    use crate::engine::setup::{SetupAction, SetupReport};
    use crate::engine::validate::Proto;
    vec![
        // What clients see of a sandbox.
        Sandbox::decl(),
        SandboxState::decl(),
        PortForward::decl(),
        PortRole::decl(),
        Proto::decl(),
        Egress::decl(),
        Health::decl(),
        crate::engine::listen::Listener::decl(),
        DockerState::decl(),
        ClaudeAuth::decl(),
        Agent::decl(),
        AgentState::decl(),
        Dropped::decl(),
        Usage::decl(),
        Tokens::decl(),
        ModelUsage::decl(),
        // Credentials on the host.
        Provider::decl(),
        CredentialKind::decl(),
        CredentialStatus::decl(),
        AuthSetParams::decl(),
        ProviderParams::decl(),
        // Results.
        StartResult::decl(),
        StartAction::decl(),
        GoldenInfo::decl(),
        GoldenState::decl(),
        SetupReport::decl(),
        SetupAction::decl(),
        Check::decl(),
        CheckStatus::decl(),
        Allowlist::decl(),
        Denial::decl(),
        DenialKind::decl(),
        HostInfo::decl(),
        NameOutcome::decl(),
        ExecResult::decl(),
        Done::decl(),
        // Notifications.
        Changed::decl(),
        Denied::decl(),
        status::ServerStatus::decl(),
        status::StatusHealth::decl(),
        status::IncusState::decl(),
        serve::ProgressEvent::decl(),
        serve::ProgressKind::decl(),
        // Errors.
        ApiError::decl(),
        ErrorCode::decl(),
    ]
    .into_iter()
    .chain(param_declarations())
    .chain(snapshots::declarations())
    .collect()
}

fn param_declarations() -> Vec<String> {
    vec![
        ListParams::decl(),
        NameParams::decl(),
        NamesParams::decl(),
        DestroyParams::decl(),
        CreateOptions::decl(),
        StartParams::decl(),
        ExposeParams::decl(),
        ExposeProto::decl(),
        UnexposeParams::decl(),
        ExecParams::decl(),
        SetupParams::decl(),
        DomainsParams::decl(),
        Empty::decl(),
    ]
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::Value;

    use super::ErrorCode;

    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map(Value::Number).unwrap_or(Value::Null)),
            ".{0,40}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map("[a-zA-Z]{0,12}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Any JSON as params, for any method name: decoding answers Ok or a typed error, never panics.
        #[test]
        fn request_decoding_never_panics(params in json(), pick in 0usize..32, junk in ".{0,20}") {
            let method = super::METHODS.get(pick).map(|s| s.to_string()).unwrap_or(junk);
            match super::decode_params(&method, params) {
                Ok(()) => prop_assert!(super::METHODS.contains(&method.as_str())),
                Err(e) => prop_assert!([ErrorCode::InvalidParams, ErrorCode::UnknownMethod].contains(&e.code)),
            }
        }

        /// Arbitrary bytes in front of the LSP transport never panic the frame reader.
        #[test]
        fn frame_reader_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            rt.block_on(async {
                let mut r = tokio::io::BufReader::new(&bytes[..]);
                for _ in 0..8 {
                    match super::frames::read_frame_for_tests(&mut r).await {
                        Ok(true) => continue,
                        _ => break,
                    }
                }
            });
        }
    }

    /// The committed TypeScript must match the Rust types (UPDATE_PROTOCOL=1 rewrites it).
    #[test]
    fn protocol_ts_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../extension/src/protocol.generated.ts");
        let want = super::typescript();
        if std::env::var_os("UPDATE_PROTOCOL").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &want).unwrap();
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "extension/src/protocol.generated.ts is stale: run `UPDATE_PROTOCOL=1 cargo test -p sandbox protocol_ts` and commit it"
        );
    }
}
