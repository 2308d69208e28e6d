// UI test: drives a running code-server workbench with the packaged extension installed, in
// Debian's headless Chromium, as a user would. UI_PHASE says which run of the server this is:
//   main (default): the activity bar, the Sandboxes tree with a real sandbox, its context menu,
//     the Create wizard (live validation; every default by Enter), a palette picker by Enter, Open
//     Claude where Claude Code is missing (the terminal keeps the reason), New Agent;
//   no-incus: the sidecar's Incus socket answers nothing: the welcome view says why, and Set Up
//     This Machine explains, then runs `sandbox host install` in a terminal;
//   second-home: another HOME: the sandbox is marked as another user's until Adopt.
// Screenshots of each state → $SHOTS.
// env: CS_ORIGIN, E2E (scratch dir), SHOTS, UI_SANDBOX (a running sandbox made by run.sh), UI_PHASE
const { chromium } = require('playwright-core');
const assert = require('assert');
const fs = require('fs');

const { CS_ORIGIN, E2E, SHOTS, UI_SANDBOX } = process.env;
const PHASE = process.env.UI_PHASE || 'main';
const T0 = Date.now();
const log = (...a) => console.log(`  [${((Date.now() - T0) / 1000).toFixed(1)}s]`, ...a);
const results = [];
let page;

async function step(name, fn) {
  try {
    await fn();
    results.push([name, true]);
    log(`ok - ${name}`);
  } catch (e) {
    results.push([name, false]);
    log(`FAIL - ${name}: ${e.message.split('\n')[0]}`);
    await page.screenshot({ path: `${SHOTS}/failure-${results.length}.png` }).catch(() => {});
    throw e;
  }
}

const { execFileSync } = require('child_process');
const cli = (...args) => execFileSync(process.env.AGENT_SANDBOXES_SERVER || process.env.SANDBOX_BIN, args, { encoding: 'utf8' });
async function waitForCli(probe, ms) {
  const end = Date.now() + ms;
  for (;;) {
    const r = probe();
    if (r || Date.now() > end) return r;
    await new Promise((res) => setTimeout(res, 500));
  }
}

async function palette(title) {
  await page.keyboard.press('F1');
  const input = page.locator('.quick-input-widget input');
  await input.waitFor({ timeout: 10000 });
  await input.fill(`>${title}`);
  await page.locator('.quick-input-list .monaco-list-row.focused', { hasText: title }).waitFor({ timeout: 10000 });
  await page.keyboard.press('Enter');
}

async function open(folder) {
  await page.goto(`${CS_ORIGIN}/?folder=${encodeURIComponent(folder)}`);
  await page.waitForSelector('.monaco-workbench', { timeout: 60000 });
  const icon = page.locator('.part.activitybar [aria-label^="Agent Sandboxes"]').first();
  await icon.waitFor({ timeout: 60000 });
  return icon;
}

/** The text the active terminal shows (DOM renderer: terminal.integrated.gpuAcceleration off). */
async function terminalText() {
  return (await page.locator('.terminal-wrapper.active .xterm-rows').allInnerTexts().catch(() => [])).join('\n');
}

