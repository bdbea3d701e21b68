/*
 * Half-open handshakes: a flood of connect requests that never handshake costs the listener no
 * state, and clients that do answer but never finish are bounded by maxHandshakes.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { availableParallelism, loadavg } from 'node:os';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type NatsConnection, connect as natsConnect } from '@nats-io/transport-node';
import { type Channel, connect, type IpcError, listen } from '../../../src/index.js';
import { encodeHello, HELLO_FLAG_AUTH } from '../../../src/transport/socket/frame.js';
import { natsHeader } from './helpers.js';
import { type NatsServer, natsSuite, startNats } from './server.js';

const child = (name: string) => fileURLToPath(new URL(`./children/${name}.js`, import.meta.url));
const secret = 'flood';
const MiB = 1024 * 1024;
/**
 * The listener's CPU a flood request may cost: it keeps no state for one (measured: about 10 µs,
 * the decode of a NATS message and a HELLO refused).
 */
const PER_REQUEST_US = 50;
const FLOOD = 100_000;

/** Round trips completed in `ms` with at most 64 in flight. */
async function echoRate(ch: Channel, ms: number): Promise<number> {
  const until = Date.now() + ms;
  const data = new Uint8Array(64);
  let sent = 0;
  let got = 0;
  let room: (() => void) | undefined;
  const reader = (async () => {
    // Type 3 comes back last: everything before it was taken.
    for (let m = await ch.recv(); m.type !== 3; m = await ch.recv()) {
      got++;
      room?.();
    }
  })();
  while (Date.now() < until) {
    if (sent - got >= 64) {
      await new Promise<void>((resolve) => {
        room = resolve;
      });
      room = undefined;
      continue;
    }
    await ch.sendWait({ type: 2, data });
    sent++;
  }
  await ch.sendWait({ type: 3 });
  await reader;
  return got;
}

/** The listener's resident set size (bytes) and the CPU time it has used (µs). */
async function usage(ch: Channel): Promise<{ rss: number; cpu: number }> {
  await ch.sendWait({ type: 1 });
  const data = Buffer.from((await ch.recv()).data);
  return { rss: data.readDoubleLE(0), cpu: data.readDoubleLE(8) };
}

