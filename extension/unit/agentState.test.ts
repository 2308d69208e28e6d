// What the extension shows of each sandbox's agent: icon, description, tooltip, the waiting
// count, and which changes are announced (once, and never as a link).
import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import { agentIcon, agentText, agentTooltip, escapeMarkdown, noticeFor, waiting, waitingText } from '../src/agentState';
import { sandboxView } from '../src/treeModel';
import { agent, sandbox } from './fixtures';

test('the tree item: a distinct icon for waiting, the state and message first in the description', () => {
  const w = sandboxView(sandbox({ agent: agent({ state: 'waiting', since: '2025-01-01T00:00:01Z', message: 'Claude needs your permission to use Bash' }) }));
  assert.deepEqual(w.icon, { id: 'bell-dot', color: 'charts.orange' });
  assert.equal(w.description, 'waiting: Claude needs your permission to use Bash · minimal · no repository');
  assert.equal(sandboxView(sandbox({ agent: agent({ state: 'working' }) })).description, 'working · minimal · no repository');
  assert.equal(sandboxView(sandbox()).description, 'minimal · no repository', 'no session: nothing about an agent');
  assert.deepEqual(sandboxView(sandbox()).icon, { id: 'vm-running', color: 'charts.green' });
  const icons = (['waiting', 'working', 'done'] as const).map((s) => agentIcon(s)?.id);
  assert.equal(new Set(icons).size, 3);
  assert.equal(agentIcon('none'), undefined);
  assert.equal(agentText(agent({ state: 'done', message: null })), 'done');
});

test('a message from the sandbox is text: escaped in the tooltip, never a link in a notification', () => {
  const evil = 'see [here](command:agentSandboxes.nuke) <img src=x> **bold**';
  const t = agentTooltip(agent({ state: 'done', message: evil }))!;
  assert.ok(!t.includes('[here](command:'), t);
  assert.doesNotMatch(t, /(^|[^\\])[<*[(]/, 'every character Markdown would render is escaped');
  assert.equal(escapeMarkdown('a*b_[c](d)'), 'a\\*b\\_\\[c\\]\\(d\\)');
  const n = noticeFor('web', agent({ state: 'working', since: '1' }), agent({ state: 'done', since: '2', message: evil }))!;
  assert.ok(!n.text.includes(']('), n.text);
  assert.match(n.text, /^web finished: see \[here\] \(command/);
});

test('dropped hook messages show in the tooltip', () => {
  const t = agentTooltip(agent({ state: 'working', dropped: { tooBig: 1, malformed: 2, unknownEvent: 0, rateLimited: 4 } }))!;
  assert.match(t, /7 hook messages from this sandbox were dropped/);
  assert.ok(!agentTooltip(agent({ state: 'working' }))!.includes('dropped'));
  assert.equal(agentTooltip(agent()), undefined);
});

test('notices: on going to waiting or done, once per event', () => {
  const working = agent({ state: 'working', since: '1' });
  const wait = agent({ state: 'waiting', since: '2', message: 'Claude needs your permission to use Bash' });
  const n = noticeFor('web', working, wait)!;
  assert.equal(n.text, 'web is waiting: Claude needs your permission to use Bash');
  assert.equal(noticeFor('web', wait, wait), undefined, 'the same event again is no news');
  assert.equal(noticeFor('web', wait, working), undefined, 'working is not announced');
  assert.equal(noticeFor('web', wait, agent()), undefined);
  const again = noticeFor('web', working, agent({ ...wait, since: '3' }))!;
  assert.notEqual(again.key, n.key, 'a later wait is a new event');
  assert.equal(noticeFor('web', working, agent({ state: 'done', since: '4' }))!.text, 'web finished');
});

test('the waiting count: only waiting agents, by name', () => {
  const all = [
    sandbox({ name: 'zed', agent: agent({ state: 'waiting' }) }),
    sandbox({ name: 'abe', agent: agent({ state: 'waiting' }) }),
    sandbox({ name: 'mid', agent: agent({ state: 'working' }) }),
    sandbox({ name: 'nil' }),
  ];
  assert.deepEqual(waiting(all).map((s) => s.name), ['abe', 'zed']);
  assert.equal(waitingText(2), '2 waiting');
});
