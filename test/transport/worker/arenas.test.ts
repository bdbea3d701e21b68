/** Threads with arenas of their own still exchange channels (announced on a BroadcastChannel). */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { it } from 'node:test';
import { promisify } from 'node:util';

it('a worker started before its parent loaded the library: a channel from the parent reaches it inside a message', async () => {
  const script = new URL('./late-import.js', import.meta.url).pathname;
  const { stdout } = await promisify(execFile)(process.execPath, [script], { timeout: 60_000 });
  assert.deepEqual(JSON.parse(stdout), { arenas: 2, reply: 8 });
});
