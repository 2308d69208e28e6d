// Palette, view-title and tree-item commands (category "Sandbox"). Each collects what it needs
// (from the tree selection, or a quick pick), calls the sidecar, and opens windows or terminals.
// Making sandboxes is in createFlow.ts, the host's own setup and checks in hostSetup.ts.
import * as vscode from 'vscode';
import { SandboxError, type Sidecar } from './client';
import { setAnthropicCredential } from './credential';
import { create, createCommand, newAgent, sendPrompt } from './createFlow';
import { logError, reportError } from './errors';
import { githubTokenFor } from './github';
import { isBuilt } from './goldenModel';
import type { GoldenNode } from './goldenTree';
import { doctor, setUpMachine } from './hostSetup';
import { isRunning } from './model';
import type { ExecResult, GoldenState, NameOutcome, PortForward, Sandbox } from './protocol.generated';
import { ensureInclude, ensureRemoteSsh, remoteUri } from './remoteSsh';
import type { Store } from './store';
import { openTerminals, type TerminalKind } from './terminals';
import { portUrl, type Node } from './tree';
import { listeningOn } from './treeModel';
import { registerSnapshots } from './snapshots';
import { BACK, ui } from './ui';
import * as v from './validate';
import { branchWizard } from './wizard';

export interface Ctx {
  context: vscode.ExtensionContext;
  sidecar: Sidecar;
  store: Store;
  view: vscode.TreeView<Node>;
  /** Lists sandboxes and golden images again (after a sidecar start, or on Refresh). */
  reload(): Promise<void>;
  /** Selects the first sandbox whose agent waits for the user. */
  revealWaiting(): Promise<string | undefined>;
}

export type Arg = Node | GoldenNode | string | { retry: unknown } | undefined;
type Filter = (s: Sandbox) => boolean;
// Palette pickers offer this user's sandboxes (another user's must be adopted first).
export const running: Filter = (s) => s.reachable && isRunning(s.state);
const stopped: Filter = (s) => s.reachable && !isRunning(s.state);
const mine: Filter = (s) => s.reachable;
const foreign: Filter = (s) => !s.reachable;

/**
 * The sandboxes a command acts on: the tree's multi-selection, the clicked item, a name given by
 * a caller (`executeCommand(id, 'name')`), or else a quick pick.
 */
