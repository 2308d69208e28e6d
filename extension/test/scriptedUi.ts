// A Ui that answers from a script instead of a person, and records every prompt. Validation
// still runs: an invalid scripted value is recorded as rejected and the next answer is used for
// the same prompt, as a user retyping would. Only `openFolder` and `openExternal` are replaced
// outright (recorded).
import * as assert from 'assert';
import type * as vscode from 'vscode';
import { BACK, remoteSshSupport, type Back, type InputStep, type PickStep, type RemoteSshSupport, type Severity, type Ui } from '../src/ui';

/** A scripted answer: a value (input) / a label or labels (pick) / an action (ask), or Back. */
export type Answer = string | string[] | Back | undefined;

export interface Asked { severity: Severity; message: string; actions: string[]; modal: boolean; answer: string | undefined }

export class ScriptedUi implements Ui {
  private readonly answers: Answer[] = [];
  readonly prompts: string[] = [];
  /** What each input offered before the answer (its prefilled value), by prompt. */
  readonly prefilled = new Map<string, string | undefined>();
  /** The items each pick offered, by placeholder. */
  readonly offered = new Map<string, string[]>();
  /** Every input in order: its prompt and the value it offered (prefilled). */
  readonly inputs: { prompt: string; value: string | undefined }[] = [];
  /** Every pick in order: its placeholder and the rows it had ticked or highlighted. */
  readonly picks: { placeholder: string; selected: string[] }[] = [];
  readonly rejected: { value: string; message: string }[] = [];
  /** Prompts of the inputs that hid what was typed (password boxes). */
  readonly hidden: string[] = [];
  readonly asked: Asked[] = [];
  readonly opened: { uri: vscode.Uri; options: { forceNewWindow: boolean } }[] = [];
  readonly links: vscode.Uri[] = [];
  /** Answers to `ask` by a substring of the message (asks without one get undefined). */
  readonly replies = new Map<string, string>();
  /** What this editor can open (default: the real answer; the hand-off test pretends Remote-SSH is there). */
  remoteSshAnswer: RemoteSshSupport | undefined;
  /** The GitHub sign-in: a token, or the error a cancelled sign-in gives. */
  github: { token: string } | { error: string } = { error: 'User did not consent to login.' };
  githubAsked = 0;

  script(...answers: Answer[]): this {
    this.answers.push(...answers);
    return this;
  }

  /** Every scripted answer was used. */
  done(): void {
    assert.deepStrictEqual(this.answers, [], `unused scripted answers; prompts seen: ${this.prompts.join(' | ')}`);
  }

  private next(prompt: string): Answer {
    this.prompts.push(prompt);
    assert.ok(this.answers.length > 0, `no scripted answer for "${prompt}"`);
    return this.answers.shift();
  }

  async input(s: InputStep): Promise<string | Back | undefined> {
    if (!this.prefilled.has(s.prompt)) this.prefilled.set(s.prompt, s.value); // the first offer
    if (s.password) this.hidden.push(s.prompt);
    this.inputs.push({ prompt: s.prompt, value: s.value });
    for (;;) {
      const a = this.next(s.prompt);
      if (a === BACK || a === undefined) return a;
      assert.strictEqual(typeof a, 'string', `"${s.prompt}" wants text`);
      const msg = s.validate?.(a as string);
      if (!msg) return a as string;
      this.rejected.push({ value: a as string, message: msg });
    }
  }

  async pick<T extends vscode.QuickPickItem>(s: PickStep<T>): Promise<T[] | Back | undefined> {
    this.offered.set(s.placeholder, s.items.map((i) => i.label));
    this.picks.push({ placeholder: s.placeholder, selected: (s.selected ?? []).map((i) => i.label) });
    const a = this.next(s.placeholder);
    if (a === BACK || a === undefined) return a;
    const labels = Array.isArray(a) ? a : [a as string];
    return labels.map((l) => {
      const item = s.items.find((i) => i.label === l || i.label.endsWith(` ${l}`));
      assert.ok(item, `"${s.placeholder}" has no item "${l}" (items: ${s.items.map((i) => i.label).join(', ')})`);
      return item;
    });
  }

  async ask(severity: Severity, message: string, options: { modal?: boolean }, ...actions: string[]): Promise<string | undefined> {
    const key = [...this.replies.keys()].find((k) => message.includes(k));
    const answer = key ? this.replies.get(key) : undefined;
    this.asked.push({ severity, message, actions, modal: !!options.modal, answer });
    return answer;
  }

  async openFolder(uri: vscode.Uri, options: { forceNewWindow: boolean }): Promise<void> {
    this.opened.push({ uri, options });
  }

  remoteSsh(): RemoteSshSupport {
    return this.remoteSshAnswer ?? remoteSshSupport();
  }

  async githubToken(): Promise<string> {
    this.githubAsked++;
    if ('error' in this.github) throw new Error(this.github.error);
    return this.github.token;
  }

  async openExternal(uri: vscode.Uri): Promise<boolean> {
    this.links.push(uri);
    return true;
  }
}
