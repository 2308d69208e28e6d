// Which actions help with a failed call, picked from its stable code (never from its text).
import type { ErrorCode } from './protocol.generated';

/** The sidecar's codes, plus the one the extension itself gives when the sidecar is not there. */
export type ClientErrorCode = ErrorCode | 'sidecar_unavailable';

export const SHOW_LOGS: [string, string] = ['Show Logs', 'agentSandboxes.showLogs'];

/**
 * [label, command] pairs, the most useful first; Show Logs always last. `local`: Incus is this
 * machine's (its setup can be run from here).
 */
export function actionsFor(code: ClientErrorCode, local = true): [string, string][] {
  const a: [string, string][] = [];
  switch (code) {
    case 'sidecar_unavailable': a.push(['Restart Sidecar', 'agentSandboxes.restartSidecar']); break;
    case 'incus_unavailable':
      if (local) a.push(['Set Up This Machine', 'agentSandboxes.setUpMachine']);
      a.push(['Check the Host', 'agentSandboxes.doctor']);
      break;
    case 'incus_error': a.push(['Check the Host', 'agentSandboxes.doctor']); break;
    case 'needs_setup': a.push(['Run Setup', 'agentSandboxes.setup']); break;
    case 'not_found': case 'conflict': a.push(['Refresh', 'agentSandboxes.refresh']); break;
    case 'invalid_params': case 'invalid_input': case 'failed': case 'cancelled': case 'unknown_method': break;
  }
  a.push(SHOW_LOGS);
  return a;
}
