// Palette, view-title and tree-item commands (category "Sandbox"). Each collects what it needs
// (from the tree selection, or a quick pick), calls the sidecar, and opens windows or terminals.
import * as vscode from 'vscode';
import { SandboxError, type Sidecar } from './client';
import { setAnthropicCredential } from './credential';
import { reportError } from './errors';
import { githubTokenFor, withGithubToken } from './github';
import { isBuilt } from './goldenModel';
import type { GoldenNode } from './goldenTree';
import { isRunning } from './model';
import type { CheckStatus, CreateOptions, ExecResult, GoldenState, NameOutcome, PortForward, Sandbox } from './protocol.generated';
import { ensureInclude, ensureRemoteSsh, remoteUri } from './remoteSsh';
import type { Store } from './store';
import { openTerminals, type TerminalKind } from './terminals';
import { portUrl, type Node } from './tree';
import { BACK, ui } from './ui';
import * as v from './validate';
import { branchWizard, createWizard } from './wizard';

export interface Ctx {
  context: vscode.ExtensionContext;
  sidecar: Sidecar;
  store: Store;
  view: vscode.TreeView<Node>;
  /** Lists sandboxes and golden images again (after a sidecar start, or on Refresh). */
  reload(): Promise<void>;
}

type Arg = Node | GoldenNode | string | undefined;
type Filter = (s: Sandbox) => boolean;
const running: Filter = (s) => isRunning(s.state);
const stopped: Filter = (s) => !isRunning(s.state);
const any: Filter = () => true;

/**
 * The sandboxes a command acts on: the tree's multi-selection, the clicked item, a name given by
 * a caller (`executeCommand(id, 'name')`), or else a quick pick.
 */
async function targets(ctx: Ctx, arg: Arg, selected: Arg[] | undefined, filter: Filter, many: boolean, verb: string): Promise<string[]> {
  const nameOf = (a: Arg) => (typeof a === 'string' ? a : a && a.kind !== 'golden' ? a.name : undefined);
  const fromTree = (selected && selected.length > 1 ? selected : [arg]).map(nameOf).filter((n): n is string => !!n);
  if (fromTree.length > 0) return many ? [...new Set(fromTree)] : fromTree.slice(0, 1);
  const candidates = ctx.store.all().filter(filter);
  if (candidates.length === 0) {
    void ui().ask('info', `No sandbox to ${verb}.`, {}, 'Create Sandbox').then((a) => a && vscode.commands.executeCommand('agentSandboxes.create'));
    return [];
  }
  const items = candidates.map((s) => ({ label: s.name, description: [s.state, s.stack, s.branch].filter(Boolean).join(' · ') }));
  const r = await ui().pick({ title: `Sandbox: ${verb}`, placeholder: many ? `Sandboxes to ${verb}` : `Sandbox to ${verb}`, items, canPickMany: many });
  return r === undefined || r === BACK ? [] : r.map((i) => i.label);
}

/** Reports the failed ones of a per-name outcome list. */
function reportOutcomes(what: string, outcomes: NameOutcome[]) {
  for (const o of outcomes) {
    if (!o.ok && o.error) reportError(`${what} ${o.name}`, new SandboxError(o.error.code, o.error.message, o.error.hint ?? undefined));
  }
}

function sidecarBinary(ctx: Ctx): string {
  const b = ctx.sidecar.binary;
  if (!b) throw new SandboxError('sidecar_unavailable', 'the sandbox binary is not resolved yet', 'wait for the sidecar to start, or restart it (Sandbox: Restart Sidecar)');
  return b.path;
}

async function create(ctx: Ctx, p: CreateOptions | undefined): Promise<Sandbox | undefined> {
  if (!p) return undefined;
  const params = await withGithubToken(p);
  const r = await ctx.sidecar.withProgress(`Creating sandbox ${p.name}`, 'sandbox/create', params);
  const open = 'Open in Remote-SSH';
  const claude = 'Open Claude';
  void ui().ask('info', `Sandbox ${p.name} is running (${r.seconds.toFixed(1)} s).`, {}, open, claude).then((a) => {
    if (a === open) void vscode.commands.executeCommand('agentSandboxes.openRemote', p.name);
    if (a === claude) void vscode.commands.executeCommand('agentSandboxes.openClaude', p.name);
  });
  return r.sandbox;
}

