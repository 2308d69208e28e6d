// Activation: views, status bar and commands are registered at once; the sidecar starts in the
// background (activation does not wait for it), and "Restart Sidecar" is the same start again
// (the typos-lsp style). Inside a sandbox's own window nothing manages Incus.
import * as vscode from 'vscode';
import { AgentWatch } from './agents';
import { SandboxError, Sidecar } from './client';
import { registerCommands, type Ctx } from './commands';
import { registerReviewCommands, type Review } from './reviewCommands';
import { SIDECAR_SETTINGS } from './config';
import { Denials } from './denials';
import { configureErrors, reportError } from './errors';
import { GoldenTree } from './goldenTree';
import { sandboxOfThisWindow } from './remoteSsh';
import { StatusBar } from './statusBar';
import { Store } from './store';
import { SandboxTree, type Node } from './tree';
import { closeTerminalsOf } from './terminals';
import { setUi } from './ui';

/** What the extension returns from activate(): used by its own test suite. */
export interface Api {
  sidecar: Sidecar;
  store: Store;
  denials: Denials;
  tree: SandboxTree;
  golden: GoldenTree;
  view: vscode.TreeView<Node>;
  status: StatusBar;
  /** Agents waiting for the user: badge, status item, notifications. */
  agents: AgentWatch | undefined;
  /** Milliseconds from loading the bundle to the end of activate(). */
  activationMs: number;
  /** The part of it before activate() was called (loading the bundle, VS Code's own setup). */
  loadMs: number;
  /** The sidecar's state when activate() returned: activation does not wait for it. */
  sidecarAtActivation: string;
  /** Serves both sides of Review Changes (absent in a sandbox's own window). */
  review: Review | undefined;
  /** In a sandbox's own window: its name. */
  inSandbox: string | undefined;
  /** The file the log (the Agent Sandboxes output channel) is written to. */
  logFile: string;
  /** Resolves once the sidecar answered and the first lists arrived. */
  whenLoaded(): Promise<void>;
  setUi: typeof setUi;
}

declare global {
  // Set by the bundle's first line (scripts/build-extension.mjs).
  var __agentSandboxesLoadStart: number | undefined;
}

let sidecar: Sidecar | undefined;

export function activate(context: vscode.ExtensionContext): Api {
  const tActivate = performance.now();
  const t0 = globalThis.__agentSandboxesLoadStart ?? tActivate;
  const log = vscode.window.createOutputChannel('Agent Sandboxes', { log: true });
  const store = new Store();
  sidecar = new Sidecar(context.extensionUri, log);
  const denials = new Denials(sidecar);
  const tree = new SandboxTree(store, denials);
  const golden = new GoldenTree(store);
  const view = vscode.window.createTreeView('agentSandboxes.sandboxes', { treeDataProvider: tree, canSelectMany: true, showCollapseAll: true });
  const status = new StatusBar(sidecar, store);
  context.subscriptions.push(log, store, denials, sidecar, tree, golden, view, status,
    vscode.window.registerTreeDataProvider('agentSandboxes.goldenImages', golden));

  const inSandbox = sandboxOfThisWindow();
  let loaded: Promise<void>;
  let agents: AgentWatch | undefined;
  let review: Review | undefined;
  if (inSandbox) {
    void vscode.commands.executeCommand('setContext', 'agentSandboxes.sidecar', 'inSandbox');
    view.message = `In sandbox ${inSandbox}: sandboxes are managed from the window on the host.`;
    status.showInSandbox(inSandbox);
    // The commands exist (menus and keybindings name them) but only say where to go.
    const ids: string[] = (context.extension.packageJSON.contributes?.commands ?? []).map((c: { command: string }) => c.command);
    for (const id of ids) {
      context.subscriptions.push(vscode.commands.registerCommand(id, () =>
        vscode.window.showInformationMessage(`This window is inside sandbox ${inSandbox}: manage sandboxes from the window on the host.`)));
    }
    loaded = Promise.resolve();
  } else {
    ({ loaded, agents, review } = manage(context, sidecar, store, denials, view, log));
  }

  const activationMs = performance.now() - t0;
  const loadMs = tActivate - t0;
  log.info(`activated in ${activationMs.toFixed(1)} ms (${loadMs.toFixed(1)} ms of it before activate() was called)${inSandbox ? ` in sandbox ${inSandbox}` : ''}`);
  // VS Code writes an extension's log channel to LOGS/EXTENSION-ID/NAME.log: context.logUri/NAME.log.
  const logFile = vscode.Uri.joinPath(context.logUri, 'Agent Sandboxes.log').fsPath;
  return { sidecar, store, denials, tree, golden, view, status, agents, review, activationMs, loadMs, sidecarAtActivation: sidecar.state, inSandbox, logFile, whenLoaded: () => loaded, setUi };
}

