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

export function memory(v: string): string | undefined {
  const ok = /^(\d{1,9})(KiB|MiB|GiB|TiB|KB|MB|GB|TB)$/.exec(v);
  return ok && ok[1] !== '0' ? undefined : `'${v}' is not a memory size: give a size with a unit, e.g. 4GiB or 512MiB`;
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

const seg = (s: string) => s !== '' && s !== '.' && s !== '..' && /^[A-Za-z0-9._-]+$/.test(s);
const host = (h: string) => h !== '' && !h.startsWith('-') && /^[A-Za-z0-9.:[\]-]+$/.test(h);
const path2 = (p: string) => {
  const parts = p.replace(/\/+$/, '').split('/');
  return parts.length === 2 && parts.every(seg);
};

/** git@HOST:OWNER/REPO(.git), https://HOST/OWNER/REPO(.git), ssh://git@HOST(:PORT)/OWNER/REPO(.git). */
export function repoUrl(v: string): string | undefined {
  const split = (rest: string, sep: string): [string, string] | undefined => {
    const i = rest.indexOf(sep);
    return i < 0 ? undefined : [rest.slice(0, i), rest.slice(i + 1)];
  };
  let ok = false;
  if (v.startsWith('https://')) {
    const hp = split(v.slice(8), '/');
    ok = !!hp && host(hp[0]) && path2(hp[1]);
  } else if (v.startsWith('ssh://')) {
    let rest = v.slice(6);
    if (rest.startsWith('git@')) rest = rest.slice(4);
    const hp = split(rest, '/');
    ok = !!hp && host(hp[0]) && path2(hp[1]);
  } else if (v.startsWith('git@')) {
    const hp = split(v.slice(4), ':');
    ok = !!hp && host(hp[0]) && !hp[0].includes(':') && path2(hp[1]);
  }
  // eslint-disable-next-line no-control-regex
  if (ok && !/[\s\x00-\x1f\x7f]/.test(v)) return undefined;
  return `'${v}' is not a repository URL we understand: use git@github.com:OWNER/REPO.git, https://github.com/OWNER/REPO or ssh://git@HOST/OWNER/REPO`;
}

export function branch(v: string): string | undefined {
  const ok = v.length > 0 && v.length <= 200 && !/^[-/.]/.test(v) && !/[/.]$/.test(v) && !v.includes('..')
    && !v.includes('//') && !v.endsWith('.lock') && /^[A-Za-z0-9._/+-]+$/.test(v);
  return ok ? undefined : `'${v}' is not a branch name we accept: use letters, digits and - _ . / + (e.g. feature/login)`;
}
