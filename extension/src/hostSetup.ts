// The host itself: Set Up This Machine (`sandbox host install` in a terminal, through sudo,
// after saying why root is needed) and Check the Host (Doctor), whose fixes run from here.
import * as vscode from 'vscode';
import type { Ctx } from './commands';
import { logError } from './errors';
import { SandboxError } from './client';
import type { CheckStatus } from './protocol.generated';
import { BACK, ui } from './ui';

export const SET_UP_TITLE = 'Sandbox · Set Up This Machine';
export const SET_UP = 'Set Up';
export const SET_UP_ONLINE = 'Set Up, Sandboxes Reach the Internet';

const WHY = 'It installs Incus and the host tools sandboxes use (btrfs-progs, squid, nftables, OpenSSH, tmux) from your '
  + "distribution's packages, starts the Incus daemon, and creates a storage pool and a network bridge. That needs root: "
  + 'a terminal runs `sandbox host install`, through sudo, which may ask for your password. '
  + 'Sandboxes then reach only this machine, unless you let them reach the internet (stacks other than `minimal` need it to build, '
  + 'and agents need it to reach GitHub or the Anthropic API).';

/** Opens the terminal that sets this machine up; resolves once it is open (not finished). */
export async function setUpMachine(ctx: Ctx, binary: string): Promise<vscode.Terminal | undefined> {
  const st = ctx.store.status();
  if (st && st.remote !== 'local') {
    void ui().ask('info', `Incus here is the remote '${st.remote}' (${st.endpoint}): set that server up on the server itself (\`sandbox host install\`), or choose local in the agentSandboxes.incus.remote setting.`, {});
    return undefined;
  }
  const answer = await ui().ask('info', 'Set up this machine for sandboxes?', { modal: true, detail: WHY }, SET_UP, SET_UP_ONLINE);
  if (answer !== SET_UP && answer !== SET_UP_ONLINE) return undefined;
  const nat = answer === SET_UP_ONLINE ? 'on' : 'off';
  const t = vscode.window.createTerminal({
    name: SET_UP_TITLE, shellPath: binary, shellArgs: ['host', 'install', '--nat', nat, '--wait-on-error'],
    iconPath: new vscode.ThemeIcon('tools'),
  });
  ctx.sidecar.log.info(`set up this machine: ${binary} host install --nat ${nat}`);
  const sub = vscode.window.onDidCloseTerminal((closed) => {
    if (closed !== t) return;
    sub.dispose();
    const code = closed.exitStatus?.code;
    if (code === 0) {
      ctx.sidecar.log.info('set up this machine: done');
      void ui().ask('info', 'This machine is set up for sandboxes. Next: build a golden image (the container every sandbox is cloned from).', {}, 'Run Setup')
        .then((a) => a && vscode.commands.executeCommand('agentSandboxes.setup'));
    } else {
      logError('Set Up This Machine', new SandboxError('failed', `sandbox host install ended with ${code === undefined ? 'no exit code' : `exit code ${code}`}`, 'its terminal said which step failed'));
      void ui().ask('warning', 'Setting up this machine did not finish: its terminal said which step failed.', {}, 'Try Again', 'Show Logs')
        .then((a) => a && vscode.commands.executeCommand(a === 'Try Again' ? 'agentSandboxes.setUpMachine' : 'agentSandboxes.showLogs'));
    }
  });
  ctx.context.subscriptions.push(sub);
  t.show();
  return t;
}

/** [log mark, icon] of a check's status. */
function checkMark(status: CheckStatus): [string, string] {
  switch (status) {
    case 'ok': return ['ok  ', 'pass'];
    case 'warning': return ['warn', 'warning'];
    case 'failed': return ['FAIL', 'error'];
  }
}

/** The command of the extension that does a check's fix, when there is one. */
export function fixCommand(fix: string): string | undefined {
  if (fix.startsWith('sandbox host install')) return 'agentSandboxes.setUpMachine';
  if (fix.startsWith('sandbox setup')) return 'agentSandboxes.setup';
  return undefined;
}

export async function doctor(ctx: Ctx): Promise<void> {
  const checks = await ctx.sidecar.request('sandbox/doctor', {});
  for (const c of checks) ctx.sidecar.log.info(`doctor: ${checkMark(c.status)[0]} ${c.name}: ${c.detail}${c.fix ? ` (fix: ${c.fix})` : ''}`);
  const items = checks.map((c) => {
    const run = c.fix ? fixCommand(c.fix) : undefined;
    const detail = c.fix ? (run ? `fix: ${c.fix} — select to run it` : `fix: ${c.fix} — select to copy it`) : undefined;
    return { label: `$(${checkMark(c.status)[1]}) ${c.name}`, description: c.detail, detail, fix: c.fix, run };
  });
  const r = await ui().pick({ title: 'Sandbox: Doctor', placeholder: 'Select a failed check to run (or copy) what fixes it', items });
  const picked = r && r !== BACK ? r[0] : undefined;
  if (picked?.run) {
    await vscode.commands.executeCommand(picked.run);
  } else if (picked?.fix) {
    await vscode.env.clipboard.writeText(picked.fix);
    void ui().ask('info', `Copied: ${picked.fix}`, {});
  }
}
