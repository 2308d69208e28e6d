// "Sandbox: Set Anthropic Credential…": a password input, stored on the host by the sidecar
// (sandbox/authSet). Sandboxes use it through the host's proxy and never hold it.
import type { Sidecar } from './client';
import type { CredentialStatus } from './protocol.generated';
import { ui } from './ui';
import { credential } from './validate';

export async function setAnthropicCredential(sidecar: Sidecar, reload: () => Promise<void>): Promise<CredentialStatus | undefined> {
  const value = await ui().input({
    title: 'Sandbox: Set Anthropic Credential',
    prompt: 'An Anthropic API key (sk-ant-api…) or the OAuth token from `claude setup-token` (sk-ant-oat…). It stays on this host: sandboxes use it through the host and never hold it.',
    placeholder: 'sk-ant-…',
    password: true,
    validate: credential,
  });
  if (typeof value !== 'string') return undefined;
  const s = await sidecar.request('sandbox/authSet', { provider: 'anthropic', credential: value });
  await reload(); // the Claude health of every sandbox changes
  const kind = s.kind === 'oauthToken' ? 'OAuth token' : 'API key';
  void ui().ask('info', `Anthropic ${kind} stored on the host: Claude Code in every sandbox uses it through the host.`, {});
  return s;
}
