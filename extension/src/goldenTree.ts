// The Golden Images view: every stack, built or not (and stale when its script changed since).
import * as vscode from 'vscode';
import type { GoldenInfo } from './protocol.generated';
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
    item.description = status(g);
    item.iconPath = g.built
      ? new vscode.ThemeIcon(g.stale ? 'warning' : 'package', new vscode.ThemeColor(g.stale ? 'charts.yellow' : 'charts.green'))
      : new vscode.ThemeIcon('circle-large-outline', new vscode.ThemeColor('disabledForeground'));
    item.contextValue = `golden.${g.built ? 'built' : 'missing'}`;
    const md = new vscode.MarkdownString(`**${g.stack}** — ${g.description || 'no description'}\n\n`);
    md.appendMarkdown(`- image: \`${g.instance}\`\n- ${status(g)}\n`);
    if (g.builtAt) md.appendMarkdown(`- built at: ${g.builtAt}\n`);
    if (g.baseImage) md.appendMarkdown(`- base image: \`${g.baseImage}\`\n`);
    item.tooltip = md;
    return item;
  }

  dispose() {
    this.sub.dispose();
    this.emitter.dispose();
  }
}

function status(g: GoldenInfo): string {
  if (!g.built) return 'not built';
  if (g.stale) return 'built · script changed since: rebuild';
  return g.managed ? 'built' : 'built (by the seed scripts)';
}
