/**
 * TypeScript, Rust and Python on one wire: the Rust peer (rust/examples/interop.rs, built by
 * cargo here) against this process and a Python server, over Unix sockets and TCP with a secret.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import {
  Channel,
  connect,
  IpcError,
  isIpcError,
  listen,
  type Message,
  privateSocketPath,
  type SocketAddress,
  spawnProcess,
} from 'ftl-ipc';
import { CalcClient, serveCalc } from '../../examples/polyglot/calc.generated.js';
import { cargo, noCargo, rustDir } from './cargo.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const bin = join(rustDir, 'target/release/examples/interop');
const run = promisify(execFile);
const SECRET = 'rust and typescript';
const text = (s: string) => new TextEncoder().encode(s);
const untext = (m: Message) => new TextDecoder().decode(m.data);

/** A running peer and its stdout lines as they come. */
interface Peer {
  child: ChildProcess;
  line(): Promise<string>;
  exited: Promise<number | null>;
}

function start(program: string, args: string[], env: NodeJS.ProcessEnv = process.env): Peer {
  const child = spawn(program, args, { stdio: ['pipe', 'pipe', 'inherit'], env });
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  );
  return {
    child,
    exited,
    async line() {
      const next = await lines.next();
      if (next.done) throw new Error(`${program} ${args.join(' ')} ended its output`);
      return next.value;
    },
  };
}

function parseAddress(s: string): SocketAddress {
  if (s.includes('/')) return { path: s };
  const at = s.lastIndexOf(':');
  return { host: s.slice(0, at), port: Number(s.slice(at + 1)) };
}

const handlers = {
  add: ({ a, b }: { a: bigint; b: bigint }) => ({ sum: a + b }),
  stats: ({ values }: { values: number[] }) => {
    if (values.length === 0) throw new IpcError('INVALID_ARGUMENT', 'stats of no values');
    return { count: values.length, mean: values.reduce((x, y) => x + y, 0) / values.length };
  },
  shout: ({ text }: { text: string }) => ({ text: `${text.toUpperCase()}!` }),
};

/** What the Rust client prints against any calc server. */
async function expectRustClient(peer: Peer, concurrent: number): Promise<void> {
  assert.equal(await peer.line(), `add ${2 ** 40 - 2}`);
  assert.equal(await peer.line(), 'stats 4 2.625');
  assert.equal(await peer.line(), 'shout HELLO FROM RUST!');
  assert.match(
    await peer.line(),
    /^error calc\.calc\.stats failed at the peer: .*stats of no values/,
  );
  assert.match(await peer.line(), new RegExp(`^concurrent ${concurrent} right in \\d+ ms$`));
  assert.equal(await peer.line(), 'ok');
  assert.equal(await peer.exited, 0);
}

