import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { DataPipe, type DataPipeConsumer, exportPipeEnd, importPipeEnd } from '../../src/index.js';
import { rejectsCode, throwsCode } from '../channel/helpers.js';

const workerUrl = new URL('./pipe-worker.js', import.meta.url);

function pattern(offset: number, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = ((offset + i) * 131) >>> 3;
  return out;
}

function start(task: string, end: Parameters<typeof exportPipeEnd>[0], bytes = 0): Worker {
  const token = exportPipeEnd(end);
  return new Worker(workerUrl, {
    workerData: { token, task, bytes },
    transferList: token.transfer,
  });
}

describe('data pipe across threads', () => {
  it('carries 8 MiB from a worker intact and in order, never over capacity', async () => {
    const [producer, consumer] = DataPipe.create({ capacityBytes: 10_007 });
    const total = 8 * 1024 * 1024;
    const worker = start('produce', producer, total);
    const hash = createHash('sha256');
    let received = 0;
    let maxBuffered = 0;
    for await (const chunk of consumer) {
      maxBuffered = Math.max(maxBuffered, consumer.stats.buffered);
      hash.update(chunk);
      received += chunk.byteLength;
    }
    assert.equal(received, total);
    assert.equal(hash.digest('hex'), createHash('sha256').update(pattern(0, total)).digest('hex'));
    assert.ok(maxBuffered <= 10_007);
    await once(worker, 'exit');
  });

  it('carries bytes to a consumer in a worker', async () => {
    const [producer, consumer] = DataPipe.create({ capacityBytes: 4096 });
    const worker = start('consume', consumer);
    const data = pattern(0, 1_000_000);
    await producer.writeAll(data);
    producer.close();
    const [digest] = await once(worker, 'message');
    assert.equal(digest, createHash('sha256').update(data).digest('hex'));
  });

  it('a consumer that frees less than half the pipe and then idles still wakes the producer', async () => {
    const [producer, consumer] = DataPipe.create({ capacityBytes: 64 * 1024 });
    producer.write(new Uint8Array(64 * 1024));
    // The producer sleeps on a full pipe before the consumer frees anything.
    const room = producer.writable(100, { timeoutMs: 5000 });
    const worker = start('read-then-idle', consumer, 100);
    await once(worker, 'message');
    await room;
    assert.equal(producer.write(new Uint8Array(100)), 100);
    await worker.terminate();
  });

  it('a terminated producer: the consumer drains, then sees PEER_CLOSED within 100 ms', async () => {
    const [producer, consumer] = DataPipe.create({ capacityBytes: 1024 });
    const worker = start('write-then-hang', producer, 100);
    await once(worker, 'message');
    assert.equal((await consumer.read()).byteLength, 100);
    const failed = rejectsCode(consumer.read(), 'PEER_CLOSED');
    const started = performance.now();
    await worker.terminate();
    await failed;
    const ms = performance.now() - started;
    assert.ok(ms < 100, `took ${ms} ms`);
    await consumer.closed;
  });

  it('a consumer in a worker that is terminated fails a waiting writer with PEER_CLOSED', async () => {
    const [producer, consumer] = DataPipe.create({ capacityBytes: 16 });
    producer.write(new Uint8Array(16));
    const token = exportPipeEnd(consumer);
    const worker = new Worker(
      'setInterval(() => {}, 1000); require("worker_threads").parentPort.postMessage(1)',
      { eval: true, workerData: { token }, transferList: token.transfer },
    );
    await once(worker, 'message');
    const failed = rejectsCode(producer.writable(), 'PEER_CLOSED');
    await worker.terminate();
    await failed;
    throwsCode(() => producer.write(new Uint8Array(1)), 'PEER_CLOSED');
  });

  it('export checks its argument and kills the exported object', () => {
    const [producer] = DataPipe.create();
    const token = exportPipeEnd(producer);
    throwsCode(() => producer.write(new Uint8Array(1)), 'CLOSED');
    throwsCode(() => exportPipeEnd(producer), 'CLOSED');
    throwsCode(() => exportPipeEnd({} as DataPipeConsumer), 'INVALID_ARGUMENT');
    throwsCode(() => importPipeEnd({} as never), 'INVALID_ARGUMENT');
    token.port.close();
  });
});
