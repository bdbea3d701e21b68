/**
 * The ftl-ipc pool against piscina and tinypool, two workers each, in one run (issue 23):
 * - tiny: `v + 1`, 1,024 loops of `await call()` (1,024 calls in flight), calls/s;
 * - cpu: SHA-256 of 4 KiB in the worker, the same loops, calls/s;
 * - overload: a 1 ms busy task offered at 10x what two workers serve, for 10 s; p99 latency of
 *   the admitted calls (one still waiting at the end counts with its age then) and the growth of
 *   the process's RSS (the main thread's and the workers': Node has no RSS per thread), its
 *   growth after the first second, the growth of the main thread's V8 heap (its isolate alone),
 *   and the heap still held at the end after a full GC (what the pool retains). Each overload run
 *   is a fresh process, so RSS is its own.
 * Every library with its defaults (the code a user writes first), then tuned variants, marked.
 * Rounds go through the peers in turn, each round in a new order; tables show medians and ranges.
 * Per call: the main thread's busy time (event loop utilization) and the process's CPU time (all
 * threads, workers included), in ns. Ratios are per round, against that round's piscina run.
 * Run: npm run bench:pool [-- --quick] [--only=tiny|cpu|overload]
 */
import { execFileSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { createPool, isIpcError, type PoolOptions } from 'ftl-ipc';
import { Piscina } from 'piscina';
import { Tinypool } from 'tinypool';
import { TaskClient } from './poolbench.generated.js';
import { median, range } from './stats.js';

const quick = process.argv.includes('--quick');
const only = process.argv.find((a) => a.startsWith('--only='))?.slice('--only='.length);
const overloadChild = process.argv.find((a) => a.startsWith('--overload='))?.slice(11);
const ROUNDS = quick ? 1 : 5;
const OVERLOAD_ROUNDS = quick ? 1 : 3;
const DURATION_MS = quick ? 500 : 2000;
const OVERLOAD_MS = quick ? 2000 : 10_000;
const IN_FLIGHT = 1024;
const WORKERS = 2;
const SPIN_MS = 1;
/** Offered calls per second: ten times what two workers serve at 1 ms a call. */
const OFFERED = (10 * WORKERS * 1000) / SPIN_MS;
const OFFER_EVERY_MS = 5;

/** Given by --expose-gc, which the overload runs get. */
const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});
const ftlWorker = new URL('./pool-worker.js', import.meta.url);
const taskFile = fileURLToPath(new URL('./pool-task.js', import.meta.url));
const data = randomFillSync(new Uint8Array(4096));

/** One pool with the three tasks, whatever library runs it. */
interface Tasks {
  inc(v: number): Promise<unknown>;
  sha(): Promise<unknown>;
  spin(): Promise<unknown>;
  stop(): Promise<unknown>;
}

interface Peer {
  readonly name: string;
  start(): Promise<Tasks>;
}

async function ftl(options: Omit<PoolOptions<TaskClient>, 'client'> = {}): Promise<Tasks> {
  const pool = await createPool(ftlWorker, { client: TaskClient, size: WORKERS, ...options });
  const { client } = pool;
  return {
    inc: (value) => client.inc({ value }),
    sha: () => client.sha({ data }),
    spin: () => client.spin({ ms: SPIN_MS }),
    stop: () => pool.destroy(),
  };
}

function piscinaLike(pool: Piscina | Tinypool): Tasks {
  return {
    inc: (v) => pool.run(v, { name: 'inc' }),
    sha: () => pool.run(data, { name: 'sha' }),
    spin: () => pool.run(SPIN_MS, { name: 'spin' }),
    stop: () => pool.destroy(),
  };
}

const PEERS: Record<string, Peer> = {
  ftl: { name: 'ftl-ipc createPool, defaults', start: () => ftl() },
  'ftl-tuned': {
    name: 'ftl-ipc, tuned: channel capacity 2,048 (1,024 calls a worker)',
    start: () => ftl({ channel: { capacity: 2048 } }),
  },
  'ftl-queue': {
    name: "ftl-ipc, tuned: concurrency 1, maxQueue 4 (piscina's one task a worker and 'auto')",
    start: () => ftl({ concurrency: 1, maxQueue: 4 }),
  },
  piscina: {
    name: 'piscina, defaults',
    start: async () =>
      piscinaLike(new Piscina({ filename: taskFile, minThreads: WORKERS, maxThreads: WORKERS })),
  },
  'piscina-queue': {
    name: "piscina, tuned: maxQueue 'auto'",
    start: async () =>
      piscinaLike(
        new Piscina({
          filename: taskFile,
          minThreads: WORKERS,
          maxThreads: WORKERS,
          maxQueue: 'auto',
        }),
      ),
  },
  tinypool: {
    name: 'tinypool, defaults',
    start: async () =>
      piscinaLike(new Tinypool({ filename: taskFile, minThreads: WORKERS, maxThreads: WORKERS })),
  },
};

