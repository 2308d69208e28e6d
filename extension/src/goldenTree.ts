// The Golden Images view: every stack, built or not (and stale when its script changed since),
// with the prepared images made from it (a repository's dependencies installed) as children.
import * as vscode from 'vscode';
import { goldenView, preparedView } from './goldenModel';
import type { Store } from './store';

export type GoldenNode = { kind: 'golden'; stack: string } | { kind: 'prepared'; image: string };

export class GoldenTree implements vscode.TreeDataProvider<GoldenNode>, vscode.Disposable {
  private readonly emitter = new vscode.EventEmitter<undefined>();
  readonly onDidChangeTreeData = this.emitter.event;
  private readonly sub: vscode.Disposable;

  constructor(private readonly store: Store) {
    this.sub = store.onDidChange(() => this.emitter.fire(undefined));
  }

  getChildren(node?: GoldenNode): GoldenNode[] {
    if (!node) return (this.store.goldenImages() ?? []).map((g) => ({ kind: 'golden', stack: g.stack }));
    if (node.kind !== 'golden') return [];
    return this.store.preparedImages().filter((p) => p.stack === node.stack).map((p) => ({ kind: 'prepared', image: p.name }));
  }

  getTreeItem(node: GoldenNode): vscode.TreeItem {
    if (node.kind === 'prepared') return this.preparedItem(node.image);
    const g = this.store.goldenImages()?.find((x) => x.stack === node.stack);
    const hasPrepared = this.store.preparedImages().some((p) => p.stack === node.stack);
    const item = new vscode.TreeItem(node.stack, hasPrepared ? vscode.TreeItemCollapsibleState.Expanded : vscode.TreeItemCollapsibleState.None);
    item.id = `golden:${node.stack}`;
    if (!g) return item;
    const v = goldenView(g);
    item.description = v.description;
    item.iconPath = new vscode.ThemeIcon(v.icon, new vscode.ThemeColor(v.color));
    item.contextValue = v.contextValue;
    item.tooltip = new vscode.MarkdownString(v.tooltip);
    return item;
  }

  private preparedItem(image: string): vscode.TreeItem {
    const p = this.store.preparedImages().find((x) => x.name === image);
    const item = new vscode.TreeItem(image, vscode.TreeItemCollapsibleState.None);
    item.id = `prepared:${image}`;
    if (!p) return item;
    const v = preparedView(p, Date.now());
    item.label = v.label;
    item.description = v.description;
    item.iconPath = new vscode.ThemeIcon(v.icon, new vscode.ThemeColor(v.color));
    item.contextValue = v.contextValue;
    item.tooltip = new vscode.MarkdownString(v.tooltip);
    return item;
  }

  dispose() {
    this.sub.dispose();
    this.emitter.dispose();
  }
}
