// The Sandboxes view: one item per sandbox with its ports, health, recent egress refusals and
// snapshots as children; what each item shows comes from treeModel.ts.
import * as vscode from 'vscode';
import type { Denials } from './denials';
import type { Denial, PortForward, SnapshotInfo } from './protocol.generated';
import { snapshotsNewestFirst, snapshotView } from './snapshotModel';
import type { Store } from './store';
import { changesView, denialView, groupByMember, healthIcon, healthViews, memberView, portView, pullRequestView, sandboxView, type Icon, type SandboxView } from './treeModel';

export { isHttp, portUrl } from './treeModel';

export type Node =
  | { kind: 'member'; member: string }
  | { kind: 'sandbox'; name: string }
  | { kind: 'port'; name: string; port: PortForward }
  | { kind: 'health'; name: string; label: string; ok: boolean | undefined; detail: string; fix?: string }
  | { kind: 'denial'; name: string; denial: Denial }
  | { kind: 'snapshot'; name: string; snapshot: SnapshotInfo }
  | { kind: 'changes'; name: string }
  | { kind: 'pullRequest'; name: string };

function themeIcon(i: Icon): vscode.ThemeIcon {
  return new vscode.ThemeIcon(i.id, i.color ? new vscode.ThemeColor(i.color) : undefined);
}

export class SandboxTree implements vscode.TreeDataProvider<Node>, vscode.Disposable {
  private readonly emitter = new vscode.EventEmitter<Node | undefined>();
  readonly onDidChangeTreeData = this.emitter.event;
  private readonly subs: vscode.Disposable[];

  constructor(private readonly store: Store, private readonly denials: Denials) {
    this.subs = [store.onDidChange(() => this.emitter.fire(undefined)), denials.onDidChange(() => this.emitter.fire(undefined))];
  }

  getChildren(node?: Node): Node[] {
    // A cluster: one group per member, its sandboxes under it.
    const groups = groupByMember(this.store.all());
    if (!node && groups) return groups.map((g) => ({ kind: 'member', member: g.member }));
    if (!node) return this.store.all().map((s) => ({ kind: 'sandbox', name: s.name }));
    if (node.kind === 'member') {
      return (groups?.find((g) => g.member === node.member)?.names ?? []).map((name) => ({ kind: 'sandbox', name }));
    }
    if (node.kind !== 'sandbox') return [];
    const s = this.store.get(node.name);
    if (!s) return [];
    const kids: Node[] = [];
    if (changesView(s)) kids.push({ kind: 'changes', name: s.name });
    if (pullRequestView(s)) kids.push({ kind: 'pullRequest', name: s.name });
    kids.push(...s.ports.map((port): Node => ({ kind: 'port', name: s.name, port })));
    for (const h of s.health ? healthViews(s.health) : []) kids.push({ kind: 'health', name: s.name, ...h });
    for (const denial of this.denials.of(s.name)) kids.push({ kind: 'denial', name: s.name, denial });
    for (const snapshot of snapshotsNewestFirst(s.snapshots)) kids.push({ kind: 'snapshot', name: s.name, snapshot });
    return kids;
  }

  getTreeItem(node: Node): vscode.TreeItem {
    switch (node.kind) {
      case 'member': {
        const g = groupByMember(this.store.all())?.find((x) => x.member === node.member);
        const item = new vscode.TreeItem(node.member, vscode.TreeItemCollapsibleState.Expanded);
        item.id = `member:${node.member}`;
        item.contextValue = 'member';
        if (g) {
          const v = memberView(g);
          item.description = v.description;
          item.iconPath = themeIcon(v.icon);
          item.tooltip = v.tooltip;
        }
        return item;
      }
      case 'sandbox': {
        const s = this.store.get(node.name);
        const item = new vscode.TreeItem(node.name, vscode.TreeItemCollapsibleState.Collapsed);
        item.id = `sandbox:${node.name}`;
        if (s) {
          const v = sandboxView(s);
          item.description = v.description;
          item.tooltip = new vscode.MarkdownString(v.tooltip, true);
          item.iconPath = themeIcon(v.icon);
          item.contextValue = v.contextValue;
        }
        return item;
      }
      case 'port': {
        const p = node.port;
        const v = portView(p, this.store.get(node.name)?.health?.listening);
        const item = new vscode.TreeItem(v.label, vscode.TreeItemCollapsibleState.None);
        item.id = `port:${node.name}:${p.device}:${p.hostPort}/${p.proto}`;
        item.description = v.description;
        item.iconPath = themeIcon(v.icon);
        item.contextValue = v.contextValue;
        item.tooltip = v.tooltip;
        if (v.url) item.command = { command: 'agentSandboxes.openPort', title: 'Open in Browser', arguments: [node] };
        return item;
      }
      case 'health': {
        const item = new vscode.TreeItem(node.label, vscode.TreeItemCollapsibleState.None);
        item.id = `health:${node.name}:${node.label}`;
        item.description = node.detail;
        item.contextValue = 'health';
        item.iconPath = themeIcon(healthIcon(node.ok));
        if (node.fix) item.command = { command: node.fix, title: node.detail };
        return item;
      }
      case 'changes': case 'pullRequest': {
        const s = this.store.get(node.name);
        const v = s && (node.kind === 'changes' ? changesView(s) : pullRequestView(s));
        return v ? this.child(node, v) : new vscode.TreeItem(node.kind);
      }
      case 'denial': {
        const v = denialView(node.name, node.denial, (t) => new Date(t * 1000).toLocaleTimeString());
        const item = new vscode.TreeItem(v.label, vscode.TreeItemCollapsibleState.None);
        item.id = `denial:${node.name}:${node.denial.domain}`;
        item.description = v.description;
        item.contextValue = v.contextValue;
        item.iconPath = themeIcon(v.icon);
        item.tooltip = v.tooltip;
        return item;
      }
      case 'snapshot': {
        const v = snapshotView(node.name, node.snapshot, (t) => new Date(t).toLocaleString());
        const item = new vscode.TreeItem(v.label, vscode.TreeItemCollapsibleState.None);
        item.id = `snapshot:${node.name}:${node.snapshot.label}`;
        item.description = v.description;
        item.contextValue = v.contextValue;
        item.iconPath = themeIcon(v.icon);
        item.tooltip = new vscode.MarkdownString(v.tooltip);
        return item;
      }
    }
  }

  private child(node: Node & { kind: 'changes' | 'pullRequest' }, v: SandboxView): vscode.TreeItem {
    const item = new vscode.TreeItem(v.label, vscode.TreeItemCollapsibleState.None);
    item.id = `${node.kind}:${node.name}`;
    item.description = v.description;
    item.contextValue = v.contextValue;
    item.iconPath = themeIcon(v.icon);
    item.tooltip = v.tooltip;
    const command = node.kind === 'changes' ? 'agentSandboxes.reviewChanges' : 'agentSandboxes.openPullRequest';
    item.command = { command, title: v.label, arguments: [node] };
    return item;
  }

  getParent(node: Node): Node | undefined {
    switch (node.kind) {
      case 'member': return undefined;
      case 'sandbox': {
        const member = groupByMember(this.store.all()) && this.store.get(node.name)?.location;
        return member ? { kind: 'member', member } : undefined;
      }
      case 'port': case 'health': case 'denial': case 'changes': case 'pullRequest': case 'snapshot':
        return { kind: 'sandbox', name: node.name };
    }
  }

  dispose() {
    for (const s of this.subs) s.dispose();
    this.emitter.dispose();
  }
}
