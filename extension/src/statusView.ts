// What the status bar item says, without VS Code: the sidecar's own state first, then the
// server status it pushes (`sandbox/status`: whether Incus is there and set up, golden images
// built), then the count of this user's running sandboxes — with links to what fixes a problem
// (as rust-analyzer's item).
import type { SidecarState } from './sidecarState';
import type { IncusState, ServerStatus, StatusHealth, Tokens } from './protocol.generated';
import { tokensLine } from './usage';

export interface StatusInput {
  sidecar: SidecarState;
  sidecarError: string | undefined;
  version: string | undefined;
  status: ServerStatus | undefined;
  /** This user's sandboxes (the ones it can reach): running, and all. */
  running: number;
  total: number;
  /** Sandboxes other users made, which this one cannot reach. */
  others: number;
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

export const SET_UP = 'agentSandboxes.setUpMachine';

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

/** What is wrong with Incus, in a few words, and the command that fixes it. */
export function incusProblem(s: IncusState): { words: string; command: string; link: string } {
  const setUp = { command: SET_UP, link: `[$(tools) Set Up This Machine](command:${SET_UP})` };
  const doctor = { command: 'agentSandboxes.doctor', link: '[$(pulse) Check the host (Doctor)](command:agentSandboxes.doctor)' };
  switch (s) {
    case 'notInstalled': return { words: 'Incus not installed', ...setUp };
    case 'notRunning': return { words: 'Incus not running', ...setUp };
    case 'noPermission': return { words: 'no access to Incus', ...setUp };
    case 'notInitialised': return { words: 'Incus not set up', ...setUp };
    case 'unreachable': case 'ready': return { words: 'Incus unreachable', ...doctor };
  }
}

function serverView(i: StatusInput, health: StatusHealth, tail: string): StatusView {
  const head = `**Agent Sandboxes** — sidecar ready (${i.version ?? '?'})`;
  const where = i.status ? `\n\n${i.status.message}` : '';
  const others = i.others > 0 ? `; ${i.others} more made by other users (Adopt to reach them)` : '';
  const incus = i.status?.incus ?? 'ready';
  switch (health) {
    case 'error': {
      const p = incusProblem(incus);
      return { text: `$(error) Sandboxes: ${p.words}`, tooltip: `${head}${where}\n\n${p.link}${tail}`, command: p.command, background: 'error' };
    }
    case 'warning': {
      if (incus === 'notInitialised') {
        const p = incusProblem(incus);
        return { text: `$(warning) ${p.words}`, tooltip: `${head}${where}\n\n${p.link}${tail}`, command: p.command, background: 'warning' };
      }
      return {
        text: `$(warning) ${i.running} running`,
        tooltip: `${head}${where}\n\n[$(tools) Run Setup](command:agentSandboxes.setup)${tail}`,
        command: 'agentSandboxes.setup',
        background: 'warning',
      };
    }
    case 'ok':
      return {
        text: `$(vm) ${i.running} running`,
        tooltip: `${head}${where}\n\n${i.running} of ${i.total} sandboxes running${others}${tokens(i)}${tail}`,
        command: 'workbench.view.extension.agentSandboxes',
        background: undefined,
      };
  }
}
