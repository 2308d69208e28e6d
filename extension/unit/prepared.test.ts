// Prepared images under their stack in the Golden Images view: repository, age, what ran, stale.
import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import type { PreparedInfo } from '../src/protocol.generated';
import { age, preparedView, repoShort } from '../src/goldenModel';

function prepared(over: Partial<PreparedInfo> = {}): PreparedInfo {
  return { name: 'prepared-minimal-0123456789ab', stack: 'minimal', repo: 'git@github.com:acme/app.git', branch: null,
    commit: '0123456789abcdef', setup: 'npm ci', files: ['package-lock.json'], preparedAt: '2026-01-01T00:00:00Z', state: 'current', ...over };
}

test('repositories as owner/name, whatever URL form', () => {
  assert.equal(repoShort('git@github.com:acme/app.git'), 'acme/app');
  assert.equal(repoShort('https://github.com/acme/app'), 'acme/app');
  assert.equal(repoShort('ssh://git@127.0.0.1:2222/acme/app.git'), 'acme/app');
  assert.equal(repoShort('weird'), 'weird');
});

test('ages in words', () => {
  const t0 = Date.parse('2026-01-01T00:00:00Z');
  assert.equal(age('2026-01-01T00:00:00Z', t0 + 30_000), 'just now');
  assert.equal(age('2026-01-01T00:00:00Z', t0 + 10 * 60_000), '10 min ago');
  assert.equal(age('2026-01-01T00:00:00Z', t0 + 5 * 3600_000), '5 h ago');
  assert.equal(age('2026-01-01T00:00:00Z', t0 + 3 * 86400_000), '3 days ago');
  assert.equal(age('garbage', t0), 'at an unknown time');
});

test('a current image says what ran and when; a stale one says to prepare again', () => {
  const now = Date.parse('2026-01-01T02:00:00Z');
  const v = preparedView(prepared({ branch: 'dev' }), now);
  assert.deepEqual([v.label, v.description, v.contextValue, v.icon], ['acme/app (dev)', 'prepared 2 h ago · npm ci', 'prepared.current', 'archive']);
  assert.match(v.tooltip, /`package-lock.json`/);
  const s = preparedView(prepared({ state: 'stale' }), now);
  assert.equal(s.contextValue, 'prepared.stale');
  assert.match(s.description, /stale: golden-minimal rebuilt since · sandbox prepare again/);
});
