// Generated from server/src/api (the method table) by `cargo test -p sandbox protocol_ts`.
// Do not edit: change the Rust types, then run with UPDATE_PROTOCOL=1.

export type Sandbox = { name: string, instance: string, state: SandboxState, slot: number | null, stack: string | null, repo: string | null, branch: string | null, ip: string | null, ports: Array<PortForward>, egress: Egress, push: Push, cpu: string | null, memory: string | null, createdAt: string, 
/**
 * Cluster member the sandbox runs on (absent on a single server).
 */
location: string | null, 
/**
 * Why it cannot be reached now (its cluster member is down); absent when it can.
 */
unreachable: string | null, 
/**
 * Created by this product (false: by the seed's scripts).
 */
managed: boolean, health: Health | null, 
/**
 * Its host in ~/.sandbox/ssh_config (`ssh -F CONFIG ALIAS`; Remote-SSH's host name).
 */
sshAlias: string, 
/**
 * Tokens used through the host's Anthropic proxy (absent before the first request).
 */
usage: Usage | null, 
/**
 * What its Claude Code sessions are doing (from their hooks).
 */
agent: Agent, 
/**
 * The prepared image it was created from (its repository's dependencies were installed).
 */
prepared: string | null, 
/**
 * Its snapshots made through us (checkpoints among them), oldest first.
 */
snapshots: Array<SnapshotInfo>, 
/**
 * This user can reach it over SSH: its entry is in this user's ~/.sandbox/ssh_config. False
 * for a sandbox another user (or another SANDBOX_HOME) made: `sandbox adopt NAME`.
 */
reachable: boolean, 
/**
 * The branch a pull request goes to (where the sandbox's branch started).
 */
baseBranch: string | null, 
/**
 * What the agent changed, as of the last diff (`sandbox diff`, or the end of an agent's turn).
 */
changes: ChangeSummary | null, 
/**
 * The pull request opened with `sandbox pr`.
 */
pullRequest: PullRequest | null, 
/**
 * Its create has not finished (absent once it has).
 */
incomplete?: "creating" | "interrupted", 
/**
 * The size of its root disk (`--disk`, else the default), as Incus has it.
 */
disk: string | null, };

export type SandboxState = "running" | "stopped" | "frozen" | "error" | "starting" | "stopping" | "unknown";

export type PortForward = { 
/**
 * Incus device name (`ports` for ssh/app/alt together; the seed's `ssh-proxy`, `app-proxy`,
 * `alt-proxy`; `port-PORT-PROTO` for `expose`).
 */
device: string, role: PortRole, proto: Proto, hostPort: number, containerPort: number, };

export type PortRole = "ssh" | "app" | "alt" | "extra";

export type Proto = "tcp" | "udp";

export type Egress = "open" | "filtered";

export type Health = { docker: DockerState, sshAgent: boolean, 
/**
 * Claude Code can reach the API with a credential (host, env or login).
 */
claudeAuth: boolean, claude: ClaudeAuth, 
/**
 * The `claude` command is in the sandbox (a stack may lack it).
 */
claudeInstalled: boolean, 
/**
 * TCP ports something listens on in the sandbox (what a forwarded port reaches).
 */
listening: Array<Listener>, };

export type Listener = { port: number, 
/**
 * Bound to loopback only (127.0.0.1, ::1): the host's forward cannot reach it.
 */
loopbackOnly: boolean, };

export type DockerState = "active" | "inactive" | "failed" | "absent" | "unknown";

export type ClaudeAuth = "host" | "hostUnset" | "env" | "login" | "none";

export type Agent = { 
/**
 * The most urgent of its Claude Code sessions (waiting > working > done > none).
 */
state: AgentState, 
/**
 * RFC 3339: when `state` or `message` last changed (absent: never).
 */
since: string | null, 
/**
 * waiting: what Claude needs ("Claude needs your permission to use Bash"); done: the
 * answer's first line. One line of printable text written by the sandbox: show it as text.
 */
message: string | null, 
/**
 * Hook messages from the sandbox dropped by the host.
 */
dropped: Dropped, };

