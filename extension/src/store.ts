// The extension's state for the views: the sandboxes (model.ts), the golden images and the
// sidecar's server status, with change events and the `when` contexts the welcome views use.
import * as vscode from 'vscode';
import { goldenContext } from './goldenModel';
import { SandboxSet } from './model';
import type { Changed, GoldenInfo, PreparedInfo, Sandbox, ServerStatus } from './protocol.generated';

export class Store implements vscode.Disposable {
  private readonly set = new SandboxSet();
  private golden: GoldenInfo[] | undefined;
  private prepared: PreparedInfo[] = [];
  private serverStatus: ServerStatus | undefined;
  private readonly emitter = new vscode.EventEmitter<void>();
  readonly onDidChange = this.emitter.event;

  all(): Sandbox[] { return this.set.all(); }
  get(name: string): Sandbox | undefined { return this.set.get(name); }
  running(): number { return this.set.running(); }
  mine(): number { return this.set.mine(); }
  others(): number { return this.set.others(); }
  goldenImages(): GoldenInfo[] | undefined { return this.golden; }
  /** Prepared images (a repository's dependencies installed), shown under their stack. */
  preparedImages(): PreparedInfo[] { return this.prepared; }
  status(): ServerStatus | undefined { return this.serverStatus; }

  mark(): number { return this.set.mark(); }
  reset(list: Sandbox[], mark: number) { this.set.reset(list, mark); this.fire(); }
  apply(c: Changed) { this.set.apply(c); this.fire(); }
  setGolden(g: GoldenInfo[] | undefined) { this.golden = g; this.fire(); }
  setPrepared(p: PreparedInfo[]) { this.prepared = p; this.fire(); }
  setStatus(s: ServerStatus | undefined) { this.serverStatus = s; this.fire(); }

  clear() {
    this.set.clear();
    this.golden = undefined;
    this.prepared = [];
    this.serverStatus = undefined;
    this.fire();
  }

  private fire() {
    void vscode.commands.executeCommand('setContext', 'agentSandboxes.golden', goldenContext(this.golden, this.serverStatus));
    // The welcome view follows why Incus does not answer, or is not set up (IncusState).
    void vscode.commands.executeCommand('setContext', 'agentSandboxes.incus', this.serverStatus?.incus ?? 'unknown');
    // The walkthrough's "Create a sandbox" step is done once one exists, not when the wizard opens.
    void vscode.commands.executeCommand('setContext', 'agentSandboxes.hasSandbox', this.set.mine() > 0);
    this.emitter.fire();
  }

  dispose() { this.emitter.dispose(); }
}
