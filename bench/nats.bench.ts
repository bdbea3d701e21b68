/**
 * ftl-ipc over NATS against the raw NATS client it runs on, in one run, as ratios, over one local
 * nats-server (started here; or NATS_URL). Sender and receiver are in this process, each with a
 * NATS connection of its own, for ftl-ipc and raw NATS alike.
 * - one-way 16 B and 4 KiB: raw publish/subscribe (no bound at all: publish everything, then
 *   flush) against an ftl-ipc channel with library defaults and tuned (capacity 8192, 8 MiB);
 * - calls/s with 64 in flight: the generated PingClient over NATS against NATS request/reply;
 * - memory of a receiver that stops reading while the sender floods for 2 s;
 * - the cost of the protection: one-way 16 B and 4 KiB with a secret (aes-256-gcm, the default,
 *   and hmac-sha256) against insecure: true, library defaults otherwise.
 * ftl-ipc runs with a secret (aes-256-gcm) unless said otherwise.
 * Medians of ROUNDS rounds with their range. Run: npm run bench:nats [-- --quick]
 * `-- --failover [runs]`: only the failover runs of test/transport/nats/cluster.test.ts (10 each
 * by default), with the longest pauses.
 */
import { loadavg } from 'node:os';
import v8 from 'node:v8';
import vm from 'node:vm';
import { connect as natsConnect } from '@nats-io/transport-node';
import { PingClient, servePing } from '../examples/ping/ping.generated.js';
import {
  type Channel,
  type ChannelOptions,
  connect,
  listen,
  type NatsSuite,
} from '../src/index.js';
import { failoverRun } from '../test/transport/nats/failover.js';
import { startCluster, startNats } from '../test/transport/nats/server.js';
import { median } from './stats.js';

const quick = process.argv.includes('--quick');
/** Only the flood, in a process that ran nothing before it. */
const floodOnly = process.argv.includes('--flood');
const ROUNDS = quick ? 1 : 5;
const CALL_MS = quick ? 300 : 1000;
const TUNED: ChannelOptions = { capacity: 8192, capacityBytes: 8 * 1024 * 1024 };

const fmt = (xs: number[]) =>
  `${Math.round(median(xs)).toLocaleString('en')} (${Math.round(Math.min(...xs)).toLocaleString('en')}..${Math.round(Math.max(...xs)).toLocaleString('en')})`;
let service = 0;

type Protection = 'insecure' | NatsSuite;

/** A connected ftl-ipc pair over NATS: `a` on one NATS connection, `b` on another. */
async function pairOver(
  url: string,
  options: ChannelOptions = {},
  protection: Protection = 'aes-256-gcm',
): Promise<[Channel, Channel]> {
  const name = `bench${service++}`;
  const guard =
    protection === 'insecure'
      ? { insecure: true }
      : { secret: 'bench', suite: protection, suites: [protection] };
  const listener = await listen({ nats: url, service: name }, { ...options, ...guard });
  const [a, b] = await Promise.all([
    connect({ nats: url, service: name }, { ...options, ...guard }),
    listener.accept(),
  ]);
  await listener.close();
  return [a, b as Channel];
}

async function rawOneWay(url: string, size: number, count: number): Promise<number> {
  const [pub, sub] = await Promise.all([
    natsConnect({ servers: url }),
    natsConnect({ servers: url }),
  ]);
  let got = 0;
  let done!: () => void;
  const all = new Promise<void>((resolve) => {
    done = resolve;
  });
  sub.subscribe('raw', {
    callback: () => {
      if (++got === count) done();
    },
  });
  await sub.flush();
  const data = new Uint8Array(size);
  const t0 = performance.now();
  for (let i = 0; i < count; i++) pub.publish('raw', data);
  await pub.flush();
  await all;
  const rate = (count / (performance.now() - t0)) * 1000;
  await Promise.all([pub.close(), sub.close()]);
  return rate;
}

