/**
 * A TypeScript client calling a Python server (issue 13): the generated PingClient over a Unix
 * socket to the generated Python PingServer, against the same handler (`v + 1`) behind
 * newline-delimited JSON over a child's stdio, what people write by hand today. Calls/s with 64
 * in flight (64 loops of `await call()`) and the p50 of calls made one after another, both with
 * library defaults; rounds alternate between the two, the table shows medians and ranges. Then
 * the Python codec's encode and decode rates against `json` (bench/python/codec.py).
 * Run: npm run bench:python [-- --quick]
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { PingClient } from '../examples/ping/ping.generated.js';
import { connect } from '../src/index.js';
import { median, range } from './stats.js';

const quick = process.argv.includes('--quick');
const ROUNDS = quick ? 1 : 5;
const DURATION_MS = quick ? 300 : 1000;
const SEQUENTIAL = quick ? 300 : 2000;
const IN_FLIGHT = 64;
const dir = fileURLToPath(new URL('../../bench/python/', import.meta.url));
const env = { ...process.env, PYTHONPATH: fileURLToPath(new URL('../../python', import.meta.url)) };

interface Running {
  readonly pid: number;
  call(v: number): Promise<unknown>;
  stop(): Promise<unknown>;
}

/** CPU seconds (user and system) a process has used so far, from /proc (Linux). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  // utime and stime are fields 14 and 15 of stat(5), in clock ticks of 1/100 s.
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function python(...args: string[]): ChildProcess {
  return spawn('python3', [join(dir, 'server.py'), ...args], {
    cwd: dir,
    env,
    stdio: ['pipe', 'pipe', 'inherit'],
  });
}

async function ftl(): Promise<Running> {
  const path = join(mkdtempSync(join(tmpdir(), 'ftl-py-bench-')), 's');
  const child = python('ftl', path);
  const [line] = (await once(createInterface({ input: child.stdout! }), 'line')) as [string];
  if (line !== 'ready') throw new Error(`the Python server said ${line}`);
  const client = new PingClient(await connect({ path }));
  return {
    pid: child.pid!,
    call: (value) => client.ping({ value }),
    stop: () => {
      client.close();
      child.kill();
      return once(child, 'exit');
    },
  };
}

/** The hand-written peer: one JSON object per line each way, matched by id. */
async function jsonLines(): Promise<Running> {
  const child = python('json');
  const waiting = new Map<number, (v: number) => void>();
  let nextId = 0;
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const { id, value } = JSON.parse(line) as { id: number; value: number };
    waiting.get(id)?.(value);
    waiting.delete(id);
  });
  return {
    pid: child.pid!,
    call: (value) =>
      new Promise((resolve) => {
        const id = nextId++;
        waiting.set(id, resolve);
        child.stdin!.write(`${JSON.stringify({ id, value })}\n`);
      }),
    stop: () => {
      child.stdin!.end();
      return once(child, 'exit');
    },
  };
}

/** Calls/s, and the CPU µs per call of the Python process and of this one. */
async function callsPerSecond(r: Running): Promise<{ rate: number; python: number; node: number }> {
  let calls = 0;
  const end = performance.now() + DURATION_MS;
  const started = performance.now();
  const pythonBefore = cpuSeconds(r.pid);
  const nodeBefore = process.cpuUsage();
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (performance.now() < end) {
        await r.call(calls & 0xffff);
        calls++;
      }
    }),
  );
  const node = process.cpuUsage(nodeBefore);
  return {
    rate: calls / ((performance.now() - started) / 1000),
    python: ((cpuSeconds(r.pid) - pythonBefore) * 1e6) / calls,
    node: (node.user + node.system) / calls,
  };
}

async function p50Micros(r: Running): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < SEQUENTIAL; i++) {
    const t = performance.now();
    await r.call(i);
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]! * 1000;
}

const peers = { 'ftl-ipc (Unix socket)': ftl, 'JSON lines (stdio)': jsonLines };
const results = new Map<
  string,
  { rate: number[]; p50: number[]; python: number[]; node: number[] }
>();
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, start] of Object.entries(peers)) {
    const r = await start();
    await callsPerSecond(r); // warm up both sides
    const { rate, python, node } = await callsPerSecond(r);
    const p50 = await p50Micros(r);
    await r.stop();
    const entry = results.get(name) ?? { rate: [], p50: [], python: [], node: [] };
    entry.rate.push(rate);
    entry.p50.push(p50);
    entry.python.push(python);
    entry.node.push(node);
    results.set(name, entry);
  }
}

const span = (xs: number[], digits: number) => range(xs, (x) => x.toFixed(digits));
console.log(
  `load average ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}, ${ROUNDS} rounds`,
);
console.log(
  '| peer | calls/s, 64 in flight (range) | sequential p50 µs (range) | Python CPU µs/call | Node CPU µs/call |',
);
console.log('| --- | --- | --- | --- | --- |');
for (const [name, { rate, p50, python, node }] of results) {
  console.log(
    `| ${name} | ${median(rate).toFixed(0)} (${span(rate, 0)}) | ${median(p50).toFixed(1)} (${span(p50, 1)}) | ${median(python).toFixed(2)} (${span(python, 2)}) | ${median(node).toFixed(2)} (${span(node, 2)}) |`,
  );
}
const ours = results.get('ftl-ipc (Unix socket)')!;
const theirs = results.get('JSON lines (stdio)')!;
console.log(
  `ratio: ${(median(ours.rate) / median(theirs.rate)).toFixed(2)}x the calls/s, p50 ${(median(ours.p50) / median(theirs.p50)).toFixed(2)}x`,
);

const codec = spawn('python3', [join(dir, 'codec.py'), ...(quick ? ['--quick'] : [])], {
  cwd: dir,
  env,
  stdio: ['ignore', 'pipe', 'inherit'],
});
const [line] = (await once(createInterface({ input: codec.stdout! }), 'line')) as [string];
const rates = JSON.parse(line) as Record<string, { median: number; min: number; max: number }>;
console.log('| Python codec, bench.sample.reading | ops/s median (range) |');
console.log('| --- | --- |');
for (const [name, r] of Object.entries(rates)) {
  if ('median' in r)
    console.log(`| ${name} | ${r.median.toFixed(0)} (${r.min.toFixed(0)}–${r.max.toFixed(0)}) |`);
}
console.log(`bytes: ${JSON.stringify(rates.bytes)}; load average ${loadavg()[0]!.toFixed(2)}`);
