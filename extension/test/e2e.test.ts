// The extension inside a real VS Code, against the real sidecar (AGENT_SANDBOXES_SERVER =
// target/debug/sandbox) and real Incus. Only the UI seam is scripted (wizard answers, prompt
// answers, and the `vscode.openFolder` call, since no Remote-SSH can connect here).
import * as assert from 'assert';
import { randomBytes } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as vscode from 'vscode';
import type { Api } from '../src/main';
import type { Node } from '../src/tree';
import { BACK } from '../src/ui';
import { jsonLines, type Ran, run as runIn, sandboxItem, UiScripts, waitFor } from './helpers';
import { ScriptedUi } from './scriptedUi';

const BIN = process.env.AGENT_SANDBOXES_SERVER ?? '';
const HOME = process.env.SANDBOX_HOME ?? path.join(os.homedir(), '.sandbox');
const suffix = randomBytes(3).toString('hex');
const NAME = `t-ext-${suffix}`;
const BRANCHED = `t-ext-${suffix}-b`;
const FORKED = `t-ext-${suffix}-f`;
/** A sandbox whose Claude Code talks to the simulated API. */
const AI = `t-ext-${suffix}-ai`;
/** The simulated Anthropic API's request log (one JSON object per line; tests/vscode/run.sh). */
const SIM_LOG = process.env.ANTHROPIC_SIM_LOG ?? '';

/** Every process below `pid` (from /proc: each process's parent). */
function descendants(pid: number): number[] {
  const parent = new Map<number, number>();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      parent.set(Number(d), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch { /* gone meanwhile */ }
  }
  const out: number[] = [];
  for (let frontier = [pid]; frontier.length;) {
    const next = [...parent].filter(([, pp]) => frontier.includes(pp)).map(([p]) => p);
    out.push(...next);
    frontier = next;
  }
  return out;
}

interface SimRequest { method: string; target: string; headers: Record<string, string> }
function simRequests(): SimRequest[] {
  return jsonLines<SimRequest>(SIM_LOG);
}
const created: string[] = [];
/** What the extension logged so far (its output channel's file). */
function logText(): string {
  try { return fs.readFileSync(api.logFile, 'utf8'); } catch { return ''; }
}

function cli(...args: string[]): Promise<Ran> {
  return runIn(BIN, args);
}

function run(cmd: string, args: string[]): Promise<Ran> {
  return runIn(cmd, args, { ms: 60_000 });
}

let api: Api;
const uis = new UiScripts();
const scripted = (): ScriptedUi => uis.next(api);
const treeItem = (name: string): vscode.TreeItem | undefined => sandboxItem(api, name);

