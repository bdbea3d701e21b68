/**
 * Moving channels between threads, against MessageChannel with the same pattern, in one run:
 *
 * - churn: create a pair, move one end to a worker and back, one message each way, close both;
 *   moves per second and the RSS curve (one sample a second). ftl-ipc moves the end inside a
 *   message of a long-lived channel (as FTL services do), and through `exportEndpoint` and
 *   `postMessage` (the first move a user writes); MessageChannel transfers the port.
 * - many: N live channels (default 100,000) at default limits, one end of each in a worker,
 *   each used once (a message from the worker), then all closed: time, RSS, address space.
 *
 * Run: npm run build && node dist/bench/move.bench.js [--seconds=20] [--count=100000]
 * [--only=churn|many]. `--seconds=300` gives the five-minute RSS curve of issue 17.
 */
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import {
  isMainThread,
  MessageChannel,
  type MessagePort,
  parentPort,
  Worker,
  workerData,
} from 'node:worker_threads';
import {
  type ArenaStats,
  Channel,
  type EndpointToken,
  exportEndpoint,
  importEndpoint,
  sharedMemoryStats,
} from '../src/index.js';

type Job =
  | { kind: 'ftl-bounce'; token: EndpointToken }
  | { kind: 'token-bounce' }
  | { kind: 'port-bounce' }
  | { kind: 'ftl-hold'; token: EndpointToken; count: number }
  | { kind: 'port-hold'; count: number };

const arg = (name: string) =>
  process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const SECONDS = Number(arg('seconds') ?? 20);
const COUNT = Number(arg('count') ?? 100_000);
const only = arg('only');
const MiB = 2 ** 20;
const ONE = new Uint8Array(16);

async function workerMain(job: Job): Promise<void> {
  const port = parentPort!;
  switch (job.kind) {
    case 'ftl-bounce': {
      const ctrl = importEndpoint(job.token);
      for await (const m of ctrl) {
        const h = m.handles[0] as Channel;
        const got = await h.recv();
        h.send({ type: got.type + 1, data: ONE });
        await ctrl.sendWait({ type: 0, handles: [h] });
      }
      return;
    }
    case 'token-bounce': {
      port.on('message', async (token: EndpointToken) => {
        const h = importEndpoint(token);
        const got = await h.recv();
        h.send({ type: got.type + 1, data: ONE });
        const back = exportEndpoint(h);
        port.postMessage(back, back.transfer);
      });
      return;
    }
    case 'port-bounce': {
      port.on('message', (p: MessagePort) => {
        p.once('message', (n: number) => {
          p.postMessage(n + 1);
          port.postMessage(p, [p]);
        });
      });
      return;
    }
    case 'ftl-hold': {
      const ctrl = importEndpoint(job.token);
      const held: Channel[] = [];
      while (held.length < job.count) {
        for (const h of (await ctrl.recv()).handles) held.push(h as Channel);
      }
      for (const h of held) h.send({ type: 1, data: ONE });
      port.postMessage('sent');
      port.once('message', () => {
        for (const h of held) h.close();
        ctrl.close();
      });
      return;
    }
    case 'port-hold': {
      const held: MessagePort[] = [];
      port.on('message', (ports: MessagePort[] | 'close') => {
        if (ports === 'close') {
          for (const p of held) p.close();
          port.close();
          return;
        }
        held.push(...ports);
        if (held.length < job.count) return;
        for (const p of held) p.postMessage(ONE);
        port.postMessage('sent');
      });
      return;
    }
  }
}

function start(job: Job, transfer: MessagePort[] = []): Worker {
  return new Worker(new URL(import.meta.url), { workerData: job, transferList: transfer });
}

function next<T>(target: Worker | MessagePort): Promise<T> {
  return new Promise((resolve) => target.once('message', resolve));
}

function reserved(): number {
  const status = readFileSync('/proc/self/status', 'utf8');
  return Number(/^VmSize:\s+(\d+) kB/m.exec(status)?.[1] ?? 0) * 1024;
}

interface Churn {
  moves: number;
  rss: number[];
}

/** Runs `cycle` for SECONDS, sampling RSS (MiB above the start) once a second. */
async function churn(cycle: (n: number) => Promise<void>): Promise<Churn> {
  for (let n = 0; n < 1000; n++) await cycle(n);
  const base = process.memoryUsage().rss;
  const rss: number[] = [];
  const started = performance.now();
  let moves = 0;
  let sampleAt = started + 1000;
  for (let now = started; now - started < SECONDS * 1000; now = performance.now()) {
    await cycle(moves++);
    if (now >= sampleAt) {
      rss.push(Math.round((process.memoryUsage().rss - base) / MiB));
      sampleAt += 1000;
    }
  }
  return { moves: moves / SECONDS, rss };
}

async function churnFtl(): Promise<Churn> {
  const [ctrl, theirs] = Channel.pair();
  const token = exportEndpoint(theirs);
  const worker = start({ kind: 'ftl-bounce', token }, token.transfer);
  const result = await churn(async (n) => {
    const [a, b] = Channel.pair();
    a.send({ type: n, data: ONE });
    await ctrl.sendWait({ type: 0, handles: [b] });
    const back = (await ctrl.recv()).handles[0] as Channel;
    await a.recv();
    a.close();
    back.close();
  });
  ctrl.close();
  await worker.terminate();
  return result;
}