export async function targets(ctx: Ctx, arg: Arg, selected: Arg[] | undefined, filter: Filter, many: boolean, verb: string): Promise<string[]> {
  const nameOf = (a: Arg) => (typeof a === 'string' ? a : a && 'kind' in a && a.kind !== 'golden' && a.kind !== 'prepared' && a.kind !== 'member' ? a.name : undefined);
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

/** A sandbox another user made: its error says so, and the notification offers Adopt. */
class NotReachable extends SandboxError {
  constructor(readonly sandbox: string) {
    super('failed', `sandbox ${sandbox} was made by another user (or another SANDBOX_HOME): your SSH key and ssh config entry are not in it`,
      `adopt it (Sandbox: Adopt…, or \`sandbox adopt ${sandbox}\`) to reach it`);
  }
}

function notReachable(name: string): never {
  throw new NotReachable(name);
}

async function openRemote(ctx: Ctx, name: string): Promise<vscode.Uri | undefined> {
  const s = ctx.store.get(name) ?? (await ctx.sidecar.request('sandbox/get', { name })) ?? undefined;
  if (!s) throw new SandboxError('not_found', `sandbox '${name}' does not exist`, 'refresh the Sandboxes view');
  if (!s.reachable) notReachable(name);
  if (!(await ensureRemoteSsh(name))) return undefined;
  if (!isRunning(s.state)) {
    const start = 'Start It';
    const a = await ui().ask('warning', `Sandbox ${name} is ${s.state}.`, {}, start);
    if (a !== start) return undefined;
    await ctx.sidecar.withProgress(`Starting sandbox ${name}`, 'sandbox/start', { name });
  }
  const info = await ctx.sidecar.request('sandbox/hostInfo', {});
  if (!info.sshEntries.includes(name)) notReachable(name);
  if (!(await ensureInclude(info))) return undefined;
  const uri = remoteUri(s, info);
  await ui().openFolder(uri, { forceNewWindow: true });
  return uri;
}

/** Runs a command in each sandbox, each one's output shown line by line as it comes. */
async function runCommand(ctx: Ctx, names: string[], out: vscode.OutputChannel): Promise<(ExecResult | undefined)[]> {
  if (names.length === 0) return [];
  const cmd = await ui().input({ title: 'Run Command in Sandboxes', prompt: `Command for ${names.join(', ')} (run with bash -lc as ubuntu in /workspace/project)`, placeholder: 'git status', validate: (x) => (x.trim() ? undefined : 'type a command') });
  if (typeof cmd !== 'string') return [];
  out.show(true);
  out.appendLine(`=== ${names.join(', ')}: ${cmd}`);
  const prefix = (name: string) => (names.length > 1 ? `[${name}] ` : '');
  const results = await Promise.allSettled(names.map((name) => ctx.sidecar.requestWithProgress('sandbox/exec', { name, command: ['bash', '-lc', cmd] },
    (line) => out.appendLine(`${prefix(name)}${line}`))));
  results.forEach((r, i) => {
    out.appendLine(`=== ${names[i]}: ${r.status === 'fulfilled' ? `exit ${r.value.status}` : 'error'}`);
    if (r.status === 'rejected') reportError(`Run in ${names[i]}`, r.reason);
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

/** Opens a forwarded port in the browser — after checking (now) that something answers there. */
async function openPort(ctx: Ctx, name: string, port: PortForward): Promise<boolean> {
  const s = await ctx.sidecar.request('sandbox/get', { name });
  if (s) ctx.store.apply({ name, sandbox: s });
  const l = listeningOn(port, s?.health?.listening);
  const anyway = 'Open Anyway';
  const url = portUrl(port);
  if (l === 'no' || l === 'loopback') {
    const why = l === 'no'
      ? `Nothing listens on port ${port.containerPort} in ${name} yet: start your server there first.`
      : `The server on port ${port.containerPort} in ${name} listens on 127.0.0.1 only, which the forward cannot reach: make it listen on 0.0.0.0 (e.g. --host 0.0.0.0).`;
    if ((await ui().ask('warning', why, {}, anyway)) !== anyway) return false;
  }
  await vscode.env.openExternal(vscode.Uri.parse(url));
  return true;
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

async function nuke(ctx: Ctx): Promise<void> {
  const r = await ui().input({ title: 'Sandbox: Nuke', prompt: 'This removes EVERY sandbox and golden image on this host. Type nuke to confirm.', validate: (x) => (x === 'nuke' ? undefined : 'type nuke to confirm') });
  if (r !== 'nuke') return;
  const t = vscode.window.createTerminal({ name: 'Sandbox · nuke', shellPath: sidecarBinary(ctx), shellArgs: ['nuke', '--yes'], iconPath: new vscode.ThemeIcon('flame') });
  t.show();
}

async function copySshCommand(ctx: Ctx, name: string): Promise<string> {
  if (ctx.store.get(name)?.reachable === false) notReachable(name);
  const info = await ctx.sidecar.request('sandbox/hostInfo', {});
  const cmd = `ssh -F ${info.sshConfig} ${name}`;
  await vscode.env.clipboard.writeText(cmd);
  void ui().ask('info', `Copied: ${cmd}`, {});
  return cmd;
}

/** Open Claude: the terminals, and — when a sandbox has no Claude Code — a notification saying so. */
async function openClaude(ctx: Ctx, names: string[]): Promise<vscode.Terminal[]> {
  const terminals = openTerminals(sidecarBinary(ctx), 'claude', names);
  const probed = await Promise.all(names.map((name) => ctx.sidecar.request('sandbox/get', { name }).catch(() => null)));
  const without = probed.filter((s): s is Sandbox => !!s?.health && !s.health.claudeInstalled);
  if (without.length > 0) {
    const which = without.map((s) => s.name).join(', ');
    const stacks = [...new Set(without.map((s) => s.stack ?? '?'))].join(', ');
    const e = new SandboxError('failed', `Claude Code is not installed in ${which} (the golden image of stack ${stacks} has none)`,
      'rebuild that golden image (Rebuild Stack: every image built now carries Claude Code), then make the sandbox again from it');
    logError('Open Claude', e);
    void ui().ask('error', `Open Claude: ${e.message} — ${e.hint}`, {}, 'Rebuild Stack', 'Open Shell').then((a) => {
      if (a === 'Open Shell') void vscode.commands.executeCommand('agentSandboxes.openShell', without[0].name);
      if (a === 'Rebuild Stack' && without[0].stack) void vscode.commands.executeCommand('agentSandboxes.rebuildStack', { kind: 'golden', stack: without[0].stack });
    });
  }
  return terminals;
}

/** A fresh Claude session in NAME: asks first when one is running there (it ends it). */
async function newClaude(ctx: Ctx, name: string): Promise<vscode.Terminal[]> {
  const agent = ctx.store.get(name)?.agent.state ?? 'none';
  if (agent !== 'none') {
    const yes = 'End It and Start New';
    const answer = await ui().ask('warning', `End the Claude session in ${name} and start a new one?`, { modal: true, detail: `Its agent is ${agent}. The conversation stays in the sandbox (Open Claude continues the latest one after a restart).` }, yes);
    if (answer !== yes) return [];
  }
  return openTerminals(sidecarBinary(ctx), 'claude', [name], undefined, true);
}

async function adopt(ctx: Ctx, name: string): Promise<Sandbox> {
  const s = await ctx.sidecar.request('sandbox/adopt', { name });
  ctx.store.apply({ name, sandbox: s });
  void ui().ask('info', `You can reach ${name} now: your SSH key is in it and its entry in your ssh config.`, {});
  return s;
}

export type Reg = (id: string, what: string, fn: (arg: Arg, selected?: Arg[]) => Promise<unknown>) => void;

/** Registers `agentSandboxes.ID`; a failure becomes a notification (with Adopt when it helps). */
export function registrar(ctx: Ctx): Reg {
  return (id, what, fn) => {
    ctx.context.subscriptions.push(vscode.commands.registerCommand(`agentSandboxes.${id}`, async (arg?: Arg, selected?: Arg[]) => {
      try {
        return await fn(arg, selected);
      } catch (e) {
        const adoptIt: [string, () => unknown][] = e instanceof NotReachable
          ? [['Adopt', () => vscode.commands.executeCommand('agentSandboxes.adopt', e.sandbox)]] : [];
        reportError(what, e, adoptIt);
        return undefined;
      }
    }));
  };
}

export function registerCommands(ctx: Ctx): void {
  const reg = registrar(ctx);
  registerLifecycle(ctx, reg);
  registerWork(ctx, reg);
  registerSnapshots(ctx, reg as Parameters<typeof registerSnapshots>[1], async (a, sel, verb) => (await targets(ctx, a as Arg, sel as Arg[] | undefined, mine, false, verb))[0]);
  reg('setup', 'Setup', async () => setup(ctx));
  reg('rebuildStack', 'Rebuild stack', async (a) => {
    if (a && typeof a === 'object' && 'kind' in a && a.kind === 'golden') await setup(ctx, a.stack);
  });
  reg('setUpMachine', 'Set up this machine', async () => setUpMachine(ctx, sidecarBinary(ctx)));
  reg('doctor', 'Doctor', async () => doctor(ctx));
  reg('setAnthropicCredential', 'Set Anthropic credential', async () => setAnthropicCredential(ctx.sidecar, ctx.reload));
  reg('nuke', 'Nuke', async () => nuke(ctx));
  reg('refresh', 'Refresh', async () => ctx.reload());
  reg('showLogs', 'Show logs', async () => ctx.sidecar.log.show(true));
  reg('restartSidecar', 'Restart sidecar', async () => ctx.sidecar.restart());
}

/** Making, starting, stopping, adopting and destroying sandboxes. */
function registerLifecycle(ctx: Ctx, reg: Reg): void {
  const each = async (names: string[], fn: (n: string) => Thenable<unknown>) => { await Promise.all(names.map(fn)); };
  reg('create', 'Create sandbox', async (a) => createCommand(ctx, a));
  reg('newAgent', 'New agent', async () => newAgent(ctx, () => sidecarBinary(ctx)));
  reg('branch', 'Branch sandbox', async (a, sel) => {
    const [from] = await targets(ctx, a, sel, mine, false, 'branch from');
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
  reg('destroy', 'Destroy sandbox', async (a, sel) => destroy(ctx, await targets(ctx, a, sel, mine, true, 'destroy')));
  reg('adopt', 'Adopt sandbox', async (a, sel) => {
    const [name] = await targets(ctx, a, sel, foreign, false, 'adopt');
    return name ? adopt(ctx, name) : undefined;
  });
}

async function destroy(ctx: Ctx, names: string[]): Promise<void> {
  if (!names.length) return;
  const yes = 'Destroy';
  const answer = await ui().ask('warning', `Destroy ${names.join(', ')}?`, { modal: true, detail: 'The container, its disk (uncommitted and unpushed work included), its ports and SSH entries are removed.' }, yes);
  if (answer !== yes) return;
  // Deleting a sandbox's deploy key on GitHub needs a token with admin rights on its repository.
  const githubToken = await githubTokenFor(names.map((n) => ctx.store.get(n)?.repo)).catch((e) => {
    ctx.sidecar.log.warn(`destroy: no GitHub sign-in (${e instanceof Error ? e.message : String(e)}); deploy keys are removed with GH_TOKEN or gh's token if there is one`);
    return undefined;
  });
  reportOutcomes('Destroy', await ctx.sidecar.request('sandbox/destroy', githubToken ? { names, githubToken } : { names }));
}

/** Working in sandboxes: windows, terminals, prompts, commands, ports. */
function registerWork(ctx: Ctx, reg: Reg): void {
  const run = vscode.window.createOutputChannel('Agent Sandboxes: Run');
  ctx.context.subscriptions.push(run);
  const binary = () => sidecarBinary(ctx);
  reg('openRemote', 'Open in Remote-SSH', async (a, sel) => {
    const [name] = await targets(ctx, a, sel, running, false, 'open in Remote-SSH');
    return name ? openRemote(ctx, name) : undefined;
  });
  const term = (kind: TerminalKind) => async (a: Arg, sel?: Arg[]) => {
    const names = await targets(ctx, a, sel, running, true, kind === 'claude' ? 'open Claude in' : 'open a shell in');
    for (const n of names) if (ctx.store.get(n)?.reachable === false) notReachable(n);
    if (names.length === 0) return [];
    return kind === 'claude' ? openClaude(ctx, names) : openTerminals(binary(), kind, names);
  };
  reg('openClaude', 'Open Claude', term('claude'));
  reg('newClaude', 'New Claude session', async (a, sel) => {
    const [name] = await targets(ctx, a, sel, running, false, 'start a new Claude session in');
    return name ? newClaude(ctx, name) : [];
  });
  reg('revealWaiting', 'Show waiting agent', async () => ctx.revealWaiting());
  reg('openShell', 'Open Shell', term('shell'));
  reg('sendPrompt', 'Send prompt', async (a, sel) => sendPrompt(ctx, await targets(ctx, a, sel, running, true, 'send a prompt to'), binary));
  reg('runCommand', 'Run command', async (a, sel) => runCommand(ctx, await targets(ctx, a, sel, running, true, 'run a command in'), run));
  reg('exposePort', 'Expose port', async (a, sel) => {
    const [name] = await targets(ctx, a, sel, mine, false, 'expose a port of');
    return name ? exposePort(ctx, name) : undefined;
  });
  reg('unexposePort', 'Stop forwarding', async (a) => {
    if (a && typeof a === 'object' && 'kind' in a && a.kind === 'port') await ctx.sidecar.request('sandbox/unexpose', { name: a.name, port: a.port.containerPort });
  });
  reg('openPort', 'Open port', async (a) => (a && typeof a === 'object' && 'kind' in a && a.kind === 'port' ? openPort(ctx, a.name, a.port) : false));
  reg('copySshCommand', 'Copy SSH command', async (a, sel) => {
    const [name] = await targets(ctx, a, sel, mine, false, 'copy the SSH command of');
    return name ? copySshCommand(ctx, name) : undefined;
  });
}
