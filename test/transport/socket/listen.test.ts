import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { lstat, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { describe, it } from 'node:test';
import { connect, type Listener, listen, privateSocketPath } from '../../../src/index.js';
import { failure } from '../spawn-helpers.js';
import { child } from './helpers.js';

/** A child process listening on `path`, once it says it is. */
async function listenerProcess(path: string): Promise<ChildProcess> {
  const proc = spawn(process.execPath, [child('path-listener'), path], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    proc.stdout!.once('data', () => resolve());
    proc.once('exit', (code, signal) => reject(new Error(`listener exited: ${code ?? signal}`)));
  });
  return proc;
}

async function kill9(proc: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => proc.once('exit', resolve));
  proc.kill('SIGKILL');
  await exited;
}

describe('listen on a Unix socket path that is already there', { timeout: 60_000 }, () => {
  it('replaces the socket of a listener killed with SIGKILL (nothing answers on it)', async () => {
    const path = await privateSocketPath();
    await kill9(await listenerProcess(path));
    assert.ok((await lstat(path)).isSocket(), 'kill -9 leaves the socket file behind');
    const listener = await listen({ path });
    const [a, b] = await Promise.all([connect({ path }), listener.accept()]);
    a.send({ type: 7 });
    assert.equal((await b!.recv()).type, 7);
    a.close();
    b!.close();
    await listener.close();
    await rm(dirname(path), { recursive: true });
  });

  it('fails, naming the path, while another process listens on it; that listener keeps working', async () => {
    const path = await privateSocketPath();
    const other = await listenerProcess(path);
    try {
      const error = await failure(listen({ path }), 'CONNECTION_FAILED');
      assert.ok(error.message.includes(path), error.message);
      assert.match(error.message, /another listener is accepting connections on it/);
      // Its socket was not removed: the other process is still reachable.
      const channel = await connect({ path });
      await channel.closed;
    } finally {
      await kill9(other);
    }
    await rm(dirname(path), { recursive: true });
  });

  it('fails on a live listener in this process too', async () => {
    const path = await privateSocketPath();
    const first = await listen({ path });
    const error = await failure(listen({ path }), 'CONNECTION_FAILED');
    assert.match(error.message, /another listener is accepting connections/);
    await first.close();
    await rm(dirname(path), { recursive: true });
  });

  it('never removes what is not a socket', async () => {
    const path = await privateSocketPath();
    await writeFile(path, 'precious');
    const error = await failure(listen({ path }), 'CONNECTION_FAILED');
    assert.match(error.message, /exists and is not a socket; it was left as it is/);
    assert.ok(error.message.includes(path), error.message);
    assert.equal(await readFile(path, 'utf8'), 'precious');
    await rm(dirname(path), { recursive: true });
  });

  it('two listeners racing for one stale path: one listens, the other is told', async () => {
    const path = await privateSocketPath();
    await kill9(await listenerProcess(path));
    const results = await Promise.allSettled([listen({ path }), listen({ path })]);
    const won = results.filter((r) => r.status === 'fulfilled');
    assert.equal(won.length, 1, JSON.stringify(results.map((r) => r.status)));
    const lost = results.find((r) => r.status === 'rejected');
    assert.match(String(lost?.reason), /another listener is accepting connections/);
    const listener = (won[0] as PromiseFulfilledResult<Listener>).value;
    const [a, b] = await Promise.all([connect({ path }), listener.accept()]);
    a.close();
    b!.close();
    await listener.close();
    await rm(dirname(path), { recursive: true });
  });
});

describe('privateSocketPath', { timeout: 30_000 }, () => {
  it('leaves no directory behind when the process that made it exits', async () => {
    const script = `
      import { listen, privateSocketPath } from ${JSON.stringify(new URL('../../../src/index.js', import.meta.url).href)};
      const closed = await privateSocketPath();
      await (await listen({ path: closed })).close();
      const open = await privateSocketPath();
      await listen({ path: open });
      const unused = await privateSocketPath();
      console.log(JSON.stringify([closed, open, unused]));
      process.exit(0);
    `;
    const proc = spawn(process.execPath, ['--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    proc.stdout!.on('data', (d: Buffer) => (out += d));
    assert.equal(await new Promise((resolve) => proc.once('exit', resolve)), 0);
    const paths = JSON.parse(out) as string[];
    assert.equal(paths.length, 3);
    for (const path of paths) assert.equal(existsSync(dirname(path)), false, dirname(path));
  });

  it('a directory its user removed first, or filled with other files, is left alone', async () => {
    const script = `
      import { writeFileSync, rmSync } from 'node:fs';
      import { dirname, join } from 'node:path';
      import { privateSocketPath } from ${JSON.stringify(new URL('../../../src/index.js', import.meta.url).href)};
      const removed = await privateSocketPath();
      rmSync(dirname(removed), { recursive: true });
      const kept = await privateSocketPath();
      writeFileSync(join(dirname(kept), 'notes.txt'), 'mine');
      console.log(JSON.stringify(kept));
    `;
    const proc = spawn(process.execPath, ['--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    proc.stdout!.on('data', (d: Buffer) => (out += d));
    assert.equal(await new Promise((resolve) => proc.once('exit', resolve)), 0);
    const kept = JSON.parse(out) as string;
    assert.equal(await readFile(`${dirname(kept)}/notes.txt`, 'utf8'), 'mine');
    await rm(dirname(kept), { recursive: true });
  });
});
