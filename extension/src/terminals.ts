// "Claude · NAME" and "Shell · NAME" terminals. They run the sidecar's own binary
// (`sandbox claude NAME` / `sandbox shell NAME`): it checks the sandbox is running, says what to
// do if not, and connects with the managed ssh config — no ssh command line is built here.
import * as vscode from 'vscode';

export type TerminalKind = 'claude' | 'shell';

const LABEL: Record<TerminalKind, string> = { claude: 'Claude', shell: 'Shell' };
const ICON: Record<TerminalKind, string> = { claude: 'sparkle', shell: 'terminal' };

export function terminalName(kind: TerminalKind, name: string): string {
  return `${LABEL[kind]} · ${name}`;
}

/**
 * Opens (or shows the open) terminal for each sandbox. One: in the panel. Several: in the
 * editor area, one column each, side by side (the CLI's tmux panes, VS Code style).
 */
export function openTerminals(binary: string, kind: TerminalKind, names: string[]): vscode.Terminal[] {
  const many = names.length > 1;
  return names.map((name, i) => {
    const title = terminalName(kind, name);
    const open = vscode.window.terminals.find((t) => t.name === title && t.exitStatus === undefined);
    if (open) {
      try {
        open.show(many);
        return open;
      } catch {
        // Disposed a moment ago and not yet out of window.terminals: open a new one.
      }
    }
    const t = vscode.window.createTerminal({
      name: title,
      shellPath: binary,
      shellArgs: [kind, name],
      iconPath: new vscode.ThemeIcon(ICON[kind]),
      color: new vscode.ThemeColor(kind === 'claude' ? 'terminal.ansiMagenta' : 'terminal.ansiCyan'),
      location: many ? { viewColumn: (vscode.ViewColumn.One + i) as vscode.ViewColumn, preserveFocus: i > 0 } : vscode.TerminalLocation.Panel,
    });
    if (!many) t.show();
    return t;
  });
}
