// The status bar: the sidecar's state, then the server status it pushes, then the count.
import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import { statusView, type StatusInput } from '../src/statusView';
import { status } from './fixtures';

const input = (over: Partial<StatusInput>): StatusInput =>
  ({ sidecar: 'ready', sidecarError: undefined, version: 'sandbox 0.1.0', status: status(), running: 2, total: 3, others: 0, ...over });

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

test('Incus unreachable (a remote): the problem, in error colour, with a link to Doctor', () => {
  const v = statusView(input({ status: status({ health: 'error', incus: 'unreachable', incusReachable: false, message: 'Incus at https://lab:8443 does not answer (…)' }) }));
  assert.equal(v.text, '$(error) Sandboxes: Incus unreachable');
  assert.equal(v.background, 'error');
  assert.equal(v.command, 'agentSandboxes.doctor');
  assert.match(v.tooltip, /does not answer/);
  assert.match(v.tooltip, /\(command:agentSandboxes\.doctor\)/);
});

test('Incus missing, stopped, forbidden or without pool and bridge here: what is wrong, and Set Up This Machine', () => {
  const cases = [['notInstalled', 'Incus not installed'], ['notRunning', 'Incus not running'], ['noPermission', 'no access to Incus']] as const;
  for (const [incus, words] of cases) {
    const v = statusView(input({ status: status({ health: 'error', incus, incusReachable: false }) }));
    assert.equal(v.text, `$(error) Sandboxes: ${words}`, incus);
    assert.equal(v.command, 'agentSandboxes.setUpMachine');
    assert.match(v.tooltip, /\[\$\(tools\) Set Up This Machine\]\(command:agentSandboxes\.setUpMachine\)/);
  }
  const v = statusView(input({ status: status({ health: 'warning', incus: 'notInitialised' }) }));
  assert.deepEqual([v.text, v.command, v.background], ['$(warning) Incus not set up', 'agentSandboxes.setUpMachine', 'warning']);
});

test("other users' sandboxes are not in the count, but the tooltip says they are there", () => {
  const v = statusView(input({ running: 1, total: 1, others: 2 }));
  assert.equal(v.text, '$(vm) 1 running');
  assert.match(v.tooltip, /1 of 1 sandboxes running; 2 more made by other users \(Adopt to reach them\)/);
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
