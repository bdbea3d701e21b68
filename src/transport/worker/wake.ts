/**
 * How a waiting endpoint gets back to work: a short busy-wait while messages come fast, then
 * sleep on `Atomics.waitAsync`. docs/worker.md explains the trade-off.
 */
import { IpcError } from '../../errors.js';

export interface WakePolicy {
  /**
   * Longest busy-wait, in microseconds, before an idle receiver (or a sender waiting for room)
   * goes to sleep. 0 never spins. Default 20.
   */
  spinMicros?: number;
  /**
   * Adapt the busy-wait to recent luck (default true): it doubles while spinning finds work,
   * halves each time it runs out and the thread sleeps, and comes back when wake-ups arrive
   * sooner than a full spin would have lasted. When false every wait spins `spinMicros`.
   */
  adaptive?: boolean;
}

export interface ResolvedWakePolicy {
  readonly spinMicros: number;
  readonly adaptive: boolean;
}

let defaultPolicy: ResolvedWakePolicy = Object.freeze({ spinMicros: 20, adaptive: true });

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

/** One endpoint's current spin budget under a policy. */
export class Spinner {
  readonly policy: ResolvedWakePolicy;
  #budget: number;

  constructor(policy: ResolvedWakePolicy) {
    this.policy = policy;
    this.#budget = policy.spinMicros;
  }

  /** Busy-waits until `ready()` or the budget runs out; says whether it found work. */
  spin(ready: () => boolean): boolean {
    const budget = this.#budget;
    if (budget <= 0) return false;
    const start = performance.now();
    const deadline = start + budget / 1000;
    for (let i = 1; ; i++) {
      if (ready()) {
        if (this.policy.adaptive) this.#budget = Math.min(this.policy.spinMicros, budget * 2);
        return true;
      }
      // Reading the clock costs more than a ready() check; look at it every few rounds.
      if ((i & 15) === 0 && performance.now() >= deadline) break;
    }
    if (this.policy.adaptive) this.#budget = budget < 1 ? 0 : budget / 2;
    return false;
  }

  /** Called after a sleep that lasted `micros`: a short sleep means spinning would have paid. */
  slept(micros: number): void {
    if (this.policy.adaptive && micros < this.policy.spinMicros && this.#budget === 0) {
      this.#budget = this.policy.spinMicros / 4;
    }
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
) => { async: false; value: string } | { async: true; value: Promise<string> };

/** ES2024's Atomics.waitAsync, which Node 20 has but the es2023 lib does not declare. */
export const waitAsync: WaitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync;