describe('Agent Sandboxes in VS Code', function () {
  before(async function () {
    assert.ok(BIN && fs.existsSync(BIN), `AGENT_SANDBOXES_SERVER must point at the sandbox binary (got '${BIN}')`);
    const ext = vscode.extensions.getExtension<Api>('agent-sandboxes.agent-sandboxes');
    assert.ok(ext, 'the extension is installed');
    api = await ext.activate();
    await Promise.race([api.whenLoaded(), new Promise((_, rej) => setTimeout(() => rej(new Error(`sidecar not loaded: ${api.sidecar.state} ${api.sidecar.error ?? ''}`)), 60_000))]);
  });

  after(async function () {
    uis.reset();
    // The tests' shared ~/.sandbox keeps no credential (other suites expect none).
    await api.sidecar.request('sandbox/authRemove', { provider: 'anthropic' }).catch(() => undefined);
    for (const n of created) await cli('rm', n);
  });

  it('activates fast, with the sidecar from AGENT_SANDBOXES_SERVER ready', function () {
    console.log(`    activation: ${api.activationMs.toFixed(1)} ms (${api.loadMs.toFixed(1)} ms of it before activate() was called)`);
    // Activation must not wait for the sidecar (it starts in the background)…
    assert.strictEqual(api.sidecarAtActivation, 'starting');
    // …and stays far from a second even on a loaded 2-core CI machine (target: 200 ms).
    assert.ok(api.activationMs < 1000, `activation took ${api.activationMs} ms`);
    assert.strictEqual(api.sidecar.state, 'ready');
    assert.strictEqual(api.sidecar.binary?.path, BIN);
    assert.match(api.sidecar.binary?.version ?? '', /^sandbox \d+\.\d+/);
    assert.ok(api.store.goldenImages()?.some((g) => g.stack === 'minimal' && g.built), 'golden-minimal is listed as built');
    assert.match(String(api.status.item.text), /^\$\(vm\) \d+ running$/);
  });

  it("validates names live with the engine's rules", async function () {
    // The wizard's check and the sidecar's (sandbox/get validates the name) agree on each.
    const { sandboxName } = await import('../src/validate');
    for (const n of ['a', 'feature-x', 'A1', 'x'.repeat(57), '', 'a b', 'a;b', '-a', 'a-', 'é', 'a.b', 'a_b', 'x'.repeat(58), '$(x)']) {
      const local = sandboxName(n);
      let remote: string | undefined;
      try {
        await api.sidecar.request('sandbox/get', { name: n });
      } catch (e) {
        remote = (e as { code?: string }).code;
      }
      assert.strictEqual(local === undefined, remote === undefined, `'${n}': wizard says ${local ?? 'ok'}, engine says ${remote ?? 'ok'}`);
      if (remote !== undefined) assert.strictEqual(remote, 'invalid_input');
    }
  });

  it('Create via the command (wizard with Back) → the tree shows it running', async function () {
    const u = scripted().script(
      `${NAME} bad`, NAME, // name: a rejected value, then a good one
      'git@github.com:example/project.git', // repository: the prefilled origin…
      BACK, // …branch → back to the repository step
      '', // repository: none → the branch step is passed over
      BACK, // stack → back past the branch step to the repository step
      '',
      'minimal',
      [], // options: defaults
    );
    created.push(NAME);
    const result = await vscode.commands.executeCommand<{ name: string; state: string }>('agentSandboxes.create');
    u.done();
    assert.deepStrictEqual(u.rejected.map((r) => r.value), [`${NAME} bad`]);
    assert.match(u.rejected[0].message, /contains ' '/);
    assert.strictEqual(u.prompts.filter((p) => p.startsWith('Repository')).length, 3, 'Back returned to the repository step (twice)');
    // Prefilled from the workspace (run.sh makes it a git repository with an origin).
    const repoPrompt = u.prompts.find((p) => p.startsWith('Repository')) ?? '';
    assert.strictEqual(u.prefilled.get(repoPrompt), 'git@github.com:example/project.git');
    // Offered once (with the repository), the workspace's branch first; not offered without one.
    assert.deepStrictEqual(u.offered.get('Branch'), ['e2e-current', "The repository's default branch", '$(git-branch) New branch…']);
    assert.deepStrictEqual(u.offered.get('Stack (golden image to clone)'), api.store.goldenImages()?.filter((g) => g.built).map((g) => g.stack));
    assert.strictEqual(result?.state, 'running', `create result: ${JSON.stringify(result)} errors: ${JSON.stringify(u.asked)}`);
    const item = await waitFor('the tree item running', () => { const i = treeItem(NAME); return i?.contextValue === 'sandbox.running' && i; });
    assert.strictEqual((item.iconPath as vscode.ThemeIcon).id, 'vm-running');
    assert.match(String(item.description), /^minimal · no repository$/);
    assert.match((item.tooltip as vscode.MarkdownString).value, /\| ssh \| 127\.0\.0\.1:\d+\/tcp \| 22 \|/);
    const kids = api.tree.getChildren({ kind: 'sandbox', name: NAME });
    const ssh = kids.find((k): k is Extract<Node, { kind: 'port' }> => k.kind === 'port' && k.port.role === 'ssh');
    assert.ok(ssh, `an ssh port child (children: ${JSON.stringify(kids)})`);
    assert.strictEqual(api.tree.getTreeItem(ssh).contextValue, 'port.other.ssh');
    assert.ok(u.asked.some((a) => a.severity === 'info' && a.message.includes(`${NAME} is running`) && a.actions.includes('Open in Remote-SSH')));
  });

  it('a stop done from the CLI reaches the tree without a refresh (no list request)', async function () {
    const lists: string[] = [];
    const orig = api.sidecar.request.bind(api.sidecar);
    api.sidecar.request = ((m: string, p: never, t?: vscode.CancellationToken) => { lists.push(m); return orig(m as never, p, t); }) as typeof api.sidecar.request;
    try {
      let fired = 0;
      const sub = api.tree.onDidChangeTreeData(() => fired++);
      const r = await cli('stop', NAME);
      assert.strictEqual(r.code, 0, r.stderr);
      const item = await waitFor('the tree item stopped', () => { const i = treeItem(NAME); return i?.contextValue === 'sandbox.stopped' && i; }, 15_000);
      sub.dispose();
      assert.strictEqual((item.iconPath as vscode.ThemeIcon).id, 'vm-outline');
      assert.ok(fired > 0, 'the tree fired a change');
      assert.deepStrictEqual(lists, [], 'the extension asked the sidecar nothing: the change was pushed');
    } finally {
      api.sidecar.request = orig;
    }
    scripted();
    await vscode.commands.executeCommand('agentSandboxes.start', NAME);
    await waitFor('running again', () => treeItem(NAME)?.contextValue === 'sandbox.running', 60_000);
  });

  it('Open Shell and Open Claude → terminals running the right command, reused when open', async function () {
    const [shell] = await vscode.commands.executeCommand<vscode.Terminal[]>('agentSandboxes.openShell', NAME);
    assert.strictEqual(shell.name, `Shell · ${NAME}`);
    const so = shell.creationOptions as vscode.TerminalOptions;
    assert.strictEqual(so.shellPath, BIN);
    assert.deepStrictEqual(so.shellArgs, ['shell', NAME, '--wait-on-error']);
    // The terminal really gets into the sandbox: what it types lands there.
    shell.sendText(`touch /tmp/from-vscode-terminal-${suffix}; exit`);
    await waitFor('the file written from the terminal', async () =>
      (await api.sidecar.request('sandbox/exec', { name: NAME, command: ['test', '-f', `/tmp/from-vscode-terminal-${suffix}`] })).status === 0, 30_000)
      .catch((e: Error) => {
        // Which side failed: the session (ssh ended: `--wait-on-error` took the typed line for its Enter) or the typing.
        const st = shell.exitStatus;
        throw new Error(`${e.message}; the shell terminal ${st ? `exited (code ${st.code}, reason ${st.reason})` : 'is still open'}`);
      });

    const [claude] = await vscode.commands.executeCommand<vscode.Terminal[]>('agentSandboxes.openClaude', NAME);
    assert.strictEqual(claude.name, `Claude · ${NAME}`);
    const co = claude.creationOptions as vscode.TerminalOptions;
    assert.strictEqual(co.shellPath, BIN);
    assert.deepStrictEqual(co.shellArgs, ['claude', NAME, '--wait-on-error']);
    assert.strictEqual((co.iconPath as vscode.ThemeIcon).id, 'sparkle');
    const count = vscode.window.terminals.length;
    const [again] = await vscode.commands.executeCommand<vscode.Terminal[]>('agentSandboxes.openClaude', NAME);
    if (claude.exitStatus === undefined) {
      assert.strictEqual(again, claude, 'the open terminal is reused');
      assert.strictEqual(vscode.window.terminals.length, count);
    }
  });

  it('Set Anthropic Credential… (a password box) → every sandbox uses the host credential; tokens in the tree and the status bar', async function () {
    assert.ok(SIM_LOG, 'ANTHROPIC_SIM_LOG names the simulated API\'s request log (tests/vscode/run.sh)');
    const claudeChild = (name: string) => api.tree.getChildren({ kind: 'sandbox', name })
      .find((k): k is Extract<Node, { kind: 'health' }> => k.kind === 'health' && k.label === 'Claude');
    // None set yet: the tree says what to do, and clicking the child does it. (Health comes with
    // a full list: a state change drops the last probe.)
    await vscode.commands.executeCommand('agentSandboxes.refresh');
    const before = await waitFor('the Claude health child', () => claudeChild(NAME));
    assert.match(before.detail, /no credential on the host/);
    assert.strictEqual(api.tree.getTreeItem(before).command?.command, 'agentSandboxes.setAnthropicCredential');

    const key = `sk-ant-api03-e2e${randomBytes(16).toString('hex')}`;
    const u = scripted().script('two words', key);
    const status = await vscode.commands.executeCommand<{ set: boolean; kind: string }>('agentSandboxes.setAnthropicCredential');
    u.done();
    assert.deepStrictEqual(u.rejected.map((r) => r.value), ['two words']);
    assert.strictEqual(u.hidden.length, 1, 'typed into a password box');
    assert.deepStrictEqual([status?.set, status?.kind], [true, 'apiKey']);
    assert.ok(u.asked.some((a) => a.message.includes('API key stored on the host')), JSON.stringify(u.asked));
    await waitFor('the Claude child saying host', () => claudeChild(NAME)?.detail.startsWith('host'));

    created.push(AI);
    await api.sidecar.request('sandbox/create', { name: AI, stack: 'minimal', env: ['CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1'] });
    for (const prompt of ['say pong', 'say pong again']) {
      const r = await api.sidecar.request('sandbox/exec', { name: AI, command: ['claude', '-p', prompt] });
      assert.ok(r.stdout.includes('pong from the simulated API'), `claude -p: ${r.stdout} ${r.stderr}`);
    }
    const calls = simRequests().filter((r) => r.method === 'POST' && r.target.startsWith('/v1/messages?'));
    assert.ok(calls.length >= 2 && calls.every((r) => r.headers['x-api-key'] === key), 'the simulated API got the host key');
    // Pushed by the sidecar (sandbox/changed from Incus): the description and the tooltip.
    const item = await waitFor('tokens on the tree item', () => {
      const i = treeItem(AI);
      return i && String(i.description).endsWith('22 in / 14 out') && i;
    }, 20_000);
    assert.match((item.tooltip as vscode.MarkdownString).value, /tokens through the host: 22 in · 14 out · 2 requests/);
    assert.match((api.status.item.tooltip as vscode.MarkdownString).value, /Claude tokens through the host, all sandboxes: \d+ in · \d+ out · [2-9]\d* requests/);
  });

  it('Open Claude runs the real claude in the terminal: a prompt typed there reaches the (simulated) API', async function () {
    const [t] = await vscode.commands.executeCommand<vscode.Terminal[]>('agentSandboxes.openClaude', AI);
    // The terminal's process (or, where VS Code reports its pty host, a process under it):
    // `sandbox claude AI`, which becomes the ssh session running claude in the sandbox.
    const pid = (await t.processId) ?? 0;
    const ours = await waitFor('the terminal running `sandbox claude`', () => [pid, ...descendants(pid)]
      .map((p) => { try { return fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0'); } catch { return []; } })
      .find((c) => (c[0] === BIN && c[1] === 'claude' && c[2] === AI) || (c[0] === 'ssh' && c.includes(AI) && c.join(' ').includes('claude --dangerously-skip-permissions'))), 20_000);
    assert.ok(ours, 'the terminal runs sandbox claude');
    await waitFor('claude running in the sandbox', async () => (await api.sidecar.request('sandbox/exec',
      { name: AI, command: ['pgrep', '-u', 'ubuntu', '-f', 'claude --dangerously-skip-permissions'] })).status === 0, 40_000);
    const asked = () => simRequests().filter((r) => r.method === 'POST' && r.target.startsWith('/v1/messages?')).length;
    const before = asked();
    // Its UI takes a moment to read input; typed again until the request arrives.
    for (let attempt = 0; asked() === before && attempt < 6; attempt++) {
      await new Promise((r) => setTimeout(r, 2000));
      t.sendText('say pong from vscode', false);
      await new Promise((r) => setTimeout(r, 300));
      t.sendText('\r', false);
      await waitFor('', () => asked() > before, 6000).catch(() => undefined);
    }
    assert.ok(asked() > before, 'the prompt typed in the terminal reached the simulated API');
    t.dispose();
    await api.sidecar.request('sandbox/authRemove', { provider: 'anthropic' });
  });

  it("agent state from Claude Code's hooks: the tree item, a notification once with Open Claude, the waiting badge and status item", async function () {
    const sim = process.env.SANDBOX_ANTHROPIC_UPSTREAM ?? '';
    assert.ok(sim, 'SANDBOX_ANTHROPIC_UPSTREAM names the simulated API (tests/vscode/run.sh)');
    await api.sidecar.request('sandbox/authSet', { provider: 'anthropic', credential: `sk-ant-api03-e2e${randomBytes(16).toString('hex')}` });
    for (const t of vscode.window.terminals) if (t.name.startsWith('Claude · ')) t.dispose();
    await waitFor('no Claude terminal', () => !vscode.window.terminals.some((t) => t.name.startsWith('Claude · ')));
    const u = scripted();
    u.replies.set(`${AI} finished`, 'Open Claude');
    const notices = (text: string) => u.asked.filter((a) => a.message.startsWith(text));
    try {
      // The simulated API takes 4 s to answer: long enough to see `working`.
      await fetch(`${sim}/sim/pause/4000`);
      const answer = api.sidecar.request('sandbox/exec', { name: AI, command: ['claude', '-p', 'say pong'] });
      const working = await waitFor('working on the tree item', () => { const i = treeItem(AI); return String(i?.description).startsWith('working · ') && i; }, 30_000);
      assert.strictEqual((working.iconPath as vscode.ThemeIcon).id, 'loading~spin');
      assert.ok((await answer).stdout.includes('pong from the simulated API'));
      const done = await waitFor('done on the tree item', () => { const i = treeItem(AI); return String(i?.description).startsWith('done: pong from the simulated API · ') && i; }, 30_000);
      assert.strictEqual((done.iconPath as vscode.ThemeIcon).id, 'pass-filled');
      assert.match((done.tooltip as vscode.MarkdownString).value, /agent: done: pong from the simulated API \(since /);

      // Its terminal was not the active one: one notification, whose Open Claude focuses it.
      const finished = await waitFor('the notification', () => notices(`${AI} finished`)[0]);
      assert.strictEqual(finished.message, `${AI} finished: pong from the simulated API`);
      assert.deepStrictEqual(finished.actions, ['Open Claude']);
      await waitFor('the Claude terminal active', () => vscode.window.activeTerminal?.name === `Claude · ${AI}`, 15_000);
      await vscode.commands.executeCommand('agentSandboxes.refresh');
      await api.whenLoaded();
      assert.strictEqual(notices(`${AI} finished`).length, 1, 'no repeat for the same event');

      // Waiting, from a hook inside the sandbox (the image's own hook command).
      const settings = await api.sidecar.request('sandbox/exec', { name: AI, command: ['cat', '/etc/claude-code/managed-settings.json'] });
      const hook = (JSON.parse(settings.stdout).hooks.PermissionRequest as { hooks: { command: string }[] }[])
        .flatMap((e) => e.hooks).find((h) => h.command.includes('hooks.sock'))?.command ?? '';
      assert.ok(hook, settings.stdout);
      const fire = (event: object) => api.sidecar.request('sandbox/exec', { name: AI,
        command: ['sh', '-c', 'printf %s "$1" | sh -c "$2"', 'fire', JSON.stringify({ session_id: 'e2e-hooks', ...event }), hook] });
      await fire({ hook_event_name: 'PermissionRequest', tool_name: 'Bash' });
      const waitingItem = await waitFor('waiting on the tree item', () => { const i = treeItem(AI); return String(i?.description).startsWith('waiting: Claude needs your permission to use Bash') && i; }, 15_000);
      assert.strictEqual((waitingItem.iconPath as vscode.ThemeIcon).id, 'bell-dot');
      const badge = await waitFor('the badge', () => api.view.badge);
      assert.ok(badge.value >= 1 && badge.tooltip.includes(AI), JSON.stringify(badge));
      assert.match(String(api.agents?.item.text), /^\$\(bell-dot\) \d+ waiting$/);
      assert.ok(String(api.agents?.item.tooltip).includes(AI));
      // Its Claude terminal is the active one: no notification.
      assert.strictEqual(notices(`${AI} is waiting`).length, 0, JSON.stringify(u.asked));
      const revealed = await vscode.commands.executeCommand<string>('agentSandboxes.revealWaiting');
      assert.strictEqual(revealed, AI);
      // The selection comes back from the workbench a moment after reveal() resolves.
      await waitFor('the waiting sandbox selected', () => api.view.selection.some((n) => n.kind === 'sandbox' && n.name === AI), 10_000);

      // Another terminal active: the next wait is announced, once, as text (no link in it).
      const [shell] = await vscode.commands.executeCommand<vscode.Terminal[]>('agentSandboxes.openShell', AI);
      await waitFor('the shell active', () => vscode.window.activeTerminal === shell, 10_000);
      await fire({ hook_event_name: 'UserPromptSubmit' });
      await fire({ hook_event_name: 'Notification', notification_type: 'permission_prompt', message: 'Approve [this](command:workbench.action.quit) please' });
      const w = await waitFor('the waiting notification', () => notices(`${AI} is waiting`)[0], 15_000);
      assert.strictEqual(w.message, `${AI} is waiting: Approve [this] (command:workbench.action.quit) please`);
      // Notifications off: nothing more is announced.
      await vscode.workspace.getConfiguration('agentSandboxes').update('notifications.agents', false, vscode.ConfigurationTarget.Global);
      await fire({ hook_event_name: 'Stop', last_assistant_message: 'quiet' });
      await waitFor('done again', () => String(treeItem(AI)?.description).startsWith('done: quiet'), 15_000);
      await waitFor('the badge without it', () => !api.view.badge?.tooltip.includes(AI) && true);
      assert.strictEqual(notices(`${AI} finished: quiet`).length, 0);
      shell.dispose();
    } finally {
      await vscode.workspace.getConfiguration('agentSandboxes').update('notifications.agents', undefined, vscode.ConfigurationTarget.Global);
      await fetch(`${sim}/sim/pause/0`).catch(() => undefined);
      await api.sidecar.request('sandbox/authRemove', { provider: 'anthropic' });
    }
  });

  it('Expose Port… adds a port child (live), Stop Forwarding removes it; Run Command runs in the sandbox', async function () {
    scripted().script('3000');
    const fwd = await vscode.commands.executeCommand<{ hostPort: number; containerPort: number; role: string }>('agentSandboxes.exposePort', NAME);
    assert.strictEqual(fwd?.containerPort, 3000);
    const portNode = await waitFor('an extra port child', () => api.tree.getChildren({ kind: 'sandbox', name: NAME })
      .find((k): k is Extract<Node, { kind: 'port' }> => k.kind === 'port' && k.port.containerPort === 3000), 15_000);
    const item = api.tree.getTreeItem(portNode);
    assert.strictEqual(item.contextValue, 'port.http.extra');
    // Once the sandbox's health is probed the port also says nothing listens behind it (firstuser.test.ts).
    assert.match(String(item.description), new RegExp(`^127\\.0\\.0\\.1:${fwd.hostPort}( · nothing listening)?$`));
    assert.strictEqual(item.command?.command, 'agentSandboxes.openPort');
    await vscode.commands.executeCommand('agentSandboxes.unexposePort', portNode);
    await waitFor('the port child gone', () => !api.tree.getChildren({ kind: 'sandbox', name: NAME })
      .some((k) => k.kind === 'port' && k.port.containerPort === 3000), 15_000);

    scripted().script('echo "hi $USER from $(pwd)"');
    const [res] = await vscode.commands.executeCommand<({ status: number; stdout: string } | undefined)[]>('agentSandboxes.runCommand', NAME);
    assert.strictEqual(res?.status, 0);
    assert.strictEqual(res?.stdout, 'hi ubuntu from /workspace/project\n');
  });

  it('Branch From Here, then Open Claude on both → one terminal each, side by side in the editor area', async function () {
    // NAME has no repository (no GitHub here; deploy keys are tested in tests/credentials.rs), so
    // the wizard asks only for the name: there is no branch to make.
    const u = scripted().script(BRANCHED);
    created.push(BRANCHED);
    const r = await vscode.commands.executeCommand<{ name: string; state: string; branch: string | null; stack: string | null }>('agentSandboxes.branch', NAME);
    u.done();
    assert.strictEqual(r?.state, 'running', JSON.stringify(u.asked));
    assert.strictEqual(u.prompts.length, 1, `one step without a repository: ${u.prompts.join(' | ')}`);
    assert.strictEqual(r?.branch ?? null, null);
    assert.strictEqual(r?.stack, 'minimal', 'inherits the stack');
    await waitFor('the branched sandbox in the tree', () => treeItem(BRANCHED)?.contextValue === 'sandbox.running');
    for (const t of vscode.window.terminals) if (t.name.startsWith('Claude · ')) t.dispose();
    await waitFor('the Claude terminals closed', () => !vscode.window.terminals.some((t) => t.name.startsWith('Claude · ')));
    const nodes: Node[] = [{ kind: 'sandbox', name: NAME }, { kind: 'sandbox', name: BRANCHED }];
    const terms = await vscode.commands.executeCommand<vscode.Terminal[]>('agentSandboxes.openClaude', nodes[0], nodes);
    assert.deepStrictEqual(terms.map((t) => t.name), [`Claude · ${NAME}`, `Claude · ${BRANCHED}`]);
    const groups = await waitFor('two editor groups with a terminal each', () => {
      const g = vscode.window.tabGroups.all.filter((grp) => grp.tabs.some((t) => t.input instanceof vscode.TabInputTerminal));
      return g.length === 2 && g;
    }, 10_000);
    assert.deepStrictEqual(groups.map((g) => g.viewColumn), [vscode.ViewColumn.One, vscode.ViewColumn.Two]);
    await vscode.commands.executeCommand('workbench.action.closeAllEditors');
  });

  it('Snapshot… → a child of the sandbox; Restore… (modal) undoes a change; Fork… of the snapshot → the fork in the tree', async function () {
    const read = async (n: string) => (await cli('exec', n, '--', 'cat', 'snap.txt')).stdout.trim();
    assert.strictEqual((await cli('exec', NAME, '--', 'sh', '-c', 'echo before > snap.txt')).code, 0);
    scripted().script('e2e-snap');
    const taken = await vscode.commands.executeCommand<{ label: string }>('agentSandboxes.snapshot', NAME);
    assert.strictEqual(taken?.label, 'e2e-snap');
    const snapNode = await waitFor('the snapshot child', () => api.tree.getChildren({ kind: 'sandbox', name: NAME })
      .find((k): k is Extract<Node, { kind: 'snapshot' }> => k.kind === 'snapshot' && k.snapshot.label === 'e2e-snap'), 15_000);
    const item = api.tree.getTreeItem(snapNode);
    assert.strictEqual(item.contextValue, 'snapshot.manual.unpinned');
    assert.strictEqual(item.label, 'e2e-snap');

    assert.strictEqual((await cli('exec', NAME, '--', 'sh', '-c', 'echo after > snap.txt')).code, 0);
    const u = scripted();
    u.replies.set('Restore ', 'Restore');
    assert.strictEqual(await vscode.commands.executeCommand('agentSandboxes.restoreSnapshot', snapNode), true, JSON.stringify(u.asked));
    assert.ok(u.asked.some((a) => a.modal && a.message.includes(NAME) && a.message.includes('e2e-snap')), JSON.stringify(u.asked));
    assert.strictEqual(await read(NAME), 'before');
    await waitFor('running again in the tree', () => treeItem(NAME)?.contextValue === 'sandbox.running');

    scripted().script(FORKED);
    created.push(FORKED);
    assert.strictEqual(await vscode.commands.executeCommand('agentSandboxes.fork', snapNode), FORKED);
    await waitFor('the fork in the tree', () => treeItem(FORKED)?.contextValue === 'sandbox.running');
    assert.strictEqual(await read(FORKED), 'before');
    assert.deepStrictEqual(api.tree.getChildren({ kind: 'sandbox', name: FORKED }).filter((k) => k.kind === 'snapshot'), [], 'no snapshots of the source');
  });

  it('Cancel during a create (the progress notification\'s Cancel) rolls it back: nothing is left', async function () {
    const name = `t-ext-${suffix}-c`;
    created.push(name);
    const cts = new vscode.CancellationTokenSource();
    const messages: string[] = [];
    let outcome: unknown;
    try {
      // What withProgress does with its Cancel button's token; cancelled at the first step.
      await api.sidecar.requestWithProgress('sandbox/create', { name, stack: 'minimal' }, (m) => {
        messages.push(m);
        cts.cancel();
      }, cts.token);
      outcome = 'created';
    } catch (e) {
      outcome = e;
    }
    assert.ok(outcome instanceof vscode.CancellationError, `cancelled, got ${String(outcome)}; progress: ${messages.join(' | ')}`);
    assert.match(messages[0] ?? '', /^Creating agent-\S+ from golden-minimal\/ready/);
    // The answer comes at once; the rollback finishes in the sidecar, holding the sandbox's lock.
    // A start queues behind it, and then finds nothing to start.
    let after: unknown;
    try {
      after = await api.sidecar.request('sandbox/start', { name });
    } catch (e) {
      after = e;
    }
    assert.strictEqual((after as { code?: string }).code, 'not_found', `after the rollback: ${JSON.stringify(after)}`);
    const left = await run('incus', ['list', '--format', 'csv', '-c', 'n', `^agent-${name}$`]);
    assert.strictEqual(left.stdout.trim(), '', 'no instance left');
    await waitFor('no tree item', () => !treeItem(name), 10_000);
    assert.ok(!fs.readFileSync(path.join(HOME, 'ssh_config'), 'utf8').includes(`Host ${name} `), 'no ssh entry left');
  });

  it('"blocked: X — Allow?": one notification per name and sandbox; Allow (notification, tree, everywhere) lets the next request through', async function () {
    assert.ok(process.env.SANDBOX_DNS_UPSTREAM, 'run.sh starts the simulated internet (tests/support/sim_inet.rs)');
    const name = `t-ext-${suffix}-e`;
    created.push(name);
    const list = path.join(HOME, `${name}.txt`);
    fs.writeFileSync(list, 'allowed.test\n');
    const everywhereFile = path.join(HOME, 'allowed-domains.txt');
    const hadUserList = fs.existsSync(everywhereFile);
    const u = scripted();
    u.replies.set(`${name} was blocked from reaching later.test`, 'Allow for this sandbox');
    u.replies.set(`${name} was blocked from reaching blocked.test`, 'Ignore');
    u.replies.set(`${name} was blocked from reaching other.test`, 'Allow everywhere');
    const r = await cli('start', name, '--stack', 'minimal', '--domains-file', list);
    assert.strictEqual(r.code, 0, r.stderr);
    const curl = async (host: string) => (await run('incus', ['exec', `agent-${name}`, '--', 'curl', '-sk', '--max-time', '8', `https://${host}/`])).stdout;
    const asks = (host: string) => u.asked.filter((a) => a.message === `${name} was blocked from reaching ${host}`);
    assert.match(await curl('allowed.test'), /sni=allowed\.test/, 'an allowed name passes');
    try {
      // Refused twice: one notification, with the three actions; "Allow for this sandbox".
      assert.doesNotMatch(await curl('later.test'), /https ok/);
      assert.doesNotMatch(await curl('later.test'), /https ok/);
      const [asked] = await waitFor('the notification for later.test', () => asks('later.test').length > 0 && asks('later.test'), 20_000);
      assert.strictEqual(asked.severity, 'warning');
      assert.deepStrictEqual(asked.actions, ['Allow for this sandbox', 'Allow everywhere', 'Ignore']);
      await waitFor('the allow confirmed', () => u.asked.some((a) => a.message.startsWith(`later.test is allowed for ${name}`)), 20_000);
      // The next request passes: live, no restart.
      assert.match(await curl('later.test'), /sni=later\.test/);
      await new Promise((res) => setTimeout(res, 2500)); // the sidecar's next look at the logs
      assert.strictEqual(asks('later.test').length, 1, 'one notification per name and sandbox');

      // Ignored: the refusal stays in the tree, under the sandbox, with its Allow action.
      assert.doesNotMatch(await curl('blocked.test'), /https ok/);
      const node = await waitFor('the tree child for blocked.test', () => api.tree.getChildren({ kind: 'sandbox', name })
        .find((k): k is Extract<Node, { kind: 'denial' }> => k.kind === 'denial' && k.denial.domain === 'blocked.test'), 20_000);
      const item = api.tree.getTreeItem(node);
      assert.strictEqual(item.contextValue, 'denial.name');
      assert.match(String(item.description), /^blocked · DNS · \d+× · /);
      assert.strictEqual(asks('blocked.test').length, 1);
      await vscode.commands.executeCommand('agentSandboxes.allowDomain', node);
      assert.match(await curl('blocked.test'), /sni=blocked\.test/);
      await waitFor('the child gone', () => !api.tree.getChildren({ kind: 'sandbox', name }).some((k) => k.kind === 'denial' && k.denial.domain === 'blocked.test'));

      // "Allow everywhere": this sandbox now, and the user's list for every sandbox.
      assert.doesNotMatch(await curl('other.test'), /https ok/);
      await waitFor('the allow confirmed', () => u.asked.some((a) => a.message.startsWith('other.test is allowed for every sandbox')), 20_000);
      assert.match(await curl('other.test'), /sni=other\.test/);
      assert.match(fs.readFileSync(everywhereFile, 'utf8'), /^other\.test\s+# allowed everywhere from sandbox/m);
      assert.ok(!u.asked.some((a) => a.severity === 'error'), JSON.stringify(u.asked));
    } finally {
      if (!hadUserList) fs.rmSync(everywhereFile, { force: true });
      await cli('rm', name);
    }
  });

  it('Open in Remote-SSH → consent once, the Include line, the URI handed to openFolder, and ssh reaches sandbox-NAME', async function () {
    const userCfg = path.join(os.homedir(), '.ssh', 'config');
    assert.ok(!fs.existsSync(userCfg) || !fs.readFileSync(userCfg, 'utf8').includes(HOME), 'the scratch HOME starts without the Include');
    // Without Remote-SSH: the offer to install it, or to work from here instead; nothing opens.
    const u0 = scripted();
    u0.remoteSshAnswer = 'missing';
    await vscode.commands.executeCommand('agentSandboxes.openRemote', NAME);
    const offer = u0.asked.find((a) => a.modal && a.actions.includes('Install Remote-SSH'));
    assert.deepStrictEqual(offer?.actions, ['Install Remote-SSH', 'Open Shell', 'Copy SSH Command'], JSON.stringify(u0.asked));
    assert.strictEqual(u0.opened.length, 0);
    // With an ssh-remote provider (none can run in this browser-based editor: the seam says there is).
    const u = scripted();
    u.remoteSshAnswer = 'ready';
    u.replies.set('Add `Include', 'Add the Include line');
    const uri = await vscode.commands.executeCommand<vscode.Uri>('agentSandboxes.openRemote', NAME);
    const consent = u.asked.find((a) => a.message.includes('Add `Include'));
    assert.deepStrictEqual(consent?.actions, ['Add the Include line'], 'one question: add it, or cancel');
    assert.strictEqual(u.opened.length, 1, JSON.stringify(u.asked));
    const { uri: opened, options } = u.opened[0];
    assert.strictEqual(opened.toString(), uri?.toString());
    assert.strictEqual(opened.scheme, 'vscode-remote');
    assert.strictEqual(opened.authority, `ssh-remote+sandbox-${NAME}`);
    assert.strictEqual(opened.path, '/workspace/project');
    assert.deepStrictEqual(options, { forceNewWindow: true });

    const first = fs.readFileSync(userCfg, 'utf8').split('\n').find((l) => l.trim() && !l.startsWith('#'));
    assert.strictEqual(first, `Include ${path.join(HOME, 'ssh_config')}`, 'the Include is the first directive');
    const managed = fs.readFileSync(path.join(HOME, 'ssh_config'), 'utf8');
    const port = api.store.get(NAME)?.ports.find((p) => p.role === 'ssh')?.hostPort;
    const block = new RegExp(`Host ${NAME} sandbox-${NAME}\\n  HostName 127\\.0\\.0\\.1\\n  Port ${port}\\n  User ubuntu\\n`);
    assert.match(managed, block);
    // What Remote-SSH will do: resolve sandbox-NAME through ~/.ssh/config and log in.
    const ssh = await run('ssh', ['-F', userCfg, '-o', 'BatchMode=yes', `sandbox-${NAME}`, 'hostname']);
    assert.strictEqual(ssh.stdout.trim(), NAME, ssh.stderr);

    // Consent is asked once: a second open asks nothing about ~/.ssh/config.
    const u2 = scripted();
    u2.remoteSshAnswer = 'ready';
    await vscode.commands.executeCommand('agentSandboxes.openRemote', NAME);
    assert.ok(!u2.asked.some((a) => a.message.includes('Include')), JSON.stringify(u2.asked));
    assert.strictEqual(u2.opened.length, 1);
    assert.strictEqual(fs.readFileSync(userCfg, 'utf8').split('Include ').length - 1, 1, 'one Include line');
  });

  it('errors surface as notifications that say what to do, with an action', async function () {
    const u = scripted();
    await vscode.commands.executeCommand('agentSandboxes.start', `t-ext-${suffix}-missing`);
    const err = u.asked.find((a) => a.severity === 'error');
    assert.ok(err, `an error notification (asked: ${JSON.stringify(u.asked)})`);
    assert.match(err.message, /not found|does not exist/);
    assert.match(err.message, / — /, 'carries the hint');
    assert.ok(err.actions.includes('Show Logs') && err.actions.includes('Refresh'), err.actions.join(','));

    // A broken sidecar binary: the state says why, and a command offers Restart Sidecar.
    const saved = process.env.AGENT_SANDBOXES_SERVER;
    const cfg = vscode.workspace.getConfiguration('agentSandboxes');
    try {
      delete process.env.AGENT_SANDBOXES_SERVER;
      await cfg.update('server.path', '/nonexistent/sandbox', vscode.ConfigurationTarget.Global);
      await waitFor('the sidecar in error', () => api.sidecar.state === 'error', 15_000);
      assert.match(api.sidecar.error ?? '', /\/nonexistent\/sandbox.*agentSandboxes\.server\.path/);
      assert.match(String(api.status.item.text), /error/);
      const u2 = scripted();
      await vscode.commands.executeCommand('agentSandboxes.stop', NAME);
      const e2 = u2.asked.find((a) => a.severity === 'error');
      assert.ok(e2?.actions.includes('Restart Sidecar'), JSON.stringify(u2.asked));
    } finally {
      process.env.AGENT_SANDBOXES_SERVER = saved;
      await cfg.update('server.path', undefined, vscode.ConfigurationTarget.Global);
    }
    await waitFor('the sidecar ready again', () => api.sidecar.state === 'ready', 30_000);
    await api.whenLoaded();
    await waitFor('the tree reloaded', () => treeItem(NAME)?.contextValue === 'sandbox.running', 30_000);
  });

  it('a sidecar that dies is restarted with back-off, and the tree is listed again', async function () {
    // The sidecar is this extension host's child `sandbox lsp` (found by its parent pid).
    const pids = fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d)).filter((pid) => {
      try {
        const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
        const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
        return ppid === process.pid && fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes('lsp');
      } catch {
        return false;
      }
    });
    assert.strictEqual(pids.length, 1, `one sidecar child (found ${pids.join(', ')})`);
    const states: string[] = [];
    const sub = api.sidecar.onDidChangeState((st) => states.push(st));
    const logBefore = logText().length;
    try {
      process.kill(Number(pids[0]), 'SIGKILL');
      await waitFor('the sidecar in error', () => api.sidecar.state === 'error', 10_000);
      assert.match(api.sidecar.error ?? '', /restarting in 1 s/);
      await waitFor('the sidecar ready again', () => api.sidecar.state === 'ready', 30_000);
    } finally {
      sub.dispose();
    }
    assert.deepStrictEqual(states.slice(0, 3), ['error', 'starting', 'ready']);
    // One restart policy, said once: ours, never the language client's own "will not be restarted".
    const said = await waitFor('the restart in the log', () => { const t = logText().slice(logBefore); return t.includes('restarting in') && t; }, 10_000);
    assert.strictEqual(said.match(/restarting in \d+ s/g)?.length, 1, said);
    assert.doesNotMatch(said, /will not be restarted/i);
    await waitFor('the tree listed again', () => treeItem(NAME)?.contextValue === 'sandbox.running', 30_000);
  });

  it('Destroy (modal confirm) → gone from the tree and the ssh config', async function () {
    const u = scripted();
    u.replies.set('Destroy ', 'Destroy');
    const nodes: Node[] = [{ kind: 'sandbox', name: NAME }, { kind: 'sandbox', name: BRANCHED }];
    await vscode.commands.executeCommand('agentSandboxes.destroy', nodes[0], nodes);
    const confirm = u.asked.find((a) => a.modal && a.actions.includes('Destroy'));
    assert.ok(confirm?.message.includes(NAME) && confirm.message.includes(BRANCHED), JSON.stringify(u.asked));
    await waitFor('both gone from the tree', () => !treeItem(NAME) && !treeItem(BRANCHED), 30_000);
    assert.ok(!u.asked.some((a) => a.severity === 'error'), JSON.stringify(u.asked));
    const managed = fs.readFileSync(path.join(HOME, 'ssh_config'), 'utf8');
    assert.ok(!managed.includes(`Host ${NAME} `), 'the ssh entry is removed');
    assert.strictEqual((await cli('list', '--json', '--no-health')).stdout.includes(`"${NAME}"`), false);
  });

  it('the status bar follows the sidecar\'s server status: Incus stopped → the problem and a link to Set Up This Machine; started → normal', async function () {
    // Stops incusd: run by tests/run.sh on CI only (and through the helpers' lock).
    if (process.env.AGENT_SANDBOXES_DISRUPTIVE !== '1') this.skip();
    const normal = () => /^\$\(vm\) \d+ running$/.test(String(api.status.item.text));
    await waitFor('the status bar normal', normal, 10_000);
    assert.strictEqual(api.store.status()?.incusReachable, true);
    const down = await run('incus', ['admin', 'shutdown']);
    assert.strictEqual(down.code, 0, down.stderr);
    const t0 = Date.now();
    try {
      await waitFor('the status bar saying Incus is not running', () => String(api.status.item.text).includes('Incus not running'), 2_000);
      console.log(`    told ${Date.now() - t0} ms after \`incus admin shutdown\` returned`);
      assert.strictEqual(api.status.item.command, 'agentSandboxes.setUpMachine');
      const md = api.status.item.tooltip as vscode.MarkdownString;
      assert.match(md.value, /\(command:agentSandboxes\.setUpMachine\)/);
      assert.match(md.value, /does not answer/);
      assert.strictEqual(api.sidecar.state, 'ready', 'the sidecar itself is fine');
    } finally {
      const up = await run(BIN, ['host', 'install', '--nat', 'off']);
      assert.strictEqual(up.code, 0, up.stderr);
    }
    await waitFor('the status bar normal again', normal, 60_000);
    assert.strictEqual(api.store.status()?.incusReachable, true);
  });
});