/**
 * Manages sandboxes from this window: commands, the sidecar's pushes into the store, reloads
 * after each (re)start, the agents waiting for the user; starts the sidecar. `loaded` resolves
 * once the first lists arrived; `review` serves the sides of Review Changes.
 */
function manage(context: vscode.ExtensionContext, s: Sidecar, store: Store, denials: Denials, view: vscode.TreeView<Node>, log: vscode.LogOutputChannel): { loaded: Promise<void>; agents: AgentWatch; review: Review } {
  const list = async () => {
    const mark = store.mark();
    const [all, images, prepared] = await Promise.all([s.request('sandbox/list', { health: false }), s.request('sandbox/goldenImages', {}),
      // Prepared images are extras: the views work without them.
      s.request('sandbox/preparedImages', {}).catch((e) => { log.warn(`prepared images not listed: ${e instanceof Error ? e.message : String(e)}`); return []; })]);
    store.setGolden(images);
    store.setPrepared(prepared);
    store.reset(all, mark);
    // Health probes run a command in each sandbox: fill them in once they are back.
    const mark2 = store.mark();
    store.reset(await s.request('sandbox/list', {}), mark2);
  };
  // The one full listing per sidecar start; a failure (Incus busy mid-change) is retried a
  // few times before it is reported, since until it succeeds the tree misses sandboxes.
  const reload = async () => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await list();
      } catch (e) {
        log.error(`listing sandboxes (attempt ${attempt}): ${e instanceof Error ? e.message : String(e)}`);
        // Incus not answering is what the welcome view and the status bar explain: no toast.
        if (e instanceof SandboxError && e.code === 'incus_unavailable') return;
        if (attempt >= 4 || s.state !== 'ready') return reportError('Listing sandboxes', e);
        await new Promise((r) => setTimeout(r, 500 * 2 ** attempt));
      }
    }
  };
  let resolveLoaded: () => void = () => undefined;
  const loaded = new Promise<void>((r) => { resolveLoaded = r; });
  const agents = new AgentWatch(store, view, (name) => vscode.commands.executeCommand('agentSandboxes.openClaude', name));
  context.subscriptions.push(agents);
  const ctx: Ctx = { context, sidecar: s, store, view, reload, revealWaiting: () => agents.revealFirst() };
  configureErrors(log, () => (store.status()?.remote ?? 'local') === 'local');
  registerCommands(ctx);
  const review = registerReviewCommands(ctx, (m) => log.warn(m));
  context.subscriptions.push(
    s.onDidChangeSandbox((c) => {
      store.apply(c);
      // Destroyed: its terminals' connections would hang until typed in.
      if (!c.sandbox && closeTerminalsOf(c.name) > 0) log.info(`closed the terminals of ${c.name} (destroyed)`);
    }),
    ...denials.watch(),
    vscode.window.onDidCloseTerminal((t) => {
      const code = t.exitStatus?.code;
      if (/^(Claude|Shell) · /.test(t.name) && code !== undefined && code !== 0) log.warn(`terminal "${t.name}" ended with exit code ${code}`);
    }),
    s.onDidChangeStatus((st) => {
      const before = store.status();
      store.setStatus(st);
      // Incus back, or golden images built or removed: the lists are read again.
      const changed = before !== undefined && st.incusReachable
        && (!before.incusReachable || before.goldenBuilt.join(' ') !== st.goldenBuilt.join(' '));
      if (changed) void reload();
    }),
    s.onDidBecomeReady(() => void reload().then(resolveLoaded)),
    s.onDidChangeState((st) => { if (st !== 'ready') store.clear(); }),
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (SIDECAR_SETTINGS.some((k) => e.affectsConfiguration(k))) void s.restart();
    }),
  );
  void s.start();
  return { loaded, agents, review };
}

export async function deactivate(): Promise<void> {
  await sidecar?.dispose();
}
