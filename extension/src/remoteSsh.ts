// Opening a sandbox in a Remote-SSH window: its SSH host alias and the managed ssh config come
// from the sidecar (Sandbox.sshAlias, sandbox/hostInfo); ~/.ssh/config must Include that config
// (added with consent); then VS Code opens vscode-remote://ssh-remote+ALIAS/PROJECT. Where that
// hand-off cannot work (an editor in a browser, no Remote-SSH), the shell and the SSH command
// are offered instead.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as vscode from 'vscode';
import type { HostInfo, Sandbox } from './protocol.generated';
import { hasInclude, withInclude } from './sshConfig';
import { REMOTE_SSH_IDS, ui } from './ui';

export { REMOTE_SSH_IDS } from './ui';

export const ADD_INCLUDE = 'Add the Include line';
export const OPEN_SHELL = 'Open Shell';
export const COPY_SSH = 'Copy SSH Command';

export function remoteUri(s: Sandbox, info: HostInfo): vscode.Uri {
  return vscode.Uri.parse(`vscode-remote://ssh-remote+${s.sshAlias}${info.projectDir}`);
}

export function userSshConfig(): string {
  return path.join(os.homedir(), '.ssh', 'config');
}

/**
 * Makes sure ~/.ssh/config includes the managed config, asking first (one question: add it, or
 * cancel). The Include goes first: an Include after a `Host` line would only apply inside it.
 */
export async function ensureInclude(info: HostInfo): Promise<boolean> {
  const file = userSshConfig();
  const text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
  if (hasInclude(text, [info.sshInclude, info.sshConfig])) return true;
  const line = `Include ${info.sshInclude}`;
  const answer = await ui().ask('info',
    `Remote-SSH finds sandboxes through the managed ssh config. Add \`${line}\` at the top of ~/.ssh/config?`,
    { modal: true, detail: `${file} gets one line (the rest stays as it is); each sandbox is then the SSH host sandbox-NAME.` }, ADD_INCLUDE);
  if (answer !== ADD_INCLUDE) return false;
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  fs.writeFileSync(file, withInclude(text, info.sshInclude), { mode: 0o600 });
  return true;
}

/** The Remote-SSH extension this editor's marketplace has (Microsoft's in VS Code itself). */
function installableId(): string {
  return ['vscode', 'vscode-insiders'].includes(vscode.env.uriScheme) ? REMOTE_SSH_IDS[0] : REMOTE_SSH_IDS[1];
}

/** Offers what works instead of a Remote-SSH window: the shell, the SSH command. */
export function offerInstead(name: string, why: string): void {
  void ui().ask('warning', `${why} Open a shell in ${name} here, or copy its SSH command for a terminal or another editor.`, {}, OPEN_SHELL, COPY_SSH)
    .then((a) => {
      if (a === OPEN_SHELL) void vscode.commands.executeCommand('agentSandboxes.openShell', name);
      if (a === COPY_SSH) void vscode.commands.executeCommand('agentSandboxes.copySshCommand', name);
    });
}

/** Whether a Remote-SSH window can be opened (installing Remote-SSH when the user agrees). */
export async function ensureRemoteSsh(name: string): Promise<boolean> {
  switch (ui().remoteSsh()) {
    case 'ready':
      return true;
    case 'impossible':
      offerInstead(name, 'This editor runs in a browser, so it cannot open a sandbox in a Remote-SSH window.');
      return false;
    case 'missing': {
      const id = installableId();
      const install = 'Install Remote-SSH';
      const answer = await ui().ask('warning', `Opening ${name} in its own window needs the Remote - SSH extension (${id}).`,
        { modal: true, detail: 'Or work in it from here: a shell in a terminal, or its SSH command.' }, install, OPEN_SHELL, COPY_SSH);
      if (answer === install) {
        await vscode.commands.executeCommand('workbench.extensions.installExtension', id);
        return true;
      }
      if (answer === OPEN_SHELL) void vscode.commands.executeCommand('agentSandboxes.openShell', name);
      if (answer === COPY_SSH) void vscode.commands.executeCommand('agentSandboxes.copySshCommand', name);
      return false;
    }
  }
}

/**
 * A window of this extension running inside a sandbox: Remote-SSH plus the environment file the
 * engine writes into every sandbox. The sandbox's hostname is its name.
 */
export function sandboxOfThisWindow(): string | undefined {
  if (vscode.env.remoteName !== 'ssh-remote') return undefined;
  return fs.existsSync('/etc/profile.d/sandbox-env.sh') ? os.hostname() : undefined;
}
