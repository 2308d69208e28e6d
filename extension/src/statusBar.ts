// "$(vm) N running" plus the sidecar's health, with command links in the tooltip (as
// rust-analyzer's status item does).
import * as vscode from 'vscode';
import type { Sidecar } from './client';
import type { Store } from './store';

export class StatusBar implements vscode.Disposable {
  readonly item = vscode.window.createStatusBarItem('agentSandboxes.status', vscode.StatusBarAlignment.Left, 50);
  private readonly subs: vscode.Disposable[];

  constructor(private readonly sidecar: Sidecar, private readonly store: Store) {
    this.item.name = 'Agent Sandboxes';
    this.subs = [sidecar.onDidChangeState(() => this.render()), store.onDidChange(() => this.render())];
    this.render();
    this.item.show();
  }

  /** Inside a sandbox window: only say where we are. */
  showInSandbox(name: string) {
    this.item.text = `$(vm) in sandbox ${name}`;
    this.item.tooltip = `This window is inside sandbox ${name}. Sandboxes are managed from the host's window.`;
    this.item.command = undefined;
    this.item.backgroundColor = undefined;
  }

  render() {
    const state = this.sidecar.state;
    const n = this.store.running();
    const md = new vscode.MarkdownString(undefined, true);
    md.isTrusted = { enabledCommands: ['agentSandboxes.showLogs', 'agentSandboxes.restartSidecar', 'agentSandboxes.create', 'agentSandboxes.doctor', 'workbench.view.extension.agentSandboxes'] };
    this.item.backgroundColor = undefined;
    this.item.command = 'workbench.view.extension.agentSandboxes';
    switch (state) {
      case 'ready':
        this.item.text = `$(vm) ${n} running`;
        md.appendMarkdown(`**Agent Sandboxes** — sidecar ready (${this.sidecar.binary?.version ?? '?'})\n\n`);
        md.appendMarkdown(`${n} of ${this.store.all().length} sandboxes running\n\n`);
        break;
      case 'starting':
        this.item.text = '$(loading~spin) Sandboxes';
        md.appendMarkdown('**Agent Sandboxes** — starting the sidecar…\n\n');
        break;
      default:
        this.item.text = '$(error) Sandboxes';
        this.item.backgroundColor = new vscode.ThemeColor('statusBarItem.errorBackground');
        this.item.command = 'agentSandboxes.showLogs';
        md.appendMarkdown(`**Agent Sandboxes** — sidecar ${state}: ${this.sidecar.error ?? 'not running'}\n\n`);
    }
    md.appendMarkdown('[$(add) Create](command:agentSandboxes.create) · [$(output) Show Logs](command:agentSandboxes.showLogs) · ');
    md.appendMarkdown('[$(debug-restart) Restart Sidecar](command:agentSandboxes.restartSidecar) · [$(pulse) Doctor](command:agentSandboxes.doctor)');
    this.item.tooltip = md;
  }

  dispose() {
    this.subs.forEach((s) => s.dispose());
    this.item.dispose();
  }
}