async function openRemote(ctx: Ctx, name: string): Promise<vscode.Uri | undefined> {
  const s = ctx.store.get(name) ?? (await ctx.sidecar.request('sandbox/get', { name })) ?? undefined;
  if (!s) throw new SandboxError('not_found', `sandbox '${name}' does not exist`, 'refresh the Sandboxes view');
  if (!isRunning(s.state)) {
    const start = 'Start It';
    const a = await ui().ask('warning', `Sandbox ${name} is ${s.state}.`, {}, start);
    if (a !== start) return undefined;
    await ctx.sidecar.withProgress(`Starting sandbox ${name}`, 'sandbox/start', { name });
  }
  const info = await ctx.sidecar.request('sandbox/hostInfo', {});
  if (!info.sshEntries.includes(name)) {
    throw new SandboxError('failed', `${info.sshConfig} has no entry for ${name}`, `start the sandbox again (it rewrites the entry): sandbox start ${name}`);
  }
  if (!(await ensureRemoteSsh())) return undefined;
  if (!(await ensureInclude(ctx.context.globalState, info))) {
    const add = 'Add the Include line';
    void ui().ask('warning', `Remote-SSH cannot find the host sandbox-${name} without the Include line in ~/.ssh/config.`, {}, add).then(async (a) => {
      if (a !== add) return;
      await ctx.context.globalState.update('agentSandboxes.sshIncludeConsent', undefined);
      void vscode.commands.executeCommand('agentSandboxes.openRemote', name);
    });
    return undefined;
  }
  const uri = remoteUri(s, info);
  await ui().openFolder(uri, { forceNewWindow: true });
  return uri;
}

async function runCommand(ctx: Ctx, names: string[], out: vscode.OutputChannel): Promise<(ExecResult | undefined)[]> {
  if (names.length === 0) return [];
  const cmd = await ui().input({ title: 'Run Command in Sandboxes', prompt: `Command for ${names.join(', ')} (run with bash -lc as ubuntu in /workspace/project)`, placeholder: 'git status', validate: (x) => (x.trim() ? undefined : 'type a command') });
  if (typeof cmd !== 'string') return [];
  out.show(true);
  const results = await Promise.allSettled(names.map((name) => ctx.sidecar.request('sandbox/exec', { name, command: ['bash', '-lc', cmd] })));
  results.forEach((r, i) => {
    out.appendLine(`=== ${names[i]}: ${cmd} ${r.status === 'fulfilled' ? `(exit ${r.value.status})` : '(error)'} ===`);
    if (r.status === 'fulfilled') out.append(r.value.stdout + r.value.stderr);
    else reportError(`Run in ${names[i]}`, r.reason);
  });
  return results.map((r) => (r.status === 'fulfilled' ? r.value : undefined));
}

async function exposePort(ctx: Ctx, name: string): Promise<PortForward | undefined> {
  const port = await ui().input({ title: `Expose a port of ${name}`, prompt: 'Port inside the sandbox', placeholder: '3000', validate: v.port });
  if (typeof port !== 'string') return undefined;
  const fwd = await ctx.sidecar.request('sandbox/expose', { name, port: Number(port) });
  const f = fwd.find((x) => x.containerPort === Number(port)) ?? fwd[0];
  if (!f) return undefined;
  const open = 'Open in Browser';
  void ui().ask('info', `127.0.0.1:${f.hostPort} now forwards to port ${port} of ${name}.`, {}, open)
    .then((a) => a === open && vscode.env.openExternal(vscode.Uri.parse(portUrl(f))));
  return f;
}

function setupChoice(state: GoldenState): string {
  switch (state) {
    case 'built': return 'built: rebuild';
    case 'stale': return 'built, script changed: rebuild';
    case 'missing': return 'not built: build';
  }
}

