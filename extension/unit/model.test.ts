// The store's logic: a list after each sidecar start, then notifications, newer news winning.
import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import { SandboxSet, isRunning } from '../src/model';
import { sandbox } from './fixtures';

test('a list replaces everything, sorted by name', () => {
  const s = new SandboxSet();
  s.reset([sandbox({ name: 'b' }), sandbox({ name: 'a', state: 'stopped' })], s.mark());
  assert.deepEqual(s.all().map((x) => x.name), ['a', 'b']);
  assert.equal(s.running(), 1);
  s.reset([sandbox({ name: 'c' })], s.mark());
  assert.deepEqual(s.all().map((x) => x.name), ['c']);
});

test('a notification newer than the list request wins over the list', () => {
  const s = new SandboxSet();
  s.reset([sandbox({ name: 'a' }), sandbox({ name: 'b' })], s.mark());
  const mark = s.mark(); // a list request starts…
  s.apply({ name: 'a', sandbox: sandbox({ name: 'a', state: 'stopped' }) }); // …a stop arrives meanwhile…
  s.apply({ name: 'b', sandbox: null }); // …and a removal…
  s.reset([sandbox({ name: 'a' }), sandbox({ name: 'b' })], mark); // …then the (older) list.
  assert.equal(s.get('a')?.state, 'stopped');
  assert.equal(s.get('b'), undefined);
  // News from before the mark does not override a later list.
  s.reset([sandbox({ name: 'a' }), sandbox({ name: 'b' })], s.mark());
  assert.equal(s.get('a')?.state, 'running');
  assert.ok(s.get('b'));
});

test('notifications keep the last health probe while the state is unchanged', () => {
  const s = new SandboxSet();
  const health = { docker: 'active' as const, sshAgent: true, claudeAuth: false, claude: 'hostUnset' as const, claudeInstalled: true, listening: [] };
  s.reset([sandbox({ name: 'a', health })], s.mark());
  s.apply({ name: 'a', sandbox: sandbox({ name: 'a', health: null }) });
  assert.deepEqual(s.get('a')?.health, health);
  s.apply({ name: 'a', sandbox: sandbox({ name: 'a', state: 'stopped', health: null }) });
  assert.equal(s.get('a')?.health, null, 'a new state: the old probe no longer holds');
});

test('only running counts as running', () => {
  for (const st of ['stopped', 'frozen', 'error', 'starting', 'stopping', 'unknown'] as const) assert.equal(isRunning(st), false, st);
  assert.equal(isRunning('running'), true);
});

test("another user's sandboxes are not counted as this user's", () => {
  const s = new SandboxSet();
  s.reset([sandbox({ name: 'mine' }), sandbox({ name: 'theirs', reachable: false }), sandbox({ name: 'off', state: 'stopped' })], s.mark());
  assert.equal(s.running(), 1);
  assert.equal(s.mine(), 2);
  assert.equal(s.others(), 1);
});