describe('half-open handshakes over NATS', natsSuite, () => {
  let server: NatsServer;
  let listenerProcess: ChildProcess;
  before(async () => {
    server = await startNats();
  });
  after(async () => {
    listenerProcess?.kill('SIGKILL');
    await server.stop();
  });

  it('100,000 connect requests that never handshake: no state, good clients served, the channel keeps its pace', {
    timeout: 120_000,
  }, async (t) => {
    listenerProcess = spawn(
      process.execPath,
      [child('echo-listener'), server.url, 'flooded', secret],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    await once(listenerProcess.stdout as NodeJS.ReadableStream, 'data');
    const address = { nats: server.url, service: 'flooded' };
    const ch = await connect(address, { secret });
    await echoRate(ch, 500);
    const before = await usage(ch);
    const calm = await echoRate(ch, 1500);
    const calmed = await usage(ch);
    // At the lowest priority: on a machine this small, an attacker at full priority measures
    // the CPU it takes from the listener, not the listener (on a real deployment it runs
    // elsewhere).
    const attacker = spawn(
      'nice',
      ['-n', '19', process.execPath, child('flood'), server.url, 'flooded', String(FLOOD)],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const sent = once(attacker.stdout as NodeJS.ReadableStream, 'data').then(String);
    const exited = once(attacker, 'exit');
    // A good client while the flood runs, and the established channel's pace meanwhile.
    await new Promise((resolve) => setTimeout(resolve, 100));
    const started = Date.now();
    const good = await connect(address, { secret });
    const servedMs = Date.now() - started;
    const flooded = await echoRate(ch, 1500);
    const floodMs = Number(await sent);
    await exited;
    const end = await usage(ch);
    const grown = end.rss - before.rss;
    // Other test files run beside this one: the baseline is the calmer of before and after.
    const after = await echoRate(ch, 1500);
    const baseline = Math.min(calm, after);
    // The listener's CPU beyond what its echoes cost at the calm rate: what the flood took.
    const perEcho = (calmed.cpu - before.cpu) / calm;
    const perRequest = (end.cpu - calmed.cpu - flooded * perEcho) / FLOOD;
    const load = loadavg()[0] as number;
    t.diagnostic(
      `flood of ${FLOOD} requests sent in ${floodMs} ms; a good client served in ${servedMs} ms; echoes per 1.5 s ${calm} before, ${flooded} in the flood, ${after} after; listener CPU ${perEcho.toFixed(1)} µs an echo, ${perRequest.toFixed(2)} µs a flood request; RSS grew ${(grown / MiB).toFixed(1)} MiB; load average ${load.toFixed(1)}`,
    );
    assert.ok(servedMs < 1000, `a good client took ${servedMs} ms`);
    // The flood costs the listener ~10 µs of CPU a request, so on two cores the echo pace falls
    // to about half (measured 0.45x on a quiet machine): this checks starvation, not sharing.
    // On a machine busier than its cores (the suite's other files, nats-server itself at full
    // priority), the echo pace measures the scheduler; the listener's own CPU does not.
    if (load < availableParallelism()) {
      assert.ok(
        flooded * 4 >= baseline,
        `${flooded} echoes in the flood, ${calm} before, ${after} after`,
      );
    }
    assert.ok(
      perRequest < PER_REQUEST_US,
      `${perRequest.toFixed(2)} µs of the listener's CPU a request`,
    );
    assert.ok(grown < 100 * MiB, `the listener grew ${grown} bytes`);
    good.close();
    ch.close();
    listenerProcess.kill('SIGKILL');
  });

  it('clients that start the handshake but never finish: at most maxHandshakes, the rest refused at once', async () => {
    const nc: NatsConnection = await natsConnect({ servers: server.url });
    const listener = await listen(
      { nats: nc, service: 'half' },
      { secret, maxHandshakes: 4, handshakeTimeoutMs: 2000 },
    );
    const stalled: NatsConnection[] = [];
    for (let i = 0; i < 4; i++) {
      const raw = await natsConnect({ servers: server.url });
      stalled.push(raw);
      const own = `ftl-ipc.c.${'x'.repeat(10)}${i}`;
      const subject = (
        await raw.request('ftl-ipc.svc.half', 'ftl-ipc nats 1 aes-256-gcm', {
          timeout: 5000,
          noMux: true,
          reply: `${own}.r`,
        })
      ).string();
      const hello = encodeHello({
        flags: HELLO_FLAG_AUTH,
        nonce: randomBytes(32),
        limits: { capacity: 8, capacityBytes: 1024, maxMessageBytes: 1024, maxHandles: 0 },
        heartbeatMs: 0,
      });
      raw.publish(subject, Buffer.concat([natsHeader(0), hello]), { reply: own });
      await raw.flush();
    }
    // The listener has counted the four once its own connection has seen what came before.
    await nc.flush();
    // Refused, and again each time it asks, until its own handshake timeout (well before the
    // four time out); a loaded NATS server may take a few hundred ms to answer the first ask.
    const refused = await connect(listener.address, { secret, handshakeTimeoutMs: 1000 }).then(
      () => undefined,
      (err: IpcError) => err,
    );
    assert.equal(refused?.code, 'CONNECTION_FAILED');
    assert.match(refused?.message ?? '', /refused: busy: 4 handshakes in progress/);
    // A client that waits longer gets in once their handshakes have timed out.
    const started = Date.now();
    const [a, b] = await Promise.all([connect(listener.address, { secret }), listener.accept()]);
    const took = Date.now() - started;
    assert.ok(took < 4000, `served after ${took} ms`);
    a.close();
    b?.close();
    await listener.close();
    for (const raw of stalled) await raw.close();
    await nc.close();
  });
});
