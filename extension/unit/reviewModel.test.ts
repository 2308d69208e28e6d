// The review without VS Code: the multi-file diff editor's pairs, the sandbox-review: addresses
// (a round trip through the query), placeholders for binary, large, missing and submodule sides,
// the tree's changes and pull request children, and the Open in Sandbox link.
import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Diff, FileChange } from '../src/protocol.generated';
import { MAX_REVIEW_FILES, SCHEME, address, changesLine, openInSandboxLink, pairs, prLine, shown, sideOf, turnEnded, withoutRequest } from '../src/reviewModel';
import { changesView, pullRequestView } from '../src/treeModel';
import { agent, sandbox } from './fixtures';

const A = 'a'.repeat(40);
const B = 'b'.repeat(40);

function change(over: Partial<FileChange>): FileChange {
  return { path: 'f', oldPath: null, kind: 'modified', added: 1, deleted: 1, binary: false, oldBlob: A, newBlob: B, oldMode: 0o100644, newMode: 0o100644, ...over };
}

function diff(files: FileChange[]): Diff {
  return { name: 'web', base: A, baseBranch: 'main', branch: 'feature', head: B, tree: B, commits: 2, uncommitted: true, added: 3, deleted: 1, files, omitted: 0 };
}

test('pairs: a rename reads its old path on the left; an added file has no left blob, a deleted one no right', () => {
  const d = diff([
    change({ path: 'new dir/b.txt', oldPath: 'a.txt', kind: 'renamed' }),
    change({ path: 'added.md', kind: 'added', oldBlob: null, oldMode: null }),
    change({ path: 'gone.png', kind: 'deleted', newBlob: null, newMode: null, binary: true, added: null, deleted: null }),
  ]);
  const [ren, add, del] = pairs(d);
  assert.deepEqual([ren.left.path, ren.left.blob, ren.right.path, ren.right.blob], ['a.txt', A, 'new dir/b.txt', B]);
  assert.deepEqual([add.left.blob, add.right.blob], [null, B]);
  assert.deepEqual([del.left.blob, del.right.blob], [A, null]);
  assert.equal(withoutRequest(add.left), '', 'the absent side is empty, no request');
  assert.equal(withoutRequest(add.right), undefined, 'the present side is read from the sandbox');
  const many = diff(Array.from({ length: MAX_REVIEW_FILES + 5 }, (_, i) => change({ path: `f${i}` })));
  assert.equal(pairs(many).length, MAX_REVIEW_FILES);
});

test('addresses survive the round trip, odd paths included', () => {
  for (const path of ['a.txt', 'dir with space/x#y?.md', 'notes\nday 1.md', 'ünï/ç.txt']) {
    const a = address({ name: 't-web', path, blob: A, mode: 0o100755 });
    assert.equal(a.scheme, SCHEME);
    const back = sideOf(a.path, a.query);
    assert.deepEqual(back, { name: 't-web', path, blob: A, mode: 0o100755 });
  }
  assert.deepEqual(sideOf('/x', 'name=n&blob=&mode='), { name: 'n', path: 'x', blob: null, mode: null });
});

test('placeholders instead of content for binary, large, missing and submodule sides', () => {
  assert.equal(shown({ kind: 'text', size: 3, text: 'hi\n' }, 'a'), 'hi\n');
  assert.match(shown({ kind: 'binary', size: 2048, text: null }, 'logo.png'), /binary file logo\.png, 2\.0 KB: not shown here/);
  assert.match(shown({ kind: 'tooLarge', size: 5 * 1024 * 1024, text: null }, 'big.log'), /big\.log is 5\.0 MB: larger than the review shows/);
  assert.match(shown({ kind: 'missing', size: 0, text: null }, 'x'), /no longer in the sandbox's repository/);
  assert.match(withoutRequest({ name: 'n', path: 'lib', blob: A, mode: 0o160000 }) ?? '', /submodule at commit a{40}/);
});

test("the tree: a sandbox with a repository has a changes child; one with a pull request a PR child", () => {
  assert.equal(changesView(sandbox({ repo: null })), undefined);
  const unread = changesView(sandbox({ repo: 'git@github.com:o/r.git' }));
  assert.deepEqual([unread?.label, unread?.description], ['changes', 'not read yet: Refresh']);
  const changes = { added: 12, deleted: 3, files: 4, commits: 1, uncommitted: true, at: '2026-01-01T00:00:00Z' };
  const v = changesView(sandbox({ repo: 'git@github.com:o/r.git', changes, baseBranch: 'main' }));
  assert.deepEqual([v?.label, v?.description, v?.contextValue], ['+12 −3 · 4 files · 1 commit', 'uncommitted work · since main', 'changes']);
  assert.equal(changesLine({ ...changes, files: 1, commits: 2 }), '+12 −3 · 1 file · 2 commits');
  const pr = { number: 7, url: 'https://github.com/o/r/pull/7', state: 'open' as const, draft: true, title: 'Fix', branch: 'feature', base: 'main' };
  assert.equal(pullRequestView(sandbox({})), undefined);
  const p = pullRequestView(sandbox({ pullRequest: pr }));
  assert.deepEqual([p?.label, p?.description, p?.icon.id], ['#7 open (draft)', 'feature → main', 'git-pull-request']);
  assert.equal(prLine({ ...pr, state: 'merged' }), '#7 merged');
  assert.equal(pullRequestView(sandbox({ pullRequest: { ...pr, state: 'closed' } }))?.icon.id, 'git-pull-request-closed');
});

test('Open in Sandbox: a Remote-SSH link to the file, each path segment encoded', () => {
  assert.equal(openInSandboxLink('vscode', 'sandbox-web', '/workspace/project', 'dir with space/a#b.ts'),
    'vscode://vscode-remote/ssh-remote+sandbox-web/workspace/project/dir%20with%20space/a%23b.ts:1:1');
});

test("the agent's turn ended: its state became done, or a newer done; never on first sight or without a repository", () => {
  const repo = 'git@github.com:o/r.git';
  const working = agent({ state: 'working', since: '2026-01-01T00:00:00Z' });
  const done = agent({ state: 'done', since: '2026-01-01T00:01:00Z' });
  assert.equal(turnEnded(working, sandbox({ repo, agent: done })), true, 'working → done');
  assert.equal(turnEnded(agent({ state: 'waiting' }), sandbox({ repo, agent: done })), true, 'waiting → done');
  assert.equal(turnEnded(done, sandbox({ repo, agent: agent({ state: 'done', since: '2026-01-01T00:02:00Z' }) })), true, 'a newer done');
  assert.equal(turnEnded(done, sandbox({ repo, agent: done })), false, 'the same done again (a list, another change)');
  assert.equal(turnEnded(undefined, sandbox({ repo, agent: done })), false, 'first sight: a list after a start');
  assert.equal(turnEnded(done, sandbox({ repo, agent: working })), false, 'a turn began');
  assert.equal(turnEnded(working, sandbox({ repo: null, agent: done })), false, 'no repository');
  assert.equal(turnEnded(working, sandbox({ repo, agent: done, state: 'stopped' })), false, 'stopped');
  assert.equal(turnEnded(working, sandbox({ repo, agent: done, reachable: false })), false, "another user's");
});
