import assert from 'node:assert/strict';
import diagnosticsChannel from 'node:diagnostics_channel';
import { describe, it } from 'node:test';
import { Channel, type ChannelOptions, IpcError, isIpcError } from 'ftl-ipc';
import { hexToBytes } from '../vectors/json.js';
import {
  AllClient,
  type AllHandlers,
  AllServer,
  Color,
  echo,
  serveAll,
} from '../vectors/vectors.generated.js';

const ignore = () => {};
const handlers = (overrides: Partial<AllHandlers> = {}): AllHandlers => ({
  empty: ignore,
  scalars: ignore,
  text: ignore,
  handles: ignore,
  pipes: ignore,
  evolving: ignore,
  echo: ({ text }) => ({ text: text.toUpperCase(), color: Color.blue }),
  ...overrides,
});

function connect(options?: ChannelOptions): { client: AllClient; server: AllServer; raw: Channel } {
  const [a, b] = Channel.pair(options);
  return { client: new AllClient(a), server: new AllServer(b), raw: a };
}

const code = (expected: string) => (e: unknown) => isIpcError(e) && e.code === expected;

describe('generated client and server', () => {
  it('calls and replies, matching concurrent replies by transaction id', async () => {
    const { client, server } = connect();
    const serving = server.serve(handlers());
    const replies = await Promise.all(['a', 'b', 'c'].map((text) => client.echo({ text })));
    assert.deepEqual(
      replies,
      ['A', 'B', 'C'].map((text) => ({ text, color: Color.blue })),
    );
    client.close();
    await serving;
  });

  it('times out, aborts, and drops a reply that comes too late', async () => {
    const { client, server } = connect();
    let release = ignore;
    const serving = server.serve(
      handlers({
        echo: async ({ text }) => {
          if (text === 'slow') await new Promise<void>((resolve) => (release = resolve));
          return { text, color: Color.red };
        },
      }),
    );
    await assert.rejects(client.echo({ text: 'slow' }, { timeoutMs: 20 }), code('TIMEOUT'));
    release();
    assert.deepEqual(await client.echo({ text: 'next' }), { text: 'next', color: Color.red });
    const aborted = new AbortController();
    aborted.abort(new Error('changed my mind'));
    await assert.rejects(client.echo({ text: 'x' }, { signal: aborted.signal }), code('ABORTED'));
    client.close();
    await serving;
  });

  it('rejects pending calls when the server goes away', async () => {
    const { client, server } = connect();
    const call = client.echo({ text: 'hello' });
    await server.recv();
    server.close();
    await assert.rejects(call, code('PEER_CLOSED'));
  });

  it('a failing handler fails only its call: REMOTE_ERROR with its message and no stack, serving goes on, the failure is published', async () => {
    const { client, server } = connect();
    const published: unknown[] = [];
    const listen = (event: unknown) => published.push(event);
    diagnosticsChannel.subscribe('ftl-ipc:rpc:error', listen);
    try {
      const failure = new Error('disk full');
      const serving = server.serve(
        handlers({
          echo: ({ text }) => {
            if (text === 'sync') throw failure;
            if (text === 'async') return Promise.reject(failure);
            return { text, color: Color.red };
          },
        }),
      );
      for (const text of ['sync', 'async'])
        await assert.rejects(
          client.echo({ text }),
          (e: unknown) =>
            code('REMOTE_ERROR')(e) &&
            /failed at the peer: disk full \(HANDLER_FAILED\)$/.test((e as Error).message),
        );
      assert.deepEqual(await client.echo({ text: 'next' }), { text: 'next', color: Color.red });
      assert.deepEqual(published, [
        { channel: server.channel, error: failure, kind: 'echo', action: 'continue' },
        { channel: server.channel, error: failure, kind: 'echo', action: 'continue' },
      ]);
      client.close();
      await serving;
    } finally {
      diagnosticsChannel.unsubscribe('ftl-ipc:rpc:error', listen);
    }
  });

  it('stopOnError: the first failure is answered, then serving stops and serve rejects with it', async () => {
    const { client, server } = connect();
    const failure = new Error('disk full');
    const serving = server.serve(handlers({ echo: () => Promise.reject(failure) }), {
      stopOnError: true,
    });
    await assert.rejects(client.echo({ text: 'x' }), code('REMOTE_ERROR'));
    await assert.rejects(serving, (e) => e === failure);
    await assert.rejects(client.echo({ text: 'again' }), code('PEER_CLOSED'));
  });

  it("replyStack: the error reply carries the handler error's stack", async () => {
    const { client, server } = connect();
    const serving = server.serve(
      handlers({
        echo: function failingEcho() {
          throw new Error('disk full');
        },
      }),
      { replyStack: true },
    );
    await assert.rejects(
      client.echo({ text: 'x' }),
      (e: unknown) =>
        code('REMOTE_ERROR')(e) &&
        /Error: disk full\n\s+at .*failingEcho/.test((e as Error).message),
    );
    client.close();
    await serving;
  });

  it('an onError that throws stops serving with what it threw', async () => {
    const { client, server } = connect();
    const gaveUp = new Error('onError gave up');
    const serving = server.serve(
      handlers({
        echo: () => {
          throw new Error('disk full');
        },
      }),
      {
        onError: () => {
          throw gaveUp;
        },
      },
    );
    await assert.rejects(client.echo({ text: 'x' }), code('REMOTE_ERROR'));
    await assert.rejects(serving, (e) => e === gaveUp);
  });

  it('keeps serving after a handler failure when onError is given', async () => {
    const { client, server } = connect();
    const errors: string[] = [];
    const serving = server.serve(
      handlers({
        scalars: () => {
          throw new Error('bad push');
        },
      }),
      { onError: (error, kind) => errors.push(`${kind}: ${(error as Error).message}`) },
    );
    client.scalars({
      flag: true,
      i8: 1,
      i16: 2,
      i32: 3,
      i64: 4n,
      u8: 5,
      u16: 6,
      u32: 7,
      u64: 8n,
      f32: 0.5,
      f64: 0.25,
    });
    assert.equal((await client.echo({ text: 'ok' })).text, 'OK');
    assert.deepEqual(errors, ['scalars: bad push']);
    client.close();
    await serving;
  });

  it('closes the channel on invalid input and closes the handles it carried', async () => {
    const { raw, server } = connect();
    const [carried, carriedPeer] = Channel.pair();
    const serving = server.serve(handlers());
    raw.send({ type: echo.id, data: hexToBytes('4649010001000000ff'), handles: [carried] });
    await serving;
    assert.equal(await carriedPeer.closed, 'peer');
    assert.equal(await raw.closed, 'peer');
  });

  it("can ignore invalid input instead, with onInvalid: 'ignore'", async () => {
    const { raw, client, server } = connect();
    const seen: string[] = [];
    const serving = server.serve(handlers(), {
      onInvalid: (error) => {
        seen.push(error.code);
        return 'ignore';
      },
    });
    raw.send({ type: 12345, data: new Uint8Array(8) });
    assert.equal((await client.echo({ text: 'still here' })).text, 'STILL HERE');
    assert.deepEqual(seen, ['INVALID_MESSAGE']);
    client.close();
    await serving;
  });

  it('delivers typed pushes both ways, and iteration ends when the server closes', async () => {
    const { client, server } = connect();
    const texts: string[] = [];
    const serving = server.serve(handlers({ text: ({ text }) => void texts.push(text) }));
    assert.equal(client.text({ text: 'héllo', blob: new Uint8Array([1]) }), true);
    await client.textWait({ text: 'world', blob: new Uint8Array() });
    const containers = {
      points: [{ x: 1, y: 2 }],
      matrix: [[3]],
      labeled: { point: { x: 0, y: 0 } },
      vec: { z: 1 },
    };
    server.containers(containers);
    await server.containersWait({ ...containers, color: Color.green });
    const events = [];
    setTimeout(() => server.close(), 10);
    for await (const event of client) events.push(event);
    assert.deepEqual(events, [
      { kind: 'containers', txid: 0, value: containers },
      { kind: 'containers', txid: 0, value: { ...containers, color: Color.green } },
    ]);
    assert.deepEqual(texts, ['héllo', 'world']);
    await serving;
  });

  it("applies Channel's backpressure options to pushes", async () => {
    const { client, server } = connect({ capacity: 1 });
    const value = { a: 1 };
    assert.equal(client.evolving(value), true);
    assert.throws(() => client.evolving(value), code('BACKPRESSURE'));
    assert.equal(client.evolving(value, { onFull: 'drop' }), false);
    const waiting = client.evolvingWait({ a: 2 });
    assert.deepEqual(await server.recv(), { kind: 'evolving', txid: 0, value: { a: 1 } });
    await waiting;
    assert.deepEqual(await server.recv(), { kind: 'evolving', txid: 0, value: { a: 2 } });
  });

  it('moves channels in fields: the sender loses them, the receiver can use them', async () => {
    const { client, server } = connect();
    const [mine, theirs] = Channel.pair();
    const [spare] = Channel.pair();
    client.handles({ first: mine, more: [spare] });
    await assert.rejects(mine.recv(), code('CLOSED'));
    const received = await server.recv();
    assert.equal(received.kind, 'handles');
    if (received.kind !== 'handles') return;
    received.value.first.send({ type: 1 });
    assert.equal((await theirs.recv()).type, 1);
    assert.equal(received.value.more.length, 1);
  });

  it('refuses to encode a value outside its type, naming the field', () => {
    const { client } = connect();
    assert.throws(
      () => client.text({ text: 'x'.repeat(17), blob: new Uint8Array() }),
      (e: unknown) =>
        e instanceof IpcError &&
        e.code === 'INVALID_ARGUMENT' &&
        e.message.startsWith('text: expected a string of at most 16 UTF-8 bytes'),
    );
  });

  it('refuses strings that are not well-formed Unicode', () => {
    const { client } = connect();
    assert.throws(
      () => client.text({ text: 'a\ud800', blob: new Uint8Array() }),
      code('INVALID_ARGUMENT'),
    );
  });

  it('serves event-loop style with recv and reply', async () => {
    const { client, server } = connect();
    const call = client.echo({ text: 'loop' });
    const request = await server.recv();
    assert.equal(request.kind, 'echo');
    server.reply(echo, request.txid!, { text: 'done', color: Color.green });
    assert.deepEqual(await call, { text: 'done', color: Color.green });
  });

  it('serveAll is the short form of new AllServer(ch).serve', async () => {
    const [a, b] = Channel.pair();
    const serving = serveAll(b, handlers());
    const client = new AllClient(a, { timeoutMs: 1000 });
    assert.equal((await client.echo({ text: 'short' })).text, 'SHORT');
    client.close();
    await serving;
  });
});
