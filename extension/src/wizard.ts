// The Create (and Branch From Here) wizard: a multi-step quick input with Back and live
// validation (validate.ts = the engine's rules). It only collects answers into CreateOptions.
import * as fs from 'fs';
import * as path from 'path';
import * as vscode from 'vscode';
import { config } from './config';
import type { CreateOptions } from './protocol.generated';
import type { Store } from './store';
import { BACK, ui, type Back } from './ui';
import * as v from './validate';

const TITLE = 'Create Sandbox';

/** The open workspace's git origin and branch, read from .git (no git process needed). */
export function workspaceGit(): { origin?: string; branch?: string } {
  const root = vscode.workspace.workspaceFolders?.[0]?.uri;
  // The extension runs where the workspace is (extensionKind workspace): in a remote window
  // (code-server included) its folder is vscode-remote://…, a path on this same machine.
  if (!root || (root.scheme !== 'file' && root.scheme !== 'vscode-remote')) return {};
  const git = path.join(root.scheme === 'file' ? root.fsPath : root.path, '.git');
  const read = (f: string) => { try { return fs.readFileSync(path.join(git, f), 'utf8'); } catch { return ''; } };
  const cfg = read('config');
  const origin = /\[remote "origin"\][^[]*?\burl\s*=\s*(\S+)/.exec(cfg)?.[1];
  const branch = /^ref: refs\/heads\/(.+)$/m.exec(read('HEAD'))?.[1]?.trim();
  return { origin: origin && !v.repoUrl(origin) ? origin : undefined, branch };
}

export function nameCheck(store: Store) {
  return (name: string) => v.sandboxName(name)
    ?? (store.get(name) ? `a sandbox named '${name}' exists: pick another name, or start it from the tree` : undefined);
}

interface Item extends vscode.QuickPickItem { id: string }
/** A step that does not apply (e.g. the branch without a repository) is passed over both ways. */
const SKIP = 'skip' as const;
type Step = () => Promise<true | typeof SKIP | Back | undefined>;

/** Runs steps in order; a step returning BACK goes to the previous one, undefined cancels. */
async function runSteps(steps: Step[]): Promise<boolean> {
  let i = 0;
  let back = false;
  while (i < steps.length) {
    const r = await steps[i]();
    if (r === undefined) return false;
    if (r === SKIP) back = back && i > 0;
    else back = r === BACK;
    i = back ? Math.max(0, i - 1) : i + 1;
  }
  return true;
}

/**
 * The Create wizard. `previous`: the answers of a create that failed (Edit and Retry): every step
 * starts from them.
 */
export async function createWizard(store: Store, previous?: CreateOptions): Promise<CreateOptions | undefined> {
  const git = workspaceGit();
  const built = (store.goldenImages() ?? []).filter((g) => g.built);
  const p: CreateOptions = { ...(previous ?? {}), name: previous?.name ?? '' };
  delete p.githubToken;
  let repo = previous ? (previous.repo ?? '') : (git.origin ?? '');
  const total = 5;
  const steps: Step[] = [
    async () => {
      const r = await ui().input({ title: TITLE, step: 1, totalSteps: total, prompt: 'Name of the sandbox (also its SSH host sandbox-NAME)', value: p.name, placeholder: 'feature-login', validate: nameCheck(store) });
      if (typeof r !== 'string') return r;
      p.name = r;
      return true as const;
    },
    async () => {
      const r = await ui().input({ title: TITLE, step: 2, totalSteps: total, prompt: 'Repository to clone into /workspace/project (empty: none)', value: repo, placeholder: 'git@github.com:OWNER/REPO.git', validate: (x) => (x === '' ? undefined : v.repoUrl(x)) });
      if (typeof r !== 'string') return r;
      repo = r;
      return true as const;
    },
    async () => {
      // Without a repository there is no branch to check out (the engine refuses --branch).
      if (!repo) { p.branch = undefined; return SKIP; }
      const items: Item[] = [];
      if (git.branch) items.push({ id: 'current', label: git.branch, description: 'the current branch of this workspace' });
      items.push({ id: 'default', label: "The repository's default branch" });
      items.push({ id: 'new', label: '$(git-branch) New branch…', description: 'created in the sandbox' });
      // An earlier answer is highlighted again (Edit and Retry, Back).
      const was = p.branch === undefined ? 'default' : p.branch === git.branch ? 'current' : 'new';
      const selected = items.filter((i) => i.id === was);
      const r = await ui().pick({ title: TITLE, step: 3, totalSteps: total, placeholder: 'Branch', items, selected });
      if (r === undefined || r === BACK) return r;
      if (r[0].id === 'new') {
        const b = await ui().input({ title: TITLE, step: 3, totalSteps: total, prompt: 'New branch name', value: p.branch ?? '', placeholder: 'feature/login', validate: v.branch });
        if (typeof b !== 'string') return b === BACK ? steps[2]() : b;
        p.branch = b;
      } else {
        p.branch = r[0].id === 'current' ? git.branch : undefined;
      }
      return true as const;
    },
    async () => {
      if (built.length === 0) {
        void ui().ask('error', 'No golden image is built yet, so there is nothing to clone a sandbox from.', {}, 'Run Setup')
          .then((a) => a && vscode.commands.executeCommand('agentSandboxes.setup'));
        return undefined;
      }
      const want = p.stack ?? config.defaultStack();
      const items: Item[] = built.map((g) => ({ id: g.stack, label: g.stack, description: g.description, detail: g.stale ? 'its script changed since the image was built' : undefined }));
      // The default stack highlighted (Enter takes it); when it is not built, the first one.
      const selected = items.filter((i) => i.id === want);
      const r = await ui().pick({ title: TITLE, step: 4, totalSteps: total, placeholder: 'Stack (golden image to clone)', items, selected: selected.length ? selected : items.slice(0, 1) });
      if (r === undefined || r === BACK) return r;
      p.stack = r[0].id;
      return true as const;
    },
    async () => optionsStep(p, 5, total),
  ];
  if (!(await runSteps(steps))) return undefined;
  if (repo) p.repo = repo;
  return p;
}

/** Branch From Here: a new sandbox from another's repo, stack and egress, on a new branch. */
export async function branchWizard(store: Store, from: string): Promise<CreateOptions | undefined> {
  const p: CreateOptions = { name: '', from };
  let suffix = 2;
  while (store.get(`${from}-${suffix}`)) suffix++;
  const title = `Branch From ${from}`;
  // Without a repository there is no branch to make (the engine refuses --branch then): the new
  // sandbox just inherits the stack and egress settings.
  const hasRepo = !!store.get(from)?.repo;
  const total = hasRepo ? 2 : 1;
  const steps: Step[] = [
    async () => {
      const r = await ui().input({ title, step: 1, totalSteps: total, prompt: hasRepo ? 'Name of the new sandbox' : 'Name of the new sandbox (same stack and egress settings; the source has no repository)', value: p.name || `${from}-${suffix}`, validate: nameCheck(store) });
      if (typeof r !== 'string') return r;
      p.name = r;
      return true as const;
    },
  ];
  if (hasRepo) steps.push(async () => {
    const r = await ui().input({ title, step: 2, totalSteps: 2, prompt: 'New branch (empty: the same branch as the source)', value: p.branch ?? '', placeholder: 'feature/login-v2', validate: (x) => (x === '' ? undefined : v.branch(x)) });
    if (typeof r !== 'string') return r;
    p.branch = r || undefined;
    return true as const;
  });
  return (await runSteps(steps)) ? p : undefined;
}

async function optionsStep(p: CreateOptions, step: number, total: number): Promise<true | Back | undefined> {
  const items: Item[] = [
    { id: 'restrict', label: 'Restrict domains', description: 'egress only to an allowlist' },
    { id: 'cpu', label: 'Limit CPUs…' },
    { id: 'memory', label: 'Limit memory…' },
    { id: 'env', label: 'Environment variables…', description: 'NAME=VALUE, stored literally' },
    { id: 'domains', label: 'Domains file…', description: 'your allowlist (implies Restrict domains)' },
  ];
  // Ticked: what an earlier answer chose (Edit and Retry), else the restrict-by-default setting.
  const had: Record<string, boolean> = {
    restrict: !!(p.restrictDomains ?? config.restrictDomainsByDefault()) && !p.domainsFile,
    cpu: p.cpu !== undefined, memory: p.memory !== undefined, env: !!p.env?.length, domains: p.domainsFile !== undefined,
  };
  const pre = items.filter((i) => had[i.id]);
  const before = { cpu: p.cpu, memory: p.memory, env: p.env?.join(' '), domains: p.domainsFile };
  const r = await ui().pick({ title: TITLE, step, totalSteps: total, placeholder: 'Options (none selected: defaults) — Enter to create', items, canPickMany: true, noneIsAnswer: true, selected: pre });
  if (r === undefined || r === BACK) return r;
  const chosen = new Set(r.map((i) => i.id));
  p.restrictDomains = chosen.has('restrict') || chosen.has('domains') || undefined;
  const ask = async (prompt: string, placeholder: string, value: string | undefined, validate: (x: string) => string | undefined) => {
    const x = await ui().input({ title: TITLE, step, totalSteps: total, prompt, placeholder, value, validate });
    return x === BACK ? undefined : x;
  };
  p.cpu = p.memory = p.env = p.domainsFile = undefined;
  if (chosen.has('cpu')) { p.cpu = await ask('CPUs', '2', before.cpu, v.cpu); if (p.cpu === undefined) return undefined; }
  if (chosen.has('memory')) { p.memory = await ask('Memory', '4GiB', before.memory, v.memory); if (p.memory === undefined) return undefined; }
  if (chosen.has('env')) {
    const e = await ask('Environment (NAME=VALUE separated by spaces)', 'RUST_LOG=debug FOO=bar', before.env, v.envList);
    if (e === undefined) return undefined;
    p.env = v.splitEnv(e);
  }
  if (chosen.has('domains')) {
    p.domainsFile = await ask('Domains file on this machine (one domain a line)', '/home/me/allowed-domains.txt', before.domains, (x) => (path.isAbsolute(x) ? undefined : 'give an absolute path'));
    if (p.domainsFile === undefined) return undefined;
  }
  return true;
}
