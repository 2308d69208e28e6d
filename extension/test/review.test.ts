// Review and hand-back in a real VS Code, against the real sidecar, real Incus and the simulated
// GitHub of the credentials suite (target/debug/sim-github: its API on loopback, a real sshd git
// server in a network namespace; tests/vscode/run.sh starts it and names it in SIM_GITHUB_*).
// Review Changes opens the multi-file diff editor, and both sides of each file are read back
// through the extension's own content provider (the sidecar reading the sandbox's repository);
// then Fetch Branch to Workspace and Create Pull Request.
import * as assert from 'assert';
import { randomBytes } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import * as vscode from 'vscode';
import type { Api } from '../src/main';
import type { Node } from '../src/tree';
import type { Opened } from '../src/review';
import { type Ran, run as runIn, UiScripts, waitFor } from './helpers';

const BIN = process.env.AGENT_SANDBOXES_SERVER ?? '';
const REPO_URL = process.env.SIM_GITHUB_REPO_URL ?? '';
const REPO_DIR = process.env.SIM_GITHUB_REPO_DIR ?? '';
const TOKEN = process.env.SIM_GITHUB_TOKEN ?? '';
const NAME = `t-rev-${randomBytes(3).toString('hex')}`;

function run(cmd: string, args: string[], cwd?: string): Promise<Ran> {
  return runIn(cmd, args, { cwd });
}

/** A file of the server's repository at `main`, as the test expects the base side. */
async function atBase(file: string): Promise<string> {
  const r = await run('git', ['--git-dir', REPO_DIR, 'show', `main:${file}`]);
  assert.strictEqual(r.code, 0, r.stderr);
  return r.stdout;
}

