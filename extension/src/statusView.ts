// What the status bar item says, without VS Code: the sidecar's own state first, then the
// server status it pushes (`sandbox/status`: Incus reachable, golden images built), then the
// count of running sandboxes — with links to what fixes a problem (as rust-analyzer's item).
import type { SidecarState } from './sidecarState';
import type { ServerStatus, StatusHealth, Tokens } from './protocol.generated';
import { tokensLine } from './usage';

export interface StatusInput {
  sidecar: SidecarState;
  sidecarError: string | undefined;
  version: string | undefined;
  status: ServerStatus | undefined;
  running: number;
  total: number;
  /** Claude tokens of every sandbox, through the host's proxy. */
  tokens?: Tokens;
}

export interface StatusView {
  text: string;
  /** Markdown with command links. */
  tooltip: string;
  command: string;
  background: 'error' | 'warning' | undefined;
}

export const LINKS = '[$(add) Create](command:agentSandboxes.create) · [$(output) Show Logs](command:agentSandboxes.showLogs) · '
  + '[$(debug-restart) Restart Sidecar](command:agentSandboxes.restartSidecar) · [$(pulse) Doctor](command:agentSandboxes.doctor)';

export function statusView(i: StatusInput): StatusView {
  const tail = `\n\n${LINKS}`;
  switch (i.sidecar) {
    case 'starting':
      return { text: '$(loading~spin) Sandboxes', tooltip: `**Agent Sandboxes** — starting the sidecar…${tail}`, command: 'workbench.view.extension.agentSandboxes', background: undefined };
    case 'error': case 'stopped':
      return { text: '$(error) Sandboxes', tooltip: `**Agent Sandboxes** — sidecar ${i.sidecar}: ${i.sidecarError ?? 'not running'}${tail}`, command: 'agentSandboxes.showLogs', background: 'error' };
    case 'ready':
      return serverView(i, i.status?.health ?? 'ok', tail);
  }
}

function tokens(i: StatusInput): string {
  return i.tokens ? `\n\nClaude tokens through the host, all sandboxes: ${tokensLine(i.tokens)}` : '';
}

function serverView(i: StatusInput, health: StatusHealth, tail: string): StatusView {
  const head = `**Agent Sandboxes** — sidecar ready (${i.version ?? '?'})`;
  const where = i.status ? `\n\n${i.status.message}` : '';
  switch (health) {
    case 'error':
      return {
        text: '$(error) Sandboxes: Incus unreachable',
        tooltip: `${head}${where}\n\n[$(pulse) Check the host (Doctor)](command:agentSandboxes.doctor)${tail}`,
        command: 'agentSandboxes.doctor',
        background: 'error',
      };
    case 'warning':
      return {
        text: `$(warning) ${i.running} running`,
        tooltip: `${head}${where}\n\n[$(tools) Run Setup](command:agentSandboxes.setup)${tail}`,
        command: 'agentSandboxes.setup',
        background: 'warning',
      };
    case 'ok':
      return {
        text: `$(vm) ${i.running} running`,
        tooltip: `${head}${where}\n\n${i.running} of ${i.total} sandboxes running${tokens(i)}${tail}`,
        command: 'workbench.view.extension.agentSandboxes',
        background: undefined,
      };
  }
}
