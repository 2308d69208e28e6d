// Getting the agent's work back without leaving the window: Review Changes opens VS Code's
// multi-file diff editor (`vscode.changes`) over `sandbox-review:` documents the sidecar reads
// from the sandbox's repository (read-only); Refresh Changes, Fetch Branch to Workspace, Create
// Pull Request, Open Pull Request, and Open in Sandbox (a reviewed file in the sandbox's
// Remote-SSH window).
import * as vscode from 'vscode';
import { SandboxError, type Sidecar } from './client';
import { githubTokenFor } from './github';
import type { Agent, Diff, FetchResult, PullRequest } from './protocol.generated';
import { ensureInclude, ensureRemoteSsh } from './remoteSsh';
import { MAX_REVIEW_FILES, SCHEME, address, changesLine, openInSandboxLink, pairs, shown, sideOf, turnEnded, withoutRequest, type Side } from './reviewModel';
import type { Store } from './store';
import { BACK, ui } from './ui';

/** Serves both sides of a review from the sandbox, read-only. */
export class ReviewContent implements vscode.TextDocumentContentProvider {
  /** Blobs read through the sidecar (the extension's tests count them). */
  served = 0;

  constructor(private readonly sidecar: Sidecar) {}

  async provideTextDocumentContent(uri: vscode.Uri): Promise<string> {
    const side = sideOf(uri.path, uri.query);
    const fixed = withoutRequest(side);
    if (fixed !== undefined) return fixed;
    const blob = await this.sidecar.request('sandbox/blob', { name: side.name, oid: side.blob ?? '' });
    this.served++;
    return shown(blob, side.path);
  }
}

/** When an agent finishes a turn, its changes are read again (`sandbox/diff` records the summary
 * in Incus, and `sandbox/changed` brings it to the tree): no polling. */
export class ChangesOnTurnEnd implements vscode.Disposable {
  private readonly last = new Map<string, Agent>();
  private readonly sub: vscode.Disposable;
  /** Sandboxes whose changes were read this way (the extension's tests count them). */
  readonly refreshed: string[] = [];

  constructor(private readonly store: Store, private readonly sidecar: Sidecar, private readonly log: (m: string) => void) {
    this.sub = store.onDidChange(() => this.update());
  }

  private update() {
    for (const s of this.store.all()) {
      const before = this.last.get(s.name);
      this.last.set(s.name, s.agent);
      if (!turnEnded(before, s)) continue;
      this.refreshed.push(s.name);
      this.sidecar.request('sandbox/diff', { name: s.name }).catch((e: unknown) =>
        this.log(`reading the changes of ${s.name} after its agent's turn: ${e instanceof Error ? e.message : String(e)}`));
    }
  }

  dispose() {
    this.sub.dispose();
  }
}

export function reviewUri(s: Side): vscode.Uri {
  return vscode.Uri.from(address(s));
}

/** What Review Changes opened: the editor's title and its [label, left, right] triples. */
export interface Opened { title: string; resources: [vscode.Uri, vscode.Uri, vscode.Uri][]; diff: Diff }

export async function reviewChanges(sidecar: Sidecar, name: string): Promise<Opened | undefined> {
  const diff = await vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: `Reading the changes of ${name}` },
    () => sidecar.request('sandbox/diff', { name }));
  const since = diff.baseBranch ? ` since ${diff.baseBranch}` : '';
  if (diff.files.length === 0) {
    void ui().ask('info', `${name} changed nothing${since} (${diff.commits} commits).`, {});
    return undefined;
  }
  if (diff.files.length > MAX_REVIEW_FILES) {
    void ui().ask('warning', `${name} changed ${diff.files.length + diff.omitted} files: the review shows the first ${MAX_REVIEW_FILES}.`, {});
  }
  const resources = pairs(diff).map((p) => [reviewUri(p.label), reviewUri(p.left), reviewUri(p.right)] as [vscode.Uri, vscode.Uri, vscode.Uri]);
  const title = `${name}: ${changesLine({ ...diff, files: diff.files.length + diff.omitted, at: '' })}${since}`;
  await vscode.commands.executeCommand('vscode.changes', title, resources);
  return { title, resources, diff };
}

