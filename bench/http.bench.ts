/**
 * What the IPC hops cost an HTTP server: the http example system (as `ftl-ipc run` runs it: the
 * supervisor, tcpip in its worker thread, http in a child process) against the same handler in
 * plain `node:http`, each server in a process of its own (`bench/http-server.ts`) and this
 * process only generating load (autocannon). Rounds alternate which server goes first; the table
 * gives medians with the range over the rounds, the ratio taken within each round, the load
 * average, and the CPU time each side spent per request, thread by thread (from /proc).
 * Run: npm run build && node dist/bench/http.bench.js [--seconds=5] [--rounds=5]
 *   [--connections=50] [--only=<part of a request's name>]
 *   [--profile=<dir>] (--cpu-prof every server thread and process into dir)
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { loadavg } from 'node:os';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { median, range } from './stats.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '5' },
    connections: { type: 'string', default: '50' },
    profile: { type: 'string' },
    only: { type: 'string' },
  },
});
const seconds = Number(values.seconds);
const rounds = Number(values.rounds);
const connections = Number(values.connections);
const ECHO_BODY = 'x'.repeat(1024);
const SERVER = fileURLToPath(new URL('./http-server.js', import.meta.url));
/** Clock ticks per second of /proc's CPU times (USER_HZ, 100 on Linux). */
const TICK_MS = 10;

type Side = 'ipc' | 'plain';

interface Server {
  readonly url: string;
  readonly pid: number;
  stop(): Promise<void>;
}

