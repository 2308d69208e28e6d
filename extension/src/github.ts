// The GitHub token for a create (deploy keys, #6): taken from VS Code's GitHub sign-in for that
// one call and handed to the sidecar, never stored by the extension. A cancelled sign-in says why
// it is needed and offers to go on without the repository.
import { SandboxError } from './client';
import { logError } from './errors';
import type { CreateOptions } from './protocol.generated';
import { ui } from './ui';

export function isGithubRepo(repo: string | null | undefined): boolean {
  return !!repo && /^(git@github\.com:|https:\/\/github\.com\/|ssh:\/\/git@github\.com[:/])/.test(repo);
}

/** The GitHub session's token when one of the repositories is on GitHub (for this call only). */
export async function githubTokenFor(repos: (string | null | undefined)[]): Promise<string | undefined> {
  if (!repos.some((r) => isGithubRepo(r))) return undefined;
  return ui().githubToken();
}

export const SIGN_IN_AGAIN = 'Sign In Again';
export const WITHOUT_REPO = 'Continue Without Repository';

/**
 * The params plus the GitHub token when the repository is on GitHub. When the sign-in is
 * cancelled: asks whether to sign in again or create without the repository; undefined when
 * the user gives up (nothing is created).
 */
export async function withGithubToken(p: CreateOptions): Promise<CreateOptions | undefined> {
  if (!isGithubRepo(p.repo)) return p;
  for (;;) {
    try {
      return { ...p, githubToken: await ui().githubToken() };
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      logError(`GitHub sign-in for ${p.repo}`, new SandboxError('failed', why, 'the deploy key needs it; or create without the repository'));
      const answer = await ui().ask('warning',
        `Sandbox ${p.name} clones ${p.repo} with its own deploy key, which is registered on GitHub with your sign-in (repo access) — and the sign-in did not complete.`,
        { modal: true, detail: `GitHub said: ${why}. Without it, the sandbox can be created without the repository (clone it inside later).` },
        SIGN_IN_AGAIN, WITHOUT_REPO);
      if (answer === SIGN_IN_AGAIN) continue;
      if (answer === WITHOUT_REPO) return { ...p, repo: undefined, branch: undefined };
      return undefined;
    }
  }
}
