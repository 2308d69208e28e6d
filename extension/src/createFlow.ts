// Making sandboxes: the Create wizard's answers sent to the sidecar (with the GitHub token when
// the repository needs one), a failure offering Edit and Retry with every answer kept; New
// Agent (a task → a sandbox on its own branch with Claude Code working on it); and Send Prompt
// to Agents.
import * as vscode from 'vscode';
import { confirmationLine, nameFromTask, parseConfirmation } from './agentModel';
import type { Ctx } from './commands';
import { config } from './config';
import { reportError } from './errors';
import { withGithubToken } from './github';
import type { CreateOptions, Sandbox } from './protocol.generated';
import { openTerminals } from './terminals';
import { BACK, ui } from './ui';
import { createWizard, nameCheck, workspaceGit } from './wizard';

export const EDIT_AND_RETRY = 'Edit and Retry';

/** What a create gave: the sandbox, or nothing (cancelled, failed and reported). */
export async function create(ctx: Ctx, p: CreateOptions | undefined, opts: { quiet?: boolean } = {}): Promise<Sandbox | undefined> {
  if (!p) return undefined;
  const params = await withGithubToken(p);
  if (!params) return undefined;
  let r;
  try {
    r = await ctx.sidecar.withProgress(`Creating sandbox ${p.name}`, 'sandbox/create', params);
  } catch (e) {
    // Every answer is kept (but the token): the wizard opens again with them.
    const answers: CreateOptions = { ...params, githubToken: undefined };
    reportError(`Create sandbox ${p.name}`, e, [[EDIT_AND_RETRY, () => vscode.commands.executeCommand('agentSandboxes.create', { retry: answers })]]);
    return undefined;
  }
  ctx.store.apply({ name: r.sandbox.name, sandbox: r.sandbox });
  if (opts.quiet) return r.sandbox;
  const open = 'Open in Remote-SSH';
  const claude = 'Open Claude';
  void ui().ask('info', `Sandbox ${p.name} is running (${r.seconds.toFixed(1)} s).`, {}, open, claude).then((a) => {
    if (a === open) void vscode.commands.executeCommand('agentSandboxes.openRemote', p.name);
    if (a === claude) void vscode.commands.executeCommand('agentSandboxes.openClaude', p.name);
  });
  return r.sandbox;
}

/** The Create command: the wizard (from earlier answers on Edit and Retry), then the create. */
export async function createCommand(ctx: Ctx, arg: unknown): Promise<Sandbox | undefined> {
  const retry = arg && typeof arg === 'object' && 'retry' in arg ? (arg as { retry: CreateOptions }).retry : undefined;
  return create(ctx, await createWizard(ctx.store, retry));
}

/** The stack New Agent uses: the default one when built, else the first built. */
function agentStack(ctx: Ctx): string | undefined {
  const built = (ctx.store.goldenImages() ?? []).filter((g) => g.built).map((g) => g.stack);
  const want = config.defaultStack() ?? 'base';
  return built.includes(want) ? want : built[0];
}

export interface NewAgent { sandbox: Sandbox; terminal: vscode.Terminal }

/**
 * New Agent: "What should the agent do?", one line to confirm (or edit) the derived name and
 * branch, then a sandbox from the workspace's repository and the default stack, and Claude Code
 * started in it on that task.
 */
export async function newAgent(ctx: Ctx, binary: () => string): Promise<NewAgent | undefined> {
  const stack = agentStack(ctx);
  if (!stack) {
    void ui().ask('error', 'No golden image is built yet, so there is nothing to clone a sandbox from.', {}, 'Run Setup')
      .then((a) => a && vscode.commands.executeCommand('agentSandboxes.setup'));
    return undefined;
  }
  const title = 'New Agent';
  const task = await ui().input({ title, step: 1, totalSteps: 2, prompt: 'What should the agent do?', placeholder: 'Fix the flaky date test in src/date.rs', validate: (x) => (x.trim() ? undefined : 'say what the agent should do, in a few words') });
  if (typeof task !== 'string') return undefined;
  const repo = workspaceGit().origin;
  const check = nameCheck(ctx.store);
  const name = nameFromTask(task, (n) => !!ctx.store.get(n));
  const prompt = repo
    ? `Sandbox name, then its branch (edit either; Enter starts the agent on ${repo}, stack ${stack})`
    : `Sandbox name (Enter starts the agent, stack ${stack}; this workspace has no repository, so no branch)`;
  const line = await ui().input({ title, step: 2, totalSteps: 2, prompt, value: confirmationLine(name, !!repo), validate: (x) => {
    const c = parseConfirmation(x, !!repo, check);
    return typeof c === 'string' ? c : undefined;
  } });
  if (typeof line !== 'string') return line === BACK ? newAgent(ctx, binary) : undefined;
  const c = parseConfirmation(line, !!repo, check);
  if (typeof c === 'string') return undefined;
  const s = await create(ctx, { name: c.name, stack, repo, branch: c.branch }, { quiet: true });
  if (!s) return undefined;
  void ctx.view.reveal({ kind: 'sandbox', name: s.name }, { select: true, focus: false });
  const [terminal] = openTerminals(binary(), 'claude', [s.name], task.trim());
  return { sandbox: s, terminal };
}

/** Send Prompt to Agents: one prompt typed into each agent's Claude session. */
export async function sendPrompt(ctx: Ctx, names: string[], binary: () => string): Promise<vscode.Terminal[]> {
  if (names.length === 0) return [];
  const text = await ui().input({ title: 'Send Prompt to Agents', prompt: `Prompt for ${names.join(', ')} (typed into each one's Claude session)`, placeholder: 'Run the tests and fix what fails', validate: (x) => (x.trim() ? undefined : 'type the prompt') });
  if (typeof text !== 'string') return [];
  ctx.sidecar.log.info(`send prompt to ${names.join(', ')} (${text.length} characters)`);
  return openTerminals(binary(), 'claude', names, text.trim());
}

