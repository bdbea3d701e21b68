/**
 * Parent-to-child throughput and round trips over processes, in one run, as ratios:
 * ftl-ipc over a Unix socket against child_process.send, zeromq PUSH/PULL over ipc://, a
 * hand-written length-prefixed Unix-socket loop with batched writes, and (64 KiB) a raw byte
 * stream. Each figure is the median of three runs. Run: npm run bench:socket
 */
import { type ChildProcess, fork } from 'node:child_process';
import { rm } from 'node:fs/promises';
import net from 'node:net';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Push } from 'zeromq';
import { Channel, listen, privateSocketPath, spawnProcess } from '../src/index.js';

const CHILD = fileURLToPath(new URL('./socket-child.js', import.meta.url));
const LIMITS = { capacity: 8192, capacityBytes: 8 * 1024 * 1024, maxMessageBytes: 65536 };
const RUNS = 3;
/** Round trips before measuring: until then the JIT is still tiering up the path. */
const WARMUP = 3000;

interface Started {
  proc: ChildProcess;
  /** Resolves when the child printed `done`. */
  done: Promise<void>;
  exited: Promise<unknown>;
}

function start(mode: string, count: number, address = ''): Started {
  const proc = fork(CHILD, [mode, String(count), address], {
    stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
  });
  const done = new Promise<void>((resolve) =>
    proc.stdout?.on('data', (d: Buffer) => {
      if (d.toString().includes('done')) resolve();
    }),
  );
  const exited = new Promise((resolve) => proc.once('exit', resolve));
  return { proc, done, exited };
}

async function withPath<T>(fn: (path: string) => Promise<T>): Promise<T> {
  const path = await privateSocketPath();
  try {
    return await fn(path);
  } finally {
    await rm(dirname(path), { recursive: true, force: true });
  }
}

async function pump(ch: Channel, size: number, count: number): Promise<void> {
  const data = new Uint8Array(size);
  let sent = 0;
  while (sent < count) {
    while (sent < count && ch.send({ type: 1, data }, { onFull: 'drop' })) sent++;
    if (sent < count) await ch.writable(size);
  }
}

/** Messages per second, ftl-ipc channel over a Unix socket. */
function ftl(size: number, count: number): Promise<number> {
  return withPath(async (path) => {
    const listener = await listen({ path }, LIMITS);
    const child = start('ftl', count, path);
    const ch = (await listener.accept()) as Channel;
    const t0 = performance.now();
    await pump(ch, size, count);
    await child.done;
    const rate = (count / (performance.now() - t0)) * 1000;
    ch.close();
    await listener.close();
    await child.exited;
    return rate;
  });
}

/**
 * Messages per second through `spawnProcess`: the parent keeps one end of a local pair and the
 * child gets the other, so every message also passes the bridge (the local queue, then a frame).
 */
async function spawned(size: number, count: number): Promise<number> {
  const [mine, theirs] = Channel.pair(LIMITS);
  const { child, exited } = await spawnProcess(CHILD, {
    channels: { data: theirs },
    args: ['spawned', String(count)],
    stdio: 'pipe',
  });
  const done = new Promise<void>((resolve) =>
    child.stdout?.on('data', (d: Buffer) => {
      if (d.toString().includes('done')) resolve();
    }),
  );
  const t0 = performance.now();
  await pump(mine, size, count);
  await done;
  const rate = (count / (performance.now() - t0)) * 1000;
  mine.close();
  await exited;
  return rate;
}

async function childProcessSend(size: number, count: number): Promise<number> {
  const child = start('cp', count);
  const payload = { type: 1, data: 'x'.repeat(size) };
  const t0 = performance.now();
  for (let i = 0; i < count; i += 1000) {
    // send() queues without limit; wait for each thousandth to be written to stay bounded.
    for (let k = 1; k < 1000; k++) child.proc.send(payload);
    await new Promise((resolve) => child.proc.send(payload, resolve));
  }
  await child.done;
  const rate = (count / (performance.now() - t0)) * 1000;
  child.proc.disconnect();
  await child.exited;
  return rate;
}

function zeromq(size: number, count: number): Promise<number> {
  return withPath(async (path) => {
    const push = new Push();
    await push.bind(`ipc://${path}`);
    const child = start('zmq', count, `ipc://${path}`);
    const data = Buffer.alloc(size);
    const t0 = performance.now();
    for (let i = 0; i < count; i++) await push.send(data);
    await child.done;
    const rate = (count / (performance.now() - t0)) * 1000;
    push.close();
    await child.exited;
    return rate;
  });
}

/** Writes `buffers()` to the one connection a child makes; resolves with messages per second. */
function rawSocket(mode: 'frames' | 'bytes', count: number, next: () => Buffer | undefined) {
  return withPath(async (path) => {
    let resolveSocket: (s: net.Socket) => void = () => {};
    const connected = new Promise<net.Socket>((resolve) => {
      resolveSocket = resolve;
    });
    const server = net.createServer((s) => resolveSocket(s));
    await new Promise<void>((resolve) => server.listen(path, resolve));
    const child = start(mode, count, path);
    const socket = await connected;
    const t0 = performance.now();
    for (let buf = next(); buf !== undefined; buf = next()) {
      if (!socket.write(buf)) await new Promise((resolve) => socket.once('drain', resolve));
    }
    await child.done;
    const elapsed = performance.now() - t0;
    socket.destroy();
    server.close();
    await child.exited;
    return elapsed;
  });
}

