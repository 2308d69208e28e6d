//! Every `user.sandbox.*` config key the product reads or writes on Incus instances, in one place.
//! Incus is the only source of truth: what a sandbox, a golden image or a spare is, is these keys.

// ---- a sandbox (`agent-NAME`) ----------------------------------------------------------------

/// Made by this product ("agent-sandboxes"); absent on the seed's sandboxes.
pub const CREATED_BY: &str = "user.sandbox.created-by";
/// Set from a create's first config until its last step: who is making it (see journal.rs). An
/// instance that has it, and whose creator is gone, is what an interrupted create left.
pub const CREATING: &str = "user.sandbox.creating";
/// Fingerprint (SHA256) of the managed client key let into the sandbox (`start` lets a new one in).
pub const CLIENT_KEY: &str = "user.sandbox.client-key";
/// RFC 3339, when the create was asked for (a spare's instance was made earlier).
pub const CREATED_AT: &str = "user.sandbox.created-at";
/// 1–99: the pinned address (network + 100 + slot), MAC and host ports.
pub const SLOT: &str = "user.sandbox.slot";
pub const STACK: &str = "user.sandbox.stack";
pub const REPO: &str = "user.sandbox.repo";
pub const BRANCH: &str = "user.sandbox.branch";
/// The sandbox it was branched from (`--from`).
pub const FROM: &str = "user.sandbox.from";
/// The sandbox's public SSH host key (its entry in ~/.sandbox/known_hosts is written from it).
pub const SSH_HOST_KEY: &str = "user.sandbox.ssh-host-key";
/// `--env` pairs as JSON `[[K, V], …]` (kept and extended on restart).
pub const ENV: &str = "user.sandbox.env";
/// SHA-256 of the environment file last written into the sandbox.
pub const ENV_DIGEST: &str = "user.sandbox.env-digest";
/// "yes": egress only to the allowlist.
pub const RESTRICT_DOMAINS: &str = "user.sandbox.restrict-domains";
/// The allowlist file given at create (implies restricted).
pub const DOMAINS_FILE: &str = "user.sandbox.domains-file";
/// Domains added / removed with `allow` / `deny` (comma-separated).
pub const DOMAINS_ALLOW: &str = "user.sandbox.domains-allow";
pub const DOMAINS_DENY: &str = "user.sandbox.domains-deny";
/// The resolver a restricted sandbox's allowlisted names are forwarded to.
pub const DNS_UPSTREAM: &str = "user.sandbox.dns-upstream";
/// "yes": UDP 443 (QUIC) may leave this (open) sandbox (`--allow-quic`).
pub const ALLOW_QUIC: &str = "user.sandbox.allow-quic";
/// The user's own private key (`--ssh-key`), loaded into the sandbox's agent.
pub const SSH_KEY: &str = "user.sandbox.ssh-key";
/// "yes": we run an ssh-agent for this sandbox (deploy key or `--ssh-key`). (Not to be confused
/// with the `user.sandbox.agent.*` keys below: Claude Code's state.)
pub const AGENT: &str = "user.sandbox.agent";
/// The deploy key's id on GitHub, and whether it was registered read-only.
pub const DEPLOY_KEY_ID: &str = "user.sandbox.deploy-key-id";
pub const DEPLOY_KEY_READ_ONLY: &str = "user.sandbox.deploy-key-read-only";
/// Tokens used through the host's Anthropic proxy, as JSON (anthropic/usage.rs), written by the
/// proxy at most every few seconds.
pub const USAGE: &str = "user.sandbox.usage";
/// Claude Code in the sandbox, from its hooks (agents/, written by the host's hook relay):
/// none | done | working | waiting — the most urgent of its sessions.
pub const AGENT_STATE: &str = "user.sandbox.agent.state";
/// RFC 3339: when the state or its message last changed.
pub const AGENT_SINCE: &str = "user.sandbox.agent.since";
/// waiting: what Claude needs; done: the answer's first line (sanitised, one line, bounded).
pub const AGENT_MESSAGE: &str = "user.sandbox.agent.message";
/// Each session's state as JSON (a restarted relay goes on from it).
pub const AGENT_SESSIONS: &str = "user.sandbox.agent.sessions";
/// Hook messages dropped by the relay, by reason, as JSON.
pub const AGENT_DROPPED: &str = "user.sandbox.agent.dropped";
/// One per snapshot made through us: `user.sandbox.snapshot.LABEL` = JSON (snapshots/meta.rs:
/// kind, turn, message, pinned, when). Kept on the instance, so a restore keeps every snapshot's
/// record and `sandbox/changed` carries them.
pub const SNAPSHOT_PREFIX: &str = "user.sandbox.snapshot.";
/// The last checkpoint's turn number (never reused, so turn-N names never collide).
pub const CHECKPOINT_TURNS: &str = "user.sandbox.checkpoint-turns";
/// How many checkpoints to keep (besides pinned ones); absent = the default, "0" = none taken.
pub const CHECKPOINT_KEEP: &str = "user.sandbox.checkpoint-keep";
/// The prepared image a sandbox was created from (`prepared-STACK-KEY`).
pub const PREPARED_FROM: &str = "user.sandbox.prepared-from";
/// Where the sandbox's branch started (recorded after the clone): the commit `sandbox diff`
/// compares with, and the branch a pull request goes to.
pub const BASE_COMMIT: &str = "user.sandbox.base-commit";
pub const BASE_BRANCH: &str = "user.sandbox.base-branch";
/// The last `sandbox diff` summary, as JSON (review/summary.rs): what the tree shows.
pub const CHANGES: &str = "user.sandbox.changes";
/// The sandbox's pull request, as JSON (review/pr.rs): number, URL, state.
pub const PULL_REQUEST: &str = "user.sandbox.pull-request";
/// How a sandbox with a repository pushes: "gate" (through the host's push gate, its own branch
/// only: gate/) or "any" (straight to the server with its key: `--allow-push-any`).
pub const PUSH: &str = "user.sandbox.push";
/// Identity values Incus renders into a new sandbox's files at its first start
/// (`user.sandbox.boot.hostname`, …; see identity.rs).
pub const BOOT_PREFIX: &str = "user.sandbox.boot.";

