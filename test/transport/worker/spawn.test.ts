import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { Channel, isIpcError, spawnWorker } from '../../../src/index.js';
import { child } from '../socket/helpers.js';
import { failure } from '../spawn-helpers.js';

describe('spawnWorker', () => {
  it('hands channels to a worker that takes them with parentChannels(), as a process does', async () => {
    // The same echo module the process tests run with spawnProcess.
    const [mine, theirs] = Channel.pair({ capacity: 4 });
    const { exited } = await spawnWorker(child('echo'), { channels: { relay: theirs } });
    for (let i = 0; i < 20; i++) {
      await mine.sendWait({ type: i });
      assert.equal((await mine.recv()).type, i);
    }
    mine.close();
    assert.deepEqual(await exited, { code: 0 });
  });

  it('reports a worker that exits before taking its channels, with its exit code', async () => {
    const [mine, theirs] = Channel.pair();
    const error = await failure(
      spawnWorker(child('early-exit'), { stderr: true, channels: { work: theirs } }),
      'CONNECTION_FAILED',
    );
    // Its channel went down with it.
    await assert.rejects(mine.recv(), (e: unknown) => isIpcError(e, 'PEER_CLOSED'));
    assert.match(error.message, /early-exit\.js exited with code 3 before calling parentChannels/);
  });

  it('reports a module that fails to load with the loader error as the cause', async () => {
    const error = await failure(spawnWorker(child('bad-import')), 'CONNECTION_FAILED');
    assert.match(
      error.message,
      /exited with code 1 before calling parentChannels\(\): .*no-such-module/,
    );
    assert.equal((error.cause as { code?: string }).code, 'ERR_MODULE_NOT_FOUND');
  });

  it('terminates a worker that does not take its channels in time', async () => {
    const error = await failure(
      spawnWorker(child('idle'), { handshakeTimeoutMs: 300, stderr: true }),
      'TIMEOUT',
    );
    assert.match(error.message, /did not call parentChannels\(\) within 300 ms; it was terminated/);
  });

  it('rejects a missing module before starting anything', async () => {
    const error = await failure(spawnWorker('./no/such/worker.js'), 'INVALID_ARGUMENT');
    assert.match(error.message, /no\/such\/worker\.js not found .*current directory/);
  });

  it('names a channel that cannot be handed over, and moves none', async () => {
    const [mine, theirs] = Channel.pair();
    const [dead] = Channel.pair();
    dead.close();
    const error = await failure(
      spawnWorker(child('echo'), { channels: { ok: theirs, dead } }),
      'HANDLE_NOT_MOVABLE',
    );
    assert.match(error.message, /channels\.dead is closed/);
    theirs.send({ type: 1 });
    assert.equal((await mine.recv()).type, 1);
    const twice = await failure(
      spawnWorker(child('echo'), { channels: { a: theirs, b: theirs } }),
      'HANDLE_NOT_MOVABLE',
    );
    assert.match(twice.message, /channels\.b is the same channel as channels\.a/);
  });

  it('closes the channels it exported when a later one needs too large a ring', async () => {
    const [mine, theirs] = Channel.pair();
    const [, huge] = Channel.pair({ capacityBytes: 2 ** 31 });
    await failure(
      spawnWorker(child('echo'), { channels: { ok: theirs, huge } }),
      'HANDLE_NOT_MOVABLE',
    );
    await assert.rejects(mine.recv(), (e: unknown) => isIpcError(e, 'PEER_CLOSED'));
  });

  it('tells a worker made with new Worker where its channels come from', async () => {
    const worker = new Worker(new URL('./children/not-spawned.js', import.meta.url));
    // Listening for the exit first: a worker that exits before its message was read has it
    // delivered in the same callback as 'exit', before an await could listen for the latter.
    const exited = once(worker, 'exit');
    const [reply] = (await once(worker, 'message')) as [{ code: string; message: string }];
    await exited;
    assert.equal(reply.code, 'INVALID_ARGUMENT');
    assert.match(reply.message, /not started by spawnWorker.*importEndpoint/);
  });
});
