// Every failure ends as a notification that says what happened, what to do, and offers the
// action that does it (errorActions.ts picks them from the error's code) — and as a line in the
// log (the Agent Sandboxes output channel) with its code and hint, so the log holds every error
// the user was shown.
import * as vscode from 'vscode';
import { SandboxError } from './client';
import { actionsFor } from './errorActions';
import { ui } from './ui';

/** An action of one error only: a label and what it does (e.g. Edit and Retry). */
export type ExtraAction = [label: string, run: () => unknown];

let log: vscode.LogOutputChannel | undefined;
let incusIsLocal: () => boolean = () => true;

/** Where errors are logged, and whether Incus is this machine's (its setup can run from here). */
export function configureErrors(channel: vscode.LogOutputChannel, isLocal: () => boolean): void {
  log = channel;
  incusIsLocal = isLocal;
}

export function errorMessage(e: SandboxError): string {
  return e.hint ? `${e.message} — ${e.hint}` : e.message;
}

export function toSandboxError(e: unknown): SandboxError {
  return e instanceof SandboxError ? e : new SandboxError('failed', e instanceof Error ? e.message : String(e));
}

/** Logs an error the user is told about (with its code and hint). */
export function logError(what: string, e: SandboxError): void {
  log?.error(`${what}: [${e.code}] ${e.message}${e.hint ? ` (hint: ${e.hint})` : ''}`);
}

/** Shows an error (not awaited by callers: a pending toast must not block a command). */
export function reportError(what: string, e: unknown, extra: ExtraAction[] = []): void {
  if (e instanceof vscode.CancellationError) {
    log?.info(`${what}: cancelled (rolled back)`);
    void ui().ask('info', `${what}: cancelled; what it had done is rolled back.`, {}, ...extra.map(([l]) => l))
      .then((chosen) => extra.find(([l]) => l === chosen)?.[1]());
    return;
  }
  const err = toSandboxError(e);
  logError(what, err);
  const actions = actionsFor(err.code, incusIsLocal());
  const labels = [...extra.map(([l]) => l), ...actions.map(([l]) => l)];
  void ui().ask('error', `${what}: ${errorMessage(err)}`, {}, ...labels).then((chosen) => {
    const own = extra.find(([l]) => l === chosen);
    if (own) return void own[1]();
    const cmd = actions.find(([label]) => label === chosen)?.[1];
    if (cmd) void vscode.commands.executeCommand(cmd);
  });
}
