import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { Channel, exportEndpoint, isIpcError } from 'ftl-ipc';
import { startProcessPeer, startWorkerPeer } from './rpc-helpers.js';
import { serveWork } from './rpc-peer.js';
import { WorkClient } from './rpctest.generated.js';

/** `count` calls at once, all made before any reply can come; every one must succeed. */
async function manyAtOnce(client: WorkClient, count: number): Promise<void> {
  const calls: Promise<{ value: number }>[] = [];
  for (let i = 0; i < count; i++) calls.push(client.add({ value: i }));
  const replies = await Promise.all(calls);
  assert.deepEqual(
    replies.map((reply) => reply.value),
    Array.from({ length: count }, (_, i) => i + 1),
  );
}

describe('RPC under load, default limits', () => {
  it('10,000 concurrent calls succeed in one thread', async () => {
    const [a, b] = Channel.pair();
    const serving = serveWork(b);
    const client = new WorkClient(a);
    await manyAtOnce(client, 10_000);
    assert.ok(client.channel.stats.highWaterMark <= client.channel.limits.capacity);
    client.close();
    await serving;
  });

  it('10,000 concurrent calls succeed across threads', async () => {
    const [a, b] = Channel.pair();
    const worker = startWorkerPeer(b);
    const client = new WorkClient(a);
    await manyAtOnce(client, 10_000);
    client.close();
    // serve() returned and closed its channel: the worker ends by itself.
    assert.equal(await new Promise((resolve) => worker.once('exit', resolve)), 0);
  });

  it('10,000 concurrent calls succeed across processes', async () => {
    const [a, b] = Channel.pair();
    const child = await startProcessPeer(b);
    const client = new WorkClient(a);
    await manyAtOnce(client, 10_000);
    client.close();
    assert.deepEqual(await child.exited, { code: 0, signal: null });
  });

  it('a child whose serve() returned exits by itself', async () => {
    const [a, b] = Channel.pair();
    const child = await startProcessPeer(b);
    const client = new WorkClient(a);
    assert.equal((await client.add({ value: 1 })).value, 2);
    client.close();
    const exited = await Promise.race([
      child.exited,
      new Promise((resolve) => setTimeout(resolve, 10_000, 'still running')),
    ]);
    if (exited === 'still running') child.child.kill();
    assert.deepEqual(exited, { code: 0, signal: null });
  });

  // The calls are awaited (allSettled) before the worker is terminated: they may fail while
  // terminate() is still pending. A worker that dies before it imported its channel is reported
  // by the token's port closing, which Node delivers before the worker's 'exit' (and so before
  // terminate() resolves); awaiting terminate() first left those rejections unhandled for a turn.
  it('every call of a client that calls too many for a worker that dies fails, none hangs', async () => {
    const [a, b] = Channel.pair();
    const worker = startWorkerPeer(b);
    const client = new WorkClient(a);
    const settled = Promise.allSettled(
      Array.from({ length: 1000 }, (_, i) => client.add({ value: i })),
    );
    await worker.terminate();
    for (const r of await settled)
      if (r.status === 'rejected') assert.ok(isIpcError(r.reason, 'PEER_CLOSED'), String(r.reason));
    client.close();
  });

  it('every call fails PEER_CLOSED, none hangs, when the worker dies before it imported the channel', {
    timeout: 30_000,
  }, async () => {
    const [a, b] = Channel.pair();
    const token = exportEndpoint(b);
    // Started (it holds the token's port) but never imports: its death is told by the port.
    const worker = new Worker('setInterval(() => {}, 1000);', {
      eval: true,
      workerData: { token },
      transferList: token.transfer,
    });
    await once(worker, 'online');
    const client = new WorkClient(a);
    const settled = Promise.allSettled(
      Array.from({ length: 1000 }, (_, i) => client.add({ value: i })),
    );
    await worker.terminate();
    for (const r of await settled)
      assert.ok(r.status === 'rejected' && isIpcError(r.reason, 'PEER_CLOSED'), String(r));
    client.close();
  });
});