async function mainPhase() {
  await page.goto(`${CS_ORIGIN}/?folder=${encodeURIComponent(`${E2E}/workspace`)}`);
  await page.waitForSelector('.monaco-workbench', { timeout: 60000 });

  const row = page.locator('.pane-body .monaco-list-row', { hasText: UI_SANDBOX });
  await step('the activity bar entry opens the Sandboxes tree, which lists the running sandbox', async () => {
    const icon = page.locator('.part.activitybar [aria-label^="Agent Sandboxes"]').first();
    await icon.waitFor({ timeout: 60000 });
    await icon.click();
    await row.waitFor({ timeout: 60000 });
    await row.locator('.label-description', { hasText: /minimal · no repository/ }).waitFor({ timeout: 30000 });
    const status = page.locator('.statusbar-item', { hasText: /\d+ running/ });
    await status.waitFor({ timeout: 30000 });
    log('tree rows:', await page.locator('.pane-body .monaco-list-row .label-name').allInnerTexts(), '· status bar:', await status.innerText());
    // Its children: the forwarded ports (and health, once probed).
    await row.locator('.monaco-tl-twistie').click();
    await page.locator('.pane-body .monaco-list-row', { hasText: 'ssh 22/tcp' }).waitFor({ timeout: 10000 });
    // Golden Images: expand the view, the minimal stack is built.
    await page.locator('.pane-header', { hasText: 'Golden Images' }).click();
    await page.locator('.pane-body .monaco-list-row', { hasText: 'minimal' }).locator('.label-description', { hasText: /^built/ }).waitFor({ timeout: 30000 });
    await page.waitForTimeout(500);
    await page.screenshot({ path: `${SHOTS}/tree.png` });
  });

  await step('the context menu of a running sandbox offers its actions', async () => {
    await row.click({ button: 'right' });
    const menu = page.locator('.monaco-menu');
    await menu.locator('.action-label', { hasText: 'Open Shell' }).waitFor({ timeout: 10000 });
    const labels = (await menu.locator('.action-label').allInnerTexts()).filter((s) => s.trim());
    log('context menu:', labels.join(' | '));
    for (const want of ['Open in Remote-SSH', 'Open Claude', 'Open Shell', 'Stop', 'Destroy…', 'Copy SSH Command']) {
      assert.ok(labels.includes(want), `menu has ${want}`);
    }
    assert.ok(!labels.includes('Start'), 'no Start on a running sandbox');
    await page.screenshot({ path: `${SHOTS}/context-menu.png` });
    await page.keyboard.press('Escape');
  });

  await step('an agent waiting in the sandbox: bell and message in the tree, the badge, "1 waiting", a notification whose Open Claude opens its terminal', async () => {
    // A hook fired inside the sandbox with the image's own command, as Claude Code fires it.
    const settings = JSON.parse(cli('exec', UI_SANDBOX, '--', 'cat', '/etc/claude-code/managed-settings.json'));
    const hook = settings.hooks.PermissionRequest.flatMap((e) => e.hooks).find((h) => h.command.includes('hooks.sock')).command;
    const event = JSON.stringify({ hook_event_name: 'PermissionRequest', session_id: 'ui-e2e', tool_name: 'Bash' });
    cli('exec', UI_SANDBOX, '--', 'sh', '-c', 'printf %s "$1" | sh -c "$2"', 'fire', event, hook);
    await row.locator('.label-description', { hasText: 'waiting: Claude needs your permission to use Bash' }).waitFor({ timeout: 30000 });
    await row.locator('.codicon-bell-dot').waitFor({ timeout: 10000 });
    const status = page.locator('.statusbar-item', { hasText: /\d+ waiting/ });
    await status.waitFor({ timeout: 10000 });
    const badge = page.locator('.part.activitybar .badge-content', { hasText: /^\d+$/ }).first();
    await badge.waitFor({ timeout: 10000 });
    log('status bar:', await status.innerText(), '· badge:', await badge.innerText());
    const toast = page.locator('.notification-toast', { hasText: `${UI_SANDBOX} is waiting: Claude needs your permission to use Bash` });
    await toast.waitFor({ timeout: 15000 });
    await page.screenshot({ path: `${SHOTS}/agent-waiting.png` });
    await toast.locator('.monaco-button', { hasText: 'Open Claude' }).click();
    // Its terminal runs `sandbox claude`: Claude Code starts in the sandbox.
    const running = await waitForCli(() => { try { return cli('exec', UI_SANDBOX, '--', 'pgrep', '-u', 'ubuntu', '-x', 'claude').trim(); } catch { return ''; } }, 40000);
    assert.ok(running, 'Open Claude started Claude Code in the sandbox');
    await page.screenshot({ path: `${SHOTS}/agent-open-claude.png` });
    // Done: the bell and the count go.
    const stop = JSON.stringify({ hook_event_name: 'Stop', session_id: 'ui-e2e', last_assistant_message: 'all good' });
    cli('exec', UI_SANDBOX, '--', 'sh', '-c', 'printf %s "$1" | sh -c "$2"', 'fire', stop, hook);
    await row.locator('.label-description', { hasText: 'done: all good' }).waitFor({ timeout: 30000 });
    await status.waitFor({ state: 'detached', timeout: 10000 });
  });

  await step('the Create wizard validates the name as it is typed', async () => {
    await palette('Sandbox: Create…');
    const input = page.locator('.quick-input-widget input');
    await page.locator('.quick-input-widget', { hasText: 'Create Sandbox' }).waitFor({ timeout: 10000 });
    await input.fill('bad name');
    await page.locator('.quick-input-widget .quick-input-message', { hasText: "contains ' '" }).waitFor({ timeout: 10000 });
    await page.waitForTimeout(300);
    await page.screenshot({ path: `${SHOTS}/wizard.png` });
    await input.fill(`${UI_SANDBOX}`);
    await page.locator('.quick-input-widget .quick-input-message', { hasText: 'exists' }).waitFor({ timeout: 10000 });
    await page.keyboard.press('Escape');
  });

  // The default path of a first-time user: a name, then Enter on every step. In a folder that is no
  // git checkout (no repository prefilled, so the branch step is passed over).
  const DEFAULTS = `${UI_SANDBOX}-d`;
  const widget = page.locator('.quick-input-widget');
  const placeholderStarts = (prefix) => page.waitForFunction(
    (p) => (document.querySelector('.quick-input-widget input')?.getAttribute('placeholder') ?? '').startsWith(p), prefix, { timeout: 15000 });
  await step('Create with every default: a name, then Enter on each step, makes a running sandbox', async () => {
    await page.goto(`${CS_ORIGIN}/?folder=${encodeURIComponent(`${E2E}/plain`)}`);
    await page.waitForSelector('.monaco-workbench', { timeout: 60000 });
    await page.locator('.part.activitybar [aria-label^="Agent Sandboxes"]').first().click();
    await page.locator('.pane-body .monaco-list-row', { hasText: UI_SANDBOX }).first().waitFor({ timeout: 60000 });
    await palette('Sandbox: Create…');
    await widget.filter({ hasText: 'Create Sandbox' }).waitFor({ timeout: 10000 });
    await widget.locator('input').fill(DEFAULTS);
    await page.keyboard.press('Enter');
    await widget.locator('.quick-input-message', { hasText: 'Repository to clone' }).waitFor({ timeout: 10000 });
    assert.strictEqual(await widget.locator('input').inputValue(), '', 'no repository prefilled outside a git checkout');
    await page.keyboard.press('Enter');
    await placeholderStarts('Stack');
    // The default stack (or the first built one) is highlighted: Enter takes it.
    await widget.locator('.quick-input-list .monaco-list-row.focused', { hasText: 'minimal' }).waitFor({ timeout: 10000 });
    await page.keyboard.press('Enter');
    await placeholderStarts('Options');
    await page.screenshot({ path: `${SHOTS}/create-defaults-options.png` });
    await page.keyboard.press('Enter');
    const created = page.locator('.pane-body .monaco-list-row', { hasText: DEFAULTS });
    await created.locator('.label-description', { hasText: /^minimal/ }).waitFor({ timeout: 90000 });
    await page.locator('.notifications-toasts .notification-toast', { hasText: `${DEFAULTS} is running` }).waitFor({ timeout: 90000 });
    await page.waitForTimeout(300);
    await page.screenshot({ path: `${SHOTS}/create-defaults-done.png` });
  });

  await step('a refused name raises "NAME was blocked from reaching X", listed in the tree; Allow lets the next request through', async () => {
    // A restricted sandbox against the simulated internet run.sh started (sim-inet).
    const name = `${UI_SANDBOX}-r`;
    const list = `${E2E}/ui-allowlist.txt`;
    fs.writeFileSync(list, 'allowed.test\n');
    cli('start', name, '--stack', 'minimal', '--domains-file', list);
    const curl = () => {
      try {
        return execFileSync('incus', ['exec', `agent-${name}`, '--', 'curl', '-sk', '--max-time', '8', 'https://later.test/'], { encoding: 'utf8' });
      } catch {
        return '';
      }
    };
    assert.doesNotMatch(curl(), /https ok/, 'refused before it is allowed');
    const toast = page.locator('.notifications-toasts .notification-toast', { hasText: `${name} was blocked from reaching later.test` });
    await toast.waitFor({ timeout: 30000 });
    const sandboxRow = page.locator('.pane-body .monaco-list-row', { hasText: name }).first();
    await sandboxRow.locator('.monaco-tl-twistie').click();
    await page.locator('.pane-body .monaco-list-row', { hasText: 'later.test' }).locator('.label-description', { hasText: /^blocked · DNS/ }).waitFor({ timeout: 10000 });
    await page.waitForTimeout(300);
    await page.screenshot({ path: `${SHOTS}/blocked-notification.png` });
    await toast.locator('.monaco-button', { hasText: 'Allow for this sandbox' }).click();
    await page.locator('.notifications-toasts .notification-toast', { hasText: `later.test is allowed for ${name}` }).waitFor({ timeout: 20000 });
    assert.match(curl(), /sni=later\.test/, 'the next request passes');
    await page.locator('.pane-body .monaco-list-row', { hasText: 'later.test' }).waitFor({ state: 'detached', timeout: 10000 });
    await sandboxRow.locator('.monaco-tl-twistie').click();
  });

  await step('a multi-target palette picker (Sandbox: Stop) acts on the filtered, highlighted row on Enter', async () => {
    await palette('Sandbox: Stop');
    await placeholderStarts('Sandboxes to stop');
    await widget.locator('input').fill(DEFAULTS);
    await widget.locator('.quick-input-list .monaco-list-row.focused', { hasText: DEFAULTS }).waitFor({ timeout: 10000 });
    await page.keyboard.press('Enter');
    await widget.waitFor({ state: 'hidden', timeout: 10000 });
    const r = await waitForCli(() => { const out = cli('list', '--json', '--no-health'); return JSON.parse(out).find((x) => x.name === DEFAULTS && x.state === 'stopped'); }, 60000);
    assert.ok(r, `${DEFAULTS} stopped`);
  });

  await step('a palette command (Sandbox: Copy SSH Command) picks the sandbox and reports', async () => {
    await palette('Sandbox: Copy SSH Command');
    await page.locator('.quick-input-widget', { hasText: 'copy the SSH command of' }).waitFor({ timeout: 10000 });
    await page.locator('.quick-input-widget input').fill(UI_SANDBOX); // other tests' sandboxes may be listed too
    await page.locator('.quick-input-list .monaco-list-row.focused', { hasText: UI_SANDBOX }).waitFor({ timeout: 10000 });
    await page.keyboard.press('Enter');
    const toast = page.locator('.notifications-toasts .notification-toast', { hasText: `ssh -F ` });
    await toast.waitFor({ timeout: 15000 });
    assert.match(await toast.innerText(), new RegExp(`Copied: ssh -F \\S+/ssh_config ${UI_SANDBOX}`));
    await page.waitForTimeout(800);
    await page.screenshot({ path: `${SHOTS}/palette-command.png` });
  });

  await step('Open Claude where Claude Code is missing: the terminal shows why and stays open, a notification says what to do', async () => {
    // Whatever the stack carries, this sandbox has no `claude` now.
    execFileSync('incus', ['exec', `agent-${UI_SANDBOX}`, '--', 'rm', '-f', '/usr/local/bin/claude', '/usr/bin/claude', '/home/ubuntu/.local/bin/claude']);
    const r = page.locator('.pane-body .monaco-list-row', { hasText: UI_SANDBOX }).first();
    await r.hover();
    await r.locator('.action-label[aria-label="Open Claude"]').click();
    await page.locator('.notifications-toasts .notification-toast', { hasText: 'Claude Code is not installed' }).waitFor({ timeout: 30000 });
    const end = Date.now() + 30000;
    let text = '';
    while (!text.includes('Press Enter to close this terminal') && Date.now() < end) {
      await page.waitForTimeout(300);
      text = await terminalText();
    }
    assert.match(text, new RegExp(`Claude Code is not installed in sandbox '${UI_SANDBOX}'`));
    assert.match(text, /hint: its golden image has none/);
    await page.screenshot({ path: `${SHOTS}/open-claude-without-claude.png` });
  });

  const AGENT = `${UI_SANDBOX}-a`;
  await step('New Agent: the task, one line with the name it derived (edited here), then the sandbox and its Claude session', async () => {
    await palette('Sandbox: New Agent…');
    await widget.filter({ hasText: 'What should the agent do?' }).waitFor({ timeout: 10000 });
    await widget.locator('input').fill('Write a haiku about containers');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => (document.querySelector('.quick-input-widget input')?.value ?? '').startsWith('write-haiku-about-containers'), null, { timeout: 10000 });
    await page.screenshot({ path: `${SHOTS}/new-agent-confirm.png` });
    await widget.locator('input').fill(AGENT);
    await page.keyboard.press('Enter');
    const created = page.locator('.pane-body .monaco-list-row', { hasText: AGENT });
    // Its agent's state comes first once Claude works on the task ("working · minimal · …").
    await created.locator('.label-description', { hasText: /(^|· )minimal/ }).waitFor({ timeout: 90000 });
    await page.locator('.tabs-container .tab, .terminal-tabs-entry, .single-terminal-tab', { hasText: `Claude · ${AGENT}` }).first().waitFor({ timeout: 30000 });
    await page.waitForTimeout(1500);
    await page.screenshot({ path: `${SHOTS}/new-agent.png` });
  });
}

