// New Agent without VS Code: a sandbox name and a branch derived from the task the user typed,
// and the one confirmation line that lets them edit both ("NAME BRANCH").
import * as v from './validate';

/** Words that say little about the task (left out of the name). */
const FILLER = new Set(['a', 'an', 'the', 'to', 'of', 'in', 'on', 'for', 'and', 'or', 'with', 'please', 'our', 'my', 'that', 'this', 'it', 'is', 'be', 'so']);
const MAX_WORDS = 5;
const MAX_LENGTH = 40;

/** `fix the login bug on Safari` → `fix-login-bug-safari`; unique among `taken` (`-2`, `-3`…). */
export function nameFromTask(task: string, taken: (name: string) => boolean): string {
  const words = task.toLowerCase().normalize('NFKD').replace(/[\u0300-\u036f]/g, '').replace(/[^a-z0-9\s-]/g, ' ').split(/[\s-]+/).filter((w) => w && !FILLER.has(w));
  let base = '';
  for (const w of words.slice(0, MAX_WORDS)) {
    const next = base ? `${base}-${w}` : w;
    if (next.length > MAX_LENGTH) break;
    base = next;
  }
  base = base.replace(/^-+|-+$/g, '') || 'agent';
  if (v.sandboxName(base)) base = 'agent';
  if (!taken(base)) return base;
  for (let i = 2; ; i++) {
    const n = `${base}-${i}`;
    if (!taken(n)) return n;
  }
}

/** The branch an agent works on. */
export function branchFor(name: string): string {
  return `agent/${name}`;
}

/** The confirmation line's value: the name, then the branch when there is a repository. */
export function confirmationLine(name: string, withBranch: boolean): string {
  return withBranch ? `${name} ${branchFor(name)}` : name;
}

export interface Confirmed { name: string; branch?: string }

/** Reads the confirmation line back; a string says what is wrong. */
export function parseConfirmation(line: string, withBranch: boolean, nameCheck: (n: string) => string | undefined): Confirmed | string {
  const parts = line.trim().split(/\s+/).filter(Boolean);
  if (parts.length === 0) return 'give a name for the sandbox';
  if (parts.length > (withBranch ? 2 : 1)) {
    return withBranch ? 'two words: the sandbox name, then the branch (e.g. fix-login agent/fix-login)' : 'one word: the sandbox name (no repository here, so no branch)';
  }
  const bad = nameCheck(parts[0]);
  if (bad) return bad;
  if (parts[1] !== undefined) {
    const b = v.branch(parts[1]);
    if (b) return b;
  }
  return { name: parts[0], branch: withBranch ? (parts[1] ?? branchFor(parts[0])) : undefined };
}
