// What the extension shows of each sandbox's agent (Claude Code's state from its hooks), without
// VS Code: the tree item's icon and description, the tooltip lines, the waiting count, and which
// changes deserve a notification. The message is text written inside the sandbox: it is shown
// as plain text, and escaped wherever Markdown renders it.
import type { Agent, AgentState, Sandbox } from './protocol.generated';

export interface AgentIcon { id: string; color?: string }

/** The tree item's icon for an agent state; undefined: the sandbox's own state icon. */
export function agentIcon(state: AgentState): AgentIcon | undefined {
  switch (state) {
    case 'waiting': return { id: 'bell-dot', color: 'charts.orange' };
    case 'working': return { id: 'loading~spin', color: 'charts.blue' };
    case 'done': return { id: 'pass-filled', color: 'charts.green' };
    case 'none': return undefined;
  }
}

/** "waiting: Claude needs your permission to use Bash", "working", "done: All tests pass." */
export function agentText(a: Agent): string | undefined {
  switch (a.state) {
    case 'none': return undefined;
    case 'working': return 'working';
    case 'waiting': case 'done': return a.message ? `${a.state}: ${a.message}` : a.state;
  }
}

/** Characters Markdown (VS Code's tooltips) would render or link: escaped, one by one. */
export function escapeMarkdown(s: string): string {
  return s.replace(/[\\`*_{}[\]()#+\-.!|<>~$&]/g, (c) => `\\${c}`);
}

/** The tooltip's agent line (Markdown), or nothing. */
export function agentTooltip(a: Agent): string | undefined {
  const text = agentText(a);
  if (!text) return undefined;
  const dropped = a.dropped.tooBig + a.dropped.malformed + a.dropped.unknownEvent + a.dropped.rateLimited;
  const since = a.since ? ` (since ${escapeMarkdown(a.since)})` : '';
  const warn = dropped > 0 ? `\n\n$(warning) ${dropped} hook messages from this sandbox were dropped (malformed, too big or too many)` : '';
  return `agent: ${escapeMarkdown(text)}${since}${warn}`;
}

/** Sandboxes whose agent waits for the user, by name. */
export function waiting(all: Sandbox[]): Sandbox[] {
  return all.filter((s) => s.agent.state === 'waiting').sort((a, b) => a.name.localeCompare(b.name));
}

/** "1 waiting", "2 waiting" — for the status bar and the view's badge. */
export function waitingText(n: number): string {
  return `${n} waiting`;
}

export interface AgentNotice {
  name: string;
  /** The notification's text: "NAME is waiting: …" / "NAME finished: …". */
  text: string;
  /** The same event (state and time) is never announced twice. */
  key: string;
}

/**
 * Text for a notification. Notifications turn `[text](target)` into a link (command links
 * included): a message from a sandbox must never become one.
 */
export function plain(s: string): string {
  return s.replace(/\]\(/g, '] (');
}

/** A notice when an agent just went to waiting or done; nothing for other changes. */
export function noticeFor(name: string, before: Agent | undefined, now: Agent): AgentNotice | undefined {
  if (now.state !== 'waiting' && now.state !== 'done') return undefined;
  if (before && before.state === now.state && before.since === now.since) return undefined;
  const key = `${name}\u0000${now.state}\u0000${now.since ?? ''}`;
  const what = now.state === 'waiting' ? `${name} is waiting` : `${name} finished`;
  return { name, text: plain(now.message ? `${what}: ${now.message}` : what), key };
}
