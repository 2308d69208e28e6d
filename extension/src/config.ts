// Settings (package.json `contributes.configuration`) and where the sandbox's files live.
import * as os from 'os';
import * as path from 'path';
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

/** `SANDBOX_HOME`, else `~/.sandbox` (as the engine's paths.rs). */
export function sandboxHome(): string {
  return process.env.SANDBOX_HOME || path.join(os.homedir(), '.sandbox');
}

/** The managed ssh config, written with portable `~` when it is in the default place. */
export function sshConfigForInclude(): string {
  const home = sandboxHome();
  const def = path.join(os.homedir(), '.sandbox');
  return home === def ? '~/.sandbox/ssh_config' : path.join(home, 'ssh_config');
}
