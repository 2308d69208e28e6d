// Bundles extension/src/main.ts (and vscode-languageclient) into out/main.js: one file loads
// faster at activation than a tree of modules, and the VSIX ships no node_modules.
import * as esbuild from 'esbuild';

const options = {
  entryPoints: ['extension/src/main.ts'],
  bundle: true,
  outfile: 'out/main.js',
  external: ['vscode'],
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  sourcemap: true,
  minify: process.argv.includes('--minify'),
  logLevel: 'warning',
  // When loading started: the activation time reported includes loading this bundle.
  banner: { js: 'globalThis.__agentSandboxesLoadStart = performance.now();' },
};
if (process.argv.includes('--watch')) {
  await (await esbuild.context(options)).watch();
} else {
  await esbuild.build(options);
}
