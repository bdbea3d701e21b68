import assert from 'node:assert/strict';
import { it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Channel } from '../../src/index.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function heapUsed(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

it('a million dropped messages leave the queue at capacity and the heap flat', () => {
  const [producer, consumer] = Channel.pair();
  const data = new Uint8Array(256);
  const before = heapUsed();
  let dropped = 0;
  for (let i = 0; i < 1_000_000; i++) {
    if (!producer.send({ type: i, data }, { onFull: 'drop' })) dropped++;
  }
  const growth = heapUsed() - before;
  assert.equal(consumer.stats.queuedMessages, 32);
  assert.equal(consumer.stats.queuedBytes, 32 * 256);
  assert.equal(dropped, 1_000_000 - 32);
  assert.equal(producer.stats.dropped, dropped);
  assert.ok(growth < 4 * 1024 * 1024, `heap grew by ${(growth / 1024 / 1024).toFixed(2)} MiB`);
});

it('accounting: every message offered is received, queued, discarded at close, or dropped', () => {
  const [a, b] = Channel.pair({ capacity: 16 });
  let offered = 0;
  for (let round = 0; round < 1000; round++) {
    for (let i = 0; i < (round * 7) % 23; i++, offered++) a.send({ type: i }, { onFull: 'drop' });
    for (let i = 0; i < (round * 5) % 19; i++) b.tryRecv();
  }
  for (let i = 0; i < 5; i++, offered++) a.send({ type: i }, { onFull: 'drop' });
  const queued = b.stats.queuedMessages;
  b.close();
  const sender = a.stats;
  const receiver = b.stats;
  assert.equal(sender.sent + sender.dropped, offered);
  assert.equal(receiver.received + receiver.discarded, sender.sent);
  assert.equal(receiver.discarded, queued);
  assert.ok(sender.dropped > 0 && receiver.received > 0 && queued > 0);
});
