import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import { describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import fc from 'fast-check';
import {
  Channel,
  DataPipe,
  DataPipeConsumer,
  DataPipeProducer,
  sharedMemoryStats,
} from '../../src/index.js';
import { rejectsCode, state, throwsCode } from '../channel/helpers.js';

const text = (s: string) => new TextEncoder().encode(s);

describe('data pipe', () => {
  it('two-phase write and read in the pipe buffer itself', async () => {
    const [producer, consumer] = DataPipe.create({ capacityBytes: 16 });
    const view = producer.beginWrite(4);
    assert.ok(view && view.byteLength >= 4);
    view.set(text('abcd'));
    producer.endWrite(4);
    const readView = consumer.beginRead();
    assert.deepEqual(readView, text('abcd'));
    consumer.endRead(2);
    assert.deepEqual(await consumer.read(), text('cd'));
    producer.close();
    await rejectsCode(consumer.read(), 'PEER_CLOSED');
  });

  it('holds 16 chunks of 64 KiB by default', () => {
    const [producer, consumer] = DataPipe.create();
    assert.equal(producer.capacityBytes, 1024 * 1024);
    const chunk = new Uint8Array(64 * 1024);
    for (let i = 0; i < 16; i++) assert.equal(producer.write(chunk), chunk.byteLength);
    throwsCode(() => producer.write(new Uint8Array(1)), 'BACKPRESSURE');
    assert.equal(consumer.stats.buffered, 1024 * 1024);
    producer.close();
    consumer.close();
  });

  it('checks two-phase misuse', () => {
    const [producer, consumer] = DataPipe.create({ capacityBytes: 8 });
    throwsCode(() => producer.endWrite(1), 'INVALID_ARGUMENT');
    const view = producer.beginWrite() as Uint8Array;
    throwsCode(() => producer.beginWrite(), 'INVALID_ARGUMENT');
    throwsCode(() => producer.write(text('x')), 'INVALID_ARGUMENT');
    throwsCode(() => producer.endWrite(view.byteLength + 1), 'INVALID_ARGUMENT');
    producer.endWrite(0);
    throwsCode(() => producer.beginWrite(9), 'TOO_LARGE');
    throwsCode(() => producer.beginWrite(0), 'INVALID_ARGUMENT');
    assert.equal(consumer.beginRead(), undefined);
    throwsCode(() => consumer.endRead(0), 'INVALID_ARGUMENT');
    throwsCode(() => DataPipe.create({ capacityBytes: 0 }), 'INVALID_ARGUMENT');
  });

  it('is bounded in bytes: all-or-none writes and the three strategies', () => {
    const [producer, consumer] = DataPipe.create({ capacityBytes: 10 });
    assert.equal(producer.write(text('123456')), 6);
    // An unknown strategy is rejected even when the bytes would fit, and nothing is written.
    throwsCode(() => producer.write(text('1'), { onFull: 'x' as 'drop' }), 'INVALID_ARGUMENT');
    throwsCode(() => producer.write(text('12345')), 'BACKPRESSURE');
    assert.equal(producer.write(text('12345'), { onFull: 'drop' }), 0);
    assert.equal(producer.write(text('12345'), { partial: true }), 4);
    assert.equal(producer.write(text('1'), { partial: true }), 0);
    assert.equal(consumer.stats.buffered, 10);
    throwsCode(() => producer.write(new Uint8Array(11)), 'TOO_LARGE');
    assert.equal(producer.write(text('1'), { onFull: 'close' }), 0);
    throwsCode(() => producer.write(text('1')), 'CLOSED');
    // Kept after close: 6 + 4 bytes written, 3 all-or-none writes that did not fit, 5 + 1 dropped.
    assert.deepEqual(producer.stats, {
      bytes: 10,
      buffered: 0,
      free: 0,
      backpressured: 3,
      dropped: 6,
    });
  });

  it('a write that wraps around and a beginWrite that needs contiguous room', async () => {
    const [producer, consumer] = DataPipe.create({ capacityBytes: 10 });
    producer.write(text('abcdefgh'));
    assert.deepEqual(await consumer.read(6), text('abcdef'));
    producer.write(text('ijklmn')); // 2 at the end, 4 from the start
    assert.deepEqual(await consumer.read(), text('ghij'));
    assert.deepEqual(await consumer.read(), text('klmn'));
    // Position 4 of 10, empty: 6 contiguous bytes at the end, so 7 must skip to the start.
    assert.equal(producer.beginWrite(7), undefined, 'the tail is short and the start is not free');
    producer.write(text('x'));
    await consumer.read();
    const view = producer.beginWrite(5) as Uint8Array;
    assert.ok(view.byteLength >= 5);
    view.set(text('vwxyz'));
    producer.endWrite(5);
    assert.deepEqual(await consumer.read(), text('vwxyz'));
  });

  it('writable and readable wait, and fail with PEER_CLOSED when the other end closes', async () => {
    const [producer, consumer] = DataPipe.create({ capacityBytes: 4 });
    producer.write(text('abcd'));
    const room = producer.writable(2);
    assert.equal(await state(room), 'pending');
    await consumer.read(1);
    assert.equal(await state(room), 'pending');
    await consumer.read(1);
    await room;
    const enough = consumer.readable(4);
    assert.equal(await state(enough), 'pending');
    producer.close();
    await enough; // fewer than asked, but the producer is done
    assert.deepEqual(await consumer.read(), text('cd'));
    await rejectsCode(consumer.readable(), 'PEER_CLOSED');
    throwsCode(() => consumer.beginRead(), 'PEER_CLOSED');
    await consumer.closed;

    const [p2, c2] = DataPipe.create({ capacityBytes: 1 });
    p2.write(text('a'));
    const waiting = p2.writable();
    c2.close();
    await rejectsCode(waiting, 'PEER_CLOSED');
    throwsCode(() => p2.write(text('b')), 'PEER_CLOSED');
    await p2.closed;
  });

  it('writeAll waits as often as needed; timeouts and aborts reject', async () => {
    const [producer, consumer] = DataPipe.create({ capacityBytes: 3 });
    const writing = producer.writeAll(text('hello world'));
    let got = '';
    for await (const chunk of consumer) {
      got += new TextDecoder().decode(chunk);
      if (got.length === 11) break;
    }
    await writing;
    assert.equal(got, 'hello world');
    producer.write(text('abc'));
    await rejectsCode(producer.writeAll(text('d'), { timeoutMs: 10 }), 'TIMEOUT');
    await rejectsCode(producer.writeAll(text('d'), { signal: AbortSignal.abort() }), 'ABORTED');
  });

  it('pipe ends are handles: they move over channels, all or nothing', async () => {
    const [a, b] = Channel.pair();
    const [producer, consumer] = DataPipe.create({ capacityBytes: 8 });
    const view = producer.beginWrite() as Uint8Array;
    throwsCode(() => a.send({ type: 1, handles: [producer] }), 'HANDLE_NOT_MOVABLE');
    view[0] = 1;
    producer.endWrite(1);
    a.send({ type: 1, handles: [producer] });
    throwsCode(() => producer.write(text('x')), 'CLOSED');
    const [moved] = (await b.recv()).handles;
    assert.ok(moved instanceof DataPipeProducer);
    moved.write(text('yz'));
    assert.deepEqual(await consumer.read(), Uint8Array.from([1, ...text('yz')]));
    b.send({ type: 2, handles: [consumer] });
    const [movedConsumer] = (await a.recv()).handles;
    assert.ok(movedConsumer instanceof DataPipeConsumer);
    moved.write(text('!'));
    moved.close();
    assert.deepEqual(await movedConsumer.read(), text('!'));
    await rejectsCode(movedConsumer.read(), 'PEER_CLOSED');
  });

  it('a pipe end in a message that dies unread is closed', async () => {
    const [a, b] = Channel.pair();
    const [producer, consumer] = DataPipe.create();
    a.send({ type: 1, handles: [producer] });
    b.close();
    await consumer.closed;
    await rejectsCode(consumer.read(), 'PEER_CLOSED');
  });

  it('keeps every byte in order across random writes and reads (model)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 64 }),
        fc.array(
          fc.oneof(
            fc.record({
              op: fc.constant('write' as const),
              size: fc.integer({ min: 0, max: 80 }),
              partial: fc.boolean(),
            }),
            fc.record({
              op: fc.constant('two-phase write' as const),
              min: fc.integer({ min: 1, max: 64 }),
              fill: fc.nat(),
            }),
            fc.record({ op: fc.constant('read' as const), max: fc.integer({ min: 1, max: 80 }) }),
          ),
          { maxLength: 80 },
        ),
        async (capacity, ops) => {
          const [producer, consumer] = DataPipe.create({ capacityBytes: capacity });
          const model: number[] = [];
          let next = 0;
          const fresh = (n: number) => Uint8Array.from({ length: n }, () => next++ & 0xff);
          for (const step of ops) {
            if (step.op === 'write') {
              const bytes = fresh(step.size);
              const free = producer.stats.free;
              assert.ok(free <= capacity - model.length);
              const fits = step.size <= free;
              if (step.partial) {
                const n = producer.write(bytes, { partial: true });
                assert.equal(n, Math.min(step.size, free));
                model.push(...bytes.subarray(0, n));
              } else if (step.size > capacity) {
                throwsCode(() => producer.write(bytes), 'TOO_LARGE');
              } else if (fits) {
                assert.equal(producer.write(bytes), step.size);
                model.push(...bytes);
              } else {
                assert.equal(producer.write(bytes, { onFull: 'drop' }), 0);
              }
            } else if (step.op === 'two-phase write') {
              if (step.min > capacity) continue;
              const view = producer.beginWrite(step.min);
              if (view === undefined) {
                assert.ok(
                  step.min > 1 || producer.stats.free === 0,
                  'a free byte is always writable',
                );
                continue;
              }
              assert.ok(view.byteLength >= step.min && model.length + view.byteLength <= capacity);
              const n = step.min + (step.fill % (view.byteLength - step.min + 1));
              const bytes = fresh(n);
              view.set(bytes);
              producer.endWrite(n);
              model.push(...bytes);
            } else {
              const view = consumer.beginRead();
              if (model.length === 0) {
                assert.equal(view, undefined);
                continue;
              }
              assert.ok(view);
              const n = Math.min(view.byteLength, step.max);
              assert.deepEqual([...view.subarray(0, n)], model.splice(0, n));
              consumer.endRead(n);
            }
            assert.equal(consumer.stats.buffered, model.length);
          }
          producer.close();
          const rest: number[] = [];
          for await (const chunk of consumer) rest.push(...chunk);
          assert.deepEqual(rest, model);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('Node stream adapters carry a file-sized stream intact', async () => {
    const [producer, consumer] = DataPipe.create({ capacityBytes: 4096 });
    const source = new Uint8Array(3_000_017).map((_, i) => (i * 31) & 0xff);
    const expected = createHash('sha256').update(source).digest('hex');
    const hash = createHash('sha256');
    await Promise.all([
      pipeline(
        (async function* () {
          for (let i = 0; i < source.byteLength; i += 10_000) yield source.subarray(i, i + 10_000);
        })(),
        producer.toNodeWritable(),
      ),
      pipeline(consumer.toNodeReadable(), hash),
    ]);
    assert.equal(hash.digest('hex'), expected);
  });

  it('pipeTo of 1 GiB through the Web Streams adapters keeps memory flat', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const [producer, consumer] = DataPipe.create({ capacityBytes: 256 * 1024 });
    const chunk = new Uint8Array(64 * 1024).fill(7);
    const total = 1024 ** 3;
    // Live memory (heap and array buffers after a full GC), not RSS: a GC's own growth is no leak.
    // Freed array buffers leave the count a little late, so a few chunks' worth of noise (8 to
    // 13 MiB measured) stays; unbounded buffering of a 1 GiB stream would be far above the limit.
    const live = () => {
      gc();
      const m = process.memoryUsage();
      return m.heapUsed + m.arrayBuffers;
    };
    const before = live();
    let peak = 0;
    let received = 0;
    let nextCheck = 128 * 1024 * 1024;
    const source = new ReadableStream<Uint8Array>(
      {
        pull(controller) {
          controller.enqueue(chunk);
        },
      },
      { highWaterMark: 0 },
    );
    let sent = 0;
    const limited = source.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(c, controller) {
          if (sent >= total) return controller.terminate();
          sent += c.byteLength;
          controller.enqueue(c);
        },
      }),
    );
    const sink = new WritableStream<Uint8Array>({
      write(c) {
        received += c.byteLength;
        if (received >= nextCheck) {
          nextCheck += 128 * 1024 * 1024;
          peak = Math.max(peak, live() - before);
        }
      },
    });
    await Promise.all([
      limited.pipeTo(producer.toWritableStream()).catch(() => {}),
      consumer.toReadableStream().pipeTo(sink),
    ]);
    assert.equal(received, total);
    assert.ok(peak < 48 * 1024 * 1024, `live memory grew by ${(peak / 2 ** 20).toFixed(1)} MiB`);
  });
});

describe('pipe buffers', () => {
  it('are arena blocks, reused once both ends closed: a thousand pipes cost one buffer', () => {
    const stats = () => sharedMemoryStats()[0] as { used: number; liveBytes: number };
    const warm = DataPipe.create();
    warm[0].close();
    warm[1].close();
    const before = stats();
    for (let i = 0; i < 1000; i++) {
      const [producer, consumer] = DataPipe.create();
      producer.write(text('x'));
      consumer.close();
      producer.close();
    }
    const after = stats();
    assert.equal(after.liveBytes, before.liveBytes);
    assert.equal(after.used, before.used, 'no new memory: every pipe took the block freed before');
  });
});
