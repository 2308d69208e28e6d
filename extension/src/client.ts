// The sidecar: `sandbox lsp` spoken to with vscode-languageclient. Resolves the binary
// (env var → setting → bundled copy, each checked with `--version`), restarts it with back-off
// when it dies, and exposes typed requests (types generated from the Rust method table).
import { execFile } from 'child_process';
import * as fs from 'fs';
import * as vscode from 'vscode';
// Types only here: the library is loaded when the sidecar starts, after activation returned
// (it is most of the bundle's load time).
import type { LanguageClient } from 'vscode-languageclient/node';
import { config, sidecarEnv } from './config';
import type { ClientErrorCode } from './errorActions';
import { CHANGED, DENIED, STATUS, type ApiError, type Changed, type Denied, type Methods, type ServerStatus, type WithProgress } from './protocol.generated';
import type { SidecarState } from './sidecarState';

export type { SidecarState } from './sidecarState';

/** A failed call: the sidecar's stable code, its message and what to do. */
export class SandboxError extends Error {
  constructor(readonly code: ClientErrorCode, message: string, readonly hint?: string) {
    super(message);
  }
}

/** Converts what a request rejected with into a SandboxError (JSON-RPC `data` is an ApiError). */
function toSandboxError(e: unknown): SandboxError {
  // A JSON-RPC ResponseError (duck-typed: the library is loaded lazily).
  const r = e as { code?: unknown; message?: unknown; data?: Partial<ApiError> };
  if (e instanceof Error && typeof r.code === 'number') {
    const d = r.data;
    if (d && typeof d.code === 'string') return new SandboxError(d.code, d.message ?? e.message, d.hint ?? undefined);
    return new SandboxError(r.code === -32097 ? 'sidecar_unavailable' : 'failed', e.message);
  }
  if (e instanceof SandboxError) return e;
  return new SandboxError('failed', e instanceof Error ? e.message : String(e));
}

interface Resolved { path: string; source: string; version: string }

function version(bin: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(bin, ['--version'], { timeout: 10_000 }, (err, stdout) => {
      if (err) reject(err);
      else resolve(stdout.trim());
    });
  });
}

const MAX_BACKOFF_MS = 30_000;

/** Methods that report progress (`$/progress` on a work-done token). */
type ProgressMethod = 'sandbox/create' | 'sandbox/start' | 'sandbox/setup' | 'sandbox/exec' | 'sandbox/restore' | 'sandbox/fork' | 'sandbox/prepare' | 'sandbox/fetch' | 'sandbox/pr';
/** A sidecar that stayed up this long is healthy again: the back-off starts over. */
const HEALTHY_AFTER_MS = 60_000;

export class Sidecar implements vscode.Disposable {
  private client: LanguageClient | undefined;
  private lc: typeof import('vscode-languageclient/node') | undefined;
  private stateValue: SidecarState = 'stopped';
  private lastError: string | undefined;
  private resolved: Resolved | undefined;
  private failures = 0;
  private startedAt = 0;
  private restartTimer: NodeJS.Timeout | undefined;
  private generation = 0;
  private seq = 0;
  private readonly stateEmitter = new vscode.EventEmitter<SidecarState>();
  private readonly changedEmitter = new vscode.EventEmitter<Changed>();
  private readonly statusEmitter = new vscode.EventEmitter<ServerStatus>();
  /** A restricted sandbox was refused a name (`sandbox/denied`). */
  private readonly deniedEmitter = new vscode.EventEmitter<Denied>();
  /** Fires after each (re)start, once requests work. */
  private readonly readyEmitter = new vscode.EventEmitter<void>();
  readonly onDidChangeState = this.stateEmitter.event;
  readonly onDidChangeSandbox = this.changedEmitter.event;
  /** `sandbox/status`: Incus reachable or not, golden images built or missing. */
  readonly onDidChangeStatus = this.statusEmitter.event;
  readonly onDidDeny = this.deniedEmitter.event;
  readonly onDidBecomeReady = this.readyEmitter.event;

