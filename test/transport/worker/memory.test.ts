/**
 * What channels between threads cost in memory: under churn it stays flat, and many live
 * channels fit in a bounded amount. The figures are the acceptance limits of issue 17.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { describe, it } from 'node:test';
import { Channel, exportEndpoint, importEndpoint, sharedMemoryStats } from '../../../src/index.js';
import { within } from '../../channel/helpers.js';
import { exitCode, nextMessage, startWorker } from './workers.js';

const MiB = 2 ** 20;
/** A wait that a lost wake-up or a broken arena would make endless fails after this, by name. */
const WAIT_MS = 20_000;

/** Address space of this process (all threads), from /proc: what it has reserved. */
function reservedBytes(): number {
  const status = readFileSync('/proc/self/status', 'utf8');
  return Number(/^VmSize:\s+(\d+) kB/m.exec(status)?.[1] ?? 0) * 1024;
}

function arenaReserve(): number {
  return sharedMemoryStats().reduce((sum, a) => sum + a.reserved, 0);
}

describe('memory of channels between threads', () => {
  it('move churn for 20 s: a channel to a worker and back, a message each way, closed; RSS grows < 100 MiB', {
    timeout: 100_000,
  }, async (t) => {
    const [ctrl, theirs] = Channel.pair();
    const worker = startWorker('bounce', exportEndpoint(theirs));
    const cycle = async (n: number) => {
      const [a, b] = Channel.pair();
      a.send({ type: n });
      await ctrl.sendWait({ type: 0, handles: [b] });
      const [back] = (await ctrl.recv()).handles as [Channel];
      assert.equal((await a.recv()).type, n + 1);
      a.close();
      back.close();
    };
    let moves = 0;
    let grown: number;
    let live: number;
    try {
      // Warm up (JIT, first arena blocks), then measure.
      const warmUp = async () => {
        for (let n = 0; n < 2000; n++) await cycle(n);
      };
      await within(warmUp(), 60_000, 'the first 2000 moves');
      const start = process.memoryUsage().rss;
      const started = performance.now();
      const churn = async () => {
        while (performance.now() - started < 20_000) await cycle(moves++);
      };
      await within(churn(), 60_000, '20 s of moves');
      grown = process.memoryUsage().rss - start;
      live = sharedMemoryStats().reduce((sum, a) => sum + a.liveBytes, 0);
      ctrl.close();
      await within(exitCode(worker), WAIT_MS, 'the worker ending once its channel closed');
    } finally {
      ctrl.close();
      await worker.terminate();
    }
    t.diagnostic(`${(moves / 20).toFixed(0)} moves/s, RSS +${(grown / MiB).toFixed(1)} MiB`);
    assert.ok(moves > 1000, `only ${moves} moves in 20 s`);
    assert.ok(grown < 100 * MiB, `RSS grew by ${(grown / MiB).toFixed(1)} MiB over ${moves} moves`);
    // Only the control pair is left: every moved pair returned its blocks on close.
    assert.ok(live < 64 * 1024, `${live} bytes of shared memory still in use`);
  });

  it('100,000 live channels at defaults to a worker, each used once: < 10 s, <= 1 GiB RSS, <= 2 GiB reserved', {
    timeout: 100_000,
  }, async (t) => {
    const count = 100_000;
    const [ctrl, theirs] = Channel.pair();
    const worker = startWorker('holdMany', exportEndpoint(theirs), { count, size: 16 });
    const rssBefore = process.memoryUsage().rss;
    const reservedBefore = reservedBytes();
    const started = performance.now();
    const cpu = process.cpuUsage();
    const mine: Channel[] = [];
    let seconds: number;
    let cpuSeconds: number;
    let rss: number;
    let reserved: number;
    try {
      for (let i = 0; i < count; i += 64) {
        const handles: Channel[] = [];
        for (let j = i; j < Math.min(count, i + 64); j++) {
          const [a, b] = Channel.pair();
          mine.push(a);
          handles.push(b);
        }
        await ctrl.sendWait({ type: 0, handles }, { timeoutMs: WAIT_MS });
      }
      const sent = nextMessage(worker);
      for (const a of mine) a.send({ type: 2, data: new Uint8Array(16) });
      await within(sent, 60_000, `the worker sending on ${count} channels`);
      const receive = async () => {
        for (const a of mine) assert.equal((await a.recv()).type, 1);
      };
      await within(receive(), 60_000, `the messages on ${count} channels`);
      seconds = (performance.now() - started) / 1000;
      const used = process.cpuUsage(cpu);
      cpuSeconds = (used.user + used.system) / 1e6;
      rss = process.memoryUsage().rss;
      reserved = reservedBytes() - reservedBefore + arenaReserve();
      worker.postMessage('close');
      await within(exitCode(worker), WAIT_MS, 'the worker ending once told to close');
    } finally {
      await worker.terminate();
      for (const a of mine) a.close();
      ctrl.close();
    }
    const load = loadavg()[0] as number;
    t.diagnostic(
      `${seconds.toFixed(1)} s (${cpuSeconds.toFixed(1)} s of CPU, both threads), RSS ${(rss / MiB).toFixed(0)} MiB, reserved ${(reserved / MiB).toFixed(0)} MiB, load average ${load.toFixed(1)}`,
    );
    // On a machine busier than its cores, the clock measures the other work; the CPU time
    // this process spent does not. CPU time adds both threads, so it is evidence only when the
    // clock is over.
    const busy = load >= availableParallelism();
    assert.ok(
      seconds < 10 || (busy && cpuSeconds < 10),
      `took ${seconds.toFixed(1)} s (${cpuSeconds.toFixed(1)} s of CPU) at load ${load.toFixed(1)}`,
    );
    assert.ok(
      rss <= 1024 * MiB,
      `RSS ${(rss / MiB).toFixed(0)} MiB (from ${(rssBefore / MiB).toFixed(0)})`,
    );
    assert.ok(reserved <= 2048 * MiB, `reserved ${(reserved / MiB).toFixed(0)} MiB`);
  });
});

describe('shared memory stats', () => {
  it('a pair moved out of its thread takes arena blocks, and closing both ends returns them at once', () => {
    const live = () => sharedMemoryStats().reduce((sum, a) => sum + a.liveBytes, 0);
    // This thread's entry in the arena new pairs come from is made on first use, and stays.
    const [warm, other] = Channel.pair();
    importEndpoint(exportEndpoint(other)).close();
    warm.close();
    const before = live();
    const pairs: [Channel, Channel][] = [];
    for (let i = 0; i < 100; i++) {
      const [a, b] = Channel.pair();
      const far = importEndpoint(exportEndpoint(b));
      a.send({ type: 1, data: new Uint8Array(16) });
      far.send({ type: 2, data: new Uint8Array(16) });
      pairs.push([a, far]);
    }
    const during = live() - before;
    // A slot and two small rings each: 1 KiB a pair, far from the 2 MiB a pair once cost.
    assert.ok(during >= 100 * 512 && during <= 100 * 2048, `${during} bytes for 100 pairs`);
    for (const [a, far] of pairs) {
      a.close();
      far.close();
    }
    assert.equal(live(), before);
    const [stats] = sharedMemoryStats();
    assert.ok(stats !== undefined && stats.reserved >= stats.size && stats.size >= stats.used);
  });
});
