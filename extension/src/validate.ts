// Live validation for the wizards: the same rules as the engine (server/src/engine/validate.rs),
// so a value accepted here is accepted there. The engine still checks everything; these only
// give the message while typing. Each returns undefined when valid, else what to do.

export const MAX_NAME = 57;

export function sandboxName(v: string): string | undefined {
  const hint = "use letters, digits and '-' (not first or last), at most 57 characters, e.g. 'feature-login'";
  if (v.length === 0) return `The name is empty: ${hint}`;
  if (v.length > MAX_NAME) return `'${v.slice(0, 20)}…' is longer than ${MAX_NAME} characters: ${hint}`;
  // eslint-disable-next-line no-control-regex
  if (/[^\x00-\x7f]/.test(v)) return `'${v}' contains non-ASCII characters: ${hint}`;
  const bad = /[^A-Za-z0-9-]/.exec(v);
  if (bad) return `'${v}' contains '${bad[0]}': ${hint}`;
  if (v.startsWith('-') || v.endsWith('-')) return `'${v}' starts or ends with '-': ${hint}`;
  return undefined;
}

export function cpu(v: string): string | undefined {
  const n = /^\d+$/.test(v) ? Number(v) : NaN;
  return n >= 1 && n <= 1024 ? undefined : `'${v}' is not a CPU count: give a whole number of CPUs, e.g. 2`;
}

const UNITS: Record<string, number> = { KiB: 2 ** 10, MiB: 2 ** 20, GiB: 2 ** 30, TiB: 2 ** 40, KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12 };

/** A size as Incus takes it (a number with a unit), in bytes. */
function sizeBytes(v: string): number | undefined {
  const m = /^([1-9]\d{0,8})(KiB|MiB|GiB|TiB|KB|MB|GB|TB)$/.exec(v);
  return m ? Number(m[1]) * UNITS[m[2]] : undefined;
}

function size(v: string, what: string, min: number, minText: string): string | undefined {
  const b = sizeBytes(v);
  if (b === undefined) return `'${v}' is not a ${what} size: give a size with a unit, e.g. 4GiB or 512MiB`;
  return b >= min ? undefined : `${v} is too small: a sandbox needs at least ${minText}`;
}

export function memory(v: string): string | undefined {
  return size(v, 'memory', 128 * 2 ** 20, '128MiB');
}

export function disk(v: string): string | undefined {
  return size(v, 'disk', 2 ** 30, '1GiB');
}

export function envPair(v: string): string | undefined {
  const eq = v.indexOf('=');
  if (eq < 0) return `'${v}' has no '=': write NAME=VALUE, e.g. RUST_LOG=debug`;
  const k = v.slice(0, eq);
  if (!/^[A-Za-z_][A-Za-z0-9_]{0,127}$/.test(k)) {
    return `'${k}' is not a variable name: use letters, digits and '_' (not starting with a digit)`;
  }
  if (v.includes('\0')) return `the value of ${k} contains a NUL byte: remove it`;
  return undefined;
}

/** Several `K=V` separated by spaces (values without spaces here; the CLI takes any value). */
export function envList(v: string): string | undefined {
  for (const pair of splitEnv(v)) {
    const e = envPair(pair);
    if (e) return e;
  }
  return undefined;
}

export function splitEnv(v: string): string[] {
  return v.split(/\s+/).filter((s) => s.length > 0);
}

export function port(v: string): string | undefined {
  const n = /^\d+$/.test(v) ? Number(v) : NaN;
  return n >= 1 && n <= 65535 ? undefined : `'${v}' is not a port number: give a number from 1 to 65535`;
}

const REPO_HINT = 'use git@github.com:OWNER/REPO.git, https://github.com/OWNER/REPO or ssh://git@HOST[:PORT]/OWNER/REPO';
const seg = (s: string) => s !== '' && s.length <= 100 && s !== '.' && s !== '..' && !s.startsWith('-') && /^[A-Za-z0-9._-]+$/.test(s);
const hostOk = (h: string) => h !== '' && h.length <= 253 && !/^[-.]/.test(h) && /^[A-Za-z0-9.-]+$/.test(h);
const splitOnce = (s: string, sep: string): [string, string] | undefined => {
  const i = s.indexOf(sep);
  return i < 0 ? undefined : [s.slice(0, i), s.slice(i + sep.length)];
};

