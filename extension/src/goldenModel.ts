// How golden images are shown (the Golden Images view, the welcome views), without VS Code.
import type { GoldenInfo, GoldenState, ServerStatus } from './protocol.generated';

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
