import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { alive } from '../transport/spawn-helpers.js';
import { fixture, root } from './helpers.js';

const BIN = `${root}dist/src/cli/main.js`;

async function gone(pids: readonly number[], timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (pids.some(alive)) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return true;
}

/** `ftl-ipc run` as a real process; resolves once every service has started. */
async function start(
  spec: string,
  services: number,
  args: readonly string[] = [],
): Promise<{ child: ChildProcess; err: string[]; pids: number[] }> {
  const child = spawn(process.execPath, [BIN, 'run', spec, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const err: string[] = [];
  const pids: number[] = [];
  await new Promise<void>((resolve, reject) => {
    child.stdout!.setEncoding('utf8').on('data', () => {});
    child.stderr!.setEncoding('utf8').on('data', (text: string) => {
      err.push(text);
      for (const [, pid] of text.matchAll(/started \(pid (\d+)\)/g)) pids.push(Number(pid));
      if ((err.join('').match(/started/g) ?? []).length >= services) resolve();
    });
    child.once('exit', () => reject(new Error(`run exited early:\n${err.join('')}`)));
  });
  return { child, err, pids };
}

function count(text: string, line: string): number {
  return text.split('\n').filter((l) => l.includes(line)).length;
}

describe('ftl-ipc run', { timeout: 60_000 }, () => {
  let dir = '';
  let spec = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ftl-run-'));
    spec = join(dir, 'system.yaml');
    await writeFile(
      spec,
      `shutdown: { graceMs: 500 }
services:
  - { name: server, module: ${root}examples/ping/server.ts, provides: [ping], isolation: process }
  - { name: stubborn, module: ${fixture('stubborn')}, isolation: process }
  - { name: worker, module: ${fixture('stubborn')} }
`,
    );
  });
  after(() => rm(dir, { recursive: true }));

  it('stops everything on SIGINT, terminating what ignores it, and leaves no process', async () => {
    const { child, err, pids } = await start(spec, 3, ['--status']);
    assert.equal(pids.length, 2);
    child.kill('SIGINT');
    const [code] = await once(child, 'exit');
    const text = err.join('');
    assert.equal(code, 1, text);
    // One line per event: each exit once, a terminated service's termination then its exit.
    assert.equal(count(text, '[run] server exited (code 0)'), 1, text);
    for (const name of ['stubborn', 'worker']) {
      assert.equal(count(text, `[run] ${name} did not stop within 500 ms: terminating it`), 1);
      assert.equal(count(text, `[run] ${name} exited`), 1, text);
    }
    assert.match(text, /\[run\] stubborn exited \(SIGKILL\)/);
    assert.doesNotMatch(text, /: exited|: terminated|: down/);
    // The live table, redrawn in place: cursor up and clear before each new drawing.
    assert.match(text, /SERVICE +ISOLATION +STATE +ID +RESTARTS\nserver +process +/);
    assert.ok(text.includes('\x1b[J'), 'the table is erased before it is drawn again');
    assert.ok(await gone(pids, 2000), `left behind: ${pids.filter(alive)}`);
  });

  it('services do not outlive a supervisor killed with SIGKILL', async () => {
    const { child, pids } = await start(spec, 3);
    child.kill('SIGKILL');
    await once(child, 'exit');
    // They notice the supervisor is gone and exit, at the latest after their grace period.
    assert.ok(await gone(pids, 5000), `left behind: ${pids.filter(alive)}`);
  });

  it('ends by itself once every service without "provides" has ended', async () => {
    const system = join(dir, 'ping.yaml');
    await writeFile(
      system,
      `services:
  - { name: server, module: ${root}examples/ping/server.ts, provides: [ping] }
  - name: client
    module: ${root}examples/ping/client.ts
    isolation: process
    depends: [{ name: ping, protocol: ping }]
    config: { count: 2 }
`,
    );
    const child = spawn(process.execPath, [BIN, 'run', system], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout!.setEncoding('utf8').on('data', (t: string) => (out += t));
    child.stderr!.setEncoding('utf8').on('data', (t: string) => (err += t));
    const [code] = await once(child, 'exit');
    assert.equal(code, 0, err);
    assert.equal(out, '[client] pong 1\n[client] pong 3\n');
    const lines = err.split('\n').filter((l) => l !== '');
    assert.deepEqual(lines.slice(2), [
      '[run] client exited (code 0)',
      '[run] every service without "provides" has ended (client): stopping (grace 5000 ms; SIGINT or SIGTERM terminates at once)',
      '[run] server exited (code 0)',
      lines.at(-1),
    ]);
    assert.match(lines.at(-1)!, /^\[run\] stopped in \d+ ms$/);
  });

  it('with instances, ends once every instance of every client service has ended', async () => {
    const system = join(dir, 'instances.yaml');
    await writeFile(
      system,
      `services:
  - { name: server, module: ${root}examples/ping/server.ts, provides: [ping], instances: 2 }
  - name: client
    module: ${root}examples/ping/client.ts
    instances: 2
    depends: [{ name: ping, protocol: ping }]
    config: { count: 3 }
`,
    );
    const child = spawn(process.execPath, [BIN, 'run', system], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout!.setEncoding('utf8').on('data', (t: string) => (out += t));
    child.stderr!.setEncoding('utf8').on('data', (t: string) => (err += t));
    const [code] = await once(child, 'exit');
    assert.equal(code, 0, err);
    // Each client's three pings, whichever server instance counted them.
    for (const client of ['client#1', 'client#2'])
      assert.equal(count(out, `[${client}] pong`), 3, out);
    assert.equal(count(err, '[run] client#1 exited (code 0)'), 1, err);
    assert.equal(count(err, '[run] client#2 exited (code 0)'), 1, err);
    assert.equal(count(err, 'every service without "provides" has ended (client)'), 1, err);
  });
});
