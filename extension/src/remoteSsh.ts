// Opening a sandbox in a Remote-SSH window: its SSH host alias and the managed ssh config come
// from the sidecar (Sandbox.sshAlias, sandbox/hostInfo); ~/.ssh/config must Include that config
// (added once, with consent); then VS Code opens vscode-remote://ssh-remote+ALIAS/PROJECT.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as vscode from 'vscode';
import type { HostInfo, Sandbox } from './protocol.generated';
import { hasInclude, withInclude } from './sshConfig';
import { ui } from './ui';

/** Extensions that provide the `ssh-remote` authority (Microsoft's, and VSCodium's open one). */
export const REMOTE_SSH_IDS = ['ms-vscode-remote.remote-ssh', 'jeanp413.open-remote-ssh'];
const CONSENT_KEY = 'agentSandboxes.sshIncludeConsent';

export function remoteUri(s: Sandbox, info: HostInfo): vscode.Uri {
  return vscode.Uri.parse(`vscode-remote://ssh-remote+${s.sshAlias}${info.projectDir}`);
}

export function userSshConfig(): string {
  return path.join(os.homedir(), '.ssh', 'config');
}

/**
 * Makes sure ~/.ssh/config includes the managed config, asking once. The Include goes first:
 * an Include after a `Host` line would only apply inside that block.
 */
export async function ensureInclude(state: vscode.Memento, info: HostInfo): Promise<boolean> {
  const file = userSshConfig();
  const text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
  if (hasInclude(text, [info.sshInclude, info.sshConfig])) return true;
  if (state.get(CONSENT_KEY) === 'declined') return false;
  const line = `Include ${info.sshInclude}`;
  const add = 'Add the Include line';
  const answer = await ui().ask('info',
    `Remote-SSH finds sandboxes through the managed ssh config. Add \`${line}\` at the top of ~/.ssh/config? (asked once)`,
    { modal: true, detail: `${file} gets one line; each sandbox is then the SSH host sandbox-NAME.` }, add, 'Not now');
  if (answer !== add) {
    if (answer !== undefined) await state.update(CONSENT_KEY, 'declined');
    return false;
  }
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  fs.writeFileSync(file, withInclude(text, info.sshInclude), { mode: 0o600 });
  await state.update(CONSENT_KEY, 'accepted');
  return true;
}

/** Offers to install Remote-SSH when no ssh-remote provider is installed; false: do not open. */
export async function ensureRemoteSsh(): Promise<boolean> {
  if (REMOTE_SSH_IDS.some((id) => vscode.extensions.getExtension(id))) return true;
  const install = 'Install Remote-SSH';
  const anyway = 'Open Anyway';
  const answer = await ui().ask('warning',
    'Opening a sandbox in its own window needs the Remote - SSH extension (ms-vscode-remote.remote-ssh).',
    { modal: true, detail: 'Open Anyway if another extension in this editor handles ssh-remote:// windows.' }, install, anyway);
  if (answer === install) {
    await vscode.commands.executeCommand('workbench.extensions.installExtension', REMOTE_SSH_IDS[0]);
    return true;
  }
  return answer === anyway;
}

/**
 * A window of this extension running inside a sandbox: Remote-SSH plus the environment file the
 * engine writes into every sandbox. The sandbox's hostname is its name.
 */
export function sandboxOfThisWindow(): string | undefined {
  if (vscode.env.remoteName !== 'ssh-remote') return undefined;
  return fs.existsSync('/etc/profile.d/sandbox-env.sh') ? os.hostname() : undefined;
}