async function ftlOneWay(
  url: string,
  size: number,
  count: number,
  options: ChannelOptions,
  protection: Protection = 'aes-256-gcm',
) {
  const [a, b] = await pairOver(url, options, protection);
  const data = new Uint8Array(size);
  const t0 = performance.now();
  const receiving = (async () => {
    let got = 0;
    for await (const _ of b) if (++got === count) return;
  })();
  // The loop a user writes: send while there is room, then wait for it.
  for (let sent = 0; sent < count; ) {
    while (sent < count && a.send({ type: 1, data }, { onFull: 'drop' })) sent++;
    if (sent < count) await a.writable(size);
  }
  await receiving;
  const rate = (count / (performance.now() - t0)) * 1000;
  a.close();
  b.close();
  return rate;
}

/** Calls per second with `inFlight` loops of `await call()` for CALL_MS. */
async function callsPerSecond(call: () => Promise<unknown>, inFlight: number): Promise<number> {
  let calls = 0;
  const until = performance.now() + CALL_MS;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (performance.now() < until) {
        await call();
        calls++;
      }
    }),
  );
  return (calls / (performance.now() - t0)) * 1000;
}

async function ftlCalls(url: string): Promise<number> {
  const [a, b] = await pairOver(url);
  void servePing(b, { ping: ({ value }) => ({ value: value + 1 }) });
  const client = new PingClient(a);
  const rate = await callsPerSecond(() => client.ping({ value: 1 }), 64);
  client.close();
  return rate;
}

async function rawCalls(url: string): Promise<number> {
  const [client, server] = await Promise.all([
    natsConnect({ servers: url }),
    natsConnect({ servers: url }),
  ]);
  server.subscribe('ping', {
    callback: (_err, msg) => {
      const out = new Uint8Array(4);
      new DataView(out.buffer).setInt32(
        0,
        new DataView(msg.data.buffer, msg.data.byteOffset).getInt32(0) + 1,
      );
      msg.respond(out);
    },
  });
  await server.flush();
  const payload = new Uint8Array(4);
  const rate = await callsPerSecond(() => client.request('ping', payload, { timeout: 5000 }), 64);
  await Promise.all([client.close(), server.close()]);
  return rate;
}

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