export type AgentState = "none" | "done" | "working" | "waiting";

export type Dropped = { 
/**
 * Larger than the limit (1 MB).
 */
tooBig: number, 
/**
 * Not a hook's JSON input (or not `POST /hook`).
 */
malformed: number, 
/**
 * An event name the hooks never send.
 */
unknownEvent: number, 
/**
 * Over the rate (a burst of 60, then 20 a second) or too many connections at once.
 */
rateLimited: number, };

export type Usage = { models: Array<ModelUsage>, requests: number, inputTokens: number, outputTokens: number, cacheReadTokens: number, cacheWriteTokens: number, };

export type Tokens = { requests: number, inputTokens: number, outputTokens: number, cacheReadTokens: number, cacheWriteTokens: number, };

export type ModelUsage = { model: string, requests: number, inputTokens: number, outputTokens: number, cacheReadTokens: number, cacheWriteTokens: number, };

export type Provider = "anthropic";

export type CredentialKind = "apiKey" | "oauthToken";

export type CredentialStatus = { provider: Provider, set: boolean, kind: CredentialKind | null, 
/**
 * When it was stored (RFC 3339).
 */
updatedAt: string | null, };

export type AuthSetParams = { provider: Provider, 
/**
 * The API key or the OAuth token from `claude setup-token`: one line, never logged.
 */
credential: string, 
/**
 * Default: from the prefix (sk-ant-oat… is an OAuth token, anything else an API key).
 */
kind?: CredentialKind, };

export type ProviderParams = { provider: Provider, };

export type StartResult = { action: StartAction, sandbox: Sandbox, seconds: number, };

export type StartAction = "created" | "restarted" | "running";

export type GoldenInfo = { stack: string, instance: string, description: string, state: GoldenState, 
/**
 * Has a `ready` snapshot (built or stale).
 */
built: boolean, 
/**
 * The stack script changed since the image was built.
 */
stale: boolean, builtAt: string | null, baseImage: string | null, 
/**
 * Built by this product (false for golden images made by the seed's scripts).
 */
managed: boolean, };

export type GoldenState = "built" | "stale" | "missing";

export type SetupReport = { stack: string, action: SetupAction, seconds: number, };

export type SetupAction = "built" | "rebuilt" | "skipped";

export type Check = { name: string, status: CheckStatus, ok: boolean, 
/**
 * Required for sandboxes to work at all (a failed optional check is a warning).
 */
required: boolean, detail: string, 
/**
 * The exact command that fixes it.
 */
fix: string | null, };

export type CheckStatus = "ok" | "warning" | "failed";

export type Allowlist = { name: string, 
/**
 * The effective list (`.d` = d and its subdomains).
 */
domains: Array<string>, 
/**
 * The running sandbox uses it already (false: applied at its next start).
 */
live: boolean, };

export type Denial = { 
/**
 * The refused name (or address, for TLS without SNI / raw-IP HTTP).
 */
domain: string, kind: DenialKind, count: number, 
/**
 * Unix time (seconds) of the last refusal.
 */
last: number, };

export type DenialKind = "tls" | "http" | "dns";

export type HostInfo = { 
/**
 * The sidecar's version.
 */
version: string, 
/**
 * The Incus remote in use.
 */
remote: string, 
/**
 * The managed ssh config: `ssh -F SSH_CONFIG NAME` (or the sandbox's `sshAlias`).
 */
sshConfig: string, 
/**
 * The same file as an `Include` line in ~/.ssh/config names it.
 */
sshInclude: string, 
/**
 * Sandboxes that have an entry in it.
 */
sshEntries: Array<string>, 
/**
 * The project directory in every sandbox (Remote-SSH opens it).
 */
projectDir: string, };

export type NameOutcome = { name: string, ok: boolean, error: ApiError | null, };

export type ExecResult = { status: number, stdout: string, stderr: string, };

export type Done = Record<string, never>;

export type Changed = { name: string, sandbox: Sandbox | null, };

