/**
 * Rust beside TypeScript (issue 25). Calls: the generated TypeScript CalcClient, 64 loops of
 * `await calc.add()` (64 in flight), over a Unix socket to the Rust server
 * (rust/examples/interop.rs `serve`, generated from calc.yaml) and to the TypeScript server
 * (bench/rust-peer.ts), each in its own process, library defaults on both. One-way: 16-byte
 * messages from a Rust sender and from a TypeScript sender to a TypeScript receiver in this
 * process (`for (;;) await ch.recv()`). Rounds alternate between the sides; the tables show
 * medians, ranges, and the CPU µs per call or message of the peer process.
 * Run: npm run bench:rust [-- --quick] (builds the Rust peer with cargo --release first)
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { CalcClient } from '../examples/polyglot/calc.generated.js';
import { connect, listen, privateSocketPath } from '../src/index.js';
import { median, range } from './stats.js';

const quick = process.argv.includes('--quick');
const ROUNDS = quick ? 1 : 5;
const DURATION_MS = quick ? 300 : 1000;
const IN_FLIGHT = 64;
const ONE_WAY = quick ? 50_000 : 300_000;
const rustDir = fileURLToPath(new URL('../../rust/', import.meta.url));
const rustBin = join(rustDir, 'target/release/examples/interop');
const tsPeer = fileURLToPath(new URL('./rust-peer.js', import.meta.url));
execFileSync('cargo', ['build', '--offline', '--release', '--examples'], {
  cwd: rustDir,
  stdio: 'inherit',
});

/** CPU seconds (user and system) a process has used so far, from /proc (Linux). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function peer(side: 'rust' | 'ts', args: string[]): ChildProcess {
  return side === 'rust'
    ? spawn(rustBin, args, { stdio: ['ignore', 'pipe', 'inherit'] })
    : spawn(process.execPath, [tsPeer, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
}

async function firstLine(child: ChildProcess): Promise<string> {
  const [line] = (await once(createInterface({ input: child.stdout! }), 'line')) as [string];
  return line;
}

async function calls(side: 'rust' | 'ts'): Promise<{ rate: number; cpu: number }> {
  const path = await privateSocketPath();
  const server = peer(side, ['serve', path]);
  await firstLine(server);
  const calc = new CalcClient(await connect({ path }));
  const run = async (ms: number) => {
    let n = 0;
    const end = performance.now() + ms;
    await Promise.all(
      Array.from({ length: IN_FLIGHT }, async () => {
        while (performance.now() < end) {
          await calc.add({ a: BigInt(n & 0xffff), b: 1n });
          n++;
        }
      }),
    );
    return n;
  };
  await run(DURATION_MS / 2); // warm up both sides
  const before = cpuSeconds(server.pid!);
  const started = performance.now();
  const n = await run(DURATION_MS);
  const rate = n / ((performance.now() - started) / 1000);
  const cpu = ((cpuSeconds(server.pid!) - before) * 1e6) / n;
  calc.close();
  server.kill();
  await once(server, 'exit');
  return { rate, cpu };
}

async function oneWay(side: 'rust' | 'ts'): Promise<{ rate: number; cpu: number }> {
  const path = await privateSocketPath();
  const listener = await listen({ path });
  const sender = peer(side, ['blast', path, String(ONE_WAY), '16']);
  const ch = (await listener.accept())!;
  const before = process.cpuUsage();
  let started = 0;
  for (let i = 0; i < ONE_WAY; i++) {
    await ch.recv();
    if (i === 0) started = performance.now();
  }
  const rate = (ONE_WAY - 1) / ((performance.now() - started) / 1000);
  const used = process.cpuUsage(before);
  await once(sender, 'exit');
  ch.close();
  listener.close();
  return { rate, cpu: (used.user + used.system) / ONE_WAY };
}

const results: Record<string, { rate: number[]; cpu: number[] }> = {};
const record = (name: string, r: { rate: number; cpu: number }) => {
  results[name] ??= { rate: [], cpu: [] };
  results[name].rate.push(r.rate);
  results[name].cpu.push(r.cpu);
};
for (let round = 0; round < ROUNDS; round++) {
  for (const side of ['rust', 'ts'] as const) record(`calls, ${side} server`, await calls(side));
  for (const side of ['rust', 'ts'] as const)
    record(`one-way 16 B, ${side} sender`, await oneWay(side));
}

console.log(
  `load average ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}; ${ROUNDS} rounds`,
);
console.log('| what | per second (median) | range | CPU µs each (median) |');
console.log('| --- | ---: | --- | ---: |');
for (const [name, r] of Object.entries(results)) {
  console.log(
    `| ${name} | ${Math.round(median(r.rate)).toLocaleString('en')} | ${range(r.rate, (x) => Math.round(x).toLocaleString('en'))} | ${median(r.cpu).toFixed(2)} |`,
  );
}
const ratio = (a: string, b: string) =>
  (median(results[a]!.rate) / median(results[b]!.rate)).toFixed(2);
console.log(
  `calls: Rust server / TypeScript server = ${ratio('calls, rust server', 'calls, ts server')}`,
);
console.log(
  `one-way: Rust sender / TypeScript sender = ${ratio('one-way 16 B, rust sender', 'one-way 16 B, ts sender')}`,
);
