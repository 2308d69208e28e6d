// The sidecar process's own state (the extension's view of it, not the protocol's).
export type SidecarState = 'starting' | 'ready' | 'error' | 'stopped';
