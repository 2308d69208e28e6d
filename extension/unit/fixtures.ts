// Protocol values for the unit tests (what the sidecar sends), with overrides.
import type { Agent, GoldenInfo, Health, PortForward, Sandbox, ServerStatus } from '../src/protocol.generated';

export function sandbox(over: Partial<Sandbox> = {}): Sandbox {
  const name = over.name ?? 'box';
  return {
    name, instance: `agent-${name}`, state: 'running', slot: 3, stack: 'minimal', repo: null, branch: null,
    ip: '10.100.0.103', ports: [port('ssh', 2203, 22), port('app', 8003, 8080), port('alt', 9003, 9090)],
    egress: 'open', cpu: null, memory: null, createdAt: '2025-01-01T00:00:00Z', location: null, unreachable: null, managed: true,
    health: null, sshAlias: `sandbox-${name}`, usage: null, agent: agent(), reachable: true, push: 'none', baseBranch: null, disk: null,
    changes: null, pullRequest: null, prepared: null, snapshots: [], ...over,
  };
}

export function agent(over: Partial<Agent> = {}): Agent {
  return { state: 'none', since: null, message: null, dropped: { tooBig: 0, malformed: 0, unknownEvent: 0, rateLimited: 0 }, ...over };
}

export function port(role: PortForward['role'], hostPort: number, containerPort: number, proto: PortForward['proto'] = 'tcp'): PortForward {
  return { device: role === 'extra' ? `port-${containerPort}-${proto}` : 'ports', role, proto, hostPort, containerPort };
}

export function golden(over: Partial<GoldenInfo> = {}): GoldenInfo {
  return { stack: 'minimal', instance: 'golden-minimal', description: 'nothing', built: true, stale: false, state: 'built',
    builtAt: null, baseImage: null, managed: true, ...over };
}

export function status(over: Partial<ServerStatus> = {}): ServerStatus {
  return { health: 'ok', incus: 'ready', message: 'Incus 6.0.5 at /var/lib/incus/unix.socket (remote local)', remote: 'local',
    endpoint: '/var/lib/incus/unix.socket', incusReachable: true, incusVersion: '6.0.5', incusError: null,
    goldenBuilt: ['minimal'], goldenMissing: ['base'], ...over };
}

export function health(over: Partial<Health> = {}): Health {
  return { docker: 'absent', sshAgent: false, claudeAuth: false, claude: 'none', claudeInstalled: true, listening: [], ...over };
}
