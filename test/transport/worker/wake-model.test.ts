/**
 * A model of two endpoints of a worker channel under the wake policy (src/shm/spin-policy.ts),
 * in simulated time, so that it is deterministic: what each side decides, and what it learns,
 * is the policy's; how long a wake-up takes and who may run when is the model's. A fast stream
 * must reach fast mode (both sides answering while they spin) within a few hundred messages
 * whatever the history, stay there, and on a busy machine a side must not spin away the core
 * its peer needs.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  isProbe,
  newSpinState,
  PROBE_LIMIT,
  type SpinPolicy,
  type SpinState,
  slept,
  spinBudget,
  spinFailed,
  spinFound,
} from '../../../src/shm/spin-policy.js';

const policy: SpinPolicy = { spinMicros: 50, adaptive: true };
/** Microseconds to handle a message, and for a spinning side to see one. */
const WORK = 1;
const REACT = 0.2;

interface Side {
  readonly state: SpinState;
  probe: boolean;
  budget: number;
  since: number;
  /** Microseconds spun, in all. */
  spun: number;
}

function side(state: SpinState = newSpinState()): Side {
  return { state, probe: false, budget: 0, since: 0, spun: 0 };
}

/** `s` starts waiting at `now`: the policy decides how it will wait. */
function startWait(s: Side, now: number): void {
  s.probe = isProbe(s.state, policy);
  s.budget = spinBudget(s.state, policy);
  s.since = now;
}

/**
 * Work for `s` arrives at `at`; returns when `s` acts on it: at once if it still spins, after
 * its wake-up of `wake` µs if it gave up and slept.
 */
function arrive(s: Side, at: number, wake: number): number {
  const waited = at - s.since;
  if (s.budget > 0 && waited <= s.budget) {
    s.spun += waited;
    spinFound(s.state, policy, waited, s.probe);
    return at + REACT;
  }
  if (s.budget > 0) {
    s.spun += s.budget;
    spinFailed(s.state, s.budget);
  }
  slept(s.state, policy, waited - s.state.spun);
  return at + wake;
}

/** Sequential calls, client to server and back; the latency of each round trip. */
function pingPong(client: Side, server: Side, rounds: number, wake: number, think = 0): number[] {
  const latencies: number[] = [];
  let now = 0;
  startWait(server, now);
  for (let i = 0; i < rounds; i++) {
    const sent = now + think;
    startWait(client, sent);
    const replied = arrive(server, sent, wake) + WORK;
    startWait(server, replied);
    now = arrive(client, replied, wake) + WORK;
    latencies.push(now - sent);
  }
  return latencies;
}

/** A round trip in fast mode: both sides spinning, no wake-up in it. */
const FAST = 2 * (WORK + REACT) + 0.01;

function assertConverges(latencies: number[], within: number, label: string): void {
  const first = latencies.findIndex((l) => l <= FAST);
  assert.ok(
    first >= 0 && first < within,
    `${label}: first fast round trip at ${first}, want < ${within}`,
  );
  const after = latencies.slice(first);
  const slow = after.filter((l) => l > FAST).length;
  assert.ok(slow <= after.length / 100, `${label}: ${slow} of ${after.length} round trips slow`);
}

/** Both sides asleep for a long time: long waits, full backoff, skips at any offset. */
function asleep(skip: number): Side {
  const s = side();
  for (let i = 0; i < 20; i++) slept(s.state, policy, 1_000_000);
  s.state.backoff = 256;
  s.state.skip = skip;
  return s;
}

for (const wake of [20, 80, 150, (PROBE_LIMIT - 0.1) * policy.spinMicros]) {
  test(`fresh sides reach fast mode and stay (wake-up ${wake} µs)`, () => {
    assertConverges(pingPong(side(), side(), 5000, wake), 300, 'fresh');
  });

  test(`sides long asleep, their probes out of step, reach fast mode (wake-up ${wake} µs)`, () => {
    for (const [a, b] of [
      [0, 0],
      [0, 128],
      [37, 200],
      [255, 3],
    ] as const) {
      assertConverges(pingPong(asleep(a), asleep(b), 5000, wake), 600, `skips ${a}, ${b}`);
    }
  });

  test(`after a pause and a slow stretch, fast mode comes back (wake-up ${wake} µs)`, () => {
    const client = side();
    const server = side();
    pingPong(client, server, 1000, wake);
    pingPong(client, server, 1, wake, 2_000_000);
    pingPong(client, server, 500, wake, 500);
    assertConverges(pingPong(client, server, 5000, wake), 600, 'after pause');
  });
}

test('on one core (the peer runs only while this side does not spin) spinning stays rare', () => {
  // A stream: the producer needs this side's core to make each message, so every spin fails.
  const consumer = side();
  const waits = 10_000;
  let now = 0;
  for (let i = 0; i < waits; i++) {
    startWait(consumer, now);
    const made = now + consumer.budget + 5;
    now = arrive(consumer, made, 30) + WORK;
  }
  const perWait = consumer.spun / waits;
  assert.ok(perWait <= 2, `spun ${perWait.toFixed(2)} µs a message on a core the peer needs`);
});

test('adaptive off spins every wait; spinMicros 0 never spins', () => {
  const always = newSpinState();
  for (let i = 0; i < 100; i++) {
    slept(always, { spinMicros: 50, adaptive: false }, 1_000_000);
    assert.equal(spinBudget(always, { spinMicros: 50, adaptive: false }), 50);
  }
  assert.equal(spinBudget(newSpinState(), { spinMicros: 0, adaptive: true }), 0);
});
