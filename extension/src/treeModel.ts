// What the Sandboxes view shows for a sandbox, its ports, its health and its recent egress
// refusals, without VS Code: the tree (tree.ts) turns these into TreeItems. `contextValue` drives
// the menus in package.json: `sandbox.<state>[.repo[.agentDone]]` (this user's), `foreign.<state>` (another
// user's: not reachable until adopted), `port.<http|other>.<role>`, `health`,
// `denial.<name|address>`, `changes`, `pullRequest`.
import type { Denial, DenialKind, DockerState, Egress, Health, Listener, PortForward, Push, Sandbox, SandboxState } from './protocol.generated';
import { agentIcon, agentText, agentTooltip } from './agentState';
import { changesLine, prIcon, prLine } from './reviewModel';
import { claudeHealth, tokensLine, tokensShort } from './usage';

export interface Icon { id: string; color?: string }

export interface SandboxView {
  label: string;
  description: string;
  contextValue: string;
  icon: Icon;
  /** Markdown (theme icons allowed). */
  tooltip: string;
}

export interface PortView {
  label: string;
  description: string;
  contextValue: string;
  icon: Icon;
  tooltip: string;
  /** HTTP ports open in the browser when clicked. */
  url: string | undefined;
}

/** `fix`: the command a click on it runs (what to do about it). */
export interface HealthView { label: string; ok: boolean | undefined; detail: string; fix?: string }

export function stateIcon(state: SandboxState): Icon {
  switch (state) {
    case 'running': return { id: 'vm-running', color: 'charts.green' };
    case 'stopped': return { id: 'vm-outline', color: 'disabledForeground' };
    case 'frozen': return { id: 'debug-pause', color: 'charts.yellow' };
    case 'error': return { id: 'vm', color: 'errorForeground' };
    case 'starting': case 'stopping': case 'unknown': return { id: 'vm', color: 'charts.yellow' };
  }
}

/** A cluster member's group in the tree: its sandboxes, and whether it answers. */
export interface MemberGroup { member: string; names: string[]; unreachable: string | undefined }

/** On a cluster (any sandbox has a location), the sandboxes grouped by member, members sorted;
 *  undefined on a single server (the tree stays flat). */
export function groupByMember(all: Sandbox[]): MemberGroup[] | undefined {
  if (!all.some((s) => s.location)) return undefined;
  const groups = new Map<string, MemberGroup>();
  for (const s of all) {
    const member = s.location ?? '(no member)';
    const g = groups.get(member) ?? { member, names: [], unreachable: undefined };
    g.names.push(s.name);
    g.unreachable ??= s.unreachable ?? undefined;
    groups.set(member, g);
  }
  return [...groups.values()].sort((a, b) => a.member.localeCompare(b.member));
}

export function memberView(g: MemberGroup): { label: string; description: string; icon: Icon; tooltip: string } {
  const n = `${g.names.length} sandbox${g.names.length === 1 ? '' : 'es'}`;
  return g.unreachable
    ? { label: g.member, description: `${n} · unreachable`, icon: { id: 'server', color: 'errorForeground' }, tooltip: g.unreachable }
    : { label: g.member, description: n, icon: { id: 'server' }, tooltip: `Cluster member ${g.member}: ${n}` };
}

/** Ports a browser can open: everything TCP except SSH. */
export function isHttp(p: PortForward): boolean {
  switch (p.role) {
    case 'ssh': return false;
    case 'app': case 'alt': case 'extra':
      switch (p.proto) {
        case 'tcp': return true;
        case 'udp': return false;
      }
  }
}

export function portUrl(p: PortForward): string {
  return `http://127.0.0.1:${p.hostPort}/`;
}

function egressText(e: Egress): string {
  switch (e) {
    case 'open': return 'open';
    case 'filtered': return 'filtered (allowlist)';
  }
}

function pushText(p: Push): string | null {
  switch (p) {
    case 'gate': return 'its own branch only (push gate)';
    case 'any': return 'anything its key may (--allow-push-any)';
    case 'none': return null;
  }
}

/** The branch it works on, in words. */
export function branchText(s: Sandbox): string {
  return s.branch ?? (s.repo ? 'default branch' : 'no repository');
}

