// The wizard's validators against the table the engine's own tests read too
// (tests/validation-cases.json): a value one accepts, the other accepts.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import * as v from '../src/validate';

type Table = Record<string, { valid: string[]; invalid: string[] }>;
const table: Table = JSON.parse(fs.readFileSync(path.join(__dirname, '../../../tests/validation-cases.json'), 'utf8'));

const validators: Record<string, (x: string) => string | undefined> = {
  name: v.sandboxName, cpu: v.cpu, memory: v.memory, disk: v.disk, env: v.envPair, repo: v.repoUrl, branch: v.branch,
  credential: v.credential,
};

test('every field of the shared table has a validator here', () => {
  assert.deepEqual(Object.keys(table).filter((k) => !k.startsWith('_')).sort(), Object.keys(validators).sort());
});

for (const [field, check] of Object.entries(validators)) {
  test(`${field}: the shared cases`, () => {
    for (const ok of table[field].valid) assert.equal(check(ok), undefined, `${field} ${JSON.stringify(ok)} should be accepted`);
    for (const bad of table[field].invalid) {
      const msg = check(bad);
      assert.ok(msg, `${field} ${JSON.stringify(bad)} should be refused`);
      assert.match(msg, /:/, 'the message says what to do');
    }
  });
}

test('env lists split on spaces; ports are 1 to 65535', () => {
  assert.deepEqual(v.splitEnv(' A=1  B=2 '), ['A=1', 'B=2']);
  assert.match(v.envList('A=1 1B=2') ?? '', /not a variable name/);
  for (const ok of ['1', '8080', '65535']) assert.equal(v.port(ok), undefined);
  for (const bad of ['0', '65536', 'x', '+80', '']) assert.ok(v.port(bad));
});
