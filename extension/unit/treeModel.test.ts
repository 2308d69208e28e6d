// Tree items from a sandbox list: labels, menus (contextValue), icons, tooltips, ports, health.
import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import { denialView, description, groupByMember, healthIcon, healthViews, isHttp, isName, listeningOn, memberView, portView, sandboxView, stateIcon } from '../src/treeModel';
import { agent, health, port, sandbox } from './fixtures';

test('a sandbox item: state icon and menu, stack · branch, a tooltip with slot and ports', () => {
  const v = sandboxView(sandbox({ name: 'web', branch: 'feat/x', repo: 'git@github.com:o/r.git', egress: 'filtered', cpu: '2', memory: '4GiB' }));
  assert.equal(v.label, 'web');
  assert.equal(v.description, 'minimal · feat/x');
  assert.equal(v.contextValue, 'sandbox.running.repo', 'a repository: the review menus');
  const done = sandboxView(sandbox({ repo: 'git@github.com:o/r.git', agent: agent({ state: 'done', since: '2026-01-01T00:00:00Z' }) }));
  assert.equal(done.contextValue, 'sandbox.running.repo.agentDone', 'its agent finished a turn: Review Changes inline');
  assert.equal(sandboxView(sandbox({ agent: agent({ state: 'done' }) })).contextValue, 'sandbox.running', 'no repository: nothing to review');
  assert.deepEqual(v.icon, { id: 'vm-running', color: 'charts.green' });
  assert.match(v.tooltip, /\| ssh \| 127\.0\.0\.1:2203\/tcp \| 22 \|/);
  assert.match(v.tooltip, /slot: `3`/);
  assert.match(v.tooltip, /egress: `filtered \(allowlist\)`/);
  assert.match(v.tooltip, /limits: `2 CPU, 4GiB`/);
  assert.match(v.tooltip, /SSH host: `sandbox-web`/);
  assert.equal(description(sandbox({ stack: null, branch: null })), 'unknown stack · no repository');
  assert.equal(description(sandbox({ repo: 'git@github.com:o/r.git', branch: null })), 'minimal · default branch');
  assert.equal(sandboxView(sandbox({ state: 'stopped' })).contextValue, 'sandbox.stopped');
  assert.match(sandboxView(sandbox({ managed: false })).tooltip, /made by the seed scripts/);
});

test('tokens used through the host: in the description and, per model, in the tooltip', () => {
  const t = (requests: number, inputTokens: number, outputTokens: number) =>
    ({ requests, inputTokens, outputTokens, cacheReadTokens: 5, cacheWriteTokens: 3 });
  const usage = { ...t(3, 12345, 678), models: [{ model: 'claude-x|evil', ...t(2, 12000, 600) }, { model: 'claude-y', ...t(1, 345, 78) }] };
  const v = sandboxView(sandbox({ usage }));
  assert.equal(v.description, 'minimal · no repository · 12.3k in / 678 out');
  assert.match(v.tooltip, /tokens through the host: 12\.3k in · 678 out · 3 requests/);
  assert.match(v.tooltip, /\| claude-x evil \| 2 \| 12000 \| 600 \| 5 \| 3 \|/, 'a model name cannot break the table');
  assert.equal(sandboxView(sandbox({ usage: { ...t(0, 0, 0), models: [] } })).description, 'minimal · no repository');
});

test("another user's sandbox: marked, its own menu (Adopt), no slot jargon", () => {
  const v = sandboxView(sandbox({ name: 'theirs', reachable: false }));
  assert.equal(v.contextValue, 'foreign.running');
  assert.equal(v.icon.id, 'lock');
  assert.equal(v.description, "minimal · another user's: Adopt to reach it");
  assert.match(v.tooltip, /Made by another user.*\*\*Adopt\*\* adds them/);
});

test('the root disk size is among the limits; a create that did not finish says so first', () => {
  assert.match(sandboxView(sandbox({ cpu: '2', disk: '10GiB' })).tooltip, /limits: `2 CPU, 10GiB disk`/);
  assert.equal(description(sandbox({ incomplete: 'interrupted', branch: null })), 'interrupted · minimal · no repository');
  assert.equal(description(sandbox({ incomplete: 'creating', branch: null })), 'creating · minimal · no repository');
});

test('every state has an icon', () => {
  assert.equal(stateIcon('stopped').id, 'vm-outline');
  assert.equal(stateIcon('frozen').id, 'debug-pause');
  assert.equal(stateIcon('error').color, 'errorForeground');
  assert.equal(stateIcon('unknown').color, 'charts.yellow');
});

test('ports: TCP other than SSH opens in the browser; menus by role', () => {
  const ssh = portView(port('ssh', 2203, 22));
  assert.deepEqual([ssh.contextValue, ssh.icon.id, ssh.url], ['port.other.ssh', 'terminal', undefined]);
  const app = portView(port('app', 8003, 8080));
  assert.deepEqual([app.contextValue, app.icon.id, app.url], ['port.http.app', 'globe', 'http://127.0.0.1:8003/']);
  assert.equal(app.label, 'app 8080/tcp');
  assert.equal(app.description, '127.0.0.1:8003');
  const udp = portView(port('extra', 7001, 7000, 'udp'));
  assert.deepEqual([udp.contextValue, udp.icon.id, udp.url], ['port.other.extra', 'plug', undefined]);
  assert.equal(isHttp(port('extra', 3001, 3000)), true);
});

