// Editing ~/.ssh/config for Remote-SSH, without VS Code: one `Include` of the managed config,
// first (an Include after a `Host` line would apply only inside that block). The text is never
// rewritten otherwise: the line goes on top of what is there, byte for byte.

/** Does the config include one of `paths` (the managed config, as written or absolute)? */
export function hasInclude(text: string, paths: string[]): boolean {
  return text.split('\n').some((l) => {
    const m = /^\s*Include\s+(.+?)\s*$/i.exec(l);
    return !!m && m[1].split(/\s+/).some((p) => paths.includes(p));
  });
}

export const HEADER = '# Added by Agent Sandboxes: its sandboxes are SSH hosts sandbox-NAME.';

/** The config with `Include PATH` in front of everything else. */
export function withInclude(text: string, includePath: string): string {
  return `${HEADER}\nInclude ${includePath}\n\n${text}`;
}
