// ~/.ssh/config editing: the Include goes first, the rest is kept byte for byte.
import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import { HEADER, hasInclude, withInclude } from '../src/sshConfig';

const paths = ['~/.sandbox/ssh_config', '/root/.sandbox/ssh_config'];

test('an Include of the managed config is found in either spelling, anywhere, any case', () => {
  assert.equal(hasInclude('', paths), false);
  assert.equal(hasInclude('Host x\n  Include ~/.sandbox/ssh_config\n', paths), true);
  assert.equal(hasInclude('include /other /root/.sandbox/ssh_config\n', paths), true);
  assert.equal(hasInclude('# Include ~/.sandbox/ssh_config\n', paths), false, 'a comment is not an Include');
  assert.equal(hasInclude('Include ~/.sandbox/ssh_config.bak\n', paths), false);
});

test('the Include is added in front and the user text kept whole', () => {
  const user = 'Host *\n  ServerAliveInterval 30\n# trailing, no newline';
  const out = withInclude(user, '~/.sandbox/ssh_config');
  assert.equal(out, `${HEADER}\nInclude ~/.sandbox/ssh_config\n\n${user}`);
  assert.equal(out.split('\n').find((l) => l && !l.startsWith('#')), 'Include ~/.sandbox/ssh_config', 'the first directive');
  assert.equal(hasInclude(out, paths), true);
  assert.equal(withInclude('', '/x/ssh_config'), `${HEADER}\nInclude /x/ssh_config\n\n`);
});
