// What every e2e suite in code-server needs: run a command, and wait for a condition.
import { execFile } from 'child_process';
import * as fs from 'fs';
import type * as vscode from 'vscode';
import type { Api } from '../src/main';
import { ScriptedUi } from './scriptedUi';

export interface Ran { code: number; stdout: string; stderr: string }

/** Runs CMD (never through a shell); a failure to start or a timeout is a non-zero code. */
export function run(cmd: string, args: string[], opts: { ms?: number; cwd?: string } = {}): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: opts.ms ?? 120_000, cwd: opts.cwd }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }));
  });
}

/** Polls FN every 100 ms until it gives a value; fails naming WHAT after MS. */
export async function waitFor<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Puts scripted Uis in the extension's place, one at a time, and the extension's own back. */
export class UiScripts {
  private restore: () => void = () => undefined;

  /** A fresh scripted Ui in API's place (the previous one put back first). */
  next(api: Api): ScriptedUi {
    this.restore();
    const u = new ScriptedUi();
    this.restore = api.setUi(u);
    return u;
  }

  /** The extension's own Ui again. */
  reset(): void {
    this.restore();
    this.restore = () => undefined;
  }
}

/** The tree's item for sandbox NAME, as VS Code renders it. */
export function sandboxItem(api: Api, name: string): vscode.TreeItem | undefined {
  const node = api.tree.getChildren().find((n) => n.kind === 'sandbox' && n.name === name);
  return node && api.tree.getTreeItem(node);
}

/** The complete lines of an append-only JSON-lines log (a line still being written is left for the next read). */
export function jsonLines<T>(file: string): T[] {
  let text: string;
  try { text = fs.readFileSync(file, 'utf8'); } catch { return []; }
  const lines = text.split('\n');
  lines.pop(); // after the last newline: empty, or a line not finished yet
  return lines.filter(Boolean).map((l) => JSON.parse(l) as T);
}
