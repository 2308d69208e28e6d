// The extension as a first-time user meets it (issue #17), in a real VS Code against the real
// sidecar and Incus: the failure paths (a cancelled GitHub sign-in, a create that fails and is
// retried with every answer kept, Claude Code missing, no Incus answering, another HOME's
// sandboxes, an editor that cannot open Remote-SSH windows, a port with nothing behind it) and
// New Agent. Only the UI seam is scripted (answers, the GitHub sign-in dialog, opening a window).
import * as assert from 'assert';
import { randomBytes } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as vscode from 'vscode';
import { EDIT_AND_RETRY } from '../src/createFlow';
import { WITHOUT_REPO } from '../src/github';
import { SET_UP } from '../src/hostSetup';
import type { Api } from '../src/main';
import type { Node } from '../src/tree';
import { jsonLines, type Ran, run as runIn, sandboxItem, UiScripts, waitFor } from './helpers';
import { ScriptedUi } from './scriptedUi';

const BIN = process.env.AGENT_SANDBOXES_SERVER ?? '';
const suffix = randomBytes(3).toString('hex');
const NAME = `t-fu-${suffix}`;
const created: string[] = [];
const SIM_LOG = process.env.ANTHROPIC_SIM_LOG ?? '';
/** The simulated Anthropic API's request log: one JSON line per request (tests/support/anthropic.rs). */
function simRequests(): { method: string; target: string; userText: string }[] {
  return SIM_LOG ? jsonLines(SIM_LOG) : [];
}
/** The tests' own SANDBOX_HOME, put back after the other-HOME test. */
const TEST_HOME = process.env.SANDBOX_HOME;

function run(cmd: string, args: string[], ms = 120_000): Promise<Ran> {
  return runIn(cmd, args, { ms });
}

let api: Api;

/** What the extension logged so far (its output channel's file). */
function logText(): string {
  try { return fs.readFileSync(api.logFile, 'utf8'); } catch { return ''; }
}
const uis = new UiScripts();
const scripted = (): ScriptedUi => uis.next(api);
const treeItem = (name: string): vscode.TreeItem | undefined => sandboxItem(api, name);

/** Restarts the sidecar with some environment changed (a socket where no Incus answers, another HOME). */
async function sidecarWith(env: Record<string, string | undefined>): Promise<void> {
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  await api.sidecar.restart();
  await waitFor('the sidecar ready', () => api.sidecar.state === 'ready', 30_000);
}

