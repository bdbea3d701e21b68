/**
 * How a waiting endpoint gets back to work: a short busy-wait while messages come fast, then
 * sleep on `Atomics.waitAsync`. docs/worker.md explains the trade-off.
 */
import { IpcError } from '../errors.js';
import {
  isProbe,
  newSpinState,
  type SpinState,
  slept,
  spinBudget,
  spinFailed,
  spinFound,
} from './spin-policy.js';

export interface WakePolicy {
  /**
   * Longest busy-wait, in microseconds, before an idle receiver (or a sender waiting for room)
   * goes to sleep. 0 never spins. Default 50.
   */
  spinMicros?: number;
  /**
   * Spin only while recent waits were short (default true): the endpoint keeps a moving
   * average of how long its waits lasted, spinning or sleeping, and spins only while that is
   * below `spinMicros`, with a probing spin (long enough to cover the peer's wake-up, at most
   * 4 × `spinMicros`) after exponentially many (at most 256) sleeps so that a fast stream always
   * gets back to spinning. A channel under load spins; an idle one
   * soon just sleeps. When false every wait spins up to `spinMicros`.
   */
  adaptive?: boolean;
}

export interface ResolvedWakePolicy {
  readonly spinMicros: number;
  readonly adaptive: boolean;
}

let defaultPolicy: ResolvedWakePolicy = Object.freeze({ spinMicros: 50, adaptive: true });

export function resolveWakePolicy(policy: WakePolicy = {}): ResolvedWakePolicy {
  const spinMicros = policy.spinMicros ?? defaultPolicy.spinMicros;
  if (typeof spinMicros !== 'number' || !(spinMicros >= 0) || spinMicros > 1_000_000) {
    throw new IpcError(
      'INVALID_ARGUMENT',
      `spinMicros must be a number from 0 to 1000000, got ${String(spinMicros)}`,
    );
  }
  const adaptive = policy.adaptive ?? defaultPolicy.adaptive;
  if (typeof adaptive !== 'boolean') {
    throw new IpcError('INVALID_ARGUMENT', `adaptive must be a boolean, got ${String(adaptive)}`);
  }
  return Object.freeze({ spinMicros, adaptive });
}

/**
 * Sets the policy of endpoints that arrive in this thread from now on without one of their own
 * (inside messages, or imported without options). Returns the previous default.
 */
export function setDefaultWakePolicy(policy: WakePolicy): ResolvedWakePolicy {
  const previous = defaultPolicy;
  defaultPolicy = resolveWakePolicy({ ...previous, ...policy });
  return previous;
}

/**
 * One endpoint's spinning under a policy: the clock and the busy loop around the decisions of
 * src/shm/spin-policy.ts, which explains them.
 */
export class Spinner {
  readonly policy: ResolvedWakePolicy;
  readonly #state: SpinState = newSpinState();

  constructor(policy: ResolvedWakePolicy) {
    this.policy = policy;
  }

  /** Busy-waits until `ready()` or the budget runs out; says whether it found work. */
  spin(ready: () => boolean): boolean {
    const state = this.#state;
    const probe = isProbe(state, this.policy);
    const budget = spinBudget(state, this.policy);
    if (budget === 0) return false;
    const start = performance.now();
    const deadline = start + budget / 1000;
    for (let i = 1; ; i++) {
      if (ready()) {
        spinFound(state, this.policy, (performance.now() - start) * 1000, probe);
        return true;
      }
      // Reading the clock costs more than a ready() check; look at it every few rounds.
      if ((i & 15) === 0 && performance.now() >= deadline) break;
    }
    spinFailed(state, budget);
    return false;
  }

  /** Called after a sleep that lasted `micros`, following a failed or skipped spin. */
  slept(micros: number): void {
    slept(this.#state, this.policy, micros);
  }
}

/**
 * A pending `Atomics.waitAsync` does not keep Node's event loop alive, so a thread whose only
 * work is a pending `recv()` would exit. While anything sleeps on shared memory in this thread,
 * one ref'd timer keeps it running; when nothing does, the timer is unref'd.
 */
let sleepers = 0;
let keepAlive: NodeJS.Timeout | undefined;

export function holdThread(): void {
  if (sleepers++ === 0) {
    keepAlive ??= setInterval(() => {}, 2 ** 30);
    keepAlive.ref();
  }
}

export function releaseThread(): void {
  if (--sleepers === 0) keepAlive?.unref();
}

type WaitAsync = (
  array: Int32Array,
  index: number,
  value: number,
  timeoutMs?: number,
) => { async: false; value: string } | { async: true; value: Promise<string> };

/** ES2024's Atomics.waitAsync, which Node 20 has but the es2023 lib does not declare. */
export const waitAsync: WaitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync;
