// Runs the extension's test suite (extensionTestsPath) inside code-server's workbench, as VS
// Code's own browser integration tests do: payload URL params + window.codeAutomationExit(code).
// The server must run with `--vscode-option=enable-smoke-test-driver` (else the payload is ignored).
// usage: node run-ext-tests.js <extensionDevelopmentPath> <extensionTestsPath .js> <folder>
// env: CS_ORIGIN (http://127.0.0.1:PORT), E2E (scratch dir), TEST_TIMEOUT_MS
const { chromium } = require('playwright-core');
const fs = require('fs');
const path = require('path');

const origin = process.env.CS_ORIGIN;
const host = new URL(origin).host;
const [extDev, extTests, folder] = process.argv.slice(2).map((p) => path.resolve(p));
const remote = (p) => `vscode-remote://${host}${p}`;
const payload = JSON.stringify([['extensionDevelopmentPath', remote(extDev)], ['extensionTestsPath', remote(extTests)], ['skipWelcome', 'true']]);
const url = `${origin}/?folder=${encodeURIComponent(folder)}&payload=${encodeURIComponent(payload)}`;

(async () => {
  const context = await chromium.launchPersistentContext(fs.mkdtempSync(`${process.env.E2E}/chrome-`), {
    executablePath: '/usr/bin/chromium', headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  const page = context.pages()[0] || (await context.newPage());
  const timer = setTimeout(() => { console.error('TIMEOUT: the suite never called codeAutomationExit'); process.exit(2); },
    +(process.env.TEST_TIMEOUT_MS || 900000));
  // The extension host's console (Mocha's reporter) arrives here; VS Code's own chatter is dropped.
  await page.exposeFunction('codeAutomationLog', (_type, args) => {
    if (!/^(Resolv|Creat|Updat|\[)/.test(String(args[0]))) console.log(...args);
  });
  await page.exposeFunction('codeAutomationExit', async (code) => {
    clearTimeout(timer);
    console.log(`extension tests finished, exit code ${code}`);
    await context.close().catch(() => {});
    process.exit(code);
  });
  await page.goto(url);
})().catch((e) => { console.error('FAILED:', e); process.exit(1); });
