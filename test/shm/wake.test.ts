/**
 * The wake policy's convergence, as a deterministic model: a fast stream is a `ready()` that
 * turns true on its second look (the message comes while the endpoint spins), and every wait
 * that does not spin sleeps for a wake-up longer than the spin budget (what two sleeping
 * endpoints see of each other). Whatever the history, the endpoint must be spinning within a
 * few hundred waits and stay so.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resolveWakePolicy, Spinner } from '../../src/shm/wake.js';

const policy = resolveWakePolicy({ spinMicros: 50, adaptive: true });

/** Feeds `waits` waits of a fast stream; returns the index of each wait that spun. */
function fastStream(spinner: Spinner, waits: number): number[] {
  const spun: number[] = [];
  for (let i = 0; i < waits; i++) {
    let looks = 0;
    if (spinner.spin(() => ++looks >= 2)) spun.push(i);
    else spinner.slept(2 * policy.spinMicros);
  }
  return spun;
}

function assertConverges(spinner: Spinner): void {
  const spun = fastStream(spinner, 1000);
  const first = spun[0];
  assert.ok(first !== undefined && first < 300, `first spin at wait ${String(first)}, want < 300`);
  // From then on every wait spins: no second stable state.
  assert.equal(spun.length, 1000 - first, `spun ${spun.length} of ${1000 - first} waits after`);
}

test('a fresh endpoint spins under a fast stream', () => {
  assertConverges(new Spinner(policy));
});

test('after a long idle stretch (a cold start) a fast stream gets it spinning again', () => {
  const spinner = new Spinner(policy);
  for (let i = 0; i < 1000; i++) {
    if (!spinner.spin(() => false)) spinner.slept(1_000_000);
  }
  assertConverges(spinner);
});

test('after sleeps as long as the peer’s wake-up, both asleep, it still spins again', () => {
  const spinner = new Spinner(policy);
  for (let i = 0; i < 100; i++) spinner.slept(2 * policy.spinMicros);
  assertConverges(spinner);
});

test('an idle endpoint probes rarely: at most one spin in 100 long waits once backed off', () => {
  const spinner = new Spinner(policy);
  let spins = 0;
  for (let i = 0; i < 2000; i++) {
    let looked = false;
    spinner.spin(() => {
      looked = true;
      return false;
    });
    if (looked) spins++;
    spinner.slept(1_000_000);
  }
  assert.ok(spins <= 20, `spun ${spins} times in 2000 idle waits`);
});

test('spinMicros 0 never spins', () => {
  const spinner = new Spinner(resolveWakePolicy({ spinMicros: 0 }));
  assert.equal(fastStream(spinner, 100).length, 0);
});