export type Denied = { name: string, denial: Denial, };

export type ServerStatus = { health: StatusHealth, incus: IncusState, 
/**
 * One line for people.
 */
message: string, 
/**
 * The Incus remote in use (`local`, or a name from `sandbox remote list`).
 */
remote: string, 
/**
 * Where it is: the unix socket, or the HTTPS URL.
 */
endpoint: string, incusReachable: boolean, incusVersion: string | null, 
/**
 * Why Incus does not answer, and what to do.
 */
incusError: ApiError | null, 
/**
 * Stacks whose golden image is built (stale ones included).
 */
goldenBuilt: Array<string>, 
/**
 * Known stacks without a golden image.
 */
goldenMissing: Array<string>, };

export type StatusHealth = "ok" | "warning" | "error";

export type IncusState = "ready" | "notInstalled" | "notRunning" | "noPermission" | "notInitialised" | "unreachable";

export type ProgressEvent = { token: string | number, kind: ProgressKind, message: string | null, };

export type ProgressKind = "begin" | "report" | "end";

export type ApiError = { code: ErrorCode, message: string, hint: string | null, };

export type ErrorCode = "invalid_params" | "invalid_input" | "not_found" | "needs_setup" | "conflict" | "failed" | "cancelled" | "incus_unavailable" | "incus_error" | "unknown_method";

export type ListParams = { 
/**
 * Include health probes (docker, ssh-agent, Claude auth). Default true.
 */
health?: boolean, };

export type NameParams = { name: string, };

export type NamesParams = { names: Array<string>, };

export type DestroyParams = { names: Array<string>, 
/**
 * GitHub token to delete deploy keys with; else GH_TOKEN, GITHUB_TOKEN, `gh auth token`.
 */
githubToken?: string, };

export type CreateOptions = { 
/**
 * Sandbox name (letters, digits, '-').
 */
name: string, 
/**
 * Repository to clone into /workspace/project.
 */
repo?: string, 
/**
 * Toolchain stack (golden image) to clone: base, rust, python, node, go, dotnet, unison, …
 */
stack?: string, 
/**
 * Branch to check out, or create.
 */
branch?: string, 
/**
 * Branch off another sandbox: same repo, stack and egress settings.
 */
from?: string, 
/**
 * Use this private key (loaded into the host-side agent, never copied) instead of a deploy key.
 */
sshKey?: string, 
/**
 * Register the deploy key read-only (default: write access, so the sandbox can push).
 */
readOnlyKey?: boolean, 
/**
 * Let the sandbox push anywhere its key can (its agent plugged in, no push gate); by default
 * it may push only its own branch, checked on the host.
 */
allowPushAny?: boolean, 
/**
 * Slot 1–99 (ports 2200+slot, 8000+slot, 9000+slot); default: the first free one.
 */
slot?: number, 
/**
 * CPU limit.
 */
cpu?: string, 
/**
 * Memory limit, e.g. 4GiB (at least 128MiB).
 */
memory?: string, 
/**
 * Root disk size, e.g. 20GiB (at least 1GiB; default: SANDBOX_DEFAULT_DISK, else 10GiB).
 */
disk?: string, 
/**
 * Environment variable for login shells (repeatable); the value is stored literally.
 */
env?: Array<string>, 
/**
 * Allow HTTPS/HTTP only to allowlisted domains.
 */
restrictDomains?: boolean, 
/**
 * Allowlist file (implies --restrict-domains).
 */
domainsFile?: string, 
/**
 * Let UDP 443 (QUIC, HTTP/3) out; off by default, and never with restricted domains.
 */
allowQuic?: boolean, 
/**
 * Per-turn checkpoints to keep (default 20; 0: none are taken); pinned ones are kept too.
 */
checkpoints?: number, 
/**
 * Cluster member to create on (default: Incus places it).
 */
target?: string, 
/**
 * GitHub token for the deploy key (e.g. the editor's session); else GH_TOKEN, GITHUB_TOKEN,
 * `gh auth token`.
 */
githubToken?: string, };