// ---- a golden image (`golden-STACK`) ---------------------------------------------------------

/// Set on the temporary instance while its stack script runs.
pub const GOLDEN_BUILDING: &str = "user.sandbox.golden-building";
pub const GOLDEN_STACK: &str = "user.sandbox.golden-stack";
/// Hash of what it was built from (stale when the stack script changed since).
pub const GOLDEN_INPUTS: &str = "user.sandbox.golden-inputs";
pub const GOLDEN_BUILT_AT: &str = "user.sandbox.golden-built-at";
pub const GOLDEN_BASE_IMAGE: &str = "user.sandbox.golden-base-image";
/// The Claude Code version the golden image carries (pushed at build; see claude/).
pub const GOLDEN_CLAUDE_CODE: &str = "user.sandbox.golden-claude-code";
/// The golden image carries the push gate's socket units (version; gate/units.rs).
pub const GOLDEN_GIT_GATE: &str = "user.sandbox.golden-git-gate";
/// The golden image carries the identity templates (version).
pub const GOLDEN_IDENTITY: &str = "user.sandbox.golden-identity";

// ---- a prepared image (`prepared-STACK-KEY`, a `ready` snapshot like a golden image) --------

/// The repository it holds, as `HOST/OWNER/REPO` (how a start finds it, whatever URL form).
pub const PREPARED_REPO: &str = "user.sandbox.prepared-repo";
/// The URL it was prepared from (shown to users).
pub const PREPARED_URL: &str = "user.sandbox.prepared-url";
pub const PREPARED_STACK: &str = "user.sandbox.prepared-stack";
pub const PREPARED_BRANCH: &str = "user.sandbox.prepared-branch";
pub const PREPARED_COMMIT: &str = "user.sandbox.prepared-commit";
/// Hash of the lockfiles and setup script (prepared/key.rs): the image matches a branch whose
/// files hash the same.
pub const PREPARED_KEY: &str = "user.sandbox.prepared-key";
/// The files that went into the key, and what ran (for people).
pub const PREPARED_FILES: &str = "user.sandbox.prepared-files";
pub const PREPARED_SETUP: &str = "user.sandbox.prepared-setup";
pub const PREPARED_AT: &str = "user.sandbox.prepared-at";
/// The golden build (`GOLDEN_BUILT_AT`) it was made from: a rebuilt golden image makes it stale.
pub const PREPARED_GOLDEN: &str = "user.sandbox.prepared-golden";
/// Set on the temporary instance while the repository's setup runs.
pub const PREPARING: &str = "user.sandbox.preparing";

// ---- a warm spare (`spare-STACK`) ------------------------------------------------------------

/// The golden build (`GOLDEN_BUILT_AT`) the spare was copied from.
pub const SPARE_OF: &str = "user.sandbox.spare-of";
/// "1" once the spare has booted, warmed up and stopped: only then can it be claimed.
pub const SPARE_WARM: &str = "user.sandbox.spare-warm";
