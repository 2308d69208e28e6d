// The GitHub token for a create (deploy keys, #6): taken from VS Code's GitHub sign-in for that
// one call and handed to the sidecar, never stored by the extension.
import * as vscode from 'vscode';
import type { CreateOptions } from './protocol.generated';


export function isGithubRepo(repo: string | undefined): boolean {
  return !!repo && /^(git@github\.com:|https:\/\/github\.com\/|ssh:\/\/git@github\.com[:/])/.test(repo);
}

/** The GitHub session's token when one of the repositories is on GitHub (for this call only). */
export async function githubTokenFor(repos: (string | null | undefined)[]): Promise<string | undefined> {
  if (!repos.some((r) => isGithubRepo(r ?? undefined))) return undefined;
  const session = await vscode.authentication.getSession('github', ['repo'], { createIfNone: true });
  return session.accessToken;
}

/** The params, plus the GitHub session's token when the repository is on GitHub. */
export async function withGithubToken(p: CreateOptions): Promise<CreateOptions> {
  const githubToken = await githubTokenFor([p.repo]);
  return githubToken ? { ...p, githubToken } : p;
}