async function startServer(side: Side): Promise<Server> {
  // The runtime passes the flags on to the http process; the tcpip worker takes them itself.
  const profile =
    values.profile === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${values.profile}/${side}`];
  const child = spawn(process.execPath, [...profile, SERVER, side], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout });
  for await (const line of lines) {
    if (!line.startsWith('url ')) continue;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    return {
      url: line.slice(4),
      pid: child.pid!,
      stop: () => {
        child.stdin.end();
        return exited;
      },
    };
  }
  throw new Error(`the ${side} server ended before it served`);
}

/** CPU ms of every thread of `pid` and its child processes, keyed `pid/tid`. */
function threadTimes(pid: number): Map<string, number> {
  const times = new Map<string, number>();
  const visit = (p: number) => {
    let tasks: string[];
    try {
      tasks = readdirSync(`/proc/${p}/task`);
    } catch {
      return;
    }
    for (const tid of tasks) {
      try {
        // Fields after the command's closing parenthesis: utime and stime are the 12th and 13th.
        const stat = readFileSync(`/proc/${p}/task/${tid}/stat`, 'utf8');
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        times.set(`${p}/${tid}`, (Number(fields[11]) + Number(fields[12])) * TICK_MS);
        for (const c of readFileSync(`/proc/${p}/task/${tid}/children`, 'utf8').split(' ')) {
          if (c !== '' && c !== '\n') visit(Number(c));
        }
      } catch {
        // A thread that ended between the listing and the read.
      }
    }
  };
  visit(pid);
  return times;
}

/**
 * CPU µs per request, by thread: each process's main thread (tid = pid), its busiest other thread
 * (in the supervisor, the tcpip worker), and the rest (GC, libuv) together.
 */
function cpuPerRequest(
  pid: number,
  before: Map<string, number>,
  after: Map<string, number>,
  requests: number,
): Record<string, number> {
  const byProcess = new Map<string, { main: number; others: number[] }>();
  for (const [key, ms] of after) {
    const [p = '', tid] = key.split('/');
    const used = ms - (before.get(key) ?? 0);
    const entry = byProcess.get(p) ?? { main: 0, others: [] };
    if (p === tid) entry.main = used;
    else entry.others.push(used);
    byProcess.set(p, entry);
  }
  const out: Record<string, number> = {};
  const us = (ms: number) => Math.round((ms * 1000) / requests);
  let rest = 0;
  for (const [p, { main, others }] of byProcess) {
    const name = Number(p) === pid ? 'server' : 'child';
    out[`${name} main`] = us(main);
    others.sort((a, b) => b - a);
    if (Number(p) === pid && others.length > 0) out[`${name} worker`] = us(others.shift() ?? 0);
    rest += others.reduce((a, b) => a + b, 0);
  }
  out['other threads'] = us(rest);
  return out;
}

interface Run {
  rps: number;
  p99: number;
  load: number;
  cpu: Record<string, number>;
}

interface Scenario {
  readonly name: string;
  readonly post: boolean;
  /** A new TCP connection for every request: what setting one up costs. */
  readonly reconnect: boolean;
}

/** One request on a connection of its own, as `Connection: close` asks; resolves when it closed. */
function closingRequest(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () =>
      socket.end('GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n'),
    );
    let head = '';
    socket.on('data', (chunk: Buffer) => {
      if (head.length < 12) head += chunk.toString('latin1', 0, 12);
    });
    socket.on('error', reject);
    socket.on('close', () =>
      head.startsWith('HTTP/1.1 200') ? resolve() : reject(new Error(`got ${head}`)),
    );
  });
}

/**
 * autocannon cannot open a connection per request (its reconnectRate drops the reply), so this
 * loop does: `connections` clients, each a new connection per request, one after another.
 */
async function connectionLoad(url: string, duration: number) {
  const port = Number(new URL(url).port);
  const latencies: number[] = [];
  const end = performance.now() + duration * 1000;
  const client = async () => {
    while (performance.now() < end) {
      const start = performance.now();
      await closingRequest(port);
      latencies.push(performance.now() - start);
    }
  };
  await Promise.all(Array.from({ length: connections }, client));
  latencies.sort((a, b) => a - b);
  const p99 = latencies[Math.floor(latencies.length * 0.99)] ?? 0;
  return { total: latencies.length, rps: latencies.length / duration, p99: Math.round(p99) };
}

async function measure(server: Server, scenario: Scenario, duration: number): Promise<Run> {
  const { post, reconnect } = scenario;
  const before = threadTimes(server.pid);
  const ownBefore = process.cpuUsage();
  let result: { total: number; rps: number; p99: number };
  if (reconnect) result = await connectionLoad(server.url, duration);
  else {
    const cannon = await autocannon({
      url: post ? `${server.url}echo` : server.url,
      connections,
      duration,
      ...(post && { method: 'POST' as const, body: ECHO_BODY }),
    });
    const errors = cannon.errors + cannon.non2xx + cannon.timeouts;
    if (errors > 0) throw new Error(`${errors} errors from ${server.url}`);
    result = {
      total: cannon.requests.total,
      rps: cannon.requests.average,
      p99: cannon.latency.p99,
    };
  }
  const own = process.cpuUsage(ownBefore);
  const cpu = cpuPerRequest(server.pid, before, threadTimes(server.pid), result.total);
  cpu['load generator'] = Math.round((own.user + own.system) / result.total);
  return { rps: result.rps, p99: result.p99, load: loadavg()[0]!, cpu };
}

/** `median (min to max)`. */
function spread(xs: readonly number[], digits = 0, unit = ''): string {
  const f = (x: number) => `${x.toFixed(digits)}${unit}`;
  return `${f(median(xs))} (${range(xs, f)})`;
}

const servers = { ipc: await startServer('ipc'), plain: await startServer('plain') };
const scenarios: readonly Scenario[] = [
  { name: 'GET / (338 B page)', post: false, reconnect: false },
  { name: 'POST /echo (1 KiB)', post: true, reconnect: false },
  { name: 'GET /, a new connection each', post: false, reconnect: true },
].filter((s) => values.only === undefined || s.name.includes(values.only));
const runs = new Map<string, Run[]>();
const startLoad = loadavg()[0]!;
// Warm-up: JIT, and the first connections' set-up, out of the measured runs.
for (const scenario of scenarios) {
  for (const side of ['ipc', 'plain'] as const) await measure(servers[side], scenario, 1);
}
for (let round = 0; round < rounds; round++) {
  const order: Side[] = round % 2 === 0 ? ['ipc', 'plain'] : ['plain', 'ipc'];
  for (const scenario of scenarios) {
    const { name } = scenario;
    for (const side of order) {
      const run = await measure(servers[side], scenario, seconds);
      runs.set(`${name} ${side}`, [...(runs.get(`${name} ${side}`) ?? []), run]);
      process.stderr.write(
        `round ${round + 1} ${name} ${side}: ${Math.round(run.rps)} req/s, p99 ${run.p99} ms, load ${run.load.toFixed(2)}, CPU µs/request ${JSON.stringify(run.cpu)}\n`,
      );
    }
  }
}
await Promise.all([servers.ipc.stop(), servers.plain.stop()]);

const rows: string[] = [];
const cpuRows: string[] = [];
for (const { name } of scenarios) {
  const a = runs.get(`${name} ipc`) ?? [];
  const b = runs.get(`${name} plain`) ?? [];
  const ratio = a.map((r, i) => r.rps / b[i]!.rps);
  const p99Ratio = a.map((r, i) => r.p99 / b[i]!.p99);
  rows.push(
    `| ${name} | ${spread(a.map((r) => r.rps))} req/s, p99 ${spread(a.map((r) => r.p99))} ms | ${spread(b.map((r) => r.rps))} req/s, p99 ${spread(b.map((r) => r.p99))} ms | ${spread(ratio, 2, 'x')} | ${spread(p99Ratio, 1, 'x')} |`,
  );
  for (const [side, list] of [
    ['ipc', a],
    ['plain', b],
  ] as const) {
    const keys = Object.keys(list[0]?.cpu ?? {});
    const cells = keys.map((k) => `${k} ${median(list.map((r) => r.cpu[k] ?? 0))}`);
    cpuRows.push(`| ${name} | ${side} | ${cells.join(', ')} |`);
  }
}
const loads = [...runs.values()].flat().map((r) => r.load);
process.stdout.write(
  `${connections} connections, ${seconds} s per run, ${rounds} alternating rounds; load average ${startLoad.toFixed(2)} at the start, ${spread(loads, 2)} after the runs\n\n` +
    `| request | http example (ftl-ipc) | node:http | throughput ratio | p99 ratio |\n| --- | --- | --- | --- | --- |\n${rows.join('\n')}\n\n` +
    `CPU µs per request, median over the rounds (server: the supervisor or node:http process; worker: its busiest other thread, the tcpip worker; child: the http process):\n\n| request | side | µs per request |\n| --- | --- | --- |\n${cpuRows.join('\n')}\n`,
);
