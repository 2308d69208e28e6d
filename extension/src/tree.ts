// The Sandboxes view: one item per sandbox (state icon, stack · branch · slot, a markdown
// tooltip), with its ports and health as children. `contextValue` drives the menus in
// package.json: `sandbox.<state>`, `port.<http|other>.<role>`, `health`.
import * as vscode from 'vscode';
import type { PortForward, Sandbox } from './protocol.generated';
import type { Store } from './store';

export type Node =
  | { kind: 'sandbox'; name: string }
  | { kind: 'port'; name: string; port: PortForward }
  | { kind: 'health'; name: string; label: string; ok: boolean | undefined; detail: string };

const STATE_ICON: Record<string, [string, string]> = {
  running: ['vm-running', 'charts.green'],
  stopped: ['vm-outline', 'disabledForeground'],
  frozen: ['debug-pause', 'charts.yellow'],
  error: ['vm', 'errorForeground'],
};

export function stateIcon(state: string): vscode.ThemeIcon {
  const [icon, color] = STATE_ICON[state] ?? ['vm', 'charts.yellow'];
  return new vscode.ThemeIcon(icon, new vscode.ThemeColor(color));
}

/** Ports a browser can open: everything TCP except SSH. */
export function isHttp(p: PortForward): boolean {
  return p.role !== 'ssh' && p.proto === 'tcp';
}

export function portUrl(p: PortForward): string {
  return `http://127.0.0.1:${p.hostPort}/`;
}

export function description(s: Sandbox): string {
  return [s.stack ?? 'unknown stack', s.branch ?? 'no branch', s.slot !== null ? `slot ${s.slot}` : 'no slot'].join(' · ');
}

export function tooltip(s: Sandbox): vscode.MarkdownString {
  const md = new vscode.MarkdownString(undefined, true);
  md.appendMarkdown(`**${s.name}** — $(${stateIcon(s.state).id}) ${s.state}${s.managed ? '' : ' (made by the seed scripts)'}\n\n`);
  const row = (k: string, v: string | null | undefined) => { if (v) md.appendMarkdown(`- ${k}: \`${v}\`\n`); };
  row('stack', s.stack);
  row('repository', s.repo);
  row('branch', s.branch);
  row('IP', s.ip);
  row('egress', s.egress === 'filtered' ? 'filtered (allowlist)' : 'open');
  row('limits', [s.cpu && `${s.cpu} CPU`, s.memory].filter(Boolean).join(', ') || null);
  if (s.ports.length > 0) {
    md.appendMarkdown('\n| port | host | in sandbox |\n|---|---|---|\n');
    for (const p of s.ports) md.appendMarkdown(`| ${p.role} | 127.0.0.1:${p.hostPort}/${p.proto} | ${p.containerPort} |\n`);
  }
  if (s.health) {
    md.appendMarkdown(`\nhealth: docker ${s.health.docker} · ssh-agent ${s.health.sshAgent ? 'yes' : 'no'} · Claude ${s.health.claudeAuth ? 'signed in' : 'not signed in'}\n`);
  }
  return md;
}

export class SandboxTree implements vscode.TreeDataProvider<Node>, vscode.Disposable {
  private readonly emitter = new vscode.EventEmitter<Node | undefined>();
  readonly onDidChangeTreeData = this.emitter.event;
  private readonly sub: vscode.Disposable;

  constructor(private readonly store: Store) {
    this.sub = store.onDidChange(() => this.emitter.fire(undefined));
  }

  getChildren(node?: Node): Node[] {
    if (!node) return this.store.all().map((s) => ({ kind: 'sandbox', name: s.name }));
    if (node.kind !== 'sandbox') return [];
    const s = this.store.get(node.name);
    if (!s) return [];
    const kids: Node[] = s.ports.map((port) => ({ kind: 'port', name: s.name, port }));
    if (s.health) {
      const h = s.health;
      kids.push(
        { kind: 'health', name: s.name, label: 'docker', ok: h.docker === 'active' ? true : h.docker === 'failed' ? false : undefined, detail: h.docker },
        { kind: 'health', name: s.name, label: 'ssh-agent', ok: h.sshAgent, detail: h.sshAgent ? 'forwarded' : 'none' },
        { kind: 'health', name: s.name, label: 'Claude', ok: h.claudeAuth, detail: h.claudeAuth ? 'signed in' : 'not signed in' },
      );
    }
    return kids;
  }

  getTreeItem(node: Node): vscode.TreeItem {
    if (node.kind === 'sandbox') {
      const s = this.store.get(node.name);
      const item = new vscode.TreeItem(node.name, vscode.TreeItemCollapsibleState.Collapsed);
      item.id = `sandbox:${node.name}`;
      if (s) {
        item.description = description(s);
        item.tooltip = tooltip(s);
        item.iconPath = stateIcon(s.state);
        item.contextValue = `sandbox.${s.state}`;
      }
      return item;
    }
    if (node.kind === 'port') {
      const p = node.port;
      const http = isHttp(p);
      const item = new vscode.TreeItem(`${p.role} ${p.containerPort}/${p.proto}`, vscode.TreeItemCollapsibleState.None);
      item.id = `port:${node.name}:${p.device}:${p.hostPort}/${p.proto}`;
      item.description = `127.0.0.1:${p.hostPort}`;
      item.iconPath = new vscode.ThemeIcon(p.role === 'ssh' ? 'terminal' : http ? 'globe' : 'plug');
      item.contextValue = `port.${http ? 'http' : 'other'}.${p.role}`;
      item.tooltip = http ? `Open ${portUrl(p)}` : `host 127.0.0.1:${p.hostPort} → sandbox port ${p.containerPort}`;
      if (http) item.command = { command: 'agentSandboxes.openPort', title: 'Open in Browser', arguments: [node] };
      return item;
    }
    const item = new vscode.TreeItem(node.label, vscode.TreeItemCollapsibleState.None);
    item.id = `health:${node.name}:${node.label}`;
    item.description = node.detail;
    item.contextValue = 'health';
    item.iconPath = node.ok === undefined ? new vscode.ThemeIcon('circle-outline')
      : new vscode.ThemeIcon(node.ok ? 'pass' : 'warning', new vscode.ThemeColor(node.ok ? 'charts.green' : 'charts.yellow'));
    return item;
  }

  getParent(node: Node): Node | undefined {
    return node.kind === 'sandbox' ? undefined : { kind: 'sandbox', name: node.name };
  }

  dispose() {
    this.sub.dispose();
    this.emitter.dispose();
  }
}
