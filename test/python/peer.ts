/**
 * The TypeScript peer of the Python suite (python/tests/): one scenario per run, named by the
 * first argument, talking to the Python side over a real socket. It prints JSON lines on stdout
 * (the address it listens on, what it observed) and reads commands as lines on stdin.
 */
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { type Channel, connect, flushSockets, IpcError, isIpcError, listen } from 'ftl-ipc';
import { serveWork } from '../wire/rpc-peer.js';
import { WorkClient } from '../wire/rpctest.generated.js';

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    secret: { type: 'string' },
    capacity: { type: 'string' },
    'capacity-bytes': { type: 'string' },
    tcp: { type: 'boolean' },
    path: { type: 'string' },
    connect: { type: 'string' },
    role: { type: 'string' },
  },
});
const scenario = positionals[0];
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const say = (value: unknown) => process.stdout.write(`${JSON.stringify(value)}\n`);
const options = {
  ...(values.secret !== undefined && { secret: values.secret }),
  ...(values.capacity !== undefined && { capacity: Number(values.capacity) }),
  ...(values['capacity-bytes'] !== undefined && {
    capacityBytes: Number(values['capacity-bytes']),
    maxMessageBytes: Number(values['capacity-bytes']),
  }),
};

async function command(expected: string): Promise<void> {
  const line = await lines.next();
  if (line.value !== expected) throw new Error(`expected ${expected} on stdin, got ${line.value}`);
}

/** The root channel of one connection: accepted here, or made to the Python side's address. */
async function root(): Promise<Channel> {
  if (values.connect !== undefined) {
    const target = values.connect;
    const address = /^\d+$/.test(target)
      ? { host: '127.0.0.1', port: Number(target) }
      : { path: target };
    return connect(address, options);
  }
  const address = values.tcp ? { host: '127.0.0.1', port: 0 } : { path: values.path! };
  const listener = await listen(address, options);
  say({ address: listener.address });
  const ch = await listener.accept();
  listener.close();
  if (ch === undefined) throw new Error('the listener closed before a connection came');
  return ch;
}

async function drain(ch: Channel, each: (data: Uint8Array, type: number) => Promise<void>) {
  for (;;) {
    let m: Awaited<ReturnType<Channel['recv']>>;
    try {
      m = await ch.recv();
    } catch (error) {
      if (isIpcError(error, 'PEER_CLOSED')) return;
      throw error;
    }
    await each(m.data, m.type);
  }
}

const END = 99;

/**
 * Sends numbered messages until BACKPRESSURE, waits, and tries again: the far end reads nothing
 * yet, so with an exact bound end to end the second try sends nothing.
 */
async function flood(end: Channel): Promise<number> {
  let sent = 0;
  const burst = () => {
    for (;;) {
      try {
        end.send({ type: 1, data: new Uint8Array([sent]) });
        sent++;
      } catch (error) {
        if (isIpcError(error, 'BACKPRESSURE')) return;
        throw error;
      }
    }
  };
  burst();
  await new Promise((resolve) => setTimeout(resolve, 300));
  burst();
  return sent;
}

/** Sends 20 more after `flooded` and an END, while reading what the other end sends up to its END. */
async function exchange(end: Channel, flooded: number): Promise<number[]> {
  const got: number[] = [];
  const reading = (async () => {
    for (;;) {
      const m = await end.recv();
      if (m.type === END) return;
      got.push(m.data[0]!);
    }
  })();
  for (let i = 0; i < 20; i++) await end.sendWait({ type: 1, data: new Uint8Array([flooded + i]) });
  await end.sendWait({ type: END, data: new Uint8Array(0) });
  await reading;
  return got;
}

/** After the other end closed: PEER_CLOSED, and nothing else, comes out. */
async function peerClosed(end: Channel): Promise<boolean> {
  try {
    await end.recv();
    return false;
  } catch (error) {
    return isIpcError(error, 'PEER_CLOSED');
  }
}

