// How golden images are shown (the Golden Images view, the welcome views), without VS Code.
import type { GoldenInfo, GoldenState, PreparedInfo, ServerStatus } from './protocol.generated';

export interface GoldenView {
  description: string;
  icon: string;
  color: string;
  contextValue: string;
  tooltip: string;
}

export function goldenView(g: GoldenInfo): GoldenView {
  const lines = [`**${g.stack}** — ${g.description || 'no description'}\n\n`, `- image: \`${g.instance}\`\n- ${statusText(g)}\n`];
  if (g.builtAt) lines.push(`- built at: ${g.builtAt}\n`);
  if (g.baseImage) lines.push(`- base image: \`${g.baseImage}\`\n`);
  const [icon, color] = iconOf(g.state);
  return { description: statusText(g), icon, color, contextValue: `golden.${isBuilt(g.state) ? 'built' : 'missing'}`, tooltip: lines.join('') };
}

export function isBuilt(state: GoldenState): boolean {
  switch (state) {
    case 'built': case 'stale': return true;
    case 'missing': return false;
  }
}

function iconOf(state: GoldenState): [string, string] {
  switch (state) {
    case 'built': return ['package', 'charts.green'];
    case 'stale': return ['warning', 'charts.yellow'];
    case 'missing': return ['circle-large-outline', 'disabledForeground'];
  }
}

function statusText(g: GoldenInfo): string {
  switch (g.state) {
    case 'missing': return 'not built';
    case 'stale': return 'built · script changed since: rebuild';
    case 'built': return g.managed ? 'built' : 'built (by the seed scripts)';
  }
}

/** `agentSandboxes.golden` for the welcome views: the server status says first, else the list. */
export function goldenContext(golden: GoldenInfo[] | undefined, status: ServerStatus | undefined): 'unknown' | 'built' | 'none' {
  if (status?.incusReachable) return status.goldenBuilt.length > 0 ? 'built' : 'none';
  if (golden === undefined) return 'unknown';
  return golden.some((g) => isBuilt(g.state)) ? 'built' : 'none';
}

/** A repository URL as people say it: `owner/name` (the URL itself when it is not one we know). */
export function repoShort(url: string): string {
  const m = /[:/]([^/:]+\/[^/]+?)(?:\.git)?\/?$/.exec(url);
  return m ? m[1] : url;
}

/** How long ago an RFC 3339 time was, in words (`now` in ms). */
export function age(rfc3339: string, now: number): string {
  const s = Math.max(0, Math.round((now - Date.parse(rfc3339)) / 1000));
  if (Number.isNaN(s)) return 'at an unknown time';
  if (s < 90) return 'just now';
  if (s < 90 * 60) return `${Math.round(s / 60)} min ago`;
  if (s < 36 * 3600) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} days ago`;
}

/** A prepared image, as a child of its stack's golden image. */
export function preparedView(p: PreparedInfo, now: number): GoldenView & { label: string } {
  const current = p.state === 'current';
  const branch = p.branch ? ` (${p.branch})` : '';
  return {
    label: `${repoShort(p.repo)}${branch}`,
    description: current ? `prepared ${age(p.preparedAt, now)} · ${p.setup}` : `stale: golden-${p.stack} rebuilt since · sandbox prepare again`,
    icon: current ? 'archive' : 'warning',
    color: current ? 'charts.green' : 'charts.yellow',
    contextValue: `prepared.${p.state}`,
    tooltip: `**${p.name}**: \`${p.repo}\`${branch} at \`${p.commit.slice(0, 12)}\` with its dependencies (\`${p.setup}\`), prepared ${p.preparedAt}.\n\n`
      + `New sandboxes of this repository start from it while ${p.files.map((f) => `\`${f}\``).join(', ')} stay as they are.`,
  };
}
