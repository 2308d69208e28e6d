// What the extension knows about sandboxes: a full list after each (re)start of the sidecar,
// then only `sandbox/changed` notifications — no polling.
import * as vscode from 'vscode';
import type { Changed, GoldenInfo, Sandbox } from './protocol.generated';

export class Store implements vscode.Disposable {
  private readonly sandboxes = new Map<string, Sandbox>();
  /** Sequence number of the last notification per name: a list fetched before it is older. */
  private readonly changedAt = new Map<string, number>();
  private seq = 0;
  private golden: GoldenInfo[] | undefined;
  private readonly emitter = new vscode.EventEmitter<void>();
  readonly onDidChange = this.emitter.event;

  all(): Sandbox[] {
    return [...this.sandboxes.values()].sort((a, b) => a.name.localeCompare(b.name));
  }
  get(name: string): Sandbox | undefined { return this.sandboxes.get(name); }
  running(): number { return this.all().filter((s) => s.state === 'running').length; }
  goldenImages(): GoldenInfo[] | undefined { return this.golden; }
  hasGolden(): boolean { return (this.golden ?? []).some((g) => g.built); }

  /** Marks the start of a list request; pass the mark to `reset`. */
  mark(): number { return this.seq; }

  /** Replaces everything with a list, except names that changed since `mark` (newer news). */
  reset(list: Sandbox[], mark: number) {
    const fresh = new Map(list.map((s) => [s.name, s]));
    for (const [name, at] of this.changedAt) {
      if (at > mark) {
        const cur = this.sandboxes.get(name);
        if (cur) fresh.set(name, cur);
        else fresh.delete(name);
      }
    }
    this.sandboxes.clear();
    for (const [n, s] of fresh) this.sandboxes.set(n, s);
    this.fire();
  }

  /** A `sandbox/changed` notification (sandbox null: it is gone). */
  apply(c: Changed) {
    this.changedAt.set(c.name, ++this.seq);
    if (!c.sandbox) {
      this.sandboxes.delete(c.name);
    } else {
      const old = this.sandboxes.get(c.name);
      // Notifications carry no health probe: keep the last one while the state is unchanged.
      const health = c.sandbox.health ?? (old?.state === c.sandbox.state ? old.health : null);
      this.sandboxes.set(c.name, { ...c.sandbox, health });
    }
    this.fire();
  }

  setGolden(g: GoldenInfo[] | undefined) {
    this.golden = g;
    this.fire();
  }

  clear() {
    this.sandboxes.clear();
    this.golden = undefined;
    this.fire();
  }

  private fire() {
    const golden = this.golden === undefined ? 'unknown' : this.hasGolden() ? 'built' : 'none';
    void vscode.commands.executeCommand('setContext', 'agentSandboxes.golden', golden);
    this.emitter.fire();
  }

  dispose() { this.emitter.dispose(); }
}