/** Why `v` is not a repository URL we can give a deploy key to (the engine's RepoRef::parse). */
function repoProblem(v: string): string | undefined {
  // eslint-disable-next-line no-control-regex
  if (/[\s\x00-\x1f\x7f-\x9f]/.test(v)) return 'it contains spaces or control characters';
  let user: string;
  let hostPort: string;
  let repoPath: string;
  const scp = !v.startsWith('https://') && !v.startsWith('ssh://');
  if (v.startsWith('https://')) {
    const hp = splitOnce(v.slice(8), '/');
    if (!hp) return 'no OWNER/REPO';
    if (hp[0].includes('@')) return 'credentials in an https URL are not used; the sandbox gets a deploy key';
    [user, hostPort, repoPath] = ['git', hp[0], hp[1]];
  } else if (v.startsWith('ssh://')) {
    const hp = splitOnce(v.slice(6), '/');
    if (!hp) return 'no OWNER/REPO';
    const uh = splitOnce(hp[0], '@') ?? ['git', hp[0]];
    [user, hostPort, repoPath] = [uh[0], uh[1], hp[1]];
  } else {
    const uh = v.includes('://') ? undefined : splitOnce(v, '@');
    if (!uh) return 'unknown form';
    const hp = splitOnce(uh[1], ':');
    if (!hp) return "no ':' after the host";
    [user, hostPort, repoPath] = [uh[0], hp[0], hp[1]];
  }
  if (!seg(user)) return 'bad user name';
  let host = hostPort;
  const colon = hostPort.lastIndexOf(':');
  if (colon >= 0) {
    if (scp) return 'a port needs the ssh:// form';
    const port = hostPort.slice(colon + 1);
    if (!/^\+?\d+$/.test(port) || Number(port) < 1 || Number(port) > 65535) return 'bad port';
    host = hostPort.slice(0, colon);
  }
  if (!hostOk(host)) return 'bad host name';
  let p = repoPath.endsWith('/') ? repoPath.slice(0, -1) : repoPath;
  if (p.endsWith('.git')) p = p.slice(0, -4);
  const parts = p.split('/');
  if (parts.length !== 2) return 'the path must be OWNER/REPO';
  if (!parts.every(seg)) return "OWNER and REPO may hold letters, digits, '-', '_' and '.'";
  return undefined;
}

/** git@HOST:OWNER/REPO(.git), https://HOST/OWNER/REPO(.git), ssh://[USER@]HOST[:PORT]/OWNER/REPO(.git). */
export function repoUrl(v: string): string | undefined {
  const why = repoProblem(v);
  return why && `'${v}' is not a repository URL we understand (${why}): ${REPO_HINT}`;
}

export function branch(v: string): string | undefined {
  const ok = v.length > 0 && v.length <= 200 && !/^[-/.]/.test(v) && !/[/.]$/.test(v) && !v.includes('..')
    && !v.includes('//') && !v.endsWith('.lock') && /^[A-Za-z0-9._/+-]+$/.test(v);
  return ok ? undefined : `'${v}' is not a branch name we accept: use letters, digits and - _ . / + (e.g. feature/login)`;
}

/** An Anthropic credential as the engine takes it: one line of visible ASCII, at most 4096. */
export function credential(v: string): string | undefined {
  const hint = 'paste the API key (sk-ant-api…) or the token from `claude setup-token` (sk-ant-oat…) alone';
  const s = v.replace(/\r?\n$/, '');
  if (s.trim() === '') return `The credential is empty: ${hint}`;
  if (/[\r\n]/.test(s)) return `It has more than one line: ${hint}`;
  if (s.length > 4096) return `It is longer than 4096 characters: ${hint}`;
  if (/[^\x21-\x7e]/.test(s)) return `It contains spaces, control or non-ASCII characters: ${hint}`;
  return undefined;
}
