import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  Channel,
  DataPipe,
  type DataPipeProducer,
  type Handle,
  spawnProcess,
} from '../../../src/index.js';
import { rejectsCode, throwsCode } from '../../channel/helpers.js';
import { child } from './helpers.js';

// Requests understood by children/piper.ts.
const COPY = 1;
const HOLD = 2;
const DRAIN = 3;
const CLOSE = 4;
const WRITE = 5;

async function piper() {
  const [ctl, theirs] = Channel.pair();
  const proc = await spawnProcess(child('piper'), { channels: { ctl: theirs } });
  const ask = async (type: number, handles: Handle[] = [], data = '') => {
    await ctl.sendWait({ type, data: new TextEncoder().encode(data), handles });
    const answer = await ctl.recv();
    assert.equal(answer.type, type);
    return new TextDecoder().decode(answer.data);
  };
  return { ctl, proc, ask };
}

describe('data pipes over a socket', () => {
  it('several MiB both ways, random chunk sizes across the wrap-around, arrive intact', async () => {
    const { ctl, proc, ask } = await piper();
    // Out through a consumer sent to the child, back through a producer sent to it.
    const [outP, outC] = DataPipe.create({ capacityBytes: 100_003 });
    const [backP, backC] = DataPipe.create({ capacityBytes: 77_777 });
    await ask(COPY, [outC, backP]);
    const total = 6 * 1024 * 1024;
    const source = randomBytes(total);
    const writing = (async () => {
      for (let at = 0; at < total; ) {
        const n = Math.min(total - at, 1 + Math.floor(Math.random() * 150_000));
        await writeAllTwoPhase(outP, source.subarray(at, at + n));
        at += n;
      }
      outP.close();
    })();
    const hash = createHash('sha256');
    let received = 0;
    for (;;) {
      let chunk: Uint8Array;
      try {
        chunk = await backC.read(1 + Math.floor(Math.random() * 90_000));
      } catch (err) {
        assert.equal((err as { code: string }).code, 'PEER_CLOSED');
        break;
      }
      hash.update(chunk);
      received += chunk.byteLength;
    }
    await writing;
    assert.equal(received, total);
    assert.equal(hash.digest('hex'), createHash('sha256').update(source).digest('hex'));
    ctl.close();
    assert.equal((await proc.exited).code, 0);
  });

  it('holds the bound end to end: capacityBytes in all while the far consumer does not read', async () => {
    const { ctl, proc, ask } = await piper();
    const capacity = 10_000;
    const [p, c] = DataPipe.create({ capacityBytes: capacity });
    await ask(HOLD, [c]);
    const chunk = new Uint8Array(1000);
    let written = 0;
    // Keep writing as room appears; the far side's credits must never give more than capacity.
    const deadline = Date.now() + 500;
    while (Date.now() < deadline) {
      written += p.write(chunk, { partial: true });
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.equal(written, capacity);
    throwsCode(() => p.write(new Uint8Array(1)), 'BACKPRESSURE');
    assert.equal(p.stats.free, 0);
    // Once the far consumer reads, room comes back.
    const draining = ask(DRAIN);
    await p.writable(capacity, { timeoutMs: 5000 });
    p.write(new Uint8Array(capacity));
    p.close();
    assert.equal(await draining, String(2 * capacity));
    ctl.close();
    assert.equal((await proc.exited).code, 0);
  });

  it('producer close: the far consumer drains, then PEER_CLOSED; both ways', async () => {
    const { ctl, proc, ask } = await piper();
    const [p, c] = DataPipe.create({ capacityBytes: 4096 });
    await ask(HOLD, [c]);
    p.write(new Uint8Array(3000));
    p.close();
    assert.equal(await ask(DRAIN), '3000');
    await ask(CLOSE);
    // The producer in the child, the consumer here.
    const [p2, c2] = DataPipe.create({ capacityBytes: 4096 });
    await ask(HOLD, [p2]);
    await ask(WRITE, [], '2500');
    await ask(CLOSE);
    let n = 0;
    for await (const chunk of c2) n += chunk.byteLength;
    assert.equal(n, 2500);
    await rejectsCode(c2.read(), 'PEER_CLOSED');
    ctl.close();
    assert.equal((await proc.exited).code, 0);
  });

  it('consumer close: the far producer fails with PEER_CLOSED; both ways', async () => {
    const { ctl, proc, ask } = await piper();
    const [p, c] = DataPipe.create({ capacityBytes: 4096 });
    await ask(HOLD, [c]);
    p.write(new Uint8Array(100));
    await ask(CLOSE);
    await p.closed;
    throwsCode(() => p.write(new Uint8Array(1)), 'PEER_CLOSED');
    // The consumer here, the producer in the child: its writes fail there.
    const [p2, c2] = DataPipe.create({ capacityBytes: 4096 });
    await ask(HOLD, [p2]);
    c2.close();
    // The CLOSE goes out within this turn; the request behind it on the same stream.
    await new Promise(setImmediate);
    assert.equal(await ask(WRITE, [], '10'), 'PEER_CLOSED');
    ctl.close();
    assert.equal((await proc.exited).code, 0);
  });

  it('kill -9 of the child holding an end: the local end sees its peer closed', async () => {
    const { proc, ask } = await piper();
    const [p, c] = DataPipe.create({ capacityBytes: 4096 });
    const [p2, c2] = DataPipe.create({ capacityBytes: 4096 });
    await ask(HOLD, [p2, c]);
    await ask(WRITE, [], '1234');
    p.write(new Uint8Array(10));
    proc.child.kill('SIGKILL');
    await p.closed;
    throwsCode(() => p.write(new Uint8Array(1)), 'PEER_CLOSED');
    let n = 0;
    for await (const chunk of c2) n += chunk.byteLength;
    assert.equal(n, 1234);
    assert.equal((await proc.exited).signal, 'SIGKILL');
  });
});

/** writeAll through two-phase writes, so that the ring skips tails as well. */
async function writeAllTwoPhase(p: DataPipeProducer, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.byteLength; ) {
    const want = Math.min(bytes.byteLength - at, 1 + Math.floor(Math.random() * 30_000));
    const view = p.beginWrite(Math.min(want, 20_000));
    if (view === undefined) {
      await p.writable(Math.min(want, 20_000));
      continue;
    }
    const n = Math.min(view.byteLength, want);
    view.set(bytes.subarray(at, at + n));
    p.endWrite(n);
    at += n;
  }
}