/** 1,024 loops of `await call()` for DURATION_MS: calls/s and main-thread ns of CPU per call. */
interface Rate {
  rate: number;
  /** Main-thread busy ns per call. */
  mainNs: number;
  /** Process CPU ns per call, every thread. */
  cpuNs: number;
}

async function throughput(call: () => Promise<unknown>): Promise<Rate> {
  for (let i = 0; i < 2000; i++) await call(); // warm up
  let done = 0;
  const cpu = process.cpuUsage();
  const elu = performance.eventLoopUtilization();
  const started = performance.now();
  const end = started + DURATION_MS;
  const loop = async () => {
    while (performance.now() < end) {
      await call();
      done++;
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, loop));
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  const busy = performance.eventLoopUtilization(elu).active;
  return {
    rate: done / seconds,
    mainNs: (busy * 1e6) / done,
    cpuNs: ((used.user + used.system) * 1000) / done,
  };
}

interface OverloadResult {
  offered: number;
  admitted: number;
  refused: number;
  served: number;
  p50: number;
  p99: number;
  rssGrowthMiB: number;
  /** From the first second to the end. */
  lateGrowthMiB: number;
  /** The main thread's V8 heap (heapTotal, its isolate only): at its largest, over the start. */
  mainHeapGrowthMiB: number;
  /** Heap used at the end, after a full GC, over the heap used before. */
  retainedMiB: number;
}

/** In a child process: one peer under overload for OVERLOAD_MS. */
async function overload(peer: Peer): Promise<OverloadResult> {
  const tasks = await peer.start();
  for (let i = 0; i < 200; i++) await tasks.spin();
  const latencies: number[] = [];
  const pending = new Map<number, number>();
  let offered = 0;
  let refused = 0;
  let nextId = 0;
  let rssMax = 0;
  let rss1 = 0;
  let heapMax = 0;
  const rss0 = process.memoryUsage.rss();
  const heapTotal0 = process.memoryUsage().heapTotal;
  gc();
  const heap0 = process.memoryUsage().heapUsed;
  const started = performance.now();
  const end = started + OVERLOAD_MS;
  await new Promise<void>((resolve) => {
    const offer = setInterval(() => {
      const now = performance.now();
      const memory = process.memoryUsage();
      rssMax = Math.max(rssMax, memory.rss);
      heapMax = Math.max(heapMax, memory.heapTotal);
      if (rss1 === 0 && now - started >= 1000) rss1 = rssMax;
      if (now >= end) {
        clearInterval(offer);
        resolve();
        return;
      }
      // Catch up to the offered rate, whatever the timer's lateness.
      const due = Math.floor(((now - started) / 1000) * OFFERED);
      for (; offered < due; offered++) {
        const id = nextId++;
        const at = performance.now();
        pending.set(id, at);
        tasks.spin().then(
          () => {
            pending.delete(id);
            latencies.push(performance.now() - at);
          },
          (error: unknown) => {
            pending.delete(id);
            if (isRefusal(error)) refused++;
          },
        );
      }
    }, OFFER_EVERY_MS);
  });
  const stoppedAt = performance.now();
  const served = latencies.length;
  // Still waiting: admitted, with at least their age so far.
  const all = [...latencies];
  for (const at of pending.values()) all.push(stoppedAt - at);
  all.sort((a, b) => a - b);
  const pick = (q: number) => all[Math.min(all.length - 1, Math.floor(q * all.length))] ?? 0;
  gc();
  const result = {
    offered,
    admitted: offered - refused,
    refused,
    served,
    p50: pick(0.5),
    p99: pick(0.99),
    rssGrowthMiB: (rssMax - rss0) / 2 ** 20,
    lateGrowthMiB: (rssMax - rss1) / 2 ** 20,
    mainHeapGrowthMiB: (heapMax - heapTotal0) / 2 ** 20,
    retainedMiB: (process.memoryUsage().heapUsed - heap0) / 2 ** 20,
  };
  await tasks.stop().catch(() => {});
  return result;
}

/** BACKPRESSURE (ftl-ipc) or a full task queue (piscina, tinypool): refused at once. */
function isRefusal(error: unknown): boolean {
  return isIpcError(error, 'BACKPRESSURE') || /queue is at limit/i.test(String(error));
}

