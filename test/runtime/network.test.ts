import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { fixture, Run, root } from './helpers.js';

/** Sends `data` on a new connection, half-closes, and resolves with everything read back. */
async function exchange(port: number, data: Uint8Array): Promise<Buffer> {
  const socket = net.connect(port, '127.0.0.1');
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.end(data);
  await once(socket, 'close');
  return Buffer.concat(chunks);
}

function pattern(size: number, seed: number): Buffer {
  const out = Buffer.alloc(size);
  for (let i = 0; i < size; i++) out[i] = (i * 31 + seed) & 255;
  return out;
}

async function system(file: string, edit: (text: string) => string): Promise<Run> {
  return new Run(edit(await readFile(file, 'utf8')), file);
}

describe('tcpip and http over real TCP', { timeout: 90_000 }, () => {
  async function echoes(tcpipIsolation: string): Promise<void> {
    const run = await system(`${root}examples/tcpip/system.yaml`, (t) =>
      t.replace('isolation: process', `isolation: ${tcpipIsolation}`),
    );
    const port = Number((await run.waitFor(/\[tcpip\] listening on 127\.0\.0\.1:(\d+)/))[1]);
    const big = pattern(8 * 1024 * 1024, 1);
    assert.ok((await exchange(port, big)).equals(big));
    const many = await Promise.all(
      Array.from({ length: 100 }, (_, i) => exchange(port, pattern(1000 + i * 97, i))),
    );
    for (const [i, reply] of many.entries()) {
      assert.ok(reply.equals(pattern(1000 + i * 97, i)), `connection ${i}`);
    }
    await run.system.stop();
  }

  it('echoes 8 MiB intact and serves 100 concurrent connections', () => echoes('process'));

  it('does the same with tcpip in a thread and the application in a process', () =>
    echoes('thread'));

  it('holds a fast sender back while the application does not read, and loses nothing', async () => {
    const run = new Run(`
services:
  - name: tcpip
    module: ${root}examples/tcpip/service.ts
    isolation: process
    provides: [tcpip]
    config: { buffer: 32 }
  - name: app
    module: ${fixture('slow-reader')}
    isolation: process
    depends: [{ name: tcpip, protocol: tcpip }]
    config: { holdMs: 2000 }
`);
    const port = Number((await run.waitFor(/\[tcpip\] listening on 127\.0\.0\.1:(\d+)/))[1]);
    const total = 64 * 1024 * 1024;
    const chunk = pattern(64 * 1024, 3);
    const socket = net.connect(port, '127.0.0.1');
    const reply: Buffer[] = [];
    socket.on('data', (c: Buffer) => reply.push(c));
    await once(socket, 'connect');
    // How far the sender got while the application held its connection unread.
    const progress: number[] = [];
    let flushed = 0;
    const sampler = setInterval(() => progress.push(flushed), 250);
    for (let sent = 0; sent < total; sent += chunk.byteLength) {
      if (!socket.write(chunk)) await once(socket, 'drain');
      flushed = sent + chunk.byteLength - socket.writableLength;
    }
    clearInterval(sampler);
    socket.end();
    await once(socket, 'close');
    // Before the hold ended the sender was stuck far below the total: TCP flow control.
    const held = progress.slice(2, 6);
    assert.ok(held.length === 4, `samples: ${progress}`);
    assert.ok(
      held.every((p) => p < total / 4),
      `sender progress while held: ${held}`,
    );
    assert.equal(held[0], held.at(-1), `the sender still made progress: ${held}`);
    let sum = 0;
    for (let i = 0; i < total; i++) sum = (sum + chunk[i % chunk.byteLength]!) % 1_000_000_007;
    assert.equal(Buffer.concat(reply).toString(), `${total} ${sum}`);
    const line = await run.waitFor(/\[app\] received (\d+) sum \d+ high-water (\d+)/);
    assert.ok(Number(line[2]) <= 32, `the connection channel stayed bounded: ${line[0]}`);
    await run.system.stop();
  });

  it('serves the http example to fetch, raw sockets and curl', async (t) => {
    const run = await system(`${root}examples/http/system.yaml`, (t) =>
      t.replace('port: 8080', 'port: 0'),
    );
    const port = Number((await run.waitFor(/\[tcpip\] listening on 127\.0\.0\.1:(\d+)/))[1]);
    const url = `http://127.0.0.1:${port}/`;
    const page = await fetch(url);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /Hello from ftl-ipc/);
    const echo = await fetch(`${url}echo`, {
      method: 'POST',
      body: 'ping pong',
      headers: { 'content-type': 'text/plain' },
    });
    assert.equal(await echo.text(), 'ping pong');
    assert.equal(echo.headers.get('content-type'), 'text/plain');
    assert.equal((await fetch(`${url}missing`)).status, 404);
    const wrongMethod = await fetch(`${url}echo`);
    assert.equal(wrongMethod.status, 405);
    assert.equal(wrongMethod.headers.get('allow'), 'POST, PUT');
    const big = pattern(300_000, 9);
    const bigEcho = await fetch(`${url}echo`, { method: 'POST', body: big });
    assert.ok(Buffer.from(await bigEcho.arrayBuffer()).equals(big));

    const replies = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        exchange(
          port,
          Buffer.from(
            `POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: ${String(i).length}\r\nConnection: close\r\n\r\n${i}`,
          ),
        ),
      ),
    );
    for (const [i, r] of replies.entries()) {
      assert.match(r.toString(), new RegExp(`^HTTP/1.1 200 OK\\r\\n[^]*\\r\\n\\r\\n${i}$`));
    }

    // Pipelined requests on one keep-alive connection are answered in order.
    const pipelined = await exchange(
      port,
      Buffer.from(
        'GET /a HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\nConnection: close\r\n\r\n',
      ),
    );
    assert.deepEqual(pipelined.toString().match(/HTTP\/1.1 \d+/g), [
      'HTTP/1.1 404',
      'HTTP/1.1 200',
      'HTTP/1.1 404',
    ]);

    // Only a missing binary skips curl: a reset or an empty reply (exit 52, 56) fails the test.
    const curl = await promisify(execFile)('curl', [
      '-sS',
      '--data',
      'from curl',
      `${url}echo`,
    ]).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    });
    if (curl === undefined) t.diagnostic('curl is not installed: the curl client was not tried');
    else assert.equal(curl.stdout, 'from curl');
    await run.system.stop();
  });
});
