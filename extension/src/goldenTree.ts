// The Golden Images view: every stack, built or not (and stale when its script changed since).
import * as vscode from 'vscode';
import { goldenView } from './goldenModel';
import type { Store } from './store';

export type GoldenNode = { kind: 'golden'; stack: string };

export class GoldenTree implements vscode.TreeDataProvider<GoldenNode>, vscode.Disposable {
  private readonly emitter = new vscode.EventEmitter<undefined>();
  readonly onDidChangeTreeData = this.emitter.event;
  private readonly sub: vscode.Disposable;

  constructor(private readonly store: Store) {
    this.sub = store.onDidChange(() => this.emitter.fire(undefined));
  }

  getChildren(node?: GoldenNode): GoldenNode[] {
    if (node) return [];
    return (this.store.goldenImages() ?? []).map((g) => ({ kind: 'golden', stack: g.stack }));
  }

  getTreeItem(node: GoldenNode): vscode.TreeItem {
    const g = this.store.goldenImages()?.find((x) => x.stack === node.stack);
    const item = new vscode.TreeItem(node.stack, vscode.TreeItemCollapsibleState.None);
    item.id = `golden:${node.stack}`;
    if (!g) return item;
    const v = goldenView(g);
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