async function churnToken(): Promise<Churn> {
  const worker = start({ kind: 'token-bounce' });
  const result = await churn(async (n) => {
    const [a, b] = Channel.pair();
    a.send({ type: n, data: ONE });
    const token = exportEndpoint(b);
    worker.postMessage(token, token.transfer);
    const back = importEndpoint(await next<EndpointToken>(worker));
    await a.recv();
    a.close();
    back.close();
  });
  await worker.terminate();
  return result;
}

async function churnPort(): Promise<Churn> {
  const worker = start({ kind: 'port-bounce' });
  const result = await churn(async (n) => {
    const { port1, port2 } = new MessageChannel();
    port1.postMessage(n);
    worker.postMessage(port2, [port2]);
    const back = await next<MessagePort>(worker);
    await next(port1);
    port1.close();
    back.close();
  });
  await worker.terminate();
  return result;
}

interface Many {
  seconds: number;
  rss: number;
  reserved: number;
  arenas?: ArenaStats[];
}

async function manyFtl(): Promise<Many> {
  const [ctrl, theirs] = Channel.pair();
  const token = exportEndpoint(theirs);
  const worker = start({ kind: 'ftl-hold', token, count: COUNT }, token.transfer);
  const rss0 = process.memoryUsage().rss;
  const vm0 = reserved();
  const started = performance.now();
  const mine: Channel[] = [];
  for (let i = 0; i < COUNT; i += 64) {
    const handles: Channel[] = [];
    for (let j = i; j < Math.min(COUNT, i + 64); j++) {
      const [a, b] = Channel.pair();
      mine.push(a);
      handles.push(b);
    }
    await ctrl.sendWait({ type: 0, handles });
  }
  await next(worker);
  for (const a of mine) await a.recv();
  const result = {
    seconds: (performance.now() - started) / 1000,
    rss: (process.memoryUsage().rss - rss0) / MiB,
    reserved: (reserved() - vm0) / MiB,
    arenas: sharedMemoryStats(),
  };
  worker.postMessage('close');
  await new Promise((resolve) => worker.once('exit', resolve));
  for (const a of mine) a.close();
  ctrl.close();
  return result;
}

async function manyPort(): Promise<Many> {
  const worker = start({ kind: 'port-hold', count: COUNT });
  const rss0 = process.memoryUsage().rss;
  const vm0 = reserved();
  const started = performance.now();
  const mine: MessagePort[] = [];
  for (let i = 0; i < COUNT; i += 64) {
    const theirs: MessagePort[] = [];
    for (let j = i; j < Math.min(COUNT, i + 64); j++) {
      const { port1, port2 } = new MessageChannel();
      mine.push(port1);
      theirs.push(port2);
    }
    worker.postMessage(theirs, theirs);
  }
  await next(worker);
  for (const p of mine) await next(p);
  const result = {
    seconds: (performance.now() - started) / 1000,
    rss: (process.memoryUsage().rss - rss0) / MiB,
    reserved: (reserved() - vm0) / MiB,
  };
  worker.postMessage('close');
  for (const p of mine) p.close();
  await worker.terminate();
  return result;
}

function load(): string {
  return loadavg()
    .map((l) => l.toFixed(2))
    .join(', ');
}

function curve(c: Churn): string {
  const every = Math.max(1, Math.ceil(c.rss.length / 10));
  return c.rss.filter((_, i) => i % every === every - 1 || i === c.rss.length - 1).join(' ');
}

async function main(): Promise<void> {
  console.log(`load average before: ${load()}`);
  if (only === undefined || only === 'churn') {
    const ftl = await churnFtl();
    const token = await churnToken();
    const port = await churnPort();
    console.log(`\nmove churn, ${SECONDS} s each, load average after: ${load()}\n`);
    console.log('| pattern | moves/s | vs MessageChannel | RSS above start, MiB, sampled |');
    console.log('| --- | --- | --- | --- |');
    for (const [name, c] of [
      ['ftl-ipc, handle in a message', ftl],
      ['ftl-ipc, exportEndpoint + postMessage', token],
      ['MessageChannel, port transferred', port],
    ] as const) {
      console.log(
        `| ${name} | ${c.moves.toFixed(0)} | ${(c.moves / port.moves).toFixed(2)}x | ${curve(c)} |`,
      );
    }
  }
  if (only === undefined || only === 'many') {
    const ftl = await manyFtl();
    const port = await manyPort();
    console.log(
      `\n${COUNT} live channels, one end in a worker, each used once; load average after: ${load()}\n`,
    );
    console.log('| | seconds | RSS added, MiB | address space added, MiB |');
    console.log('| --- | --- | --- | --- |');
    for (const [name, m] of [
      ['ftl-ipc (defaults)', ftl],
      ['MessageChannel', port],
    ] as const) {
      console.log(
        `| ${name} | ${m.seconds.toFixed(2)} | ${m.rss.toFixed(0)} | ${m.reserved.toFixed(0)} |`,
      );
    }
    for (const a of ftl.arenas ?? []) {
      console.log(
        `\nftl-ipc arena ${a.id}: ${(a.reserved / MiB).toFixed(0)} MiB reserved at import (not in the column above), grown to ${(a.size / MiB).toFixed(0)} MiB, ${(a.liveBytes / MiB).toFixed(0)} MiB in ${a.liveBlocks} live blocks`,
      );
    }
  }
}

if (isMainThread) await main();
else await workerMain(workerData as Job);
