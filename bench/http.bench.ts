/**
 * What the IPC hops cost an HTTP server: the http example system (TCP in the tcpip service's
 * process, HTTP in its own, channels between) against the same handler in a plain
 * node:http server, measured with autocannon in one run, as ratios.
 * Run: npm run build && node dist/bench/http.bench.js [seconds per run, default 5]
 */
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { handle } from '../examples/http/handler.js';
import { parseSystemSpec, System } from '../src/index.js';

const seconds = Number(process.argv[2] ?? 5);
const CONNECTIONS = 50;
const ECHO_BODY = 'x'.repeat(1024);

async function startSystem(): Promise<{ url: string; system: System }> {
  const file = fileURLToPath(new URL('../../examples/http/system.yaml', import.meta.url));
  const text = (await readFile(file, 'utf8')).replace('port: 8080', 'port: 0');
  const { spec } = parseSystemSpec(text, file);
  if (spec === undefined) throw new Error(`${file} has problems`);
  let found: (url: string) => void = () => {};
  const url = new Promise<string>((resolve) => {
    found = resolve;
  });
  const system = new System(spec, {
    onLog: (_, __, line) => {
      const match = /listening on (127\.0\.0\.1:\d+)/.exec(line);
      if (match?.[1] !== undefined) found(`http://${match[1]}/`);
    },
  });
  system.start();
  return { url: await url, system };
}

async function startPlain(): Promise<{ url: string; server: http.Server }> {
  const server = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const headers = new Map(
      Object.entries(req.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') : (v ?? '')]),
    );
    const response = handle({
      method: req.method ?? 'GET',
      path: (req.url ?? '/').split('?')[0] ?? '/',
      headers,
      body: Buffer.concat(chunks),
    });
    res.writeHead(response.status, {
      'content-type': response.type,
      'content-length': response.body.byteLength,
    });
    res.end(response.body);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, server };
}

interface Result {
  rps: number;
  p99: number;
  errors: number;
}

async function load(url: string, post: boolean, duration: number): Promise<Result> {
  const result = await autocannon({
    url: post ? `${url}echo` : url,
    connections: CONNECTIONS,
    duration,
    ...(post && { method: 'POST' as const, body: ECHO_BODY }),
  });
  return {
    rps: result.requests.average,
    p99: result.latency.p99,
    errors: result.errors + result.non2xx + result.timeouts,
  };
}

const ipc = await startSystem();
const plain = await startPlain();
const rows: string[] = [];
for (const [name, post] of [
  ['GET / (338 B page)', false],
  ['POST /echo (1 KiB)', true],
] as const) {
  // A short warm-up each, so JIT and connection setup are out of the measured runs.
  await load(ipc.url, post, 1);
  await load(plain.url, post, 1);
  const a = await load(ipc.url, post, seconds);
  const b = await load(plain.url, post, seconds);
  if (a.errors + b.errors > 0) throw new Error(`errors: ipc ${a.errors}, node:http ${b.errors}`);
  rows.push(
    `| ${name} | ${Math.round(a.rps)} req/s, p99 ${a.p99} ms | ${Math.round(b.rps)} req/s, p99 ${b.p99} ms | ${(a.rps / b.rps).toFixed(2)}x | ${(a.p99 / b.p99).toFixed(1)}x |`,
  );
}
plain.server.close();
await ipc.system.stop();
process.stdout.write(
  `${CONNECTIONS} connections, ${seconds} s each\n\n| request | http example (ftl-ipc) | node:http | throughput ratio | p99 ratio |\n| --- | --- | --- | --- | --- |\n${rows.join('\n')}\n`,
);