/** What the item says next to its name: stack and branch (slot and ports are in the tooltip). */
export function description(s: Sandbox): string {
  if (s.unreachable) return `unreachable · ${s.location ?? 'its member'} does not answer`;
  if (!s.reachable) return `${s.stack ?? 'unknown stack'} · another user's: Adopt to reach it`;
  const agent = agentText(s.agent);
  const parts = [...(agent ? [agent] : []), s.stack ?? 'unknown stack', branchText(s)];
  const tokens = tokensShort(s);
  if (tokens) parts.push(tokens);
  // A create that did not finish: `sandbox start NAME` makes it again, Destroy removes it.
  if (s.incomplete) parts.unshift(s.incomplete);
  return parts.join(' · ');
}

export function tooltip(s: Sandbox): string {
  const out = [`**${s.name}** — $(${stateIcon(s.state).id}) ${s.state}${s.managed ? '' : ' (made by the seed scripts)'}\n\n`];
  if (s.unreachable) out.push(`Unreachable: ${s.unreachable}\n\n`);
  if (!s.reachable) {
    out.push('Made by another user (or another `SANDBOX_HOME`): your SSH key and ssh config entry are not in it. **Adopt** adds them.\n\n');
  }
  const agent = agentTooltip(s.agent);
  if (agent) out.push(`${agent}\n\n`);
  const row = (k: string, v: string | null | undefined) => { if (v) out.push(`- ${k}: \`${v}\`\n`); };
  row('stack', s.stack);
  row('repository', s.repo);
  row('branch', s.branch);
  row('IP', s.ip);
  row('cluster member', s.location);
  row('egress', egressText(s.egress));
  row('pushes', pushText(s.push));
  row('changes', s.changes ? `${changesLine(s.changes)}${s.baseBranch ? ` since ${s.baseBranch}` : ''}` : null);
  row('pull request', s.pullRequest ? `${prLine(s.pullRequest)} ${s.pullRequest.url}` : null);
  row('limits', [s.cpu && `${s.cpu} CPU`, s.memory, s.disk && `${s.disk} disk`].filter(Boolean).join(', ') || null);
  row('SSH host', s.sshAlias);
  row('slot', s.slot !== null ? String(s.slot) : null);
  if (s.ports.length > 0) {
    out.push('\n| port | host | in sandbox |\n|---|---|---|\n');
    for (const p of s.ports) out.push(`| ${p.role} | 127.0.0.1:${p.hostPort}/${p.proto} | ${p.containerPort} |\n`);
  }
  if (s.health) {
    const h = s.health;
    out.push(`\nhealth: docker ${h.docker} · ssh-agent ${h.sshAgent ? 'yes' : 'no'} · Claude ${claudeOf(h).detail}\n`);
  }
  if (s.usage && s.usage.requests > 0) {
    out.push(`\ntokens through the host: ${tokensLine(s.usage)}\n`);
    out.push('\n| model | requests | in | out | cache read | cache write |\n|---|---|---|---|---|---|\n');
    for (const m of s.usage.models) {
      out.push(`| ${m.model.replace(/[|\\`*_[\]<>]/g, ' ')} | ${m.requests} | ${m.inputTokens} | ${m.outputTokens} | ${m.cacheReadTokens} | ${m.cacheWriteTokens} |\n`);
    }
  }
  return out.join('');
}

export function sandboxView(s: Sandbox): SandboxView {
  const mine = s.reachable;
  return {
    label: s.name,
    description: description(s),
    // `.agentDone`: Review Changes inline, once its agent finished a turn.
    contextValue: `${mine ? 'sandbox' : 'foreign'}.${s.state}${s.repo ? `.repo${s.agent.state === 'done' ? '.agentDone' : ''}` : ''}`,
    // The agent's state, when there is one, says more than the container's.
    icon: mine ? (agentIcon(s.agent.state) ?? stateIcon(s.state)) : { id: 'lock', color: 'disabledForeground' },
    tooltip: tooltip(s),
  };
}

/** A child of a sandbox with a repository: what it changed (a click reviews it). */
export function changesView(s: Sandbox): SandboxView | undefined {
  if (!s.repo) return undefined;
  const c = s.changes;
  return {
    label: c ? changesLine(c) : 'changes',
    description: c ? `${c.uncommitted ? 'uncommitted work · ' : ''}${s.baseBranch ? `since ${s.baseBranch}` : ''}` : 'not read yet: Refresh',
    contextValue: 'changes',
    icon: { id: 'diff' },
    tooltip: c ? `What ${s.name} changed, as of ${c.at}. Click to review it; Refresh reads it again.` : `Refresh reads what ${s.name} changed.`,
  };
}

/** A child of a sandbox that opened a pull request (a click opens it). */
export function pullRequestView(s: Sandbox): SandboxView | undefined {
  const p = s.pullRequest;
  if (!p) return undefined;
  return { label: prLine(p), description: `${p.branch} → ${p.base}`, contextValue: 'pullRequest', icon: prIcon(p.state), tooltip: `${p.title}\n${p.url}` };
}

/** Whether anything answers behind a forwarded TCP port (undefined: not known, or not TCP). */
export type Listening = 'yes' | 'loopback' | 'no' | undefined;

export function listeningOn(p: PortForward, listening: Listener[] | undefined): Listening {
  if (!listening || p.proto !== 'tcp') return undefined;
  const l = listening.find((x) => x.port === p.containerPort);
  if (!l) return 'no';
  return l.loopbackOnly ? 'loopback' : 'yes';
}

function listeningText(l: Listening, p: PortForward): string {
  switch (l) {
    case 'yes': return ' · listening';
    case 'no': return ' · nothing listening';
    case 'loopback': return ` · bound to 127.0.0.1 inside: listen on 0.0.0.0:${p.containerPort}`;
    case undefined: return '';
  }
}

export function portView(p: PortForward, listening?: Listener[]): PortView {
  const http = isHttp(p);
  const url = http ? portUrl(p) : undefined;
  let icon: string;
  switch (p.role) {
    case 'ssh': icon = 'terminal'; break;
    case 'app': case 'alt': case 'extra': icon = http ? 'globe' : 'plug'; break;
  }
  const l = p.role === 'ssh' ? undefined : listeningOn(p, listening);
  return {
    label: `${p.role} ${p.containerPort}/${p.proto}`,
    description: `127.0.0.1:${p.hostPort}${listeningText(l, p)}`,
    contextValue: `port.${http ? 'http' : 'other'}.${p.role}`,
    icon: { id: icon },
    tooltip: url ? `Open ${url}` : `host 127.0.0.1:${p.hostPort} → sandbox port ${p.containerPort}`,
    url,
  };
}

function dockerOk(d: DockerState): boolean | undefined {
  switch (d) {
    case 'active': return true;
    case 'failed': return false;
    case 'inactive': case 'absent': case 'unknown': return undefined;
  }
}

/** The health child "Claude": not installed comes first (then its credential). */
function claudeOf(h: Health): { ok: boolean; detail: string; fix?: string } {
  return h.claudeInstalled ? claudeHealth(h.claude) : { ok: false, detail: 'not installed' };
}

export function healthViews(h: Health): HealthView[] {
  return [
    { label: 'docker', ok: dockerOk(h.docker), detail: h.docker },
    { label: 'ssh-agent', ok: h.sshAgent, detail: h.sshAgent ? 'forwarded' : 'none' },
    { label: 'Claude', ...claudeOf(h) },
  ];
}

export function healthIcon(ok: boolean | undefined): Icon {
  if (ok === undefined) return { id: 'circle-outline' };
  return ok ? { id: 'pass', color: 'charts.green' } : { id: 'warning', color: 'charts.yellow' };
}

export interface DenialView {
  label: string;
  description: string;
  contextValue: string;
  icon: Icon;
  tooltip: string;
}

/** Addresses (TLS without SNI, raw-IP HTTP) are refused too, but cannot be allowed: names only. */
export function isName(domain: string): boolean {
  return /[a-z]/i.test(domain) && !domain.includes(':');
}

function kindText(k: DenialKind): string {
  switch (k) {
    case 'tls': return 'HTTPS';
    case 'http': return 'HTTP';
    case 'dns': return 'DNS';
  }
}

/** A refusal of sandbox NAME, as a child of it; `when` formats its last time. */
export function denialView(name: string, d: Denial, when: (unixSeconds: number) => string): DenialView {
  const allowable = isName(d.domain);
  return {
    label: d.domain,
    description: `blocked · ${kindText(d.kind)} · ${d.count}× · ${when(d.last)}`,
    contextValue: `denial.${allowable ? 'name' : 'address'}`,
    icon: { id: 'circle-slash', color: 'charts.orange' },
    tooltip: allowable
      ? `${name}'s egress policy refused ${d.domain}. Allow lets it through for this sandbox (sandbox allow ${name} ${d.domain}).`
      : `${name}'s egress policy refused ${d.domain}: an address, not a name (allowlists hold names only).`,
  };
}
