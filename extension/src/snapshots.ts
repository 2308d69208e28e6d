// Snapshots, restores and forks of whole sandboxes from the Sandboxes view: Snapshot…, Restore…,
// Rewind to This Turn (a checkpoint), Fork…, Pin/Unpin, Remove. Restores ask first: the disk
// goes back and what changed since is lost.
import * as vscode from 'vscode';
import { githubTokenFor } from './github';
import type { SnapshotInfo } from './protocol.generated';
import type { Store } from './store';
import type { Node } from './tree';
import { snapshotLabel, snapshotsNewestFirst } from './snapshotModel';
import { BACK, ui } from './ui';
import * as v from './validate';
import type { Sidecar } from './client';

export interface SnapshotCtx { sidecar: Sidecar; store: Store }
type Reg = (id: string, what: string, fn: (arg: unknown, selected?: unknown[]) => Promise<unknown>) => void;
/** The sandbox a command acts on (tree item, name given, or a quick pick). */
type PickOne = (arg: unknown, selected: unknown[] | undefined, verb: string) => Promise<string | undefined>;

function snapshotNode(a: unknown): Extract<Node, { kind: 'snapshot' }> | undefined {
  return a && typeof a === 'object' && 'kind' in a && a.kind === 'snapshot' ? (a as Extract<Node, { kind: 'snapshot' }>) : undefined;
}

/** The snapshot a command acts on: the clicked one, or a pick among NAME's. */
async function pickSnapshot(ctx: SnapshotCtx, name: string, verb: string): Promise<SnapshotInfo | undefined> {
  const all = snapshotsNewestFirst(await ctx.sidecar.request('sandbox/snapshots', { name }));
  if (all.length === 0) {
    void ui().ask('info', `${name} has no snapshots yet.`, {}, 'Snapshot…').then((a) => a && vscode.commands.executeCommand('agentSandboxes.snapshot', name));
    return undefined;
  }
  const items = all.map((s) => ({ label: s.kind === 'checkpoint' ? s.title : s.label, description: `${s.label} · ${s.createdAt}`, s }));
  const r = await ui().pick({ title: `Sandbox: ${verb}`, placeholder: `Snapshot of ${name} to ${verb.toLowerCase()}`, items });
  return r === undefined || r === BACK ? undefined : r[0]?.s;
}

async function takeSnapshot(ctx: SnapshotCtx, name: string): Promise<SnapshotInfo | undefined> {
  const label = await ui().input({ title: `Snapshot of ${name}`, prompt: 'Label (empty: snap-N)', placeholder: 'before-refactor', validate: snapshotLabel });
  if (typeof label !== 'string') return undefined;
  const s = await ctx.sidecar.request('sandbox/snapshot', label ? { name, label } : { name });
  void ui().ask('info', `Snapshot ${s.label} of ${name} taken.`, {});
  return s;
}

/** Restore (or rewind to a turn): asks first, then stops, rolls back and starts it as needed. */
async function restore(ctx: SnapshotCtx, name: string, s: SnapshotInfo, rewind: boolean): Promise<boolean> {
  const yes = rewind ? 'Rewind' : 'Restore';
  const what = s.kind === 'checkpoint' ? `turn ${s.turn ?? '?'} (${s.label})` : s.label;
  const answer = await ui().ask('warning', rewind ? `Rewind ${name} to the end of ${what}?` : `Restore ${name} to ${what}?`, {
    modal: true,
    detail: 'The whole sandbox\u2019s disk goes back to it: files, installed packages, Claude\u2019s conversations; what changed since is lost (take a snapshot first to keep it). A running sandbox is stopped and started again. Its identity, ports, keys and egress policy stay.',
  }, yes);
  if (answer !== yes) return false;
  const r = await ctx.sidecar.withProgress(`${yes} ${name} to ${s.label}`, 'sandbox/restore', { name, label: s.label });
  ctx.store.apply({ name, sandbox: r });
  return true;
}

async function fork(ctx: SnapshotCtx, from: string, at: SnapshotInfo | undefined): Promise<string | undefined> {
  const taken = new Set(ctx.store.all().map((s) => s.name));
  const suggestion = [...Array(99).keys()].map((i) => `${from}-${i + 2}`).find((n) => !taken.has(n) && !v.sandboxName(n));
  const name = await ui().input({
    title: `Fork ${from}${at ? ` at ${at.label}` : ''}`, prompt: 'Name of the new sandbox (its own identity, ports, keys and branch)', value: suggestion,
    validate: (x) => v.sandboxName(x) ?? (taken.has(x) ? `${x} exists` : undefined),
  });
  if (typeof name !== 'string') return undefined;
  const githubToken = await githubTokenFor([ctx.store.get(from)?.repo]);
  const params = { from, name, ...(at ? { at: at.label } : {}), ...(githubToken ? { githubToken } : {}) };
  const r = await ctx.sidecar.withProgress(`Forking ${from} into ${name}`, 'sandbox/fork', params);
  ctx.store.apply({ name, sandbox: r.sandbox });
  void ui().ask('info', `${name} is a fork of ${from}${r.sandbox.branch ? ` on branch ${r.sandbox.branch}` : ''}.`, {});
  return name;
}

export function registerSnapshots(ctx: SnapshotCtx, reg: Reg, pickOne: PickOne): void {
  const nameOf = async (a: unknown, sel: unknown[] | undefined, verb: string) => snapshotNode(a)?.name ?? pickOne(a, sel, verb);
  const snapOf = async (a: unknown, name: string, verb: string) => snapshotNode(a)?.snapshot ?? pickSnapshot(ctx, name, verb);
  reg('snapshot', 'Snapshot sandbox', async (a, sel) => {
    const name = await nameOf(a, sel, 'snapshot');
    return name ? takeSnapshot(ctx, name) : undefined;
  });
  const restoreCmd = (rewind: boolean) => async (a: unknown, sel?: unknown[]) => {
    const name = await nameOf(a, sel, rewind ? 'rewind' : 'restore');
    const s = name ? await snapOf(a, name, rewind ? 'Rewind' : 'Restore') : undefined;
    return name && s ? restore(ctx, name, s, rewind) : false;
  };
  reg('restoreSnapshot', 'Restore sandbox', restoreCmd(false));
  reg('rewindTurn', 'Rewind to turn', restoreCmd(true));
  reg('fork', 'Fork sandbox', async (a, sel) => {
    const name = await nameOf(a, sel, 'fork');
    return name ? fork(ctx, name, snapshotNode(a)?.snapshot) : undefined;
  });
  const pin = (pinned: boolean) => async (a: unknown) => {
    const n = snapshotNode(a);
    if (n) await ctx.sidecar.request('sandbox/snapshotPin', { name: n.name, label: n.snapshot.label, pinned });
  };
  reg('pinSnapshot', 'Pin snapshot', pin(true));
  reg('unpinSnapshot', 'Unpin snapshot', pin(false));
  reg('removeSnapshot', 'Remove snapshot', async (a) => {
    const n = snapshotNode(a);
    if (!n) return false;
    const yes = 'Remove';
    if ((await ui().ask('warning', `Remove snapshot ${n.snapshot.label} of ${n.name}?`, { modal: true }, yes)) !== yes) return false;
    await ctx.sidecar.request('sandbox/snapshotRemove', { name: n.name, label: n.snapshot.label });
    return true;
  });
}
