// "blocked: X — Allow?": what restricted sandboxes were refused (`sandbox/denied`, pushed by the
// sidecar from Squid's and the resolvers' logs). One notification per sandbox and name for the
// session, not one per request; the tree lists each sandbox's recent refusals with an Allow
// action. Allow applies live (`sandbox/allow`); "everywhere" also adds the name to
// ~/.sandbox/allowed-domains.txt.
import * as vscode from 'vscode';
import type { Sidecar } from './client';
import { reportError } from './errors';
import type { Allowlist, Denial, Denied, Sandbox } from './protocol.generated';
import type { Node } from './tree';
import { isName } from './treeModel';
import { ui } from './ui';

export const ALLOW = 'Allow for this sandbox';
export const ALLOW_EVERYWHERE = 'Allow everywhere';
export const IGNORE = 'Ignore';
/** Refusals kept per sandbox for the tree (newest first). */
const KEEP = 10;

export class Denials implements vscode.Disposable {
  private readonly recent = new Map<string, Denial[]>();
  private readonly notified = new Set<string>();
  /** When a name was allowed (a late notification of an older refusal must not bring it back). */
  private readonly allowedAt = new Map<string, number>();
  private readonly emitter = new vscode.EventEmitter<void>();
  readonly onDidChange = this.emitter.event;

  constructor(private readonly sidecar: Sidecar) {}

  /** NAME's recent refusals, newest first. */
  of(name: string): Denial[] {
    return this.recent.get(name) ?? [];
  }

  /** The sidecar's notifications, the tree's Allow actions; a removed sandbox is forgotten. */
  watch(): vscode.Disposable[] {
    const allow = (everywhere: boolean) => async (n?: Node) => {
      if (n?.kind === 'denial') return this.allow(n.name, n.denial.domain, everywhere);
      return undefined;
    };
    return [
      this.sidecar.onDidDeny((d) => this.handle(d)),
      this.sidecar.onDidChangeSandbox((c) => { if (!c.sandbox) this.forget(c.name); }),
      this.sidecar.onDidBecomeReady(() => void this.load()),
      vscode.commands.registerCommand('agentSandboxes.allowDomain', allow(false)),
      vscode.commands.registerCommand('agentSandboxes.allowDomainEverywhere', allow(true)),
    ];
  }

  /** What restricted sandboxes were refused so far (at each sidecar start): in the tree, no notification. */
  private async load() {
    const all = await this.sidecar.request('sandbox/list', { health: false }).catch(() => [] as Sandbox[]);
    for (const s of all.filter((x) => x.egress === 'filtered')) {
      void this.sidecar.request('sandbox/denials', { name: s.name }).then((list) => {
        for (const d of list) this.remember(s.name, d);
        this.emitter.fire();
      }, () => undefined);
    }
  }

  /** A `sandbox/denied` notification. */
  handle(d: Denied) {
    this.remember(d.name, d.denial);
    this.emitter.fire();
    const key = `${d.name}\0${d.denial.domain}`;
    if (this.notified.has(key) || !isName(d.denial.domain)) return;
    this.notified.add(key);
    const msg = `${d.name} was blocked from reaching ${d.denial.domain}`;
    void ui().ask('warning', msg, {}, ALLOW, ALLOW_EVERYWHERE, IGNORE).then((a) => {
      if (a === ALLOW || a === ALLOW_EVERYWHERE) void this.allow(d.name, d.denial.domain, a === ALLOW_EVERYWHERE);
    });
  }

  /** Allows DOMAIN for sandbox NAME (and in the user's list); reports the outcome. */
  async allow(name: string, domain: string, everywhere: boolean): Promise<Allowlist | undefined> {
    try {
      const r = await this.sidecar.request('sandbox/allow', everywhere ? { name, domains: [domain], everywhere } : { name, domains: [domain] });
      this.allowedAt.set(`${name}\0${domain}`, Date.now() / 1000);
      this.forget(name, domain);
      const where = everywhere ? 'every sandbox without its own domains file' : name;
      void ui().ask('info', `${domain} is allowed for ${where}${r.live ? '' : ` (from ${name}'s next start)`}.`, {});
      return r;
    } catch (e) {
      reportError(`Allow ${domain}`, e);
      return undefined;
    }
  }

  /** Forgets a sandbox (removed) or one of its refusals (allowed). */
  forget(name: string, domain?: string) {
    if (domain === undefined) this.recent.delete(name);
    else this.recent.set(name, this.of(name).filter((d) => d.domain !== domain));
    this.emitter.fire();
  }

  private remember(name: string, d: Denial) {
    if (d.last <= (this.allowedAt.get(`${name}\0${d.domain}`) ?? 0)) return;
    const list = this.of(name).filter((x) => x.domain !== d.domain);
    list.unshift(d);
    list.sort((a, b) => b.last - a.last);
    this.recent.set(name, list.slice(0, KEEP));
  }

  dispose() { this.emitter.dispose(); }
}