  constructor(private readonly extensionUri: vscode.Uri, readonly log: vscode.LogOutputChannel) {}

  get state(): SidecarState { return this.stateValue; }
  get error(): string | undefined { return this.lastError; }
  /** The binary in use (terminals run `sandbox shell|claude` with it). */
  get binary(): Resolved | undefined { return this.resolved; }

  private setState(s: SidecarState, error?: string) {
    this.stateValue = s;
    this.lastError = error;
    void vscode.commands.executeCommand('setContext', 'agentSandboxes.sidecar', s);
    this.stateEmitter.fire(s);
  }

  /** The binary: AGENT_SANDBOXES_SERVER → agentSandboxes.server.path → bundled/sandbox. */
  private async resolve(): Promise<Resolved> {
    const bundled = vscode.Uri.joinPath(this.extensionUri, 'bundled', 'sandbox').fsPath;
    const candidates: [string | undefined, string][] = [
      [process.env.AGENT_SANDBOXES_SERVER, 'AGENT_SANDBOXES_SERVER'],
      [config.serverPath(), 'setting agentSandboxes.server.path'],
      [bundled, 'bundled copy'],
    ];
    const [path, source] = candidates.find(([p]) => p) as [string, string];
    if (!fs.existsSync(path)) {
      throw new Error(`the sidecar binary is missing: ${path} (from the ${source}); set agentSandboxes.server.path to a \`sandbox\` binary, or reinstall the extension`);
    }
    try {
      return { path, source, version: await version(path) };
    } catch (e) {
      throw new Error(`${path} (from the ${source}) does not run: ${(e as Error).message}; point agentSandboxes.server.path at a working \`sandbox\` binary`);
    }
  }

  /** Starts the sidecar (stopping a running one first). Never throws: failures set the state. */
  async start(): Promise<void> {
    const gen = ++this.generation;
    clearTimeout(this.restartTimer);
    this.setState('starting');
    await this.stopClient();
    this.resolved = undefined;
    try {
      this.resolved = await this.resolve();
      this.log.info(`sidecar: ${this.resolved.path} (${this.resolved.version}, ${this.resolved.source})`);
      const lc = this.lc ??= await import('vscode-languageclient/node');
      const { CloseAction, ErrorAction, RevealOutputChannelOn } = lc;
      const client = new lc.LanguageClient(
        'agentSandboxes', 'Agent Sandboxes',
        { command: this.resolved.path, args: ['lsp'], options: { env: sidecarEnv() } },
        {
          documentSelector: [],
          // The sidecar tails the egress logs for `sandbox/denied` only for a client that asks.
          initializationOptions: { denials: true },
          outputChannel: this.log,
          traceOutputChannel: this.log,
          revealOutputChannelOn: RevealOutputChannelOn.Never,
          connectionOptions: { maxRestartCount: 0 },
          errorHandler: {
            error: () => ({ action: ErrorAction.Continue, handled: true }),
            // Our own restart (with back-off) instead of the client's immediate one; the
            // client logs our message (one restart policy, said once).
            closed: () => {
              const message = gen === this.generation ? this.scheduleRestart('the sidecar exited', false) : 'sidecar: stopped';
              return { action: CloseAction.DoNotRestart, handled: true, message };
            },
          },
        },
      );
      this.client = client;
      client.onNotification(CHANGED, (c: Changed) => this.changedEmitter.fire(c));
      client.onNotification(DENIED, (d: Denied) => this.deniedEmitter.fire(d));
      client.onNotification(STATUS, (s: ServerStatus) => this.statusEmitter.fire(s));
      await client.start();
      if (gen !== this.generation) return;
      this.startedAt = Date.now();
      this.setState('ready');
      this.readyEmitter.fire();
    } catch (e) {
      if (gen !== this.generation) return;
      const msg = e instanceof Error ? e.message : String(e);
      this.log.error(`sidecar: ${msg}`);
      this.setState('error', msg);
      // A missing or broken binary does not fix itself: no retry loop, the user acts.
      if (this.resolved && this.client) this.scheduleRestart(msg);
    }
  }

