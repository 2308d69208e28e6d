// Token use through the host's Anthropic proxy, as the tree and the status bar show it.
import type { ClaudeAuth, Sandbox, Tokens } from './protocol.generated';

/** 1234567 → "1.2M", 12345 → "12.3k" (as `sandbox list` prints them). */
export function short(n: number): string {
  if (n < 1000) return String(n);
  if (n < 1_000_000) return `${(n / 1e3).toFixed(1)}k`;
  return `${(n / 1e6).toFixed(1)}M`;
}

/** "22 in · 14 out · 2 requests" */
export function tokensLine(t: Tokens): string {
  return `${short(t.inputTokens)} in · ${short(t.outputTokens)} out · ${t.requests} request${t.requests === 1 ? '' : 's'}`;
}

/** The tree item's description suffix: "22 in / 14 out", or nothing before the first request. */
export function tokensShort(s: Sandbox): string | undefined {
  const u = s.usage;
  return u && u.requests > 0 ? `${short(u.inputTokens)} in / ${short(u.outputTokens)} out` : undefined;
}

/** Every sandbox's tokens together. */
export function total(all: Sandbox[]): Tokens {
  const t: Tokens = { requests: 0, inputTokens: 0, outputTokens: 0, cacheReadTokens: 0, cacheWriteTokens: 0 };
  for (const s of all) {
    const u = s.usage;
    if (!u) continue;
    t.requests += u.requests;
    t.inputTokens += u.inputTokens;
    t.outputTokens += u.outputTokens;
    t.cacheReadTokens += u.cacheReadTokens;
    t.cacheWriteTokens += u.cacheWriteTokens;
  }
  return t;
}

/** The health child "Claude": what it says, whether that is good, and what to do. */
export function claudeHealth(c: ClaudeAuth): { ok: boolean; detail: string; fix?: string } {
  switch (c) {
    case 'host': return { ok: true, detail: 'host credential (none inside)' };
    case 'hostUnset': return { ok: false, detail: 'no credential on the host — Set Anthropic Credential…', fix: 'agentSandboxes.setAnthropicCredential' };
    case 'env': return { ok: true, detail: 'key in its environment (readable inside)' };
    case 'login': return { ok: true, detail: 'signed in inside' };
    case 'none': return { ok: false, detail: 'not signed in' };
  }
}