test('ports say whether anything listens behind them', () => {
  const listening = [{ port: 8080, loopbackOnly: false }, { port: 9090, loopbackOnly: true }];
  assert.equal(portView(port('app', 8003, 8080), listening).description, '127.0.0.1:8003 · listening');
  assert.equal(portView(port('alt', 9003, 9090), listening).description, '127.0.0.1:9003 · bound to 127.0.0.1 inside: listen on 0.0.0.0:9090');
  assert.equal(portView(port('extra', 3001, 3000), listening).description, '127.0.0.1:3001 · nothing listening');
  assert.equal(portView(port('extra', 3001, 3000), undefined).description, '127.0.0.1:3001', 'not probed: nothing said');
  assert.equal(portView(port('ssh', 2203, 22), []).description, '127.0.0.1:2203');
  assert.equal(listeningOn(port('extra', 7001, 7000, 'udp'), []), undefined, 'UDP: not known');
});

test('health children: docker, ssh-agent, Claude (not installed first; else what to do, and a click does it)', () => {
  const [docker, agent, claude] = healthViews(health({ docker: 'failed', sshAgent: true, claudeAuth: false, claude: 'none' }));
  assert.deepEqual(docker, { label: 'docker', ok: false, detail: 'failed' });
  assert.deepEqual(agent, { label: 'ssh-agent', ok: true, detail: 'forwarded' });
  assert.deepEqual(claude, { label: 'Claude', ok: false, detail: 'not signed in' });
  assert.equal(healthViews(health({ sshAgent: false, claudeAuth: true, claude: 'host' }))[0].ok, undefined);
  const host = healthViews(health({ sshAgent: false, claudeAuth: true, claude: 'host' }))[2];
  assert.deepEqual([host.ok, host.detail, host.fix], [true, 'host credential (none inside)', undefined]);
  const unset = healthViews(health({ sshAgent: false, claudeAuth: false, claude: 'hostUnset' }))[2];
  assert.deepEqual([unset.ok, unset.fix], [false, 'agentSandboxes.setAnthropicCredential']);
  assert.match(unset.detail, /no credential on the host/);
  assert.match(healthViews(health({ sshAgent: false, claudeAuth: true, claude: 'env' }))[2].detail, /readable inside/);
  assert.deepEqual(healthViews(health({ claudeInstalled: false, claude: 'hostUnset' }))[2], { label: 'Claude', ok: false, detail: 'not installed' });
  assert.deepEqual(healthIcon(undefined), { id: 'circle-outline' });
  assert.equal(healthIcon(false).id, 'warning');
});

test('a refusal: blocked · kind · count · time, an Allow menu for names only', () => {
  const d = denialView('web', { domain: 'later.test', kind: 'dns', count: 2, last: 1700000000 }, () => '10:00:00');
  assert.equal(d.label, 'later.test');
  assert.equal(d.description, 'blocked · DNS · 2× · 10:00:00');
  assert.equal(d.contextValue, 'denial.name');
  assert.match(d.tooltip, /sandbox allow web later\.test/);
  assert.equal(denialView('web', { domain: 'a.test', kind: 'tls', count: 1, last: 0 }, String).description.split(' · ')[1], 'HTTPS');
  assert.equal(denialView('web', { domain: 'a.test', kind: 'http', count: 1, last: 0 }, String).description.split(' · ')[1], 'HTTP');
  const ip = denialView('web', { domain: '198.18.7.1', kind: 'tls', count: 1, last: 0 }, String);
  assert.equal(ip.contextValue, 'denial.address', 'an address cannot be allowed');
  assert.equal(isName('198.18.7.1') || isName('fd00::1'), false);
  assert.equal(isName('later.test'), true);
});

test('a cluster: sandboxes grouped by member, a lost member says why; a single server stays flat', () => {
  assert.equal(groupByMember([sandbox({ name: 'a' }), sandbox({ name: 'b' })]), undefined);
  const why = 'its cluster member m3 does not answer (its Incus daemon is stopped or unreachable)';
  const groups = groupByMember([
    sandbox({ name: 'c', location: 'm3', state: 'error', unreachable: why }),
    sandbox({ name: 'a', location: 'm1' }),
    sandbox({ name: 'b', location: 'm1' }),
  ])!;
  assert.deepEqual(groups.map((g) => [g.member, g.names]), [['m1', ['a', 'b']], ['m3', ['c']]]);
  assert.deepEqual(memberView(groups[0]), { label: 'm1', description: '2 sandboxes', icon: { id: 'server' }, tooltip: 'Cluster member m1: 2 sandboxes' });
  const lost = memberView(groups[1]);
  assert.equal(lost.description, '1 sandbox · unreachable');
  assert.equal(lost.tooltip, why);
  const v = sandboxView(sandbox({ name: 'c', location: 'm3', state: 'error', unreachable: why }));
  assert.equal(v.description, 'unreachable · m3 does not answer');
  assert.match(v.tooltip, /Unreachable: its cluster member m3/);
  assert.match(v.tooltip, /cluster member: `m3`/);
});
