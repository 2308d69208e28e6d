// The status bar: the sidecar's state, then the server status it pushes, then the count.
import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import { statusView, type StatusInput } from '../src/statusView';
import { status } from './fixtures';

const input = (over: Partial<StatusInput>): StatusInput =>
  ({ sidecar: 'ready', sidecarError: undefined, version: 'sandbox 0.1.0', status: status(), running: 2, total: 3, ...over });

test('the tooltip sums the Claude tokens of every sandbox', () => {
  const v = statusView(input({ tokens: { requests: 4, inputTokens: 2500, outputTokens: 40, cacheReadTokens: 0, cacheWriteTokens: 0 } }));
  assert.match(v.tooltip, /Claude tokens through the host, all sandboxes: 2\.5k in · 40 out · 4 requests/);
});

test('ready and Incus reachable: N running, no colour', () => {
  const v = statusView(input({}));
  assert.equal(v.text, '$(vm) 2 running');
  assert.equal(v.background, undefined);
  assert.match(v.tooltip, /2 of 3 sandboxes running/);
  assert.match(v.tooltip, /Incus 6\.0\.5/);
});

test('Incus unreachable: the problem, in error colour, with a link to Doctor', () => {
  const v = statusView(input({ status: status({ health: 'error', incusReachable: false, message: 'Incus is not running (…)' }) }));
  assert.equal(v.text, '$(error) Sandboxes: Incus unreachable');
  assert.equal(v.background, 'error');
  assert.equal(v.command, 'agentSandboxes.doctor');
  assert.match(v.tooltip, /Incus is not running/);
  assert.match(v.tooltip, /\(command:agentSandboxes\.doctor\)/);
});

test('no golden image: a warning that leads to Setup', () => {
  const v = statusView(input({ status: status({ health: 'warning', goldenBuilt: [] }) }));
  assert.equal(v.background, 'warning');
  assert.equal(v.command, 'agentSandboxes.setup');
});

test("the sidecar's own state comes first", () => {
  assert.match(statusView(input({ sidecar: 'starting' })).text, /loading/);
  const e = statusView(input({ sidecar: 'error', sidecarError: 'the binary is missing' }));
  assert.equal(e.background, 'error');
  assert.equal(e.command, 'agentSandboxes.showLogs');
  assert.match(e.tooltip, /the binary is missing/);
  assert.equal(statusView(input({ status: undefined })).text, '$(vm) 2 running', 'no status yet: as before');
});
