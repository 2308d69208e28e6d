// The seam between the extension and VS Code's interactive UI: quick inputs, questions, the
// GitHub sign-in dialog and opening a window or a link (with what this editor can open).
// Commands talk to `ui` only, so the extension's own test suite can answer the wizard and
// prompts (`setUi`) and replace only the `openFolder` and `openExternal` calls, while everything
// else — sidecar, Incus, terminals, the tree — stays real.
import * as vscode from 'vscode';

/** Returned by a step when the user pressed Back. */
// Symbol.for: the same value in the bundle and in the separately compiled test suite.
export const BACK: unique symbol = Symbol.for('agentSandboxes.back');
export type Back = typeof BACK;

export interface Step {
  title: string;
  step?: number;
  totalSteps?: number;
}

export interface InputStep extends Step {
  prompt: string;
  value?: string;
  placeholder?: string;
  password?: boolean;
  /** Live validation: a message while the value is invalid. */
  validate?: (value: string) => string | undefined;
}

export interface PickStep<T extends vscode.QuickPickItem> extends Step {
  placeholder: string;
  items: T[];
  canPickMany?: boolean;
  /** Multi-select: Enter with nothing ticked answers [] (defaults) instead of the highlighted row. */
  noneIsAnswer?: boolean;
  selected?: T[];
}

export type Severity = 'info' | 'warning' | 'error';

/**
 * Can this editor open a sandbox in a Remote-SSH window? `ready`: an ssh-remote provider is
 * installed; `missing`: none is, but one can be; `impossible`: the editor runs in a browser
 * (code-server, vscode.dev), where the hand-off cannot work.
 */
export type RemoteSshSupport = 'ready' | 'missing' | 'impossible';

/** Extensions that provide the `ssh-remote` authority (Microsoft's, and VSCodium's open one). */
export const REMOTE_SSH_IDS = ['ms-vscode-remote.remote-ssh', 'jeanp413.open-remote-ssh'];

export function remoteSshSupport(): RemoteSshSupport {
  if (vscode.env.uiKind === vscode.UIKind.Web) return 'impossible';
  return REMOTE_SSH_IDS.some((id) => vscode.extensions.getExtension(id)) ? 'ready' : 'missing';
}

export interface Ui {
  /** undefined: cancelled (Escape). */
  input(s: InputStep): Promise<string | Back | undefined>;
  pick<T extends vscode.QuickPickItem>(s: PickStep<T>): Promise<T[] | Back | undefined>;
  /** A notification (or a modal dialog) with actions; resolves to the action chosen. */
  ask(severity: Severity, message: string, options: { modal?: boolean; detail?: string }, ...actions: string[]): Promise<string | undefined>;
  openFolder(uri: vscode.Uri, options: { forceNewWindow: boolean }): Promise<void>;
  /** What `openFolder` can do with a Remote-SSH URI here. */
  remoteSsh(): RemoteSshSupport;
  /** The GitHub sign-in (scope `repo`); rejects when the user cancels it. */
  githubToken(): Promise<string>;
  /** A link for the operating system or the editor's own handler (vscode://…). */
  openExternal(uri: vscode.Uri): Promise<boolean>;
}

function buttons(s: Step): vscode.QuickInputButton[] {
  return s.step !== undefined && s.step > 1 ? [vscode.QuickInputButtons.Back] : [];
}

/** The real UI: quick inputs with a Back button and live validation. */
export const vscodeUi: Ui = {
  input(s) {
    const box = vscode.window.createInputBox();
    Object.assign(box, {
      title: s.title, step: s.step, totalSteps: s.totalSteps, prompt: s.prompt,
      value: s.value ?? '', placeholder: s.placeholder, password: !!s.password,
      buttons: buttons(s), ignoreFocusOut: true,
    });
    const check = (v: string) => {
      const msg = s.validate?.(v);
      box.validationMessage = msg ? { message: msg, severity: vscode.InputBoxValidationSeverity.Error } : undefined;
      return !msg;
    };
    // No complaint before the user typed anything: an empty box is checked on Enter. A
    // prefilled value is checked at once (it may need editing).
    if (box.value !== '') check(box.value);
    return new Promise((resolve) => {
      let done = false;
      const finish = (v: string | Back | undefined) => { if (!done) { done = true; resolve(v); box.dispose(); } };
      box.onDidChangeValue(check);
      box.onDidAccept(() => { if (check(box.value)) finish(box.value); });
      box.onDidTriggerButton((b) => { if (b === vscode.QuickInputButtons.Back) finish(BACK); });
      box.onDidHide(() => finish(undefined));
      box.show();
    });
  },

  pick(s) {
    const qp = vscode.window.createQuickPick<(typeof s.items)[number]>();
    Object.assign(qp, {
      title: s.title, step: s.step, totalSteps: s.totalSteps, placeholder: s.placeholder,
      items: s.items, canSelectMany: !!s.canPickMany, buttons: buttons(s), ignoreFocusOut: true,
      matchOnDescription: true,
    });
    const highlight = () => {
      if (s.selected?.length) {
        if (s.canPickMany) qp.selectedItems = s.selected;
        else qp.activeItems = s.selected;
      } else if (!s.canPickMany && s.items.length > 0) {
        qp.activeItems = [s.items[0]];
      }
    };
    highlight();
    // A multi-select list focuses no row while filtering: focus the first match, so the row the
    // user sees highlighted is the one Enter acts on.
    if (s.canPickMany) {
      qp.onDidChangeValue((value) => {
        const q = value.trim().toLowerCase();
        const hit = q ? s.items.find((i) => `${i.label} ${i.description ?? ''}`.toLowerCase().includes(q)) : undefined;
        if (hit) qp.activeItems = [hit];
      });
    }
    return new Promise((resolve) => {
      let done = false;
      const finish = (v: (typeof s.items) | Back | undefined) => { if (!done) { done = true; resolve(v); qp.dispose(); } };
      // Enter and OK always answer: the ticked rows; with none ticked, the defaults ([]) where
      // the step says so, else the highlighted row (a filtered palette picker).
      qp.onDidAccept(() => {
        const ticked = s.canPickMany ? [...qp.selectedItems] : [];
        const chosen = ticked.length > 0 ? ticked
          : s.canPickMany && s.noneIsAnswer ? []
          : [...qp.activeItems];
        if (chosen.length > 0 || (s.canPickMany && s.noneIsAnswer)) finish(chosen);
      });
      qp.onDidTriggerButton((b) => { if (b === vscode.QuickInputButtons.Back) finish(BACK); });
      qp.onDidHide(() => finish(undefined));
      qp.show();
      highlight(); // showing may reset the active row
    });
  },

  async ask(severity, message, options, ...actions) {
    const show = severity === 'error' ? vscode.window.showErrorMessage
      : severity === 'warning' ? vscode.window.showWarningMessage : vscode.window.showInformationMessage;
    return show(message, options, ...actions);
  },

  async openFolder(uri, options) {
    await vscode.commands.executeCommand('vscode.openFolder', uri, options);
  },

  remoteSsh: remoteSshSupport,

  async githubToken() {
    const session = await vscode.authentication.getSession('github', ['repo'], { createIfNone: true });
    return session.accessToken;
  },

  async openExternal(uri) {
    return vscode.env.openExternal(uri);
  },
};

let current: Ui = vscodeUi;

/** The UI in use. */
export function ui(): Ui {
  return current;
}

/** Replaces the UI (tests); returns a function that restores the real one. */
export function setUi(u: Ui): () => void {
  current = u;
  return () => { current = vscodeUi; };
}
