// What the Sandboxes view shows of a sandbox's snapshots (children of its item, newest first),
// without VS Code. `contextValue` drives the menus in package.json:
// `snapshot.<manual|checkpoint>.<pinned|unpinned>`.
import type { SnapshotInfo, SnapshotKind } from './protocol.generated';
import type { Icon } from './treeModel';
import { escapeMarkdown } from './agentState';

export interface SnapshotView {
  label: string;
  description: string;
  contextValue: string;
  icon: Icon;
  tooltip: string;
}

function kindIcon(k: SnapshotKind, pinned: boolean): Icon {
  if (pinned) return { id: 'pinned' };
  switch (k) {
    case 'manual': return { id: 'device-camera' };
    case 'checkpoint': return { id: 'history' };
  }
}

/** Newest first: the turn just ended is the one a user most likely rewinds to. */
export function snapshotsNewestFirst(all: SnapshotInfo[]): SnapshotInfo[] {
  return [...all].sort((a, b) => b.createdAt.localeCompare(a.createdAt) || b.label.localeCompare(a.label));
}

/**
 * A snapshot of sandbox NAME as a child of it; `when` formats its RFC 3339 time. A checkpoint's
 * message came from inside the sandbox: it is plain text in the label and escaped in the tooltip.
 */
export function snapshotView(name: string, s: SnapshotInfo, when: (rfc3339: string) => string): SnapshotView {
  const label = s.kind === 'checkpoint' ? s.title : s.label;
  const bits = [when(s.createdAt)];
  if (s.kind === 'checkpoint') bits.unshift(s.label);
  if (s.pinned) bits.push('pinned');
  const what = s.kind === 'checkpoint' ? `the checkpoint taken when turn ${s.turn ?? '?'} ended` : `snapshot \`${escapeMarkdown(s.label)}\``;
  const msg = s.message ? `\n\nThe agent's answer began: ${escapeMarkdown(s.message)}` : '';
  return {
    label,
    description: bits.join(' · '),
    contextValue: `snapshot.${s.kind}.${s.pinned ? 'pinned' : 'unpinned'}`,
    icon: kindIcon(s.kind, s.pinned),
    tooltip: `${escapeMarkdown(name)}: ${what} (${escapeMarkdown(s.createdAt)}).${msg}\n\nRestore puts the whole sandbox's disk back to it (files, installed packages); its identity, ports, keys and egress policy stay.`,
  };
}

/** Snapshot labels a user may give (the sidecar checks again): what `sandbox snapshot` takes. */
export function snapshotLabel(v: string): string | undefined {
  if (v === '') return undefined; // the sidecar picks snap-N
  if (v.length > 63 || !/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(v)) return 'letters, digits and - _ . (a letter or digit first), at most 63 characters';
  if (/^turn-\d+$/.test(v)) return 'turn-N labels are the per-turn checkpoints\u2019: pick another';
  return undefined;
}
