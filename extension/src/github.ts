// The GitHub token for a create (deploy keys, #6): taken from VS Code's GitHub sign-in for that
// one call and handed to the sidecar, never stored by the extension.
import * as vscode from 'vscode';
import type { CreateParams } from './protocol.generated';

type TokenField = CreateParams extends { githubToken?: string } ? true : false;
/**
 * Whether the generated CreateParams has `githubToken` (it appears with #6). The sidecar refuses
 * unknown fields, so until then no token is sent. When the field appears this line stops
 * compiling: set it to true and the token flows.
 */
const CREATE_TAKES_GITHUB_TOKEN: TokenField = false;

export function isGithubRepo(repo: string | undefined): boolean {
  return !!repo && /^(git@github\.com:|https:\/\/github\.com\/|ssh:\/\/git@github\.com[:/])/.test(repo);
}

/** The params, plus the GitHub session's token when the repository is on GitHub. */
export async function withGithubToken(p: CreateParams): Promise<CreateParams> {
  if (!CREATE_TAKES_GITHUB_TOKEN || !isGithubRepo(p.repo)) return p;
  const session = await vscode.authentication.getSession('github', ['repo'], { createIfNone: true });
  return { ...p, githubToken: session.accessToken } as CreateParams;
}
