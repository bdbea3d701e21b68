import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { fixture, Run, root } from './helpers.js';

describe('service runtime', { timeout: 60_000 }, () => {
  it('runs the ping example: a process client calls a thread server', async () => {
    const file = `${root}examples/ping/system.yaml`;
    const run = new Run(await readFile(file, 'utf8'), file);
    await run.waitFor(/\[run\] client exit/);
    assert.deepEqual(
      run.lines.filter((l) => l.startsWith('[client]')),
      ['[client] pong 1', '[client] pong 3', '[client] pong 6'],
    );
    const status = run.system.status();
    assert.equal(status.find((s) => s.name === 'client')?.state, 'exited');
    assert.equal(status.find((s) => s.name === 'server')?.state, 'running');
    const report = await run.system.stop();
    assert.deepEqual(
      report.services.map((s) => [s.name, s.outcome]),
      [
        ['server', 'exited'],
        ['client', 'down'],
      ],
    );
    await run.system.done;
  });

  it('delivers everything a process service sent before it returned', async () => {
    // The host flushes the service's sockets before it exits: none of the 2,000 is lost.
    const run = new Run(`
services:
  - name: sink
    module: ${fixture('counting-sink')}
    provides: [sink]
  - name: burst
    module: ${fixture('burst-sender')}
    isolation: process
    depends: [{ name: sink, protocol: sink }]
`);
    await run.waitFor(/\[sink\] received/);
    assert.ok(run.lines.includes('[sink] received 2000'), run.lines.join('\n'));
    await run.system.stop();
  });

  it('restarts a crashed server; its client sees PEER_CLOSED and reconnects', async () => {
    const run = new Run(`
services:
  - name: server
    module: ${fixture('crashy-server')}
    provides: [ping]
    restart: { policy: on-failure, limit: 2, backoffMs: 50 }
  - name: client
    module: ${fixture('reconnecting-client')}
    isolation: process
    depends: [{ name: ping, protocol: ping }]
`);
    await run.waitFor(/\[run\] client exit/);
    const client = run.lines.filter((l) => l.startsWith('[client]'));
    assert.deepEqual(client, [
      '[client] before 1 2',
      '[client] crash seen: PEER_CLOSED',
      // A fresh server instance: its count starts again.
      '[client] after 1',
    ]);
    assert.ok(run.lines.includes('[server] asked to crash'));
    const server = run.system.status().find((s) => s.name === 'server');
    assert.equal(server?.restarts, 1);
    assert.equal(server?.state, 'running');
    await run.system.stop();
  });

  it('gives up after the restart limit, and never restarts under "never"', async () => {
    const run = new Run(`
services:
  - name: flaky
    module: ${fixture('fail')}
    restart: { policy: on-failure, limit: 2, backoffMs: 10 }
  - name: once
    module: ${fixture('fail')}
    isolation: process
    restart: never
`);
    await run.system.done;
    const flaky = run.events.filter((e) => e.service === 'flaky').map((e) => e.kind);
    assert.deepEqual(flaky, [
      'start',
      'exit',
      'restart',
      'start',
      'exit',
      'restart',
      'start',
      'exit',
      'give-up',
    ]);
    const once = run.events.filter((e) => e.service === 'once').map((e) => e.kind);
    assert.deepEqual(once, ['start', 'exit']);
    assert.deepEqual(
      run.system.status().map((s) => [s.name, s.state, s.restarts]),
      [
        ['flaky', 'failed', 2],
        ['once', 'failed', 0],
      ],
    );
    assert.ok(run.lines.some((l) => l.startsWith('[once] Error: always fails')));
  });

  it('terminates services that ignore shutdown after the grace period', async () => {
    const run = new Run(`
shutdown: { graceMs: 300 }
services:
  - { name: thread, module: ${fixture('stubborn')} }
  - { name: proc, module: ${fixture('stubborn')}, isolation: process }
`);
    await run.waitFor(/\[proc\] ignoring/);
    await run.waitFor(/\[thread\] ignoring/);
    const started = performance.now();
    const report = await run.system.stop();
    // Terminated at the grace period: not before it, and not much after (a generous allowance
    // for a loaded machine, still far below a supervisor that waits for the service forever).
    const took = performance.now() - started;
    assert.ok(took >= 299 && took < 300 + 2000, `terminated after ${took} ms for a grace of 300`);
    assert.deepEqual(
      report.services.map((s) => s.outcome),
      ['terminated', 'terminated'],
    );
  });
});
