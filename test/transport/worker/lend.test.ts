/**
 * The shared ring lends to `tryRecvView` (one object, data in one scratch buffer) and publishes a
 * `sendBatch` once: what arrives must still be every message, whole and in order, whatever the
 * sizes, and a `recv` must still get a Message of its own.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import {
  Channel,
  exportEndpoint,
  importEndpoint,
  type OutgoingMessage,
} from '../../../src/index.js';

/** A pair whose second end went through a token: each message takes the shared ring. */
function sharedPair(): [Channel, Channel] {
  const [a, b] = Channel.pair({ capacity: 64 });
  return [a, importEndpoint(exportEndpoint(b))];
}

const SIZES = [0, 16, 64, 65, 4096, 16, 0, 65_536, 3];

function message(i: number, size: number): OutgoingMessage {
  return { type: i, data: new Uint8Array(size).map((_, k) => (i * 31 + k) & 0xff) };
}

it('views through the shared ring carry every size whole, in order, batch or not', () => {
  const [a, b] = sharedPair();
  const batch = SIZES.map((size, i) => message(i, size));
  assert.equal(a.sendBatch(batch), SIZES.length);
  for (const [i, size] of SIZES.entries()) a.send(message(i + SIZES.length, size));
  const all = [...SIZES, ...SIZES];
  for (const [i, size] of all.entries()) {
    const view = b.tryRecvView();
    assert.ok(view !== undefined, `message ${i} arrived`);
    assert.equal(view.type, i);
    assert.deepEqual(view.data, message(i, size).data, `message ${i} of ${size} bytes`);
  }
  assert.equal(b.tryRecvView(), undefined);
  assert.equal(b.stats.received, all.length);
  a.close();
  b.close();
});

it('a Message from recv is its own, a view is lent until the next receive', () => {
  const [a, b] = sharedPair();
  for (let i = 0; i < 4; i++) a.send(message(i, 16));
  const first = b.tryRecv();
  const second = b.tryRecv();
  assert.ok(first !== undefined && second !== undefined);
  assert.notEqual(first, second);
  assert.deepEqual(first.data, message(0, 16).data);
  // Each Message has an array of handles of its own: the caller may change it.
  assert.notEqual(first.handles, second.handles);
  assert.deepEqual(second.handles, []);
  const view = b.tryRecvView();
  assert.deepEqual(view?.data, message(2, 16).data);
  const again = b.tryRecvView();
  assert.equal(again, view, 'the same view object');
  assert.deepEqual(again?.data, message(3, 16).data);
  a.close();
  b.close();
});
