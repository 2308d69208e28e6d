// New Agent: name and branch from the task, and the one editable confirmation line.
import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import { branchFor, confirmationLine, nameFromTask, parseConfirmation } from '../src/agentModel';
import { sandboxName } from '../src/validate';

const none = () => false;

test('a name from the task: its first words, lowercase, no filler, valid', () => {
  assert.equal(nameFromTask('Fix the login bug on Safari', none), 'fix-login-bug-safari');
  assert.equal(nameFromTask('  Add CSV export (users page)!! ', none), 'add-csv-export-users-page');
  assert.equal(nameFromTask('Refactor the very long and complicated payment reconciliation module', none), 'refactor-very-long-complicated-payment');
  assert.equal(nameFromTask('¿Qué? — ünïcode café', none), 'que-unicode-cafe');
  assert.equal(nameFromTask('!!!', none), 'agent');
  assert.equal(nameFromTask('a the of', none), 'agent');
  for (const t of ['x'.repeat(100), 'rm -rf / ; $(reboot)', '--', 'ÅÄÖ', '1 2 3']) assert.equal(sandboxName(nameFromTask(t, none)), undefined, t);
});

test('taken names get a number', () => {
  const taken = new Set(['fix-tests', 'fix-tests-2']);
  assert.equal(nameFromTask('fix tests', (n) => taken.has(n)), 'fix-tests-3');
});

test('the confirmation line: name and branch, either edited', () => {
  const check = (n: string) => sandboxName(n) ?? (n === 'taken' ? 'exists' : undefined);
  assert.equal(confirmationLine('fix-x', true), 'fix-x agent/fix-x');
  assert.equal(confirmationLine('fix-x', false), 'fix-x');
  assert.deepEqual(parseConfirmation('fix-x agent/fix-x', true, check), { name: 'fix-x', branch: 'agent/fix-x' });
  assert.deepEqual(parseConfirmation(' mine  feature/mine ', true, check), { name: 'mine', branch: 'feature/mine' });
  assert.deepEqual(parseConfirmation('mine', true, check), { name: 'mine', branch: branchFor('mine') });
  assert.deepEqual(parseConfirmation('mine', false, check), { name: 'mine', branch: undefined });
  assert.match(parseConfirmation('', true, check) as string, /give a name/);
  assert.match(parseConfirmation('a b c', true, check) as string, /two words/);
  assert.match(parseConfirmation('a b', false, check) as string, /one word/);
  assert.equal(parseConfirmation('taken b', true, check), 'exists');
  assert.match(parseConfirmation('ok ..bad', true, check) as string, /not a branch name/);
});
