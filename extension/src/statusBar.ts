// The status bar item: statusView.ts decides what it says; this keeps it current.
import * as vscode from 'vscode';
import type { Sidecar } from './client';
import { statusView } from './statusView';
import type { Store } from './store';
import { total } from './usage';

const ENABLED = ['agentSandboxes.setUpMachine', 'agentSandboxes.showLogs', 'agentSandboxes.restartSidecar', 'agentSandboxes.create', 'agentSandboxes.doctor', 'agentSandboxes.setup', 'workbench.view.extension.agentSandboxes'];

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
    const v = statusView({
      sidecar: this.sidecar.state,
      sidecarError: this.sidecar.error,
      version: this.sidecar.binary?.version,
      status: this.store.status(),
      running: this.store.running(),
      total: this.store.mine(),
      others: this.store.others(),
      tokens: total(this.store.all()),
    });
    const md = new vscode.MarkdownString(v.tooltip, true);
    md.isTrusted = { enabledCommands: ENABLED };
    this.item.text = v.text;
    this.item.tooltip = md;
    this.item.command = v.command;
    this.item.backgroundColor = v.background && new vscode.ThemeColor(`statusBarItem.${v.background}Background`);
  }

  dispose() {
    this.subs.forEach((s) => s.dispose());
    this.item.dispose();
  }
}