  /** Restarts with back-off; returns what it does (logged here unless the caller logs it). */
  private scheduleRestart(why: string, log = true): string {
    if (Date.now() - this.startedAt > HEALTHY_AFTER_MS) this.failures = 0;
    const delay = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** this.failures++);
    const message = `sidecar: ${why}; restarting in ${delay / 1000} s`;
    if (log) this.log.warn(message);
    this.setState('error', `${why}; restarting in ${delay / 1000} s`);
    clearTimeout(this.restartTimer);
    this.restartTimer = setTimeout(() => void this.start(), delay);
    return message;
  }

  private async stopClient() {
    const c = this.client;
    this.client = undefined;
    if (c) {
      try { await c.stop(2000); } catch { /* already gone */ }
    }
  }

  /** Restart on request (command, settings change): a fresh back-off. */
  async restart(): Promise<void> {
    this.failures = 0;
    await this.start();
  }

  /** A typed request to the sidecar; rejects with SandboxError (or CancellationError). */
  async request<M extends keyof Methods>(
    method: M, params: Methods[M]['params'], token?: vscode.CancellationToken,
  ): Promise<Methods[M]['result']> {
    const c = this.client;
    if (!c || this.stateValue !== 'ready') {
      throw new SandboxError('sidecar_unavailable', `the sandbox sidecar is ${this.stateValue}${this.lastError ? `: ${this.lastError}` : ''}`, 'restart it (Sandbox: Restart Sidecar) and look at its log (Sandbox: Show Logs)');
    }
    try {
      // Only with a token: an `undefined` second argument would make the params positional.
      return await (token ? c.sendRequest(method, params, token) : c.sendRequest(method, params));
    } catch (e) {
      if (token?.isCancellationRequested) throw new vscode.CancellationError();
      throw toSandboxError(e);
    }
  }

  /** A request with a work-done token: each `$/progress` message goes to `onMessage`. */
  async requestWithProgress<M extends ProgressMethod>(
    method: M, params: Methods[M]['params'], onMessage: (m: string) => void, token?: vscode.CancellationToken,
  ): Promise<Methods[M]['result']> {
    const workDoneToken = `agent-sandboxes-${process.pid}-${++this.seq}`;
    // A command's output keeps its indentation (the sidecar indents output lines by two).
    const text = (m: string) => (method === 'sandbox/exec' ? m.replace(/^ {2}/, '') : m.trim());
    const sub = this.client && this.lc?.WorkDoneProgress && this.client.onProgress(this.lc.WorkDoneProgress.type, workDoneToken, (v) => {
      switch (v.kind) {
        case 'report': if (v.message) onMessage(text(v.message)); break;
        case 'begin': case 'end': break; // `begin` only says "starting": the steps come as reports
      }
    });
    try {
      const withToken: WithProgress<Methods[M]['params']> = { ...params, workDoneToken };
      return await this.request(method, withToken, token);
    } finally {
      sub?.dispose();
    }
  }

  /** A long request shown as a progress notification with Cancel (= the sidecar rolls back). */
  withProgress<M extends 'sandbox/create' | 'sandbox/start' | 'sandbox/setup' | 'sandbox/restore' | 'sandbox/fork' | 'sandbox/fetch' | 'sandbox/pr'>(
    title: string, method: M, params: Methods[M]['params'],
  ): Thenable<Methods[M]['result']> {
    return vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title, cancellable: true },
      (progress, token) => this.requestWithProgress(method, params, (message) => progress.report({ message }), token),
    );
  }

  async dispose(): Promise<void> {
    this.generation++;
    clearTimeout(this.restartTimer);
    await this.stopClient();
    this.stateEmitter.dispose();
    this.changedEmitter.dispose();
    this.statusEmitter.dispose();
    this.deniedEmitter.dispose();
    this.readyEmitter.dispose();
  }
}