export type StartParams = { name: string, cpu?: string, memory?: string, env?: Array<string>, };

export type ExposeParams = { name: string, port: number, 
/**
 * Default: tcp.
 */
proto?: ExposeProto, hostPort?: number, 
/**
 * A host port below 1024 is refused unless this is true.
 */
allowLowPort?: boolean, };

export type ExposeProto = "tcp" | "udp" | "both";

export type UnexposeParams = { name: string, port: number, };

export type ExecParams = { name: string, 
/**
 * argv, run as ubuntu in /workspace/project with a login environment (no shell parsing).
 */
command: Array<string>, };

export type SetupParams = { stacks?: Array<string>, 
/**
 * Stack names, or "all".
 */
rebuild?: Array<string>, baseImage?: string, };

export type DomainsParams = { name: string, 
/**
 * `example.com` (exactly that name), `.example.com` (it and every subdomain) or `@LIST`
 * (an extra list: allowlists/extra/LIST.txt).
 */
domains: Array<string>, 
/**
 * allow only: also add them to ~/.sandbox/allowed-domains.txt (every sandbox without its
 * own domains file).
 */
everywhere?: boolean, };

export type Empty = Record<string, never>;

export type SnapshotInfo = { 
/**
 * What commands take (`sandbox restore NAME LABEL`): the Incus snapshot's name.
 */
label: string, kind: SnapshotKind, 
/**
 * For people: the label, or `turn 3: <first line of the agent's answer>`.
 */
title: string, 
/**
 * A checkpoint's turn number.
 */
turn: number | null, 
/**
 * A checkpoint's message (first line of the last assistant message).
 */
message: string | null, 
/**
 * Kept whatever the checkpoint limit.
 */
pinned: boolean, 
/**
 * RFC 3339.
 */
createdAt: string, };

export type SnapshotKind = "manual" | "checkpoint";

export type PreparedInfo = { 
/**
 * The instance (`prepared-STACK-KEY`): what `sandbox prepared rm` takes.
 */
name: string, stack: string, 
/**
 * The repository URL it was prepared from.
 */
repo: string, 
/**
 * The branch it was prepared on (absent: the default branch).
 */
branch: string | null, commit: string, 
/**
 * What ran (`bash .sandbox/setup.sh`, `npm ci`, …).
 */
setup: string, 
/**
 * The lockfiles and setup script its key covers.
 */
files: Array<string>, 
/**
 * RFC 3339.
 */
preparedAt: string, state: PreparedState, };

export type PreparedState = "current" | "stale";

export type SnapshotParams = { name: string, 
/**
 * Letters, digits, - _ . (default: snap-N).
 */
label?: string, };

export type LabelParams = { name: string, label: string, };

export type PinParams = { name: string, label: string, pinned: boolean, };

export type KeepParams = { name: string, 
/**
 * Per-turn checkpoints to keep (0: none are taken).
 */
keep: number, };

export type ForkOptions = { 
/**
 * The sandbox to fork.
 */
from: string, 
/**
 * The new sandbox's name.
 */
name: string, 
/**
 * Fork this snapshot of NAME (`sandbox snapshots NAME`) instead of NAME as it is now.
 */
at?: string, 
/**
 * The new sandbox's branch (default NAME-fork-N), made from NAME's checkout.
 */
branch?: string, 
/**
 * GitHub token for the new deploy key; else GH_TOKEN, GITHUB_TOKEN, `gh auth token`.
 */
githubToken?: string, };

export type PrepareOptions = { 
/**
 * The repository (as for `sandbox start`).
 */
repo: string, 
/**
 * The stack whose golden image it starts from.
 */
stack?: string, 
/**
 * The branch whose lockfiles to install (default: the repository's default branch).
 */
branch?: string, 
/**
 * Prepare again even when an image of these exact files exists.
 */
rebuild?: boolean, 
/**
 * GitHub token for the temporary deploy key; else GH_TOKEN, GITHUB_TOKEN, `gh auth token`.
 */
githubToken?: string, };