async function setup(ctx: Ctx, only?: string): Promise<void> {
  let stacks: string[] = [];
  let rebuild: string[] = [];
  if (only) {
    rebuild = [only];
  } else {
    const golden = ctx.store.goldenImages() ?? (await ctx.sidecar.request('sandbox/goldenImages', {}));
    const items = golden.map((g) => ({ label: g.stack, description: setupChoice(g.state), detail: g.description, built: isBuilt(g.state) }));
    const r = await ui().pick({ title: 'Sandbox: Setup / Rebuild Stack', placeholder: 'Stacks to build (built ones are rebuilt); none: only check Incus', items, canPickMany: true, noneIsAnswer: true });
    if (r === undefined || r === BACK) return;
    stacks = r.filter((i) => !i.built).map((i) => i.label);
    rebuild = r.filter((i) => i.built).map((i) => i.label);
  }
  const reports = await ctx.sidecar.withProgress('Sandbox setup', 'sandbox/setup', { stacks, rebuild });
  await ctx.reload();
  void ui().ask('info', `Setup done: ${reports.map((r) => `${r.stack} ${r.action}`).join(', ') || 'Incus is ready'}.`, {});
}

/** [log mark, icon] of a check's status. */
function checkMark(status: CheckStatus): [string, string] {
  switch (status) {
    case 'ok': return ['ok  ', 'pass'];
    case 'warning': return ['warn', 'warning'];
    case 'failed': return ['FAIL', 'error'];
  }
}

async function doctor(ctx: Ctx): Promise<void> {
  const checks = await ctx.sidecar.request('sandbox/doctor', {});
  for (const c of checks) ctx.sidecar.log.info(`doctor: ${checkMark(c.status)[0]} ${c.name}: ${c.detail}${c.fix ? ` (fix: ${c.fix})` : ''}`);
  const items = checks.map((c) => ({ label: `$(${checkMark(c.status)[1]}) ${c.name}`, description: c.detail, detail: c.fix ? `fix: ${c.fix}` : undefined, fix: c.fix }));
  const r = await ui().pick({ title: 'Sandbox: Doctor', placeholder: 'Select a failed check to copy the command that fixes it', items });
  const fix = r && r !== BACK ? r[0].fix : undefined;
  if (fix) {
    await vscode.env.clipboard.writeText(fix);
    void ui().ask('info', `Copied: ${fix}`, {});
  }
}

async function nuke(ctx: Ctx): Promise<void> {
  const r = await ui().input({ title: 'Sandbox: Nuke', prompt: 'This removes EVERY sandbox and golden image on this host. Type nuke to confirm.', validate: (x) => (x === 'nuke' ? undefined : 'type nuke to confirm') });
  if (r !== 'nuke') return;
  const t = vscode.window.createTerminal({ name: 'Sandbox · nuke', shellPath: sidecarBinary(ctx), shellArgs: ['nuke', '--yes'], iconPath: new vscode.ThemeIcon('flame') });
  t.show();
}

async function copySshCommand(ctx: Ctx, name: string): Promise<string> {
  const info = await ctx.sidecar.request('sandbox/hostInfo', {});
  const cmd = `ssh -F ${info.sshConfig} ${name}`;
  await vscode.env.clipboard.writeText(cmd);
  void ui().ask('info', `Copied: ${cmd}`, {});
  return cmd;
}

