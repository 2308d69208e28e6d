// "Claude · NAME" and "Shell · NAME" terminals. They run the sidecar's own binary
// (`sandbox claude NAME` / `sandbox shell NAME`): it checks the sandbox is running and has
// Claude Code, says what to do if not, and connects with the managed ssh config — no ssh
// command line is built here. `--wait-on-error` keeps a failure's message on screen (a terminal
// otherwise closes with its program, leaving only "exit code N"). Claude runs in a session
// inside the sandbox: closing the terminal only detaches from it.
import * as vscode from 'vscode';

export type TerminalKind = 'claude' | 'shell';

const LABEL: Record<TerminalKind, string> = { claude: 'Claude', shell: 'Shell' };
const ICON: Record<TerminalKind, string> = { claude: 'sparkle', shell: 'terminal' };
const KINDS: TerminalKind[] = ['claude', 'shell'];

export function terminalName(kind: TerminalKind, name: string): string {
  return `${LABEL[kind]} · ${name}`;
}

/** The open (not exited) terminal of a kind for a sandbox. */
export function openTerminal(kind: TerminalKind, name: string): vscode.Terminal | undefined {
  return vscode.window.terminals.find((t) => t.name === terminalName(kind, name) && t.exitStatus === undefined);
}

/** The program's arguments: `claude NAME --wait-on-error [--new] [--prompt TEXT]`. */
export function terminalArgs(kind: TerminalKind, name: string, prompt?: string, fresh = false): string[] {
  const args = [kind, name, '--wait-on-error'];
  if (kind === 'claude' && fresh) args.push('--new');
  if (kind === 'claude' && prompt !== undefined) args.push('--prompt', prompt);
  return args;
}

/**
 * Types a prompt into a running Claude session, then Enter on its own a moment later: text and a
 * newline in one write reach Claude Code's input as a paste (a line break in the prompt, nothing sent).
 */
function typeInto(t: vscode.Terminal, prompt: string): void {
  t.sendText(prompt, false);
  setTimeout(() => t.sendText('\r', false), 300);
}

/**
 * Opens (or shows the open) terminal for each sandbox. One: in the panel. Several: in the
 * editor area, one column each, side by side (the CLI's tmux panes, VS Code style). A prompt
 * starts a new Claude session on it (`--prompt`; typed into the sandbox's session if one runs
 * there); an open terminal gets it typed in instead. `fresh`: a new session (`--new`).
 */
export function openTerminals(binary: string, kind: TerminalKind, names: string[], prompt?: string, fresh = false): vscode.Terminal[] {
  const many = names.length > 1;
  return names.map((name, i) => {
    const open = openTerminal(kind, name);
    // A fresh session (`--new`) gets a terminal of its own: the open one goes.
    if (open && fresh) open.dispose();
    else if (open) {
      try {
        open.show(many);
        if (prompt !== undefined) typeInto(open, prompt);
        return open;
      } catch {
        // Disposed a moment ago and not yet out of window.terminals: open a new one.
      }
    }
    const t = vscode.window.createTerminal({
      name: terminalName(kind, name),
      shellPath: binary,
      shellArgs: terminalArgs(kind, name, prompt, fresh),
      iconPath: new vscode.ThemeIcon(ICON[kind]),
      color: new vscode.ThemeColor(kind === 'claude' ? 'terminal.ansiMagenta' : 'terminal.ansiCyan'),
      location: many ? { viewColumn: (vscode.ViewColumn.One + i) as vscode.ViewColumn, preserveFocus: i > 0 } : vscode.TerminalLocation.Panel,
    });
    if (!many) t.show();
    return t;
  });
}

/** Closes a sandbox's terminals (it was destroyed: their connection would hang until typed in). */
export function closeTerminalsOf(name: string): number {
  let n = 0;
  for (const kind of KINDS) {
    for (const t of vscode.window.terminals.filter((x) => x.name === terminalName(kind, name))) {
      t.dispose();
      n++;
    }
  }
  return n;
}
