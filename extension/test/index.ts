// Entry point for `extensionTestsPath`: runs the Mocha suite inside the extension host of a real
// VS Code (code-server's workbench) and rejects when a test failed; tests/vscode/run.sh drives it.
import * as fs from 'fs';
import Mocha from 'mocha';
import * as path from 'path';

export async function run(): Promise<void> {
  const mocha = new Mocha({ ui: 'bdd', timeout: 180_000, color: false, reporter: 'spec' });
  mocha.addFile(path.join(__dirname, 'e2e.test.js'));
  mocha.addFile(path.join(__dirname, 'firstuser.test.js'));
  mocha.addFile(path.join(__dirname, 'review.test.js'));
  const results: { title: string; state: string; ms: number; error?: string }[] = [];
  const failures = await new Promise<number>((resolve) => {
    const runner = mocha.run(resolve);
    runner.on('test end', (t) => {
      results.push({ title: t.fullTitle(), state: t.state ?? 'pending', ms: t.duration ?? 0, error: t.err?.message });
    });
    runner.on('fail', (t, err) => {
      if ((t as { type: string }).type === 'hook') results.push({ title: t.fullTitle(), state: 'failed', ms: 0, error: err.message });
    });
  });
  if (process.env.AGENT_SANDBOXES_TEST_RESULTS) {
    fs.writeFileSync(process.env.AGENT_SANDBOXES_TEST_RESULTS, JSON.stringify(results, null, 2));
  }
  if (failures > 0) throw new Error(`${failures} test(s) failed`);
}