describe('rust interop', { skip: noCargo, timeout: 600_000 }, () => {
  const peers: Peer[] = [];
  const started = (p: Peer) => {
    peers.push(p);
    return p;
  };
  before(async () => {
    await run(cargo!, ['build', '--offline', '--release', '--examples'], { cwd: rustDir });
  });
  after(() => {
    for (const p of peers) p.child.kill('SIGKILL');
  });

  for (const tcp of [false, true]) {
    const where = tcp ? 'TCP with a secret' : 'a Unix socket';
    it(`a TypeScript client calls a Rust server over ${where}; 10,000 calls at once`, {
      timeout: 60_000,
    }, async () => {
      const at = tcp ? '127.0.0.1:0' : await privateSocketPath();
      const server = started(start(bin, ['serve', at, ...(tcp ? [SECRET] : [])]));
      const address = parseAddress((await server.line()).replace('listening ', ''));
      const calc = new CalcClient(await connect(address, tcp ? { secret: SECRET } : {}), {
        timeoutMs: 20_000,
      });
      assert.equal((await calc.add({ a: 2n ** 62n, b: -5n })).sum, 2n ** 62n - 5n);
      assert.deepEqual(await calc.stats({ values: [1, 2, 3, 4.5] }), { count: 4, mean: 2.625 });
      assert.equal((await calc.shout({ text: 'héllo 🙂' })).text, 'HÉLLO 🙂!');
      await assert.rejects(calc.stats({ values: [] }), (e: unknown) => {
        return isIpcError(e) && e.code === 'REMOTE_ERROR' && /stats of no values/.test(e.message);
      });
      const sums = await Promise.all(
        Array.from({ length: 10_000 }, (_, i) => calc.add({ a: BigInt(i), b: 1n })),
      );
      assert.ok(sums.every(({ sum }, i) => sum === BigInt(i) + 1n));
      if (tcp) {
        await assert.rejects(connect(address, { secret: 'wrong' }), { code: 'AUTH_FAILED' });
        await assert.rejects(connect(address), { code: 'AUTH_FAILED' });
      }
      calc.close();
    });

    it(`a Rust client calls a TypeScript server over ${where}; 10,000 calls at once`, {
      timeout: 60_000,
    }, async () => {
      const address: SocketAddress = tcp
        ? { host: '127.0.0.1', port: 0 }
        : { path: await privateSocketPath() };
      const listener = await listen(address, tcp ? { secret: SECRET } : {});
      const serving = (async () => {
        for await (const ch of listener) void serveCalc(ch, handlers);
      })();
      const bound = listener.address;
      const at = 'path' in bound ? bound.path : `${bound.host}:${bound.port}`;
      await expectRustClient(
        started(start(bin, ['client', at, '10000', ...(tcp ? [SECRET] : [])])),
        10_000,
      );
      listener.close();
      await serving;
    });
  }

  it('a Rust client calls a Python server (Unix socket, then TCP with a secret)', {
    timeout: 60_000,
  }, async () => {
    const env = {
      ...process.env,
      PYTHONPATH: [join(root, 'python'), join(root, 'examples/polyglot')].join(':'),
    };
    const script = join(root, 'test/rust/calc_server.py');
    for (const [at, secret] of [
      [await privateSocketPath(), undefined],
      ['127.0.0.1:0', SECRET],
    ]) {
      const server = started(start('python3', [script, at!, ...(secret ? [secret] : [])], env));
      const bound = (JSON.parse(await server.line()) as { listening: string }).listening;
      await expectRustClient(
        started(start(bin, ['client', bound, '10000', ...(secret ? [secret] : [])])),
        10_000,
      );
      server.child.kill();
    }
  });

  it('a Rust receiver that stops reading: the TypeScript sender gets BACKPRESSURE after exactly the capacity', {
    timeout: 30_000,
  }, async () => {
    const holder = started(start(bin, ['hold', await privateSocketPath(), '16']));
    const address = parseAddress((await holder.line()).replace('listening ', ''));
    const ch = await connect(address);
    assert.equal(await holder.line(), 'accepted');
    for (let i = 0; i < 16; i++) assert.equal(ch.send({ type: 1, data: text(`m${i}`) }), true);
    assert.throws(() => ch.send({ type: 1, data: text('one too many') }), { code: 'BACKPRESSURE' });
    // Once it reads, the room comes back.
    holder.child.stdin!.write('read\n');
    await ch.sendWait({ type: 1, data: text('after') }, { timeoutMs: 5000 });
    assert.equal(await holder.line(), 'read 17');
    ch.close();
  });

  it('kill -9 of the Rust server: the TypeScript client sees PEER_CLOSED', {
    timeout: 30_000,
  }, async () => {
    const server = started(start(bin, ['serve', await privateSocketPath()]));
    const address = parseAddress((await server.line()).replace('listening ', ''));
    const ch = await connect(address);
    const calc = new CalcClient(ch);
    assert.equal((await calc.add({ a: 1n, b: 2n })).sum, 3n);
    const killedAt = performance.now();
    server.child.kill('SIGKILL');
    await assert.rejects(ch.recv(), { code: 'PEER_CLOSED' });
    assert.ok(performance.now() - killedAt < 1000, 'PEER_CLOSED within 1 s');
  });

  it('kill -9 of the Rust client: the TypeScript server sees PEER_CLOSED', {
    timeout: 30_000,
  }, async () => {
    const listener = await listen({ path: await privateSocketPath() });
    const bound = listener.address as { path: string };
    const client = started(start(bin, ['hang', bound.path]));
    const ch = await listener.accept();
    assert.ok(ch, 'the Rust client connected');
    const [mine, theirs] = Channel.pair();
    const serving = serveCalc(theirs, handlers);
    // Relay by hand, so this side holds the socket end and can watch it close.
    const relay = (async () => {
      for (;;) {
        const m = await ch.recv();
        await mine.sendWait(m);
        await ch.sendWait(await mine.recv());
      }
    })();
    assert.equal(await client.line(), 'add 5');
    client.child.kill('SIGKILL');
    await assert.rejects(relay, { code: 'PEER_CLOSED' });
    mine.close();
    await serving;
    listener.close();
  });

  it('a channel end moved from TypeScript through Rust to Python and back works', {
    timeout: 30_000,
  }, async () => {
    const [toRust, rustA] = Channel.pair({ capacity: 16 });
    const [rustB, pyC] = Channel.pair({ capacity: 16 });
    const rust = await spawnProcess(bin, {
      executable: bin,
      args: ['relay'],
      channels: { a: rustA, b: rustB },
    });
    const python = await spawnProcess(join(root, 'test/rust/echo_child.py'), {
      executable: 'python3',
      channels: { c: pyC },
      env: { ...process.env, PYTHONPATH: join(root, 'python') },
    });
    const [here, moved] = Channel.pair({ capacity: 8 });
    toRust.send({ type: 9, data: text('carrier'), handles: [moved] });
    for (const word of ['one', 'two', 'three']) {
      await here.sendWait({ type: 2, data: text(word) });
      const answer = await here.recv();
      assert.equal(untext(answer), `python: ${word}`);
    }
    // Python sends the end back: through Rust again, to this process.
    const back = await toRust.recv();
    assert.equal(untext(back), 'back');
    const returned = back.handles![0] as Channel;
    returned.send({ type: 3, data: text('home') });
    assert.equal(untext(await here.recv()), 'home');
    here.send({ type: 4, data: text('and out') });
    assert.equal(untext(await returned.recv()), 'and out');
    here.close();
    await assert.rejects(returned.recv(), { code: 'PEER_CLOSED' });
    toRust.close();
    assert.deepEqual(await rust.exited, { code: 0, signal: null });
    assert.deepEqual(await python.exited, { code: 0, signal: null });
  });
});