export type ImageParams = { 
/**
 * A prepared image (`prepared-STACK-KEY`).
 */
name: string, };

export type Push = "gate" | "any" | "none";

export type ChangeSummary = { added: number, deleted: number, files: number, commits: number, 
/**
 * Uncommitted or untracked changes in the working tree.
 */
uncommitted: boolean, 
/**
 * When it was computed (RFC 3339).
 */
at: string, };

export type PullRequest = { number: number, url: string, state: PrState, draft: boolean, title: string, 
/**
 * head → base
 */
branch: string, base: string, };

export type PrState = "open" | "closed" | "merged";

export type Diff = { name: string, 
/**
 * The commit the changes are counted from.
 */
base: string, 
/**
 * The branch a pull request goes to (the one the sandbox's branch started from).
 */
baseBranch: string | null, 
/**
 * The sandbox's current branch (absent: detached HEAD).
 */
branch: string | null, head: string, 
/**
 * The working tree as a tree object (the right side of the review).
 */
tree: string, 
/**
 * Commits on HEAD since the base.
 */
commits: number, 
/**
 * The working tree differs from HEAD (uncommitted or untracked changes).
 */
uncommitted: boolean, added: number, deleted: number, files: Array<FileChange>, 
/**
 * Changed files left out of `files` (past 20000); the counts include them.
 */
omitted: number, };

export type FileChange = { 
/**
 * The path in the sandbox's working tree (the new path of a rename).
 */
path: string, 
/**
 * The path at the base, for renames and copies.
 */
oldPath: string | null, kind: ChangeKind, 
/**
 * Lines added and deleted (absent for binary files).
 */
added: number | null, deleted: number | null, binary: boolean, 
/**
 * The blob at the base and in the working tree (absent on the side where the file is not):
 * what `sandbox/blob` reads for the two sides of a review.
 */
oldBlob: string | null, newBlob: string | null, 
/**
 * Git file modes (0o100644, 0o100755, 0o120000 symlink, 0o160000 submodule).
 */
oldMode: number | null, newMode: number | null, };

export type ChangeKind = "added" | "modified" | "deleted" | "renamed" | "copied" | "typeChanged";

export type Blob = { kind: BlobKind, 
/**
 * Bytes (0 when missing).
 */
size: number, 
/**
 * The content, for `text` only (invalid UTF-8 replaced).
 */
text: string | null, };

export type BlobKind = "text" | "binary" | "tooLarge" | "missing";

export type FetchResult = { 
/**
 * The remote added or updated in the user's clone (`sandbox-NAME`).
 */
remote: string, branch: string, 
/**
 * Where it landed: `refs/remotes/sandbox-NAME/BRANCH`.
 */
ref: string, commit: string, 
/**
 * The clone's top directory.
 */
directory: string, 
/**
 * Changed files in the sandbox's working tree that are not committed, so not fetched.
 */
uncommitted: number, };

export type DiffParams = { name: string, 
/**
 * A revision to compare with instead of where the sandbox's branch started.
 */
base?: string, };

export type BlobParams = { name: string, 
/**
 * A blob id from `sandbox/diff` (`oldBlob` / `newBlob`).
 */
oid: string, };

export type FetchParams = { name: string, 
/**
 * A directory inside the local clone to fetch into (the workspace folder).
 */
directory: string, };

export type PrParams = { name: string, title?: string, body?: string, draft?: boolean, 
/**
 * Else GH_TOKEN, GITHUB_TOKEN, `gh auth token`.
 */
githubToken?: string, };

export type PrStatusParams = { name: string, githubToken?: string, };

/** Params of a method that reports progress (`$/progress` on this token). */
export type WithProgress<P> = P & { workDoneToken?: string | number };

