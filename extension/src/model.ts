// What the extension knows about sandboxes, without VS Code: a full list after each (re)start of
// the sidecar, then only `sandbox/changed` notifications. Pure, so the unit tests run it as is.
import type { Changed, Sandbox, SandboxState } from './protocol.generated';

export function isRunning(state: SandboxState): boolean {
  switch (state) {
    case 'running': return true;
    case 'stopped': case 'frozen': case 'error': case 'starting': case 'stopping': case 'unknown': return false;
  }
}

export class SandboxSet {
  private readonly sandboxes = new Map<string, Sandbox>();
  /** Sequence number of the last notification per name: a list fetched before it is older. */
  private readonly changedAt = new Map<string, number>();
  private seq = 0;

  all(): Sandbox[] {
    return [...this.sandboxes.values()].sort((a, b) => a.name.localeCompare(b.name));
  }
  get(name: string): Sandbox | undefined { return this.sandboxes.get(name); }
  /** This user's sandboxes (reachable ones) that run. */
  running(): number { return this.all().filter((s) => s.reachable && isRunning(s.state)).length; }
  /** This user's sandboxes. */
  mine(): number { return this.all().filter((s) => s.reachable).length; }
  /** Sandboxes other users made (not reachable from here until adopted). */
  others(): number { return this.all().filter((s) => !s.reachable).length; }

  /** Marks the start of a list request; pass the mark to `reset`. */
  mark(): number { return this.seq; }

  /** Replaces everything with a list, except names that changed since `mark` (newer news). */
  reset(list: Sandbox[], mark: number): void {
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
  }

  /** A `sandbox/changed` notification (sandbox null: it is gone). */
  apply(c: Changed): void {
    this.changedAt.set(c.name, ++this.seq);
    if (!c.sandbox) {
      this.sandboxes.delete(c.name);
      return;
    }
    const old = this.sandboxes.get(c.name);
    // Notifications carry no health probe: keep the last one while the state is unchanged.
    const health = c.sandbox.health ?? (old?.state === c.sandbox.state ? old.health : null);
    this.sandboxes.set(c.name, { ...c.sandbox, health });
  }

  clear(): void { this.sandboxes.clear(); }
}
