/** The arenas of shared memory: threads with arenas of their own, and growth made visible. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import diagnosticsChannel from 'node:diagnostics_channel';
import { it } from 'node:test';
import { promisify } from 'node:util';
import { Channel, exportEndpoint, importEndpoint, sharedMemoryStats } from '../../../src/index.js';

it('a worker started before its parent loaded the library: a channel from the parent reaches it inside a message', async () => {
  const script = new URL('./late-import.js', import.meta.url).pathname;
  const { stdout } = await promisify(execFile)(process.execPath, [script], { timeout: 60_000 });
  assert.deepEqual(JSON.parse(stdout), { arenas: 2, reply: 8 });
});

it('an arena that grows says so on ftl-ipc:worker:arena, with the figures of sharedMemoryStats', () => {
  const events: { event: string; size: number; reserved: number }[] = [];
  const listener = (message: unknown) => events.push(message as (typeof events)[number]);
  diagnosticsChannel.subscribe('ftl-ipc:worker:arena', listener);
  const pairs: Channel[] = [];
  const start = (sharedMemoryStats()[0] as { size: number }).size;
  while ((sharedMemoryStats()[0] as { size: number }).size === start) {
    const [a, b] = Channel.pair();
    pairs.push(a, importEndpoint(exportEndpoint(b)));
  }
  diagnosticsChannel.unsubscribe('ftl-ipc:worker:arena', listener);
  for (const p of pairs) p.close();
  const grown = events.find((e) => e.event === 'grow');
  assert.ok(grown !== undefined, 'a grow event');
  assert.ok(grown.size > start && grown.reserved >= grown.size);
});
