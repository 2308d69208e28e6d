// Snapshots as children of a sandbox in the tree: order, labels, menus, and a checkpoint's
// message (written inside the sandbox) kept as text.
import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import type { SnapshotInfo } from '../src/protocol.generated';
import { snapshotLabel, snapshotsNewestFirst, snapshotView } from '../src/snapshotModel';

function snap(over: Partial<SnapshotInfo> = {}): SnapshotInfo {
  return { label: 'snap-1', kind: 'manual', title: 'snap-1', turn: null, message: null, pinned: false, createdAt: '2026-01-01T00:00:01Z', ...over };
}

const turn = (n: number, over: Partial<SnapshotInfo> = {}) =>
  snap({ label: `turn-${n}`, kind: 'checkpoint', turn: n, message: 'Added the tests.', title: `turn ${n}: Added the tests.`, createdAt: `2026-01-01T00:00:0${n}Z`, ...over });

test('newest first, ties by label', () => {
  const order = snapshotsNewestFirst([turn(1), snap({ createdAt: '2026-01-01T00:00:05Z' }), turn(3)]).map((s) => s.label);
  assert.deepEqual(order, ['snap-1', 'turn-3', 'turn-1']);
});

test('a checkpoint shows its turn and message, and its menus say checkpoint and pinned or not', () => {
  const v = snapshotView('web', turn(2), (t) => `at ${t}`);
  assert.equal(v.label, 'turn 2: Added the tests.');
  assert.equal(v.description, 'turn-2 · at 2026-01-01T00:00:02Z');
  assert.equal(v.contextValue, 'snapshot.checkpoint.unpinned');
  assert.equal(v.icon.id, 'history');
  const p = snapshotView('web', turn(2, { pinned: true }), () => 'now');
  assert.equal(p.contextValue, 'snapshot.checkpoint.pinned');
  assert.equal(p.icon.id, 'pinned');
  assert.ok(p.description.endsWith('pinned'));
  const m = snapshotView('web', snap({ label: 'before-refactor', title: 'before-refactor' }), () => 'now');
  assert.deepEqual([m.label, m.contextValue, m.icon.id], ['before-refactor', 'snapshot.manual.unpinned', 'device-camera']);
});

test('a message from inside the sandbox is escaped in the tooltip', () => {
  const evil = 'see [here](command:agentSandboxes.nuke) <img src=x>';
  const t = snapshotView('web', turn(1, { message: evil, title: `turn 1: ${evil}` }), () => 'now').tooltip;
  assert.ok(!t.includes('[here](command:'), t);
});

test('labels a user may give: what the sidecar accepts, turn-N reserved', () => {
  for (const ok of ['', 'before-refactor', 'v1.2_x']) assert.equal(snapshotLabel(ok), undefined, ok);
  for (const bad of ['a b', '-x', '../x', 'x'.repeat(64), 'é']) assert.ok(snapshotLabel(bad), bad);
  assert.match(snapshotLabel('turn-3')!, /checkpoints/);
});