export function registerCommands(ctx: Ctx): void {
  const run = vscode.window.createOutputChannel('Agent Sandboxes: Run');
  ctx.context.subscriptions.push(run);
  const reg = (id: string, what: string, fn: (arg: Arg, selected?: Arg[]) => Promise<unknown>) => {
    ctx.context.subscriptions.push(vscode.commands.registerCommand(`agentSandboxes.${id}`, async (arg?: Arg, selected?: Arg[]) => {
      try {
        return await fn(arg, selected);
      } catch (e) {
        reportError(what, e);
        return undefined;
      }
    }));
  };
  const each = async (names: string[], fn: (n: string) => Thenable<unknown>) => { await Promise.all(names.map(fn)); };

  reg('create', 'Create sandbox', async () => create(ctx, await createWizard(ctx.store)));
  reg('branch', 'Branch sandbox', async (a, sel) => {
    const [from] = await targets(ctx, a, sel, any, false, 'branch from');
    return from ? create(ctx, await branchWizard(ctx.store, from)) : undefined;
  });
  reg('start', 'Start sandbox', async (a, sel) => each(await targets(ctx, a, sel, stopped, true, 'start'),
    (name) => ctx.sidecar.withProgress(`Starting sandbox ${name}`, 'sandbox/start', { name })));
  reg('stop', 'Stop sandbox', async (a, sel) => {
    const names = await targets(ctx, a, sel, running, true, 'stop');
    if (names.length) reportOutcomes('Stop', await ctx.sidecar.request('sandbox/stop', { names }));
  });
  reg('restart', 'Restart sandbox', async (a, sel) => each(await targets(ctx, a, sel, running, true, 'restart'), async (name) => {
    reportOutcomes('Stop', await ctx.sidecar.request('sandbox/stop', { names: [name] }));
    await ctx.sidecar.withProgress(`Restarting sandbox ${name}`, 'sandbox/start', { name });
  }));
  reg('destroy', 'Destroy sandbox', async (a, sel) => {
    const names = await targets(ctx, a, sel, any, true, 'destroy');
    if (!names.length) return;
    const yes = 'Destroy';
    const answer = await ui().ask('warning', `Destroy ${names.join(', ')}?`, { modal: true, detail: 'The container, its disk (uncommitted and unpushed work included), its ports and SSH entries are removed.' }, yes);
    if (answer !== yes) return;
    // Deleting a sandbox's deploy key on GitHub needs a token with admin rights on its repository.
    const githubToken = await githubTokenFor(names.map((n) => ctx.store.get(n)?.repo));
    reportOutcomes('Destroy', await ctx.sidecar.request('sandbox/destroy', githubToken ? { names, githubToken } : { names }));
  });
  reg('openRemote', 'Open in Remote-SSH', async (a, sel) => {
    const [name] = await targets(ctx, a, sel, running, false, 'open in Remote-SSH');
    return name ? openRemote(ctx, name) : undefined;
  });
  const term = (kind: TerminalKind) => async (a: Arg, sel?: Arg[]) => {
    const names = await targets(ctx, a, sel, running, true, kind === 'claude' ? 'open Claude in' : 'open a shell in');
    return names.length ? openTerminals(sidecarBinary(ctx), kind, names) : [];
  };
  reg('openClaude', 'Open Claude', term('claude'));
  reg('openShell', 'Open Shell', term('shell'));
  reg('runCommand', 'Run command', async (a, sel) => runCommand(ctx, await targets(ctx, a, sel, running, true, 'run a command in'), run));
  reg('exposePort', 'Expose port', async (a, sel) => {
    const [name] = await targets(ctx, a, sel, any, false, 'expose a port of');
    return name ? exposePort(ctx, name) : undefined;
  });
  reg('unexposePort', 'Stop forwarding', async (a) => {
    if (a && typeof a !== 'string' && a.kind === 'port') await ctx.sidecar.request('sandbox/unexpose', { name: a.name, port: a.port.containerPort });
  });
  reg('openPort', 'Open port', async (a) => {
    if (a && typeof a !== 'string' && a.kind === 'port') await vscode.env.openExternal(vscode.Uri.parse(portUrl(a.port)));
  });
  reg('copySshCommand', 'Copy SSH command', async (a, sel) => {
    const [name] = await targets(ctx, a, sel, any, false, 'copy the SSH command of');
    return name ? copySshCommand(ctx, name) : undefined;
  });
  reg('setup', 'Setup', async () => setup(ctx));
  reg('rebuildStack', 'Rebuild stack', async (a) => {
    if (a && typeof a !== 'string' && a.kind === 'golden') await setup(ctx, a.stack);
  });
  reg('doctor', 'Doctor', async () => doctor(ctx));
  reg('setAnthropicCredential', 'Set Anthropic credential', async () => setAnthropicCredential(ctx.sidecar, ctx.reload));
  reg('nuke', 'Nuke', async () => nuke(ctx));
  reg('refresh', 'Refresh', async () => ctx.reload());
  reg('showLogs', 'Show logs', async () => ctx.sidecar.log.show(true));
  reg('restartSidecar', 'Restart sidecar', async () => ctx.sidecar.restart());
}
