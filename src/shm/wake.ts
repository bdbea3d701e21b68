/**
 * How a waiting endpoint gets back to work: a short busy-wait while messages come fast, then
 * sleep on `Atomics.waitAsync`. docs/worker.md explains the trade-off.
 */
import { IpcError } from '../errors.js';

export interface WakePolicy {
  /**
   * Longest busy-wait, in microseconds, before an idle receiver (or a sender waiting for room)
   * goes to sleep. 0 never spins. Default 50.
   */
  spinMicros?: number;
  /**
   * Spin only while recent waits were short (default true): the endpoint keeps a moving
   * average of how long its waits lasted, spinning or sleeping, and spins only while that is
   * below `spinMicros`, with a probing spin after exponentially many (at most 256) sleeps so
   * that a fast stream always gets back to spinning. A channel under load spins; an idle one
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
 * One endpoint's spinning under a policy. The length of recent waits says whether spinning
 * can pay: success and failure alone would keep two sleeping threads asleep, as each waits
 * for the other's wake-up (tens of microseconds) and a short spin always fails, although
 * spinning together would answer in about one microsecond. Failures still count: a spin that
 * found nothing while waits were short means the other thread could not run meanwhile (both
 * on one core, the other core busy), and then spinning only delays it; such failures back off
 * exponentially.
 */
export class Spinner {
  readonly policy: ResolvedWakePolicy;
  /** Moving average of recent waits, in microseconds. */
  #typicalWait = 0;
  /** Microseconds the last spin lasted before giving up. */
  #spun = 0;
  /** Waits left to sleep through without spinning, and how many the next failure skips. */
  #skip = 0;
  #backoff = 1;

  constructor(policy: ResolvedWakePolicy) {
    this.policy = policy;
  }

  /** Busy-waits until `ready()` or the budget runs out; says whether it found work. */
  spin(ready: () => boolean): boolean {
    const { spinMicros, adaptive } = this.policy;
    this.#spun = 0;
    if (spinMicros === 0) return false;
    if (adaptive && this.#skip > 0) {
      this.#skip--;
      return false;
    }
    // Past the skips, a wait spins even when recent waits were long: it is a probe, and a
    // failed one backs off like any failure. Without probes, two endpoints whose sleeps each
    // last the other's wake-up would never spin again.
    const probe = adaptive && this.#typicalWait > spinMicros;
    const start = performance.now();
    const deadline = start + spinMicros / 1000;
    for (let i = 1; ; i++) {
      if (ready()) {
        const micros = (performance.now() - start) * 1000;
        // A probe that found work says the stream is fast now, whatever the average said.
        if (probe) this.#typicalWait = micros;
        else this.#record(micros);
        this.#backoff = 1;
        return true;
      }
      // Reading the clock costs more than a ready() check; look at it every few rounds.
      if ((i & 15) === 0 && performance.now() >= deadline) break;
    }
    this.#spun = spinMicros;
    this.#skip = this.#backoff;
    this.#backoff = Math.min(this.#backoff * 2, MAX_BACKOFF);
    return false;
  }

  /** Called after a sleep that lasted `micros`, following a failed or skipped spin. */
  slept(micros: number): void {
    this.#record(this.#spun + micros);
  }

  /**
   * Waits count up to twice the spin: one long idle stretch (a worker starting up) must not
   * keep the endpoint from spinning once messages come fast again.
   */
  #record(micros: number): void {
    const capped = Math.min(micros, 2 * this.policy.spinMicros);
    this.#typicalWait = this.#typicalWait * 0.75 + capped * 0.25;
  }
}

const MAX_BACKOFF = 256;

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
