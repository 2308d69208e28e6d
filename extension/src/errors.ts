// Every failure ends as a notification that says what happened, what to do, and offers the
// action that does it.
import * as vscode from 'vscode';
import { SandboxError } from './client';
import { ui } from './ui';

const SHOW_LOGS = 'Show Logs';

/** The actions that help with an error code (first is the most useful). */
function actionsFor(e: SandboxError): [string, string][] {
  const a: [string, string][] = [];
  if (e.code === 'sidecar_unavailable') a.push(['Restart Sidecar', 'agentSandboxes.restartSidecar']);
  if (e.code === 'incus_unavailable' || e.code === 'incus_error') a.push(['Check the Host', 'agentSandboxes.doctor']);
  if (/sandbox setup/.test(e.hint ?? '')) a.push(['Run Setup', 'agentSandboxes.setup']);
  if (e.code === 'not_found' || e.code === 'conflict') a.push(['Refresh', 'agentSandboxes.refresh']);
  a.push([SHOW_LOGS, 'agentSandboxes.showLogs']);
  return a;
}

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
  const actions = actionsFor(err);
  void ui().ask('error', `${what}: ${errorMessage(err)}`, {}, ...actions.map(([label]) => label)).then((chosen) => {
    const cmd = actions.find(([label]) => label === chosen)?.[1];
    if (cmd) void vscode.commands.executeCommand(cmd);
  });
}
