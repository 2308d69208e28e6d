// Settings (package.json `contributes.configuration`) and the sidecar's environment from them.
import * as vscode from 'vscode';

const section = () => vscode.workspace.getConfiguration('agentSandboxes');
const str = (key: string): string | undefined => {
  const v = section().get<string | null>(key);
  return typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined;
};

export const config = {
  serverPath: () => str('server.path'),
  incusRemote: () => str('incus.remote'),
  defaultStack: () => str('defaultStack'),
  restrictDomainsByDefault: () => section().get<boolean>('restrictDomainsByDefault') === true,
  logLevel: () => str('server.logLevel') ?? 'info',
};

/** Settings whose change needs a sidecar restart (they become its environment). */
export const SIDECAR_SETTINGS = ['server.path', 'incus.remote', 'defaultStack', 'server.logLevel']
  .map((k) => `agentSandboxes.${k}`);

/** The sidecar's environment: ours plus what the settings say. */
export function sidecarEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, RUST_LOG: config.logLevel() };
  // A remote added with `sandbox remote add` (or `local`); the sidecar reads SANDBOX_REMOTE.
  const remote = config.incusRemote();
  if (remote) env.SANDBOX_REMOTE = remote;
  const stack = config.defaultStack();
  if (stack) env.SANDBOX_DEFAULT_STACK = stack;
  return env;
}
