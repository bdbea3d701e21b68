import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { parseSystemSpec } from '../../src/index.js';
import { fixture, Run, root } from './helpers.js';

interface Seen {
  before: Record<string, number>;
  after: Record<string, number>;
  failures: string[];
}

describe('instances: N', { timeout: 60_000 }, () => {
  it('is an integer of at least 1, default 1', () => {
    const spec = (instances: string) =>
      parseSystemSpec(
        `services:\n  - name: job\n    module: ${fixture('pid-server')}\n    ${instances}\n`,
        `${root}test.yaml`,
      );
    assert.equal(spec('').spec?.services[0]?.instances, 1);
    assert.equal(spec('instances: 3').spec?.services[0]?.instances, 3);
    for (const bad of ['0', '2.5', '"3"']) {
      const { diagnostics } = spec(`instances: ${bad}`);
      assert.deepEqual(
        diagnostics.map((d) => d.message),
        [`"instances" must be an integer of at least 1; got ${bad === '"3"' ? '"3"' : bad}`],
      );
    }
  });

  it('spreads one client channel over 3 instances; one killed mid-load fails only its calls and comes back', async () => {
    const run = new Run(`
services:
  - name: job
    module: ${fixture('pid-server')}
    isolation: process
    instances: 3
    provides: [ping]
    restart: { policy: on-failure, backoffMs: 50 }
  - name: client
    module: ${fixture('spread-client')}
    depends: [{ name: ping, protocol: ping }]
    config: { ms: 3000 }
`);
    try {
      await killOneMidLoad(run);
    } finally {
      await run.system.stop();
    }
  });
});

async function killOneMidLoad(run: Run): Promise<void> {
  await run.waitFor(/\[client\] calling/);
  const pids: string[] = [];
  for (const i of [1, 2, 3])
    pids.push((await run.waitFor(new RegExp(`\\[job#${i}\\] serving (\\d+)`)))[1]!);
  await delay(500);
  const victim = pids[1]!;
  assert.equal(run.system.status().find((s) => s.name === 'job#2')?.id, `pid ${victim}`);
  process.kill(Number(victim), 'SIGKILL');
  const back = (await run.waitFor(new RegExp(`\\[job#2\\] serving (?!${victim}\\b)(\\d+)`)))[1]!;
  const seen = JSON.parse((await run.waitFor(/\[client\] seen (.*)/))[1]!) as Seen;

  // Before the kill every instance took calls; the only failures are the calls job#2 held. The
  // restarted job#2 may answer a call before the client's loops have seen those failures.
  const message = JSON.stringify(seen);
  assert.deepEqual(
    Object.keys(seen.before)
      .filter((pid) => pid !== back)
      .sort(),
    [...pids].sort(),
    message,
  );
  assert.ok(seen.failures.length >= 1 && seen.failures.length <= 16, message);
  for (const failure of seen.failures)
    assert.match(
      failure,
      new RegExp(
        `^PEER_CLOSED: ping\\.ping\\.ping: job#2 \\(pid ${victim}\\) was killed by SIGKILL while it held the call$`,
      ),
    );
  // After it, the other two went on and the restarted job#2 took calls again.
  const after = new Set(Object.keys(seen.after));
  if (seen.before[back] !== undefined) after.add(back);
  assert.deepEqual([...after].sort(), [pids[0]!, pids[2]!, back].sort(), message);
  const job2 = run.system.status().find((s) => s.name === 'job#2');
  assert.equal(job2?.state, 'running');
  assert.equal(job2?.restarts, 1);
  assert.deepEqual(
    run.system
      .status()
      .filter((s) => s.name.startsWith('job#'))
      .map((s) => s.restarts),
    [0, 1, 0],
  );
}
