// What the review shows, without VS Code: the pairs of the multi-file diff editor (left: the
// base, right: the sandbox's working tree) as `sandbox-review:` addresses, the text shown for a
// side that is binary, too large or a submodule, the changes and pull request lines of the tree,
// and the link that opens a file in the sandbox's Remote-SSH window.
import type { Agent, Blob, ChangeSummary, Diff, FileChange, PrState, PullRequest, Sandbox } from './protocol.generated';

export const SCHEME = 'sandbox-review';
/** More files than this are not opened at once (the editor would load them all). */
export const MAX_REVIEW_FILES = 300;

/** One side of a file: which sandbox, which blob (none: the file is not on that side). */
export interface Side { name: string; path: string; blob: string | null; mode: number | null }

/** A review address: `sandbox-review://NAME/PATH?name=NAME&blob=OID&mode=MODE` (the name also in
 * the query: an authority may be lowercased on the way). */
export interface Address { scheme: string; authority: string; path: string; query: string }

export function address(s: Side): Address {
  const q = new URLSearchParams({ name: s.name, blob: s.blob ?? '', mode: s.mode === null ? '' : s.mode.toString(8) });
  return { scheme: SCHEME, authority: s.name, path: `/${s.path}`, query: q.toString() };
}

export function sideOf(path: string, query: string): Side {
  const q = new URLSearchParams(query);
  const mode = q.get('mode');
  return { name: q.get('name') ?? '', path: path.replace(/^\//, ''), blob: q.get('blob') || null, mode: mode ? parseInt(mode, 8) : null };
}

export interface Pair { label: Side; left: Side; right: Side }

/** The diff editor's pairs: a rename's left side is its old path; an added file's left side and
 * a deleted file's right side are empty. */
export function pairs(d: Diff): Pair[] {
  return d.files.slice(0, MAX_REVIEW_FILES).map((f: FileChange) => {
    const left: Side = { name: d.name, path: f.oldPath ?? f.path, blob: f.oldBlob, mode: f.oldMode };
    const right: Side = { name: d.name, path: f.path, blob: f.newBlob, mode: f.newMode };
    return { label: right, left, right };
  });
}

const SUBMODULE = 0o160000;

function size(n: number): string {
  if (n < 1024) return `${n} bytes`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

/** A side that needs no request: absent, or a submodule (its commit is all there is). */
export function withoutRequest(s: Side): string | undefined {
  if (!s.blob) return '';
  if (s.mode === SUBMODULE) return `(submodule at commit ${s.blob})\n`;
  return undefined;
}

/** What the editor shows for a blob the sidecar read. */
export function shown(b: Blob, path: string): string {
  switch (b.kind) {
    case 'text': return b.text ?? '';
    case 'binary': return `(binary file ${path}, ${size(b.size)}: not shown here; "Open in Sandbox" opens it)\n`;
    case 'tooLarge': return `(${path} is ${size(b.size)}: larger than the review shows; "Open in Sandbox" opens it)\n`;
    case 'missing': return `(${path}: this version is no longer in the sandbox's repository; refresh the review)\n`;
  }
}

/** `+12 −3 · 4 files · 2 commits` */
export function changesLine(c: ChangeSummary): string {
  const plural = (n: number, one: string) => `${n} ${one}${n === 1 ? '' : 's'}`;
  return `+${c.added} −${c.deleted} · ${plural(c.files, 'file')} · ${plural(c.commits, 'commit')}`;
}

function prStateText(s: PrState): string {
  switch (s) {
    case 'open': return 'open';
    case 'merged': return 'merged';
    case 'closed': return 'closed';
  }
}

export function prLine(p: PullRequest): string {
  return `#${p.number} ${prStateText(p.state)}${p.draft && p.state === 'open' ? ' (draft)' : ''}`;
}

export function prIcon(s: PrState): { id: string; color: string } {
  switch (s) {
    case 'open': return { id: 'git-pull-request', color: 'charts.green' };
    case 'merged': return { id: 'git-merge', color: 'charts.purple' };
    case 'closed': return { id: 'git-pull-request-closed', color: 'charts.red' };
  }
}

/** The editor's link that opens a file in a Remote-SSH window on the sandbox (line and column
 * make it a file, not a folder). */
export function openInSandboxLink(uriScheme: string, sshAlias: string, projectDir: string, path: string): string {
  const file = `${projectDir}/${path}`.split('/').map(encodeURIComponent).join('/');
  return `${uriScheme}://vscode-remote/ssh-remote+${sshAlias}${file}:1:1`;
}

/** The agent just finished a turn (its state became `done`, or a newer `done`): the moment the
 * changes are read again. Nothing on first sight (`before` unknown: a list after a start). */
export function turnEnded(before: Agent | undefined, s: Sandbox): boolean {
  const now = s.agent;
  if (!before || !s.repo || !s.reachable || s.state !== 'running' || now.state !== 'done') return false;
  return before.state !== 'done' || before.since !== now.since;
}