const load = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');

const fmt = (x: number) => Math.round(x).toLocaleString('en-US');

function order(names: readonly string[], round: number): string[] {
  const n = names.length;
  return names.map((_, i) => names[(i + round) % n]!);
}

async function rates(task: 'tiny' | 'cpu', names: readonly string[]): Promise<void> {
  const runs = new Map<string, Rate[]>(names.map((n) => [n, []]));
  for (let round = 0; round < ROUNDS; round++) {
    for (const name of order(names, round)) {
      const tasks = await PEERS[name]!.start();
      const call = task === 'tiny' ? () => tasks.inc(1) : () => tasks.sha();
      runs.get(name)!.push(await throughput(call));
      await tasks.stop();
    }
  }
  const base = runs.get('piscina')!;
  console.log(
    `\n${task === 'tiny' ? 'tiny task (v + 1)' : 'CPU task (SHA-256 of 4 KiB)'}, ${IN_FLIGHT} calls in flight, ${WORKERS} workers, ${ROUNDS} rounds of ${DURATION_MS} ms (load ${load()})`,
  );
  console.log(
    '| peer | calls/s | ratio to piscina | main-thread busy ns/call | process CPU ns/call |',
  );
  console.log('| --- | --- | --- | --- | --- |');
  for (const name of names) {
    const r = runs.get(name)!;
    const rate = r.map((x) => x.rate);
    const ratio = rate.map((x, i) => x / base[i]!.rate);
    console.log(
      `| ${PEERS[name]!.name} | ${fmt(median(rate))} (${range(rate, fmt)}) | ${median(ratio).toFixed(2)}x (${range(ratio, (x) => `${x.toFixed(2)}x`)}) | ${fmt(median(r.map((x) => x.mainNs)))} | ${fmt(median(r.map((x) => x.cpuNs)))} |`,
    );
  }
}

function overloads(names: readonly string[]): void {
  const runs = new Map<string, OverloadResult[]>(names.map((n) => [n, []]));
  const script = fileURLToPath(import.meta.url);
  for (let round = 0; round < OVERLOAD_ROUNDS; round++) {
    for (const name of order(names, round)) {
      const out = execFileSync(
        process.execPath,
        ['--expose-gc', script, `--overload=${name}`, ...(quick ? ['--quick'] : [])],
        {
          encoding: 'utf8',
          maxBuffer: 1 << 20,
        },
      );
      runs.get(name)!.push(JSON.parse(out) as OverloadResult);
    }
  }
  console.log(
    `\noverload: a ${SPIN_MS} ms task offered at ${fmt(OFFERED)}/s (10x what ${WORKERS} workers serve) for ${OVERLOAD_MS / 1000} s, a fresh process per run, ${OVERLOAD_ROUNDS} rounds (load ${load()})`,
  );
  console.log(
    '| peer | admitted | refused at once | served | p50 ms | p99 ms of admitted | RSS growth MiB | after 1 s | main-thread heap growth MiB | heap retained MiB |',
  );
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const name of names) {
    const r = runs.get(name)!;
    const col = (f: (x: OverloadResult) => number, show = fmt) =>
      `${show(median(r.map(f)))} (${range(r.map(f), show)})`;
    const one = (x: number) => x.toFixed(1);
    console.log(
      `| ${PEERS[name]!.name} | ${col((x) => x.admitted)} | ${col((x) => x.refused)} | ${col((x) => x.served)} | ${col((x) => x.p50, one)} | ${col((x) => x.p99, one)} | ${col((x) => x.rssGrowthMiB, one)} | ${col((x) => x.lateGrowthMiB, one)} | ${col((x) => x.mainHeapGrowthMiB, one)} | ${col((x) => x.retainedMiB, one)} |`,
    );
  }
}

if (overloadChild !== undefined) {
  process.stdout.write(JSON.stringify(await overload(PEERS[overloadChild]!)));
  process.exit(0);
}
console.log(`node ${process.version}; load before: ${load()}`);
if (only === undefined || only === 'tiny')
  await rates('tiny', ['ftl', 'piscina', 'tinypool', 'ftl-tuned']);
if (only === undefined || only === 'cpu')
  await rates('cpu', ['ftl', 'piscina', 'tinypool', 'ftl-tuned']);
if (only === undefined || only === 'overload')
  overloads(['ftl', 'piscina', 'tinypool', 'piscina-queue', 'ftl-queue']);
console.log(`\nload after: ${load()}`);
