// Every failure ends as a notification that says what happened, what to do, and offers the
// action that does it (errorActions.ts picks them from the error's code).
import * as vscode from 'vscode';
import { SandboxError } from './client';
import { actionsFor } from './errorActions';
import { ui } from './ui';

export function errorMessage(e: SandboxError): string {
  return e.hint ? `${e.message} — ${e.hint}` : e.message;
}

/** Shows an error (not awaited by callers: a pending toast must not block a command). */
export function reportError(what: string, e: unknown): void {
  if (e instanceof vscode.CancellationError) {
    void ui().ask('info', `${what}: cancelled; what it had done is rolled back.`, {});
    return;
  }
  const err = e instanceof SandboxError ? e : new SandboxError('failed', e instanceof Error ? e.message : String(e));
  const actions = actionsFor(err.code);
  void ui().ask('error', `${what}: ${errorMessage(err)}`, {}, ...actions.map(([label]) => label)).then((chosen) => {
    const cmd = actions.find(([label]) => label === chosen)?.[1];
    if (cmd) void vscode.commands.executeCommand(cmd);
  });
}