const scenarios: Record<string, () => Promise<void>> = {
  /** Sends every message back, then closes once the Python side has. */
  async echo() {
    const ch = await root();
    let n = 0;
    await drain(ch, async (data, type) => {
      n++;
      await ch.sendWait({ type, data });
    });
    say({ echoed: n, stats: ch.stats });
    ch.close();
  },
  /** Reads nothing until told to: the Python sender meets this side's credits. */
  async hold() {
    const ch = await root();
    await command('read');
    let n = 0;
    await drain(ch, async () => {
      n++;
    });
    say({ received: n });
    ch.close();
  },
  /** Sends until BACKPRESSURE, says how many went, then more once told, and closes. */
  async flood() {
    const ch = await root();
    let sent = 0;
    let code = '';
    for (;;) {
      try {
        ch.send({ type: 1, data: new Uint8Array([sent & 0xff]) });
        sent++;
      } catch (error) {
        code = error instanceof IpcError ? error.code : String(error);
        break;
      }
    }
    say({ sent, code });
    await command('more');
    for (let i = 0; i < 10; i++) await ch.sendWait({ type: 2, data: new Uint8Array([i]) });
    ch.close();
  },
  /** Moves one end of a new pair to the Python side and answers what arrives on the other. */
  async handle() {
    const ch = await root();
    const { Channel } = await import('ftl-ipc');
    const [mine, theirs] = Channel.pair({ capacity: 8 });
    ch.send({ type: 7, data: new TextEncoder().encode('here'), handles: [theirs] });
    await drain(mine, async (data, type) => {
      const text = new TextDecoder().decode(data);
      await mine.sendWait({ type: type + 1, data: new TextEncoder().encode(text.toUpperCase()) });
    });
    say({ stats: mine.stats });
    mine.close();
    ch.close();
  },
  /** Takes the channel the Python side made and sent, and answers on it in upper case. */
  async 'take-handle'() {
    const ch = await root();
    const m = await ch.recv();
    const moved = m.handles[0] as Channel;
    await drain(moved, async (data, type) => {
      const text = new TextDecoder().decode(data);
      await moved.sendWait({ type: type + 1, data: new TextEncoder().encode(text.toUpperCase()) });
    });
    say({ limits: moved.limits, stats: moved.stats });
    moved.close();
    ch.close();
  },
  /**
   * The two ends of a pair of capacity 8 (4 KiB), one of them forwarded by the Python side: `--role
   * source` makes the pair and sends one end to Python, `--role sink` takes an end Python sent,
   * `--role loop` does both (Python sends the end back). Each end floods (the bound must hold
   * through the Python bridge), says how many went, and on `read` they exchange 20 more each
   * way; then the source's end closes and the sink's sees PEER_CLOSED.
   */
  async relay() {
    const ch = await root();
    const { Channel } = await import('ftl-ipc');
    const ends: Channel[] = [];
    if (values.role !== 'sink') {
      // Small in bytes: a TypeScript listener that has not accepted the connection yet holds
      // at most maxUnacceptedBytes (4 MiB) of the channels opened on it.
      const [mine, theirs] = Channel.pair({ capacity: 8, capacityBytes: 4096 });
      ch.send({ type: 7, data: new TextEncoder().encode('pass it on'), handles: [theirs] });
      ends.push(mine);
    }
    if (values.role !== 'source') ends.push((await ch.recv()).handles[0] as Channel);
    const sent = await Promise.all(ends.map(flood));
    say({ sent });
    await command('read');
    const got = await Promise.all(ends.map((end, i) => exchange(end, sent[i]!)));
    const [first, second] = ends;
    let closed: boolean | undefined;
    if (values.role === 'loop') {
      first!.close();
      closed = await peerClosed(second!);
    } else if (values.role === 'sink') {
      closed = await peerClosed(first!);
    }
    say({ got, closed, stats: ends.map((end) => end.stats) });
    for (const end of ends) end.close();
    ch.close();
  },
  /** Serves rpctest.work (test/wire/rpc-peer.ts) to the Python client. */
  async 'rpc-serve'() {
    await serveWork(await root());
    say({ served: true });
  },
  /** Calls a Python rpctest.work server and reports what happened. */
  async 'rpc-call'() {
    const client = new WorkClient(await root());
    const sums = await Promise.all(
      Array.from({ length: 64 }, (_, i) => client.add({ value: i }).then((r) => r.value)),
    );
    const failed = await client.add({ value: -1 }).then(
      () => 'no error',
      (e: unknown) => (e instanceof IpcError ? `${e.code}: ${e.message}` : String(e)),
    );
    const timedOut = await client.hang({ tag: 5 }, { timeoutMs: 200 }).then(
      () => 'no error',
      (e: unknown) => (e instanceof IpcError ? e.code : String(e)),
    );
    const aborted = await client.recv();
    const controller = new AbortController();
    const hanging = client.hang({ tag: 6 }, { signal: controller.signal }).catch((e) => e.code);
    setTimeout(() => controller.abort(), 50);
    const cancelled = await hanging;
    const abortedToo = await client.recv();
    const noisy = await client.noisy({ value: 9 });
    const note = await client.recv();
    say({ sums, failed, timedOut, aborted, cancelled, abortedToo, noisy, note });
    client.close();
  },
};

const run = scenarios[scenario ?? ''];
if (run === undefined) throw new Error(`unknown scenario ${scenario}`);
try {
  await run();
} catch (error) {
  say({ error: isIpcError(error) ? error.code : String(error), message: String(error) });
  process.exitCode = 1;
}
await flushSockets();
process.exit();
