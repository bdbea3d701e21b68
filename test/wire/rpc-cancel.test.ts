import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { Channel, IpcError, isIpcError, type Message } from 'ftl-ipc';
import { decodeMessage, encodeMessage } from 'ftl-ipc/wire';
import { encodeCancel, readControl, withDeadline, withTrace } from '../../src/wire/control.js';
import { bytesToHex, type HandleKind, handlesOf, hexToBytes, vectorsDir } from '../vectors/json.js';
import * as vectors from '../vectors/vectors.generated.js';
import { startProcessPeer, startWorkerPeer } from './rpc-helpers.js';
import { serveWork } from './rpc-peer.js';
import { serveWork as serveWith, WorkClient } from './rpctest.generated.js';

interface ControlVector {
  name: string;
  message: string;
  kind: 'cancel' | 'deadline' | 'trace';
  txid: number;
  timeout_ms?: number;
  /** The trace context as a W3C `traceparent`; null when a server ignores the one sent. */
  traceparent?: string | null;
  value?: { text: string };
  type: string;
  flags: number;
  hex: string;
}

interface InvalidControlVector {
  name: string;
  message: string;
  hex: string;
  handles?: HandleKind[];
  path: string;
}

const file = JSON.parse(readFileSync(`${vectorsDir}vectors.json`, 'utf8')) as {
  control: ControlVector[];
  invalid_control: InvalidControlVector[];
};
const descriptor = (name: string) =>
  (vectors as unknown as Record<string, { id: number }>)[name.split('.').at(-1)!]!;
const clean = (hex: string) => hex.replace(/\s+/g, '');

describe('cancel, deadline and trace context vectors', () => {
  for (const v of file.control) {
    it(v.name, () => {
      const d = descriptor(v.message);
      assert.equal(`0x${d.id.toString(16).padStart(8, '0')}`, v.type);
      let encoded =
        v.kind === 'cancel'
          ? encodeCancel(d.id, v.txid)
          : encodeMessage(vectors.echo, v.value!, v.txid);
      if (v.timeout_ms !== undefined) encoded = withDeadline(encoded, v.timeout_ms);
      if (typeof v.traceparent === 'string')
        encoded = withTrace(encoded, hexToBytes(v.traceparent.replaceAll('-', '')));
      // A context a server ignores is not one an encoder makes: only its reading is checked.
      if (v.traceparent !== null) {
        assert.equal(bytesToHex(encoded.data!), clean(v.hex));
        assert.equal(encoded.data![3], v.flags);
      }
      const control = readControl({ type: d.id, data: hexToBytes(v.hex), handles: [] });
      if (v.kind === 'cancel') {
        assert.equal(control.cancel, v.txid);
      } else {
        assert.equal(control.cancel, 0);
        assert.equal(control.timeoutMs, v.timeout_ms);
        const trace = control.trace === undefined ? null : bytesToHex(control.trace);
        assert.equal(trace, v.traceparent?.replaceAll('-', '') ?? null);
        assert.deepEqual(decodeMessage(vectors.echo, control.message), v.value);
      }
    });
  }

  it('every invalid control vector makes a server close its channel, naming the path', async () => {
    for (const v of file.invalid_control) {
      const [raw, b] = Channel.pair();
      const errors: IpcError[] = [];
      const serving = new vectors.AllServer(b).serve(
        {
          empty: () => {},
          scalars: () => {},
          text: () => {},
          handles: () => {},
          pipes: () => {},
          evolving: () => {},
          echo: ({ text }) => ({ text, color: vectors.Color.red }),
        },
        {
          onInvalid: (error) => {
            errors.push(error);
            return 'close';
          },
        },
      );
      const message: Message = {
        type: descriptor(v.message).id,
        data: hexToBytes(v.hex),
        handles: handlesOf(v.handles ?? []),
      };
      raw.send(message);
      await serving;
      assert.equal(errors.length, 1, v.name);
      assert.ok(
        errors[0] instanceof IpcError &&
          errors[0].code === 'INVALID_MESSAGE' &&
          errors[0].message.startsWith(`${v.path}: `),
        `${v.name}: ${errors[0]?.message}`,
      );
    }
  });
});

/** Calls `hang`, gives up on it, and measures until the handler reports its signal fired. */
async function cancelReachesHandler(
  client: WorkClient,
  how: 'abort' | 'timeout',
): Promise<{ ms: number; code: string; deadline: boolean }> {
  const controller = new AbortController();
  const call = client.hang(
    { tag: 7 },
    how === 'abort' ? { signal: controller.signal } : { timeoutMs: 30 },
  );
  const started = performance.now();
  if (how === 'abort') setTimeout(() => controller.abort(new Error('user gave up')), 30);
  await assert.rejects(call, (e) => isIpcError(e, how === 'abort' ? 'ABORTED' : 'TIMEOUT'));
  const gaveUp = performance.now();
  const event = await client.recv();
  assert.equal(event.kind, 'aborted');
  if (event.kind !== 'aborted') throw new Error('unreachable');
  assert.equal(event.value.tag, 7);
  assert.ok(gaveUp - started >= 25);
  return { ms: performance.now() - gaveUp, code: event.value.code, deadline: event.value.deadline };
}

