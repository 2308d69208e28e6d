// The review commands: Review Changes, Refresh Changes, Fetch Branch to Workspace, Create Pull
// Request, Open Pull Request (tree items, palette), and Open in Sandbox (a reviewed file).
import * as vscode from 'vscode';
import { registrar, running, targets, type Arg, type Ctx } from './commands';
import { ChangesOnTurnEnd, ReviewContent, createPullRequest, fetchBranch, openInSandbox, refreshChanges, reviewChanges } from './review';
import type { Sandbox } from './protocol.generated';
import { SCHEME } from './reviewModel';
import { ui } from './ui';

const withRepo = (s: Sandbox) => !!s.repo && running(s);

/** What the review registered: the content provider, and the watch that reads an agent's changes
 * when it finishes a turn. */
export interface Review { content: ReviewContent; turns: ChangesOnTurnEnd }

export function registerReviewCommands(ctx: Ctx, log: (m: string) => void): Review {
  const content = new ReviewContent(ctx.sidecar);
  const turns = new ChangesOnTurnEnd(ctx.store, ctx.sidecar, log);
  ctx.context.subscriptions.push(vscode.workspace.registerTextDocumentContentProvider(SCHEME, content), turns);
  const register = registrar(ctx);
  const one = async (a: Arg, sel: Arg[] | undefined, verb: string) => (await targets(ctx, a, sel, withRepo, false, verb))[0];
  register('reviewChanges', 'Review changes', async (a, sel) => {
    const name = await one(a, sel, 'review the changes of');
    return name ? reviewChanges(ctx.sidecar, name) : undefined;
  });
  register('refreshChanges', 'Refresh changes', async (a, sel) => {
    const name = await one(a, sel, 'read the changes of');
    return name ? refreshChanges(ctx.sidecar, ctx.store, name) : undefined;
  });
  register('fetchBranch', 'Fetch branch', async (a, sel) => {
    const name = await one(a, sel, 'fetch the branch of');
    return name ? fetchBranch(ctx.sidecar, name) : undefined;
  });
  register('createPullRequest', 'Create pull request', async (a, sel) => {
    const name = await one(a, sel, 'open a pull request from');
    return name ? createPullRequest(ctx.sidecar, ctx.store, name) : undefined;
  });
  register('openPullRequest', 'Open pull request', async (a) => {
    const name = typeof a === 'string' ? a : a && 'kind' in a && a.kind !== 'golden' && a.kind !== 'prepared' && a.kind !== 'member' ? a.name : undefined;
    const pr = name ? ctx.store.get(name)?.pullRequest : undefined;
    if (pr) await ui().openExternal(vscode.Uri.parse(pr.url));
    return pr?.url;
  });
  register('openInSandbox', 'Open in sandbox', async (a) =>
    openInSandbox(ctx.sidecar, ctx.store, (a as unknown) instanceof vscode.Uri ? (a as unknown as vscode.Uri) : undefined));
  return { content, turns };
}