/** Every request: its params and its result. */
export interface Methods {
  "sandbox/list": { params: ListParams; result: Array<Sandbox> };
  "sandbox/get": { params: NameParams; result: Sandbox | null };
  "sandbox/create": { params: WithProgress<CreateOptions>; result: StartResult };
  "sandbox/start": { params: WithProgress<StartParams>; result: StartResult };
  "sandbox/stop": { params: NamesParams; result: Array<NameOutcome> };
  "sandbox/destroy": { params: DestroyParams; result: Array<NameOutcome> };
  "sandbox/expose": { params: ExposeParams; result: Array<PortForward> };
  "sandbox/unexpose": { params: UnexposeParams; result: Done };
  "sandbox/exec": { params: WithProgress<ExecParams>; result: ExecResult };
  "sandbox/setup": { params: WithProgress<SetupParams>; result: Array<SetupReport> };
  "sandbox/doctor": { params: Empty; result: Array<Check> };
  "sandbox/goldenImages": { params: Empty; result: Array<GoldenInfo> };
  "sandbox/hostInfo": { params: Empty; result: HostInfo };
  "sandbox/allow": { params: DomainsParams; result: Allowlist };
  "sandbox/deny": { params: DomainsParams; result: Allowlist };
  "sandbox/denials": { params: NameParams; result: Array<Denial> };
  "sandbox/authStatus": { params: Empty; result: Array<CredentialStatus> };
  "sandbox/authSet": { params: AuthSetParams; result: CredentialStatus };
  "sandbox/authRemove": { params: ProviderParams; result: CredentialStatus };
  "sandbox/adopt": { params: NameParams; result: Sandbox };
  "sandbox/snapshot": { params: SnapshotParams; result: SnapshotInfo };
  "sandbox/snapshots": { params: NameParams; result: Array<SnapshotInfo> };
  "sandbox/snapshotRemove": { params: LabelParams; result: Done };
  "sandbox/snapshotPin": { params: PinParams; result: SnapshotInfo };
  "sandbox/checkpointKeep": { params: KeepParams; result: Array<SnapshotInfo> };
  "sandbox/restore": { params: WithProgress<LabelParams>; result: Sandbox };
  "sandbox/fork": { params: WithProgress<ForkOptions>; result: StartResult };
  "sandbox/prepare": { params: WithProgress<PrepareOptions>; result: PreparedInfo };
  "sandbox/preparedImages": { params: Empty; result: Array<PreparedInfo> };
  "sandbox/preparedRemove": { params: ImageParams; result: Done };
  "sandbox/diff": { params: DiffParams; result: Diff };
  "sandbox/blob": { params: BlobParams; result: Blob };
  "sandbox/fetch": { params: WithProgress<FetchParams>; result: FetchResult };
  "sandbox/pr": { params: WithProgress<PrParams>; result: PullRequest };
  "sandbox/prStatus": { params: PrStatusParams; result: PullRequest | null };
}

export const METHODS = [
  "sandbox/list",
  "sandbox/get",
  "sandbox/create",
  "sandbox/start",
  "sandbox/stop",
  "sandbox/destroy",
  "sandbox/expose",
  "sandbox/unexpose",
  "sandbox/exec",
  "sandbox/setup",
  "sandbox/doctor",
  "sandbox/goldenImages",
  "sandbox/hostInfo",
  "sandbox/allow",
  "sandbox/deny",
  "sandbox/denials",
  "sandbox/authStatus",
  "sandbox/authSet",
  "sandbox/authRemove",
  "sandbox/adopt",
  "sandbox/snapshot",
  "sandbox/snapshots",
  "sandbox/snapshotRemove",
  "sandbox/snapshotPin",
  "sandbox/checkpointKeep",
  "sandbox/restore",
  "sandbox/fork",
  "sandbox/prepare",
  "sandbox/preparedImages",
  "sandbox/preparedRemove",
  "sandbox/diff",
  "sandbox/blob",
  "sandbox/fetch",
  "sandbox/pr",
  "sandbox/prStatus",
] as const;

/** Server → client notification. */
export const CHANGED = "sandbox/changed";
/** Server → client notification. */
export const DENIED = "sandbox/denied";
/** Server → client notification. */
export const STATUS = "sandbox/status";