describe('Review and hand-back in VS Code', function () {
  let api: Api;
  let reviewed: Opened | undefined;
  const uis = new UiScripts();
  const scripted = () => uis.next(api);
  const exec = async (...command: string[]) => {
    const r = await api.sidecar.request('sandbox/exec', { name: NAME, command });
    assert.strictEqual(r.status, 0, `${command.join(' ')}: ${r.stdout}${r.stderr}`);
    return r.stdout;
  };

  before(async function () {
    if (!REPO_URL) {
      this.skip(); // only with tests/vscode/run.sh's simulated GitHub
    }
    const ext = vscode.extensions.getExtension<Api>('agent-sandboxes.agent-sandboxes');
    assert.ok(ext);
    api = await ext.activate();
    await api.whenLoaded();
    const s = await api.sidecar.request('sandbox/create', { name: NAME, repo: REPO_URL, branch: 'feature', stack: 'minimal', githubToken: TOKEN });
    assert.strictEqual(s.sandbox.push, 'gate');
    // Three kinds of change: committed (an edit), untracked (a new file), uncommitted (a deletion);
    // and a binary, which the review shows as a placeholder.
    await exec('sed', '-i', 's/^step 3$/step three/', 'docs/guide.md');
    await exec('git', '-c', 'user.name=t', '-c', 'user.email=t@example.invalid', 'commit', '-qam', 'Say three');
    await exec('sh', '-c', 'printf "new work\\n" > "notes for review.md"');
    await exec('rm', 'old name.txt');
    await exec('python3', '-c', "open('logo.png','wb').write(bytes(range(256)))");
  });

  after(async function () {
    uis.reset();
    if (api) await run(BIN, ['rm', NAME]);
  });

  it('Review Changes opens the multi-file diff editor; each side is the base or the sandbox, read through the provider', async function () {
    const before = api.review?.content.served ?? 0;
    const opened = await vscode.commands.executeCommand<Opened>('agentSandboxes.reviewChanges', { kind: 'sandbox', name: NAME } satisfies Node);
    assert.ok(opened, 'the review opened');
    reviewed = opened;
    assert.match(opened.title, new RegExp(`^${NAME}: \\+\\d+ −\\d+ · 4 files · 1 commit since main$`));

    const byPath = new Map(opened.resources.map(([label, left, right]) => [label.path.replace(/^\//, ''), { left, right }]));
    assert.deepStrictEqual([...byPath.keys()].sort(), ['docs/guide.md', 'logo.png', 'notes for review.md', 'old name.txt']);
    const text = async (u: vscode.Uri) => (await vscode.workspace.openTextDocument(u)).getText();
    const guide = byPath.get('docs/guide.md')!;
    assert.strictEqual(guide.left.scheme, 'sandbox-review');
    assert.strictEqual(await text(guide.left), await atBase('docs/guide.md'));
    assert.strictEqual(await text(guide.right), (await atBase('docs/guide.md')).replace('step 3\n', 'step three\n'));
    const added = byPath.get('notes for review.md')!;
    assert.strictEqual(await text(added.left), '', 'an added file has nothing on the left');
    assert.strictEqual(await text(added.right), 'new work\n');
    const deleted = byPath.get('old name.txt')!;
    assert.strictEqual(await text(deleted.left), await atBase('old name.txt'));
    assert.strictEqual(await text(deleted.right), '', 'a deleted file has nothing on the right');
    assert.match(await text(byPath.get('logo.png')!.right), /^\(binary file logo\.png, 256 bytes: not shown here/);
    assert.ok((api.review?.content.served ?? 0) - before >= 5, 'both sides came from the sandbox through the sidecar');
    // The multi-file diff editor is open, under the review's title (VS Code adds the count).
    const tabs = () => vscode.window.tabGroups.all.flatMap((g) => g.tabs);
    await waitFor(`the multi-diff editor tab (tabs: ${tabs().map((t) => t.label).join(' | ')})`,
      () => tabs().some((t) => t.label === `${opened.title} (4 files)`), 15_000).catch((e: Error) => {
      throw new Error(`${e.message}; tabs now: ${tabs().map((t) => `${t.label} [${t.input?.constructor?.name}]`).join(' | ')}`);
    });

    // The summary reached the tree through Incus (sandbox/changed), as its changes child.
    const kid = await waitFor('the changes child', () => api.tree.getChildren({ kind: 'sandbox', name: NAME }).find((k) => k.kind === 'changes'));
    const item = api.tree.getTreeItem(kid);
    assert.match(String(item.label), /^\+\d+ −\d+ · 4 files · 1 commit$/);
    assert.strictEqual(item.description, 'uncommitted work · since main');
    assert.strictEqual(item.command?.command, 'agentSandboxes.reviewChanges');
    await vscode.commands.executeCommand('workbench.action.closeAllEditors');
  });

  it("Open in Sandbox: a reviewed file opens in the sandbox's Remote-SSH window, at that file", async function () {
    const right = reviewed?.resources.find(([label]) => label.path === '/docs/guide.md')?.[2];
    assert.ok(right, 'the review of the previous test');
    const u = scripted();
    u.remoteSshAnswer = 'ready'; // no Remote-SSH window can open in this browser-based editor: the seam says one can
    u.replies.set('Add `Include', 'Add the Include line');
    const link = await vscode.commands.executeCommand<string>('agentSandboxes.openInSandbox', right);
    assert.strictEqual(link, `${vscode.env.uriScheme}://vscode-remote/ssh-remote+sandbox-${NAME}/workspace/project/docs/guide.md:1:1`);
    assert.strictEqual(u.links.length, 1, JSON.stringify(u.asked));
    assert.deepStrictEqual([u.links[0].authority, u.links[0].path], ['vscode-remote', `/ssh-remote+sandbox-${NAME}/workspace/project/docs/guide.md:1:1`]);
    // Anything but a reviewed file is refused with what to do.
    await vscode.commands.executeCommand('agentSandboxes.openInSandbox', vscode.Uri.file('/etc/hostname'));
    assert.ok(u.asked.some((a) => a.severity === 'error' && a.message.includes('no reviewed file is open')), JSON.stringify(u.asked));
  });

  it('Fetch Branch to Workspace: the commit on refs/remotes/sandbox-NAME/feature, the workspace otherwise untouched', async function () {
    const ws = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath ?? '';
    assert.ok(fs.existsSync(path.join(ws, '.git')), `the workspace is a git checkout: ${ws}`);
    const state = async () => (await Promise.all([['symbolic-ref', 'HEAD'], ['for-each-ref', 'refs/heads'], ['status', '--porcelain']]
      .map((a) => run('git', ['-C', ws, ...a])))).map((r) => r.stdout);
    const before = await state();
    scripted();
    const r = await vscode.commands.executeCommand<{ ref: string; commit: string; uncommitted: number }>('agentSandboxes.fetchBranch', NAME);
    assert.strictEqual(r?.ref, `refs/remotes/sandbox-${NAME}/feature`);
    const head = (await exec('git', 'rev-parse', 'HEAD')).trim();
    assert.strictEqual(r.commit, head);
    assert.strictEqual((await run('git', ['-C', ws, 'rev-parse', r.ref])).stdout.trim(), head);
    assert.ok(r.uncommitted >= 3, `uncommitted files are counted: ${r.uncommitted}`);
    assert.deepStrictEqual(await state(), before, "the workspace's HEAD, branches and files are as they were");
  });

  it('Create Pull Request: the branch pushed through the gate, the pull request on "GitHub" and in the tree', async function () {
    const u = scripted().script('Open Pull Request');
    const pr = await vscode.commands.executeCommand<{ number: number; state: string; branch: string; base: string; title: string }>('agentSandboxes.createPullRequest', NAME);
    u.done();
    assert.ok(pr, JSON.stringify(u.asked));
    assert.deepStrictEqual([pr.state, pr.branch, pr.base, pr.title], ['open', 'feature', 'main', 'Say three']);
    const pushed = await run('git', ['--git-dir', REPO_DIR, 'rev-parse', 'refs/heads/feature']);
    assert.strictEqual(pushed.stdout.trim(), (await exec('git', 'rev-parse', 'HEAD')).trim(), 'the branch is on the server');
    const kid = await waitFor('the pull request child', () => api.tree.getChildren({ kind: 'sandbox', name: NAME }).find((k) => k.kind === 'pullRequest'));
    const item = api.tree.getTreeItem(kid);
    assert.strictEqual(item.label, `#${pr.number} open`);
    assert.strictEqual(item.description, 'feature → main');
    const link = await vscode.commands.executeCommand<string>('agentSandboxes.openPullRequest', kid);
    assert.match(link ?? '', new RegExp(`/pull/${pr.number}$`));
  });

  it("the agent's turn ends: its changes are read again (no polling), and Review Changes sits inline on it", async function () {
    // The image's own hook command, fired from inside the sandbox as Claude Code would.
    const settings = await exec('cat', '/etc/claude-code/managed-settings.json');
    const hook = (JSON.parse(settings).hooks.Stop as { hooks: { command: string }[] }[])
      .flatMap((e) => e.hooks).find((h) => h.command.includes('hooks.sock'))?.command ?? '';
    assert.ok(hook, settings);
    const fire = (event: object) => exec('sh', '-c', 'printf %s "$1" | sh -c "$2"', 'fire', JSON.stringify({ session_id: 'e2e-review', ...event }), hook);
    const files = () => api.store.get(NAME)?.changes?.files;
    const before = files();
    assert.strictEqual(before, 4, 'the summary the review recorded');
    await fire({ hook_event_name: 'UserPromptSubmit' });
    await waitFor('the agent working', () => api.store.get(NAME)?.agent.state === 'working', 15_000);
    // The agent's work in this turn: one more file. Nothing reads it until the turn ends.
    await exec('sh', '-c', 'printf "more\\n" > turn.txt');
    await new Promise((r) => setTimeout(r, 1500));
    assert.strictEqual(files(), 4, 'no polling: the summary is unchanged while the agent works');
    const refreshed = api.review?.turns.refreshed.length ?? 0;
    await fire({ hook_event_name: 'Stop', last_assistant_message: 'wrote turn.txt' });
    await waitFor('the summary read again', () => files() === 5, 30_000);
    assert.deepStrictEqual(api.review?.turns.refreshed.slice(refreshed), [NAME], 'read once, for this sandbox');
    const kid = api.tree.getChildren({ kind: 'sandbox', name: NAME }).find((k) => k.kind === 'changes');
    assert.ok(kid);
    assert.match(String(api.tree.getTreeItem(kid).label), /^\+\d+ −\d+ · 5 files · 1 commit$/);
    const node = api.tree.getChildren().find((n) => n.kind === 'sandbox' && n.name === NAME);
    assert.ok(node);
    assert.strictEqual(api.tree.getTreeItem(node).contextValue, 'sandbox.running.repo.agentDone', 'Review Changes inline');
  });
});
