// Which agent needs me: the view's badge and a status bar item count the sandboxes whose Claude
// waits for the user (a click reveals the first), and a notification "NAME is waiting: …" /
// "NAME finished: …" with Open Claude appears when an agent gets there while its Claude terminal
// is not the active one — once per event (setting agentSandboxes.notifications.agents). All of
// it from the store, i.e. from `sandbox/changed`: nothing polls.
import * as vscode from 'vscode';
import { noticeFor, waiting, waitingText, type AgentNotice } from './agentState';
import type { Agent } from './protocol.generated';
import type { Store } from './store';
import { terminalName } from './terminals';
import type { Node } from './tree';
import { ui } from './ui';

export const OPEN_CLAUDE = 'Open Claude';

export class AgentWatch implements vscode.Disposable {
  readonly item = vscode.window.createStatusBarItem('agentSandboxes.waiting', vscode.StatusBarAlignment.Left, 49);
  /** The last agent seen per sandbox (kept across sidecar restarts: a re-list is no news). */
  private readonly last = new Map<string, Agent>();
  private readonly announced = new Set<string>();
  /** Every notice shown, oldest first (the extension's own tests read it). */
  readonly shown: AgentNotice[] = [];
  private readonly sub: vscode.Disposable;

  constructor(private readonly store: Store, private readonly view: vscode.TreeView<Node>, private readonly openClaude: (name: string) => unknown) {
    this.item.name = 'Agent Sandboxes: waiting agents';
    this.item.command = 'agentSandboxes.revealWaiting';
    this.item.backgroundColor = new vscode.ThemeColor('statusBarItem.warningBackground');
    this.sub = store.onDidChange(() => this.update());
    this.update();
  }

  private update() {
    const all = this.store.all();
    const w = waiting(all);
    this.view.badge = w.length > 0 ? { value: w.length, tooltip: `${waitingText(w.length)} for you: ${w.map((s) => s.name).join(', ')}` } : undefined;
    if (w.length > 0) {
      this.item.text = `$(bell-dot) ${waitingText(w.length)}`;
      this.item.tooltip = `Claude waits for you in ${w.map((s) => s.name).join(', ')} — click to reveal ${w[0].name}`;
      this.item.show();
    } else {
      this.item.hide();
    }
    for (const s of all) {
      const before = this.last.get(s.name);
      this.last.set(s.name, s.agent);
      // First sight (the list after a start): what happened before is not announced.
      const n = before ? noticeFor(s.name, before, s.agent) : undefined;
      if (!n || this.announced.has(n.key)) continue;
      this.announced.add(n.key);
      if (enabled() && vscode.window.activeTerminal?.name !== terminalName('claude', s.name)) void this.announce(n);
    }
  }

  private async announce(n: AgentNotice) {
    this.shown.push(n);
    const a = await ui().ask('info', n.text, {}, OPEN_CLAUDE);
    if (a === OPEN_CLAUDE) this.openClaude(n.name);
  }

  /** Reveals (selects) the first sandbox that waits for the user. */
  async revealFirst(): Promise<string | undefined> {
    const [first] = waiting(this.store.all());
    if (!first) return undefined;
    await this.view.reveal({ kind: 'sandbox', name: first.name }, { select: true, focus: true });
    return first.name;
  }

  dispose() {
    this.sub.dispose();
    this.item.dispose();
  }
}

function enabled(): boolean {
  return vscode.workspace.getConfiguration('agentSandboxes').get<boolean>('notifications.agents', true);
}