/** Heap and ArrayBuffers after a full collection. */
function heldBytes(): number {
  gc();
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

/** What the process holds after 2 s of a flood (4 KiB messages) at a receiver that reads nothing. */
async function flood(url: string, kind: 'ftl' | 'raw'): Promise<{ mib: number; note: string }> {
  const data = new Uint8Array(4096);
  const before = heldBytes();
  const until = performance.now() + 2000;
  let sent = 0;
  let note = '';
  if (kind === 'ftl') {
    const [a, b] = await pairOver(url);
    while (performance.now() < until) {
      if (a.send({ type: 1, data }, { onFull: 'drop' })) sent++;
      else await Promise.race([a.writable(data.byteLength), new Promise((r) => setTimeout(r, 50))]);
    }
    note = `${sent} sent, then BACKPRESSURE`;
    const mib = (heldBytes() - before) / 2 ** 20;
    a.close();
    b.close();
    return { mib, note };
  }
  const [pub, sub] = await Promise.all([
    natsConnect({ servers: url }),
    natsConnect({ servers: url }),
  ]);
  // An iterator subscription nobody iterates: the client queues what arrives.
  sub.subscribe('flood');
  await sub.flush();
  let closed = false;
  void sub.closed().then(() => {
    closed = true;
  });
  while (performance.now() < until && !closed) {
    for (let i = 0; i < 256; i++) pub.publish('flood', data);
    sent += 256;
    await pub.flush();
  }
  note = `${sent} sent${closed ? ', then the server cut the slow consumer' : ', all queued in the receiver'}`;
  const mib = (heldBytes() - before) / 2 ** 20;
  await Promise.all([pub.close(), sub.close().catch(() => undefined)]);
  return { mib, note };
}

/** The failover runs of cluster.test.ts, `runs` times for each victim. */
async function failover(runs: number): Promise<void> {
  for (const victim of ['sender', 'receiver'] as const) {
    const stream: number[] = [];
    const calls: number[] = [];
    for (let run = 0; run < runs; run++) {
      const servers = await startCluster(3);
      const pause = await failoverRun(servers, victim, `failover${service++}`);
      stream.push(pause.streamPauseMs);
      calls.push(pause.callPauseMs);
      for (const s of servers) await s.stop();
    }
    console.log(
      `kill -9 of the ${victim}'s server, ${runs} runs, all exactly once in order: longest pause in the stream ${Math.max(...stream)} ms (median ${median(stream)}), between replies ${Math.max(...calls)} ms (median ${median(calls)})`,
    );
  }
}

/** One-way rates with each protection, library defaults otherwise. */
async function protectionTable(url: string): Promise<string[]> {
  const rows = [
    '| one-way | insecure: true | aes-256-gcm | ratio | hmac-sha256 | ratio |',
    '| --- | --- | --- | --- | --- | --- |',
  ];
  for (const [size, count] of [
    [16, quick ? 50_000 : 200_000],
    [4096, quick ? 10_000 : 50_000],
  ] as const) {
    const by: Record<Protection, number[]> = { insecure: [], 'aes-256-gcm': [], 'hmac-sha256': [] };
    for (let r = 0; r < ROUNDS; r++) {
      for (const p of ['insecure', 'aes-256-gcm', 'hmac-sha256'] as const) {
        by[p].push(await ftlOneWay(url, size, count, {}, p));
      }
    }
    const ratio = (p: Protection) => (median(by[p]) / median(by.insecure)).toFixed(2);
    rows.push(
      `| ${size} B, msg/s | ${fmt(by.insecure)} | ${fmt(by['aes-256-gcm'])} | ${ratio('aes-256-gcm')}x | ${fmt(by['hmac-sha256'])} | ${ratio('hmac-sha256')}x |`,
    );
  }
  return rows;
}

async function main(): Promise<void> {
  const at = process.argv.indexOf('--failover');
  if (at >= 0) {
    await failover(Number(process.argv[at + 1] ?? 10) || 10);
    return;
  }
  const external = process.env.NATS_URL;
  const server = external === undefined ? await startNats() : undefined;
  const url = external ?? (server?.url as string);
  console.log(
    `load average before: ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
  const table: string[] = [
    '| case | raw NATS | ftl-ipc defaults | ratio | ftl-ipc tuned | ratio |',
    '| --- | --- | --- | --- | --- | --- |',
  ];
  for (const [size, count] of floodOnly
    ? []
    : ([
        [16, quick ? 50_000 : 200_000],
        [4096, quick ? 10_000 : 50_000],
      ] as const)) {
    const raw: number[] = [];
    const def: number[] = [];
    const tuned: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      raw.push(await rawOneWay(url, size, count));
      def.push(await ftlOneWay(url, size, count, {}));
      tuned.push(await ftlOneWay(url, size, count, TUNED));
    }
    table.push(
      `| one-way ${size} B, msg/s | ${fmt(raw)} | ${fmt(def)} | ${(median(def) / median(raw)).toFixed(2)}x | ${fmt(tuned)} | ${(median(tuned) / median(raw)).toFixed(2)}x |`,
    );
  }
  const rawRpc: number[] = [];
  const ftlRpc: number[] = [];
  for (let r = 0; r < (floodOnly ? 0 : ROUNDS); r++) {
    rawRpc.push(await rawCalls(url));
    ftlRpc.push(await ftlCalls(url));
  }
  table.push(
    `| calls/s, 64 in flight (request/reply vs PingClient) | ${fmt(rawRpc)} | ${fmt(ftlRpc)} | ${(median(ftlRpc) / median(rawRpc)).toFixed(2)}x | | |`,
  );
  if (!floodOnly) console.log(table.join('\n'));
  if (!floodOnly) console.log((await protectionTable(url)).join('\n'));
  for (const kind of ['ftl', 'raw'] as const) {
    const { mib, note } = await flood(url, kind);
    console.log(
      `flood a receiver that reads nothing, ${kind}: +${mib.toFixed(1)} MiB held (${note})`,
    );
  }
  console.log(
    `load average after: ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
  await server?.stop();
}

await main();