describe('A first-time user', function () {
  before(async function () {
    const ext = vscode.extensions.getExtension<Api>('agent-sandboxes.agent-sandboxes');
    assert.ok(ext, 'the extension is installed');
    api = await ext.activate();
    await api.whenLoaded();
  });

  after(async function () {
    uis.reset();
    for (const n of created) await run(BIN, ['rm', n]);
  });

  it('a cancelled GitHub sign-in offers to go on without the repository; a failed create offers Edit and Retry with every answer kept', async function () {
    created.push(NAME);
    const u = scripted().script(
      NAME, 'git@github.com:example/project.git', "The repository's default branch", 'minimal',
      ['Domains file…'], '/nonexistent/allowed-domains.txt', // a file that is not there: the create fails
      // Edit and Retry: the wizard again, from the answers (checked below); the domains file unticked.
      NAME, '', 'minimal', [],
    );
    u.replies.set('deploy key', WITHOUT_REPO);
    u.replies.set(`Create sandbox ${NAME}`, EDIT_AND_RETRY);
    const first = await vscode.commands.executeCommand('agentSandboxes.create');
    assert.strictEqual(first, undefined, 'the first create failed');
    assert.strictEqual(u.githubAsked, 1);
    const signIn = u.asked.find((a) => a.message.includes('deploy key'));
    assert.ok(signIn?.modal && signIn.actions.includes('Sign In Again') && signIn.actions.includes(WITHOUT_REPO), JSON.stringify(u.asked));
    const failed = u.asked.find((a) => a.severity === 'error' && a.message.startsWith(`Create sandbox ${NAME}`));
    assert.ok(failed, JSON.stringify(u.asked));
    assert.match(failed.message, /cannot read \/nonexistent\/allowed-domains\.txt/);
    assert.deepStrictEqual(failed.actions.slice(0, 1), [EDIT_AND_RETRY]);
    // The retry runs by itself (the reply) and succeeds.
    await waitFor('the retried sandbox running', () => treeItem(NAME)?.contextValue === 'sandbox.running', 90_000);
    u.done();
    const names = u.inputs.filter((i) => i.prompt.startsWith('Name of the sandbox'));
    assert.deepStrictEqual(names.map((i) => i.value), ['', NAME], 'the name is kept');
    const repos = u.inputs.filter((i) => i.prompt.startsWith('Repository'));
    assert.deepStrictEqual(repos.map((i) => i.value), ['git@github.com:example/project.git', ''], 'kept as it was sent: without the repository');
    const options = u.picks.filter((p) => p.placeholder.startsWith('Options'));
    assert.deepStrictEqual(options.map((p) => p.selected), [[], ['Domains file…']], 'the option is ticked again');
    assert.ok(!u.inputs.some((i) => i.prompt === 'New branch name'), 'no branch step without a repository');
    // The log holds what the notifications said, with the code and the hint.
    const log = await waitFor('both errors in the log', () => {
      const text = logText();
      return text.includes(`Create sandbox ${NAME}: [`) && text.includes('GitHub sign-in for git@github.com:example/project.git') && text;
    }, 10_000);
    assert.match(log, new RegExp(`Create sandbox ${NAME}: \\[invalid_input\\] [^\\n]*allowed-domains\\.txt[^\\n]*\\(hint: `));
    assert.match(log, /GitHub sign-in for git@github\.com:example\/project\.git: \[failed\] [^\n]*consent[^\n]*\(hint: the deploy key needs it/);
  });

  it('the new sandbox gets its health without a Refresh; a port says whether anything listens, and opening an empty one asks first', async function () {
    await waitFor('health children', () => api.tree.getChildren({ kind: 'sandbox', name: NAME }).some((k) => k.kind === 'health' && k.label === 'Claude'), 15_000);
    const u = scripted().script('3000');
    await vscode.commands.executeCommand('agentSandboxes.exposePort', NAME);
    const port = () => api.tree.getChildren({ kind: 'sandbox', name: NAME })
      .find((k): k is Extract<Node, { kind: 'port' }> => k.kind === 'port' && k.port.containerPort === 3000);
    await waitFor('the port saying nothing listens', () => String(port() && api.tree.getTreeItem(port()!).description).endsWith('nothing listening'), 15_000);
    const opened = await vscode.commands.executeCommand<boolean>('agentSandboxes.openPort', port());
    assert.strictEqual(opened, false, 'not opened without asking');
    assert.ok(u.asked.some((a) => a.message.startsWith('Nothing listens on port 3000') && a.actions.includes('Open Anyway')), JSON.stringify(u.asked));
    const serve = await api.sidecar.request('sandbox/exec', { name: NAME, command: ['sh', '-c', 'cd /tmp && (setsid python3 -m http.server 3000 >/dev/null 2>&1 &) && sleep 1'] });
    assert.strictEqual(serve.status, 0, serve.stderr);
    const s = await api.sidecar.request('sandbox/get', { name: NAME });
    api.store.apply({ name: NAME, sandbox: s });
    assert.match(String(api.tree.getTreeItem(port()!).description), /· listening$/);
  });

  it('Open Claude without Claude Code: a notification says what to do, and the terminal keeps the reason until Enter', async function () {
    // A sandbox whose stack has no Claude Code (minimal may carry it: take it out).
    const rm = await run('incus', ['exec', `agent-${NAME}`, '--', 'rm', '-f', '/usr/local/bin/claude', '/usr/bin/claude', '/home/ubuntu/.local/bin/claude']);
    assert.strictEqual(rm.code, 0, rm.stderr);
    const u = scripted();
    const [t] = await vscode.commands.executeCommand<vscode.Terminal[]>('agentSandboxes.openClaude', NAME);
    assert.deepStrictEqual((t.creationOptions as vscode.TerminalOptions).shellArgs, ['claude', NAME, '--wait-on-error']);
    const e = u.asked.find((a) => a.severity === 'error' && a.message.includes('Claude Code is not installed'));
    assert.ok(e && e.actions.includes('Open Shell') && e.actions.includes('Rebuild Stack'), JSON.stringify(u.asked));
    // The CLI in the terminal says the same and waits for Enter (the UI test reads the words).
    await new Promise((r) => setTimeout(r, 3000));
    assert.strictEqual(t.exitStatus, undefined, 'the terminal is still open');
    t.sendText('', true);
    const st = await waitFor('the terminal closed after Enter', () => t.exitStatus, 15_000);
    assert.strictEqual(st.code, 1);
  });

  it('Open in Remote-SSH in an editor that runs in a browser: the shell and the SSH command instead', async function () {
    assert.strictEqual(vscode.env.uiKind, vscode.UIKind.Web, 'code-server runs the workbench in a browser');
    const u = scripted();
    u.replies.set('cannot open a sandbox in a Remote-SSH window', 'Open Shell');
    await vscode.commands.executeCommand('agentSandboxes.openRemote', NAME);
    assert.strictEqual(u.opened.length, 0, 'no window opened');
    const offer = u.asked.find((a) => a.message.includes('runs in a browser'));
    assert.deepStrictEqual(offer?.actions, ['Open Shell', 'Copy SSH Command'], JSON.stringify(u.asked));
    const shell = await waitFor('the shell terminal', () => vscode.window.terminals.find((x) => x.name === `Shell · ${NAME}`), 10_000);
    assert.deepStrictEqual((shell.creationOptions as vscode.TerminalOptions).shellArgs, ['shell', NAME, '--wait-on-error']);
  });

  it('another HOME sees the sandbox marked as not its own, not counted, and reaches it once adopted', async function () {
    const other = fs.mkdtempSync(path.join(os.tmpdir(), 'sbx-other-home-'));
    try {
      await sidecarWith({ SANDBOX_HOME: other });
      const item = await waitFor('the item marked as another user\'s', () => { const i = treeItem(NAME); return i?.contextValue === 'foreign.running' && i; }, 30_000);
      assert.match(String(item.description), /another user's: Adopt to reach it/);
      assert.ok(!api.store.all().some((s) => s.reachable && s.name === NAME), 'not counted as this user\'s');
      assert.match((api.status.item.tooltip as vscode.MarkdownString).value, /made by other users/);
      const u = scripted();
      await vscode.commands.executeCommand('agentSandboxes.openShell', NAME);
      const err = u.asked.find((a) => a.severity === 'error');
      assert.ok(err?.message.includes('made by another user') && err.actions[0] === 'Adopt', JSON.stringify(u.asked));
      await vscode.commands.executeCommand('agentSandboxes.adopt', NAME);
      await waitFor('the item reachable', () => treeItem(NAME)?.contextValue === 'sandbox.running', 10_000);
      const ssh = await run('ssh', ['-F', path.join(other, 'ssh_config'), '-o', 'BatchMode=yes', NAME, 'hostname']);
      assert.strictEqual(ssh.stdout.trim(), NAME, ssh.stderr);
    } finally {
      await sidecarWith({ SANDBOX_HOME: TEST_HOME });
      fs.rmSync(other, { recursive: true, force: true });
    }
  });

  it('without Incus answering: the status says why, errors offer Set Up This Machine, which runs `sandbox host install` in a terminal', async function () {
    this.timeout(300_000);
    const u = scripted();
    u.replies.set('Set up this machine for sandboxes?', SET_UP);
    try {
      await sidecarWith({ INCUS_SOCKET: '/nonexistent/incus.socket' });
      await waitFor('the status: not running', () => api.store.status()?.incus === 'notRunning', 15_000);
      assert.strictEqual(api.status.item.text, '$(error) Sandboxes: Incus not running');
      assert.strictEqual(api.status.item.command, 'agentSandboxes.setUpMachine');
      await vscode.commands.executeCommand('agentSandboxes.stop', NAME);
      const err = u.asked.find((a) => a.severity === 'error' && a.message.startsWith('Stop'));
      assert.ok(err?.actions.includes('Set Up This Machine'), JSON.stringify(u.asked));
      const t = await vscode.commands.executeCommand<vscode.Terminal>('agentSandboxes.setUpMachine');
      const ask = u.asked.find((a) => a.message === 'Set up this machine for sandboxes?');
      assert.ok(ask?.modal, JSON.stringify(u.asked));
      assert.deepStrictEqual((t.creationOptions as vscode.TerminalOptions).shellArgs, ['host', 'install', '--nat', 'off', '--wait-on-error']);
      // Here (root, everything installed) the steps run for real, check what is there, and end.
      const st = await waitFor('the setup terminal ended', () => t.exitStatus, 180_000);
      assert.strictEqual(st.code, 0);
      await waitFor('the notification that it is set up', () => u.asked.find((a) => a.message.startsWith('This machine is set up')), 5_000);
    } finally {
      await sidecarWith({ INCUS_SOCKET: undefined });
    }
    await waitFor('Incus ready again', () => api.store.status()?.incus === 'ready', 15_000);
  });

  it('New Agent: a task → a sandbox named after it with the real Claude Code working on that task (the simulated API gets it); Send Prompt types into its session', async function () {
    assert.ok(SIM_LOG, 'ANTHROPIC_SIM_LOG names the simulated API\'s request log (tests/vscode/run.sh)');
    const task = `Fix the flaky date test ${suffix}`;
    const name = `fix-flaky-date-test-${suffix}`;
    created.push(name);
    await api.sidecar.request('sandbox/authSet', { provider: 'anthropic', credential: `sk-ant-api03-fu${randomBytes(16).toString('hex')}` });
    try {
      await newAgentOnTask(task, name);
    } finally {
      await api.sidecar.request('sandbox/authRemove', { provider: 'anthropic' }).catch(() => undefined);
    }
  });

  async function newAgentOnTask(task: string, name: string): Promise<void> {
    const u = scripted().script(task, `${name} agent/${name}`); // the task, then Enter on the line offered
    u.replies.set('deploy key', WITHOUT_REPO); // no GitHub here
    const r = await vscode.commands.executeCommand<{ sandbox: { name: string; state: string }; terminal: vscode.Terminal }>('agentSandboxes.newAgent');
    u.done();
    const confirm = u.inputs[1];
    assert.strictEqual(confirm.value, `${name} agent/${name}`, 'name and branch derived from the task');
    assert.strictEqual(r?.sandbox.name, name, JSON.stringify(u.asked));
    assert.strictEqual(r.sandbox.state, 'running');
    assert.deepStrictEqual((r.terminal.creationOptions as vscode.TerminalOptions).shellArgs, ['claude', name, '--wait-on-error', '--prompt', task]);
    await waitFor('the tree item', () => treeItem(name)?.contextValue === 'sandbox.running');
    // Claude Code, started by the terminal with the task as its first prompt, sends it to the API.
    await waitFor('the task in a request to the simulated API', () => simRequests()
      .some((q) => q.method === 'POST' && q.target.startsWith('/v1/messages') && q.userText.includes(task)), 90_000);
    const more = `and add a test for it ${suffix}`;
    scripted().script(more);
    const sent = await vscode.commands.executeCommand<vscode.Terminal[]>('agentSandboxes.sendPrompt', name);
    assert.ok(sent?.length === 1 && sent[0] === r.terminal && r.terminal.exitStatus === undefined, 'typed into the open session');
    await waitFor('the prompt sent to the agent in a request to the simulated API', () => simRequests()
      .some((q) => q.method === 'POST' && q.target.startsWith('/v1/messages') && q.userText.includes(more)), 60_000)
      .catch(async (e: Error) => { throw new Error(`${e.message}; Claude's screen in ${name}:\n${await claudeScreen(name)}`); });
  }

  /** What Claude's tmux session in the sandbox shows (for a failure's message). */
  async function claudeScreen(name: string): Promise<string> {
    const r = await api.sidecar.request('sandbox/exec', { name, command: ['tmux', 'capture-pane', '-p', '-t', '=claude'] }).catch(() => undefined);
    return r ? r.stdout + r.stderr : '(no screen)';
  }

  it('Destroy closes the sandbox\'s terminals', async function () {
    const [shell] = await vscode.commands.executeCommand<vscode.Terminal[]>('agentSandboxes.openShell', NAME);
    assert.strictEqual(shell.exitStatus, undefined);
    const u = scripted();
    u.replies.set('Destroy ', 'Destroy');
    await vscode.commands.executeCommand('agentSandboxes.destroy', NAME);
    await waitFor('the shell terminal closed', () => !vscode.window.terminals.includes(shell), 30_000);
    assert.ok(!u.asked.some((a) => a.severity === 'error'), JSON.stringify(u.asked));
  });
});
