/**
 * One server of `bench/http.bench.ts`, in a process of its own so that neither shares a thread
 * with the load generator: `ipc` runs the http example system (as `ftl-ipc run` does: the
 * supervisor here, tcpip in a worker thread, http in a child process), `plain` the same handler
 * in `node:http`. Prints `url <url>` once it serves, and stops when its stdin ends.
 * Run: node dist/bench/http-server.js ipc|plain
 */
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { handle } from '../examples/http/handler.js';
import { parseSystemSpec, System } from '../src/index.js';

async function startSystem(): Promise<{ url: string; stop: () => Promise<unknown> }> {
  const file = fileURLToPath(new URL('../../examples/http/system.yaml', import.meta.url));
  const text = (await readFile(file, 'utf8')).replace('port: 8080', 'port: 0');
  const { spec } = parseSystemSpec(text, file);
  if (spec === undefined) throw new Error(`${file} has problems`);
  let resolve: (url: string) => void = () => {};
  const promise = new Promise<string>((res) => {
    resolve = res;
  });
  const system = new System(spec, {
    onLog: (_, __, line) => {
      const match = /listening on (127\.0\.0\.1:\d+)/.exec(line);
      if (match?.[1] !== undefined) resolve(`http://${match[1]}/`);
    },
  });
  system.start();
  return { url: await promise, stop: () => system.stop() };
}

async function startPlain(): Promise<{ url: string; stop: () => Promise<unknown> }> {
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
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  return {
    url,
    stop: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

const which = process.argv[2];
if (which !== 'ipc' && which !== 'plain')
  throw new Error(`usage: http-server ipc|plain, got ${which}`);
const server = which === 'ipc' ? await startSystem() : await startPlain();
process.stdout.write(`url ${server.url}\n`);
process.stdin.resume();
await once(process.stdin, 'end');
await server.stop();
process.exit(0);