/** The sidecar's Incus socket answers nothing (run.sh sets INCUS_SOCKET for this server run). */
async function noIncusPhase() {
  await (await open(`${E2E}/plain`)).click();
  await step('without Incus answering, the welcome view says why and offers Set Up This Machine', async () => {
    await page.locator('.welcome-view-content', { hasText: 'its daemon is not running' }).waitFor({ timeout: 60000 });
    await page.locator('.statusbar-item', { hasText: 'Incus not running' }).waitFor({ timeout: 30000 });
    await page.waitForTimeout(500);
    await page.screenshot({ path: `${SHOTS}/welcome-no-incus.png` });
  });
  await step('Set Up This Machine says what it does and why it needs root, then runs `sandbox host install` in a terminal', async () => {
    await page.locator('.welcome-view-content').getByRole('button', { name: 'Set Up This Machine' }).click();
    const dialog = page.locator('.monaco-dialog-box', { hasText: 'Set up this machine for sandboxes?' });
    await dialog.waitFor({ timeout: 15000 });
    assert.match(await dialog.innerText(), /needs root[\s\S]*sudo/);
    await page.screenshot({ path: `${SHOTS}/set-up-dialog.png` });
    await dialog.getByRole('button', { name: 'Set Up', exact: true }).click();
    // As root here, the steps run for real (everything is installed: they only check) and end.
    await page.locator('.notifications-toasts .notification-toast', { hasText: 'This machine is set up' }).waitFor({ timeout: 180000 });
    await page.waitForTimeout(500);
    await page.screenshot({ path: `${SHOTS}/set-up-done.png` });
  });
}

