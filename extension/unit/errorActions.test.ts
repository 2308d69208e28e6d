// Error actions come from the code alone.
import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import { actionsFor } from '../src/errorActions';
import { goldenContext, goldenView } from '../src/goldenModel';
import { golden, status } from './fixtures';

const labels = (c: Parameters<typeof actionsFor>[0]) => actionsFor(c).map(([l]) => l);

test('each code offers what helps, Show Logs last', () => {
  assert.deepEqual(labels('sidecar_unavailable'), ['Restart Sidecar', 'Show Logs']);
  assert.deepEqual(labels('incus_unavailable'), ['Set Up This Machine', 'Check the Host', 'Show Logs']);
  assert.deepEqual(actionsFor('incus_unavailable', false).map(([l]) => l), ['Check the Host', 'Show Logs'], 'a remote is set up where it runs');
  assert.deepEqual(labels('needs_setup'), ['Run Setup', 'Show Logs']);
  assert.deepEqual(labels('not_found'), ['Refresh', 'Show Logs']);
  assert.deepEqual(labels('invalid_input'), ['Show Logs']);
});

test('golden images: state, icon and the welcome-view context', () => {
  assert.equal(goldenView(golden({ state: 'stale' })).icon, 'warning');
  assert.equal(goldenView(golden({ state: 'missing', built: false })).contextValue, 'golden.missing');
  assert.equal(goldenView(golden({ managed: false })).description, 'built (by the seed scripts)');
  assert.equal(goldenContext(undefined, undefined), 'unknown');
  assert.equal(goldenContext([golden({ state: 'missing', built: false })], undefined), 'none');
  assert.equal(goldenContext(undefined, status({ goldenBuilt: [] })), 'none');
  assert.equal(goldenContext([], status()), 'built', 'the pushed status wins over an older list');
});