/** The diff again (its summary reaches the tree through `sandbox/changed`), and the pull
 * request's state when there is one. */
export async function refreshChanges(sidecar: Sidecar, store: Store, name: string): Promise<Diff> {
  const diff = await sidecar.request('sandbox/diff', { name });
  const s = store.get(name);
  if (s?.pullRequest) {
    const githubToken = await githubTokenFor([s.repo]);
    await sidecar.request('sandbox/prStatus', githubToken ? { name, githubToken } : { name });
  }
  return diff;
}

async function folderFor(name: string): Promise<vscode.WorkspaceFolder | undefined> {
  const folders = vscode.workspace.workspaceFolders ?? [];
  if (folders.length <= 1) return folders[0];
  const r = await ui().pick({ title: `Fetch the branch of ${name}`, placeholder: 'Into which clone?', items: folders.map((f) => ({ label: f.name, description: f.uri.fsPath, folder: f })) });
  return r && r !== BACK ? r[0].folder : undefined;
}

export async function fetchBranch(sidecar: Sidecar, name: string): Promise<FetchResult | undefined> {
  const folder = await folderFor(name);
  if (!folder) throw new SandboxError('invalid_input', 'no folder is open', 'open your local clone of the repository, then fetch again');
  const r = await sidecar.withProgress(`Fetching the branch of ${name}`, 'sandbox/fetch', { name, directory: folder.uri.fsPath });
  const short = r.ref.replace(/^refs\/remotes\//, '');
  const copy = 'Copy Merge Command';
  const more = r.uncommitted > 0 ? ` ${r.uncommitted} changed files in the sandbox are not committed, so not fetched.` : '';
  void ui().ask('info', `Fetched ${r.branch} of ${name} into ${short} (${r.commit.slice(0, 10)}).${more}`, {}, copy).then(async (a) => {
    if (a === copy) await vscode.env.clipboard.writeText(`git merge ${short}`);
  });
  return r;
}

export async function createPullRequest(sidecar: Sidecar, store: Store, name: string): Promise<PullRequest | undefined> {
  const s = store.get(name);
  const items = [{ label: 'Open Pull Request', draft: false }, { label: 'Open as Draft', draft: true }];
  const how = await ui().pick({ title: `Pull request from ${name}`, placeholder: `${s?.branch ?? 'its branch'} → ${s?.baseBranch ?? 'the branch it started from'}; title and body from its commits`, items });
  if (!how || how === BACK) return undefined;
  const githubToken = await githubTokenFor([s?.repo]);
  const draft = how[0].draft;
  const pr = await sidecar.withProgress(`Opening a pull request from ${name}`, 'sandbox/pr', githubToken ? { name, draft, githubToken } : { name, draft });
  const open = 'Open on GitHub';
  void ui().ask('info', `Pull request #${pr.number} is open: ${pr.title}`, {}, open).then((a) => {
    if (a === open) void vscode.env.openExternal(vscode.Uri.parse(pr.url));
  });
  return pr;
}

/** A reviewed file in the sandbox's Remote-SSH window (the editor's link handler). */
export async function openInSandbox(sidecar: Sidecar, store: Store, uri: vscode.Uri | undefined): Promise<string | undefined> {
  const target = uri ?? vscode.window.activeTextEditor?.document.uri;
  if (!target || target.scheme !== SCHEME) {
    throw new SandboxError('invalid_input', 'no reviewed file is open', 'open one with Review Changes first');
  }
  const side = sideOf(target.path, target.query);
  const s = store.get(side.name) ?? (await sidecar.request('sandbox/get', { name: side.name })) ?? undefined;
  if (!s) throw new SandboxError('not_found', `sandbox '${side.name}' does not exist`, 'refresh the Sandboxes view');
  const info = await sidecar.request('sandbox/hostInfo', {});
  if (!(await ensureRemoteSsh(side.name)) || !(await ensureInclude(info))) return undefined;
  const link = openInSandboxLink(vscode.env.uriScheme, s.sshAlias, info.projectDir, side.path);
  await ui().openExternal(vscode.Uri.parse(link));
  return link;
}