/** Another HOME (and SANDBOX_HOME) on the same Incus: run.sh starts this server run with them. */
async function secondHomePhase() {
  await (await open(`${E2E}/plain`)).click();
  const row = page.locator('.pane-body .monaco-list-row', { hasText: UI_SANDBOX }).first();
  await step("another HOME sees the sandbox marked as another user's, and counts none as its own", async () => {
    await row.locator('.label-description', { hasText: "another user's: Adopt to reach it" }).waitFor({ timeout: 60000 });
    // A fresh HOME reaches no sandbox: whatever runs on the host, its count is 0.
    await page.locator('.statusbar-item', { hasText: /^\s*0 running/ }).waitFor({ timeout: 30000 });
    await page.waitForTimeout(500);
    await page.screenshot({ path: `${SHOTS}/second-home.png` });
  });
  await step('Adopt makes it reachable from this HOME', async () => {
    await row.hover();
    await row.locator('.action-label[aria-label^="Adopt"]').click();
    await page.locator('.notifications-toasts .notification-toast', { hasText: `You can reach ${UI_SANDBOX}` }).waitFor({ timeout: 30000 });
    // Its own description now (after its agent's state, which the main phase left at done).
    await row.locator('.label-description', { hasText: /(^|· )minimal · no repository/ }).waitFor({ timeout: 30000 });
    const out = execFileSync('ssh', ['-F', `${process.env.SECOND_SANDBOX_HOME}/ssh_config`, '-o', 'BatchMode=yes', UI_SANDBOX, 'hostname'], { encoding: 'utf8' });
    assert.strictEqual(out.trim(), UI_SANDBOX);
    await page.waitForTimeout(500);
    await page.screenshot({ path: `${SHOTS}/second-home-adopted.png` });
  });
}

(async () => {
  const context = await chromium.launchPersistentContext(fs.mkdtempSync(`${E2E}/chrome-`), {
    executablePath: '/usr/bin/chromium', headless: true, viewport: { width: 1400, height: 900 },
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  page = context.pages()[0] || (await context.newPage());
  const consoleLog = fs.createWriteStream(`${E2E}/browser-console.log`);
  page.on('console', (m) => consoleLog.write(`[${m.type()}] ${m.text()}\n`));
  page.on('pageerror', (e) => consoleLog.write(`[pageerror] ${e.stack || e}\n`));
  const phases = { main: mainPhase, 'no-incus': noIncusPhase, 'second-home': secondHomePhase };
  await phases[PHASE]();
  await context.close();
  console.log(`ui-e2e: ${results.filter((r) => r[1]).length} passed, ${results.filter((r) => !r[1]).length} failed`);
})().catch((e) => {
  console.error('UI E2E FAILED:', e.message);
  process.exit(1);
});
