/**
 * The decisions of the adaptive wake policy (src/shm/wake.ts), apart from clocks and memory:
 * whether a wait spins or sleeps at once, how long it may spin, and what each outcome teaches
 * the endpoint. Pure, so that a model (test/transport/worker/wake-model.test.ts) can drive it
 * through any history deterministically.
 *
 * The length of recent waits says whether spinning can pay: success and failure alone would
 * keep two sleeping threads asleep, as each waits for the other's wake-up (tens of
 * microseconds) and a short spin always fails, although spinning together would answer in about
 * one microsecond. So, past its skips, a wait spins even when waits were long, as a probe, and a
 * probe spins long enough to cover the peer's wake-up (what the waits were, up to PROBE_LIMIT
 * spins): one side's probe then finds the answer of a peer that had to wake first, and from
 * there both sides see short waits. Failures still count: a spin that found nothing means the
 * other thread could not run meanwhile (both on one core, the other core busy), and then
 * spinning only delays it; such failures back off exponentially, up to MAX_BACKOFF waits.
 */

export interface SpinPolicy {
  /** Longest ordinary spin, in microseconds; 0 never spins. */
  readonly spinMicros: number;
  /** When false every wait spins up to `spinMicros`, whatever the history. */
  readonly adaptive: boolean;
}

export interface SpinState {
  /** Moving average of recent waits, in microseconds, each counted up to PROBE_LIMIT spins. */
  typicalWait: number;
  /** Microseconds the last spin lasted before giving up. */
  spun: number;
  /** Waits left to sleep through without spinning, and how many the next failure skips. */
  skip: number;
  backoff: number;
}

/** How long a probe may spin, in multiples of `spinMicros`. */
export const PROBE_LIMIT = 4;
export const MAX_BACKOFF = 256;

export function newSpinState(): SpinState {
  return { typicalWait: 0, spun: 0, skip: 0, backoff: 1 };
}

/**
 * How long the wait about to start may spin, in microseconds: 0 sleeps at once. Consumes a skip.
 * A positive result above `spinMicros`, or any result while waits are long, is a probe.
 */
export function spinBudget(state: SpinState, policy: SpinPolicy): number {
  state.spun = 0;
  const { spinMicros, adaptive } = policy;
  if (spinMicros === 0) return 0;
  if (!adaptive) return spinMicros;
  if (state.skip > 0) {
    state.skip--;
    return 0;
  }
  // Twice the typical wait: a peer that must wake first answers a little later than it did.
  return Math.max(spinMicros, Math.min(2 * state.typicalWait, PROBE_LIMIT * spinMicros));
}

/** Is a spin with this budget a probe (waits have been long)? */
export function isProbe(state: SpinState, policy: SpinPolicy): boolean {
  return policy.adaptive && state.typicalWait > policy.spinMicros;
}

/** The spin found work after `micros`. */
export function spinFound(
  state: SpinState,
  policy: SpinPolicy,
  micros: number,
  probe: boolean,
): void {
  // A probe that found work says the stream is fast now, whatever the average said.
  if (probe) state.typicalWait = Math.min(micros, policy.spinMicros);
  else record(state, policy, micros);
  state.backoff = 1;
}

/** The spin gave up after `micros` (its budget): the next waits sleep at once, more each time. */
export function spinFailed(state: SpinState, micros: number): void {
  state.spun = micros;
  state.skip = state.backoff;
  state.backoff = Math.min(state.backoff * 2, MAX_BACKOFF);
}

/**
 * The wait ended after a sleep: work came `micros` after the sleep began (when the other side
 * notified, not when this one woke up: that says whether spinning would have been enough).
 */
export function slept(state: SpinState, policy: SpinPolicy, micros: number): void {
  record(state, policy, state.spun + micros);
}

/**
 * Waits count up to what a probe may cover: one long idle stretch (a worker starting up) must
 * not keep the endpoint from spinning once messages come fast again.
 */
function record(state: SpinState, policy: SpinPolicy, micros: number): void {
  const capped = Math.min(micros, PROBE_LIMIT * policy.spinMicros);
  state.typicalWait = state.typicalWait * 0.75 + capped * 0.25;
}