/** The hand-written loop: u32 length + payload, frames packed into 64 KiB writes. */
async function lengthPrefixed(size: number, count: number): Promise<number> {
  const perWrite = Math.floor(65536 / (4 + size));
  let left = count;
  const elapsed = await rawSocket('frames', count, () => {
    if (left === 0) return undefined;
    const n = Math.min(perWrite, left);
    left -= n;
    const buf = Buffer.allocUnsafe(n * (4 + size));
    for (let i = 0; i < n; i++) buf.writeUInt32LE(size, i * (4 + size));
    return buf;
  });
  return (count / elapsed) * 1000;
}

/** A raw byte stream of `count` 64 KiB chunks; messages (chunks) per second. */
async function byteStream(count: number): Promise<number> {
  let left = count;
  const chunk = Buffer.alloc(65536);
  const elapsed = await rawSocket('bytes', count * 65536, () => (left-- > 0 ? chunk : undefined));
  return (count / elapsed) * 1000;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] as number;
}

async function rttFtl(rounds: number): Promise<number[]> {
  return withPath(async (path) => {
    const listener = await listen({ path }, LIMITS);
    const child = start('ftl-echo', rounds + WARMUP, path);
    const ch = (await listener.accept()) as Channel;
    const data = new Uint8Array(16);
    const times: number[] = [];
    for (let i = 0; i < rounds + WARMUP; i++) {
      const t0 = performance.now();
      ch.send({ type: 1, data });
      await ch.recv();
      if (i >= WARMUP) times.push(performance.now() - t0);
    }
    await child.done;
    ch.close();
    await listener.close();
    await child.exited;
    return times.sort((a, b) => a - b);
  });
}

async function rttChildProcess(rounds: number): Promise<number[]> {
  const child = start('cp-echo', rounds);
  const payload = { type: 1, data: 'x'.repeat(16) };
  const times: number[] = [];
  for (let i = 0; i < rounds + WARMUP; i++) {
    const t0 = performance.now();
    const back = new Promise((resolve) => child.proc.once('message', resolve));
    child.proc.send(payload);
    await back;
    if (i >= WARMUP) times.push(performance.now() - t0);
  }
  child.proc.disconnect();
  await child.exited;
  return times.sort((a, b) => a - b);
}

async function median(fn: () => Promise<number>): Promise<number> {
  const runs: number[] = [];
  for (let i = 0; i < RUNS; i++) runs.push(await fn());
  return runs.sort((a, b) => a - b)[Math.floor(RUNS / 2)] as number;
}

const m = (rate: number) => `${(rate / 1e6).toFixed(2)} M/s`;
const x = (a: number, b: number) => `${(a / b).toFixed(1)}x`;
const lines: string[] = [
  '| size | ftl-ipc | child_process.send | zeromq PUSH/PULL | length-prefixed loop | ftl-ipc vs each | via spawnProcess |',
  '| --- | --- | --- | --- | --- | --- | --- |',
];
for (const size of [16, 256]) {
  const ours = await median(() => ftl(size, 1_000_000));
  const viaSpawn = await median(() => spawned(size, 1_000_000));
  const cp = await median(() => childProcessSend(size, 100_000));
  const zmq = await median(() => zeromq(size, 200_000));
  const loop = await median(() => lengthPrefixed(size, 2_000_000));
  lines.push(
    `| ${size} B | ${m(ours)} | ${m(cp)} | ${m(zmq)} | ${m(loop)} | ${x(ours, cp)}, ${x(ours, zmq)}, ${(ours / loop).toFixed(2)}x | ${m(viaSpawn)} |`,
  );
}
const big = await median(() => ftl(65536, 20_000));
const stream = await median(() => byteStream(20_000));
lines.push(
  '',
  '| 64 KiB | ftl-ipc | raw Unix-socket byte stream | ratio |',
  '| --- | --- | --- | --- |',
  `| messages | ${(big / 1e3).toFixed(1)} k/s (${((big * 65536) / 2 ** 30).toFixed(2)} GiB/s) | ${(stream / 1e3).toFixed(1)} k/s (${((stream * 65536) / 2 ** 30).toFixed(2)} GiB/s) | ${(big / stream).toFixed(2)}x |`,
);
const ours = await rttFtl(10_000);
const theirs = await rttChildProcess(10_000);
const us = (ms: number) => `${(ms * 1000).toFixed(0)} µs`;
lines.push(
  '',
  '| 16 B round trip | p50 | p99 |',
  '| --- | --- | --- |',
  `| ftl-ipc | ${us(percentile(ours, 0.5))} | ${us(percentile(ours, 0.99))} |`,
  `| child_process.send | ${us(percentile(theirs, 0.5))} | ${us(percentile(theirs, 0.99))} |`,
);
process.stdout.write(`${lines.join('\n')}\n`);
