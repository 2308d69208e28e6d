// Token counts as the tree and the status bar print them, and their sums.
import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import { claudeHealth, short, tokensLine, total } from '../src/usage';
import { sandbox } from './fixtures';

test('counts are short above a thousand, as `sandbox list` prints them', () => {
  assert.deepEqual([0, 999, 1000, 12345, 999_999, 1_234_567].map(short), ['0', '999', '1.0k', '12.3k', '1000.0k', '1.2M']);
  assert.equal(tokensLine({ requests: 1, inputTokens: 11, outputTokens: 7, cacheReadTokens: 0, cacheWriteTokens: 0 }), '11 in · 7 out · 1 request');
});

test('the total adds every sandbox that has counts', () => {
  const t = { requests: 2, inputTokens: 22, outputTokens: 14, cacheReadTokens: 10, cacheWriteTokens: 6 };
  const all = [sandbox({ name: 'a', usage: { ...t, models: [] } }), sandbox({ name: 'b' }), sandbox({ name: 'c', usage: { ...t, models: [] } })];
  assert.deepEqual(total(all), { requests: 4, inputTokens: 44, outputTokens: 28, cacheReadTokens: 20, cacheWriteTokens: 12 });
});

test('every Claude credential state says something, and only a missing host credential offers a fix', () => {
  for (const c of ['host', 'hostUnset', 'env', 'login', 'none'] as const) {
    const h = claudeHealth(c);
    assert.ok(h.detail.length > 0);
    assert.equal(h.fix !== undefined, c === 'hostUnset', c);
  }
});