describe('cancellation reaches the handler', () => {
  it('in one thread: abort and timeout fire the signal; the deadline is the one set', async () => {
    const [a, b] = Channel.pair();
    const serving = serveWork(b);
    const client = new WorkClient(a);
    const aborted = await cancelReachesHandler(client, 'abort');
    assert.deepEqual([aborted.code, aborted.deadline], ['ABORTED', false]);
    const timedOut = await cancelReachesHandler(client, 'timeout');
    assert.deepEqual([timedOut.code, timedOut.deadline], ['ABORTED', true]);
    // The late error replies were dropped quietly: the window is whole again.
    assert.equal((await client.add({ value: 1 })).value, 2);
    client.close();
    await serving;
  });

  it('across threads within 100 ms', async () => {
    const [a, b] = Channel.pair();
    const worker = startWorkerPeer(b);
    const client = new WorkClient(a);
    assert.equal((await client.add({ value: 1 })).value, 2);
    for (const how of ['abort', 'timeout'] as const) {
      const { ms } = await cancelReachesHandler(client, how);
      assert.ok(ms < 100, `${how}: the handler saw its signal ${ms.toFixed(1)} ms later`);
    }
    client.close();
    await new Promise((resolve) => worker.once('exit', resolve));
  });

  it('across processes within 1 s', async () => {
    const [a, b] = Channel.pair();
    const child = await startProcessPeer(b);
    const client = new WorkClient(a);
    assert.equal((await client.add({ value: 1 })).value, 2);
    for (const how of ['abort', 'timeout'] as const) {
      const { ms } = await cancelReachesHandler(client, how);
      assert.ok(ms < 1000, `${how}: the handler saw its signal ${ms.toFixed(1)} ms later`);
    }
    client.close();
    await child.exited;
  });

  it("gives the handler the client's deadline, and none without a timeout", async () => {
    const [a, b] = Channel.pair();
    const deadlines: (number | undefined)[] = [];
    const serving = serveWith(b, {
      add: ({ value }, context) => {
        deadlines.push(context.deadline);
        return { value };
      },
      hang: () => ({}),
      noisy: ({ value }) => ({ value }),
    });
    const client = new WorkClient(a);
    const before = Date.now();
    await client.add({ value: 1 }, { timeoutMs: 5000 });
    await client.add({ value: 2 });
    const [withTimeout, without] = deadlines;
    assert.ok(withTimeout !== undefined && withTimeout >= before + 4900, String(withTimeout));
    assert.ok(withTimeout <= Date.now() + 5000, String(withTimeout));
    assert.equal(without, undefined);
    client.close();
    await serving;
  });

  it('a call cancelled while it waits for a handler slot never runs', async () => {
    const [a, b] = Channel.pair();
    const started: number[] = [];
    let release = () => {};
    const serving = serveWith(
      b,
      {
        add: async ({ value }) => {
          started.push(value);
          if (value === 1) await new Promise<void>((resolve) => (release = resolve));
          return { value };
        },
        hang: () => ({}),
        noisy: ({ value }) => ({ value }),
      },
      { concurrency: 1 },
    );
    const client = new WorkClient(a);
    const first = client.add({ value: 1 });
    const controller = new AbortController();
    const second = client.add({ value: 2 }, { signal: controller.signal });
    await new Promise((resolve) => setImmediate(resolve));
    controller.abort();
    await assert.rejects(second, (e) => isIpcError(e, 'ABORTED'));
    await new Promise((resolve) => setImmediate(resolve));
    release();
    assert.equal((await first).value, 1);
    assert.equal((await client.add({ value: 3 })).value, 3);
    assert.deepEqual(started, [1, 3]);
    client.close();
    await serving;
  });

  it('a call given up before it was sent is never sent', async () => {
    const [a, b] = Channel.pair({ capacity: 2 });
    const client = new WorkClient(a);
    // The window of a 2-message queue is one call; the second waits, then times out.
    const first = client.add({ value: 1 });
    const second = client.add({ value: 2 }, { timeoutMs: 20 });
    await assert.rejects(second, (e) => isIpcError(e, 'TIMEOUT'));
    assert.equal(a.stats.sent, 1);
    const serving = serveWork(b);
    assert.equal((await first).value, 2);
    client.close();
    await serving;
  });
});
